"""call_with_retries: backoff for transient failures before any output, never after."""
from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio

from actors.providers.anthropic import AnthropicAdapter
from actors.providers.base import ErrorClass, LLMRequest, ProviderError
from actors.providers.openai import OpenAIAdapter
from actors.providers.retry import backoff_delay, call_with_retries
from protocol.canonical import Message, Role, TextBlock
from tests.fakes import Answer, Drop, Fail, drain, open_fake_anthropic, open_fake_openai
import trio.lowlevel

REQUEST = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("hi"),)),))


@asynccontextmanager
async def anthropic():
    async with open_fake_anthropic() as srv:
        adapter = AnthropicAdapter(api_key="test-key", base_url=srv.base_url)
        try:
            yield srv, adapter
        finally:
            await adapter.aclose()


class Attempts(list):
    def __call__(self, ok: bool, error_class: ErrorClass | None) -> None:
        self.append((ok, error_class, trio.current_time()))

    @property
    def outcomes(self):
        return [(ok, cls) for ok, cls, _ in self]


async def test_transient_failures_are_retried_with_backoff_and_retry_after_is_honoured(autojump_clock):
    attempts = Attempts()
    async with anthropic() as (srv, adapter):
        srv.script(Fail(529, "overloaded_error"), Fail(429, "rate_limit_error", retry_after="5"), Drop(),
                   Answer(text=("fi", "ne")))
        start = trio.current_time()
        out = await drain(call_with_retries(adapter, REQUEST, on_attempt=attempts, base_delay=0.5, max_delay=8.0))
    assert out.text_chunks == ["fi", "ne"]
    assert attempts.outcomes == [(False, ErrorClass.SERVER_ERROR), (False, ErrorClass.RATE_LIMIT),
                                 (False, ErrorClass.NETWORK), (True, None)]
    times = [t - start for _, _, t in attempts]
    assert 0.25 <= times[1] - times[0] <= 0.5        # first backoff: base·2⁰ with 50–100% jitter
    assert times[2] - times[1] == pytest.approx(5.0)  # Retry-After replaces the backoff
    assert 1.0 <= times[3] - times[2] <= 2.0          # third: base·2² jittered
    assert len(srv.requests) == 4


async def test_non_transient_errors_are_not_retried():
    attempts = Attempts()
    async with anthropic() as (srv, adapter):
        srv.script(Fail(401, "authentication_error"), Answer())
        with pytest.raises(ProviderError) as info:
            await drain(call_with_retries(adapter, REQUEST, on_attempt=attempts))
    assert info.value.error_class is ErrorClass.AUTH
    assert attempts.outcomes == [(False, ErrorClass.AUTH)]
    assert srv.pending == 1


async def test_gives_up_after_max_attempts_and_raises_the_last_error(autojump_clock):
    attempts = Attempts()
    async with anthropic() as (srv, adapter):
        srv.script(*[Fail(500, "api_error")] * 3, Fail(503, "api_error"))
        with pytest.raises(ProviderError) as info:
            await drain(call_with_retries(adapter, REQUEST, on_attempt=attempts, max_attempts=4))
    assert info.value.status == 503
    assert attempts.outcomes == [(False, ErrorClass.SERVER_ERROR)] * 4


@pytest.mark.parametrize("opener, cls", [(open_fake_anthropic, AnthropicAdapter), (open_fake_openai, OpenAIAdapter)])
async def test_a_cut_after_streamed_text_raises_with_partial_text_and_is_not_retried(opener, cls, autojump_clock):
    attempts = Attempts()
    async with opener() as srv:
        adapter = cls(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(text=("The answer ", "is ", "42."), cut_after=2), Answer(text="retried!"))
        seen = []
        with pytest.raises(ProviderError) as info:
            async for event in call_with_retries(adapter, REQUEST, on_attempt=attempts):
                seen.append(event.text)
        await adapter.aclose()
    assert seen == ["The answer ", "is "]
    assert info.value.error_class is ErrorClass.NETWORK
    assert info.value.partial_text == "The answer is "
    assert attempts.outcomes == [(False, ErrorClass.NETWORK)]
    assert len(srv.requests) == 1 and srv.pending == 1


async def test_a_retry_after_longer_than_the_limit_fails_fast(autojump_clock):
    attempts = Attempts()
    async with anthropic() as (srv, adapter):
        srv.script(Fail(429, "rate_limit_error", retry_after="3600"), Answer())
        start = trio.current_time()
        with pytest.raises(ProviderError) as info:
            await drain(call_with_retries(adapter, REQUEST, on_attempt=attempts, max_retry_after=60))
    assert info.value.retry_after == 3600
    assert trio.current_time() - start < 1
    assert attempts.outcomes == [(False, ErrorClass.RATE_LIMIT)]


async def test_an_async_on_attempt_callback_is_awaited(autojump_clock):
    seen = []

    async def on_attempt(ok, error_class):
        await trio.lowlevel.checkpoint()
        seen.append((ok, error_class))

    async with anthropic() as (srv, adapter):
        srv.script(Fail(503, "api_error"), Answer())
        await drain(call_with_retries(adapter, REQUEST, on_attempt=on_attempt))
    assert seen == [(False, ErrorClass.SERVER_ERROR), (True, None)]


async def test_success_is_reported_even_if_the_caller_stops_at_completed():
    from actors.providers.base import Completed

    attempts = Attempts()
    async with anthropic() as (srv, adapter):
        srv.script(Answer())
        stream = call_with_retries(adapter, REQUEST, on_attempt=attempts)
        async for event in stream:
            if isinstance(event, Completed):
                break
        await stream.aclose()
    assert attempts.outcomes == [(True, None)]


async def test_cancellation_during_backoff_propagates_and_is_not_an_attempt(autojump_clock):
    attempts = Attempts()
    async with anthropic() as (srv, adapter):
        srv.script(Fail(429, "rate_limit_error", retry_after="30"), Answer())
        with trio.move_on_after(10) as scope:
            await drain(call_with_retries(adapter, REQUEST, on_attempt=attempts))
    assert scope.cancelled_caught
    assert attempts.outcomes == [(False, ErrorClass.RATE_LIMIT)]


def test_backoff_grows_exponentially_is_capped_and_jittered():
    assert backoff_delay(1, base_delay=0.5, max_delay=8, rng=lambda: 1.0) == 0.5
    assert backoff_delay(3, base_delay=0.5, max_delay=8, rng=lambda: 1.0) == 2.0
    assert backoff_delay(10, base_delay=0.5, max_delay=8, rng=lambda: 1.0) == 8.0
    assert backoff_delay(10, base_delay=0.5, max_delay=8, rng=lambda: 0.0) == 4.0
