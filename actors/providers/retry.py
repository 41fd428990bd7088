"""Retries around one adapter call, without ever duplicating streamed output.

A transient failure (rate limit, server error, network, timeout) is retried with capped
exponential backoff and jitter — but only while nothing has been yielded to the caller. Once part
of an answer went out, a retry would repeat it, so the failure is raised with ``partial_text`` and
the turn loop decides (it can fall through to another model with the partial answer in hand).

``Retry-After`` replaces the computed delay, even beyond ``max_delay``; a server that asks for more
than ``max_retry_after`` seconds is treated as unavailable now, and the error is raised so routing
can fall through instead of stalling the turn.
"""
from __future__ import annotations

import inspect
import random
from contextlib import aclosing
from typing import Any
from collections.abc import AsyncGenerator, Callable

import trio

from actors.providers.base import Adapter, Completed, ErrorClass, LLMRequest, ProviderError, StreamEvent, TextChunk

OnAttempt = Callable[[bool, ErrorClass | None], Any]


def backoff_delay(
    attempt: int, *, base_delay: float, max_delay: float, rng: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempt`` (1-based): ``base·2^(n-1)`` capped, 50–100% of it."""
    ceiling = min(max_delay, base_delay * 2 ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * rng())


async def _report(on_attempt: OnAttempt, ok: bool, error_class: ErrorClass | None) -> None:
    result = on_attempt(ok, error_class)
    if inspect.isawaitable(result):  # an actor's async send works as well as a plain callback
        await result


async def call_with_retries(
    adapter: Adapter,
    request: LLMRequest,
    *,
    on_attempt: OnAttempt,
    max_attempts: int = 4,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    max_retry_after: float = 60.0,
    on_error: Callable[[ProviderError], None] | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """Yield the events of the first attempt that gets anywhere; ``on_attempt`` sees every attempt.

    ``on_attempt(True, None)`` fires when ``Completed`` arrives (before it is yielded, so a caller
    that stops reading there is still counted); ``on_attempt(False, cls)`` for each failure.
    Cancellation is not an attempt outcome and is not reported. ``on_error`` sees (and may
    rewrite) the one error that is raised, after every attempt was reported.
    """
    attempt = 0
    while True:
        attempt += 1
        yielded = False
        text: list[str] = []
        try:
            async with aclosing(adapter.stream(request)) as events:
                async for event in events:
                    if isinstance(event, Completed):
                        await _report(on_attempt, True, None)
                        yield event
                        return
                    if isinstance(event, TextChunk):
                        text.append(event.text)
                    yielded = True
                    yield event
            raise ProviderError(ErrorClass.SERVER_ERROR, "stream ended without a completed message")
        except ProviderError as exc:
            await _report(on_attempt, False, exc.error_class)
            if yielded:
                exc.partial_text = exc.partial_text or "".join(text)
            if (yielded or not exc.transient or attempt >= max_attempts
                    or exc.retry_after is not None and exc.retry_after > max_retry_after):
                if on_error is not None:
                    on_error(exc)
                raise
            if exc.retry_after is not None:
                delay = exc.retry_after
            else:
                delay = backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay)
        await trio.sleep(delay)
