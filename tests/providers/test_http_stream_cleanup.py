"""Stopping a stream early — caller break, cancellation — leaves no half-read generator behind.

Under trio an abandoned async generator is reported as a ResourceWarning when it is collected;
warnings are errors here, so a leak would fail these tests at the ``gc.collect()``.
"""
from __future__ import annotations

import gc
from contextlib import aclosing

import pytest
import trio

from actors.providers.anthropic import AnthropicAdapter
from actors.providers.base import LLMRequest, TextChunk
from actors.providers.openai import OpenAIAdapter
from protocol.canonical import Message, Role, TextBlock
from tests.fakes import Answer, drain, open_fake_anthropic, open_fake_openai

REQUEST = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("hi"),)),))
VENDORS = [(open_fake_anthropic, AnthropicAdapter), (open_fake_openai, OpenAIAdapter)]


@pytest.mark.parametrize("opener, cls", VENDORS)
async def test_a_caller_that_stops_after_the_first_chunk_closes_everything(opener, cls):
    async with opener() as srv:
        adapter = cls(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(text=tuple(f"w{i} " for i in range(50))), Answer(text="again"))
        async with aclosing(adapter.stream(REQUEST)) as stream:
            async for event in stream:
                assert isinstance(event, TextChunk)
                break
        gc.collect()
        # The adapter (and its pooled client) still works for the next call.
        assert (await drain(adapter.stream(REQUEST))).completed.message.text == "again"
        await adapter.aclose()


@pytest.mark.parametrize("opener, cls", VENDORS)
async def test_cancelling_a_slow_stream_is_prompt_and_clean(opener, cls, autojump_clock):
    async with opener() as srv:
        adapter = cls(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(text=("a", "b", "c"), delay=100.0))
        seen = []
        with trio.move_on_after(150) as scope:
            async with aclosing(adapter.stream(REQUEST)) as stream:
                async for event in stream:
                    seen.append(event)
        assert scope.cancelled_caught
        assert [e.text for e in seen] == ["a"]
        gc.collect()
        await adapter.aclose()


@pytest.mark.parametrize("opener, cls", VENDORS)
async def test_a_caller_cancelled_while_busy_elsewhere_closes_the_stream_cleanly(opener, cls, autojump_clock):
    async with opener() as srv:
        adapter = cls(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(text=("a", "b", "c")))
        with trio.move_on_after(5) as scope:
            async with aclosing(adapter.stream(REQUEST)) as stream:
                async for _ in stream:
                    await trio.sleep(100)  # cancelled here, outside the adapter
        assert scope.cancelled_caught
        gc.collect()
        await adapter.aclose()
