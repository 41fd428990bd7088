"""What every provider adapter offers the turn loop: a streamed call in the canonical format."""
from __future__ import annotations

import enum
from contextlib import aclosing
from typing import Protocol
from collections.abc import AsyncGenerator

import attrs
from attrs import frozen

from protocol.canonical import Message, ToolDefinition, ToolUseBlock, Usage


class ErrorClass(enum.StrEnum):
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    NETWORK = "network"
    TIMEOUT = "timeout"
    CONTEXT_LENGTH = "context_length"
    BAD_REQUEST = "bad_request"


TRANSIENT = frozenset({ErrorClass.RATE_LIMIT, ErrorClass.SERVER_ERROR, ErrorClass.NETWORK, ErrorClass.TIMEOUT})


class ProviderError(Exception):
    """A classified failure of one provider call (classified by status/type/exception, never text)."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        partial_text: str = "",
        usage: Usage | None = None,
    ):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.partial_text = partial_text
        self.usage = usage

    @property
    def transient(self) -> bool:
        return self.error_class in TRANSIENT


@frozen
class LLMRequest:
    model: str                                  # the provider's own model name
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolDefinition, ...] = ()
    max_tokens: int = 4096
    output_schema: dict | None = None
    temperature: float | None = None
    supports_thinking: bool = False             # False: thinking blocks are dropped on the way out
    supports_images: bool = True
    workspace: str | None = None                # the turn's workspace: where a cli agent runs
    effort: str | None = None                   # reasoning effort (models.yaml efforts), mapped per adapter
    # Which tool the model must call: None or "auto" (its choice), "none", "required" (some tool), or
    # "tool:<name>" (that one); see ``named_tool``. Ignored without tools; structured output overrides it.
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None     # False: at most one tool call per answer; None: provider default


def named_tool(tool_choice: str | None) -> str | None:
    """The tool a ``tool_choice`` of ``tool:<name>`` names, else None."""
    if tool_choice is not None and tool_choice.startswith("tool:"):
        return tool_choice[len("tool:"):]
    return None


@frozen
class TextChunk:
    text: str


@frozen
class ThinkingChunk:
    text: str


@frozen
class ToolUseChunk:
    """A complete tool call (streamed argument fragments are assembled by the adapter)."""

    block: ToolUseBlock


@frozen
class Completed:
    """Last item of every successful stream: the whole assistant message and its usage."""

    message: Message
    usage: Usage = attrs.field(factory=Usage)


StreamEvent = TextChunk | ThinkingChunk | ToolUseChunk | Completed


class Adapter(Protocol):
    def stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield chunks, then exactly one ``Completed``; raise ``ProviderError`` on failure."""
        ...

    async def aclose(self) -> None: ...


async def collect_text(stream: AsyncGenerator[StreamEvent, None], text: list[str]) -> Usage:
    """Drains a stream whose answer is only read as text, appending to ``text`` as it arrives (so
    what came before a ``ProviderError`` is kept), and returns the usage it reported (zero if none)."""
    usage = Usage()
    async with aclosing(stream) as events:
        async for event in events:
            if isinstance(event, TextChunk):
                text.append(event.text)
            elif isinstance(event, Completed):
                usage = event.usage
    return usage
