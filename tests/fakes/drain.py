"""Read a whole adapter stream in tests."""
from __future__ import annotations

from contextlib import aclosing
from typing import Any
from collections.abc import AsyncIterator

import attrs

from actors.providers.base import Completed, TextChunk, ThinkingChunk, ToolUseChunk


@attrs.define
class Drained:
    events: list[Any]

    @property
    def text_chunks(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TextChunk)]

    @property
    def thinking_chunks(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, ThinkingChunk)]

    @property
    def tool_uses(self) -> list[Any]:
        return [e.block for e in self.events if isinstance(e, ToolUseChunk)]

    @property
    def completed(self) -> Completed:
        assert isinstance(self.events[-1], Completed), self.events
        assert sum(isinstance(e, Completed) for e in self.events) == 1
        return self.events[-1]


async def drain(stream: AsyncIterator[Any]) -> Drained:
    events = []
    async with aclosing(stream) as s:  # type: ignore[type-var]
        async for event in s:
            events.append(event)
    return Drained(events)
