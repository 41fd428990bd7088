"""Vendor-neutral scripted replies; each fake renders them in its own wire format."""
from __future__ import annotations

import json

import attrs
from attrs import frozen


def _chunks(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@frozen
class Tokens:
    """The billing truth of a scripted answer: ``input`` is the *uncached* input.

    Each fake reports it the way its vendor does (OpenAI's prompt_tokens includes cached tokens,
    Anthropic's input_tokens does not), so adapters are checked against the real conventions.
    """

    input: int = 10
    output: int = 5
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@frozen
class ToolCall:
    name: str
    arguments: dict = attrs.field(factory=dict)
    id: str | None = None          # generated when None
    fragments: int = 3             # the arguments JSON is streamed in this many pieces
    raw_arguments: str | None = None  # streamed verbatim instead, e.g. JSON cut off by max_tokens

    def argument_fragments(self) -> list[str]:
        text = self.raw_arguments if self.raw_arguments is not None else json.dumps(self.arguments)
        size = max(1, -(-len(text) // max(1, self.fragments)))
        return [text[i:i + size] for i in range(0, len(text), size)] or [""]


@frozen
class Fail:
    """An error response in the vendor's real error shape."""

    status: int
    type: str
    message: str = "scripted failure"
    code: str | None = None                 # OpenAI's ``error.code``
    retry_after: str | None = None          # the Retry-After header value, verbatim
    headers: tuple[tuple[str, str], ...] = ()


@frozen
class Answer:
    text: tuple[str, ...] = attrs.field(default=("Hello", " world"), converter=_chunks)
    thinking: tuple[str, ...] = attrs.field(default=(), converter=_chunks)
    signature: str = "sig-fake"
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=tuple)
    interleave_tool_calls: bool = False     # OpenAI: mix the calls' argument fragments by index
    stop_reason: str | None = None          # vendor-native value; derived from tool_calls if None
    usage: Tokens = Tokens()
    delay: float = 0.0                      # seconds before each content delta
    headers_delay: float = 0.0              # seconds before the response starts
    cut_after: int | None = None            # drop the connection after this many content deltas
    error_after: int | None = None          # send ``error`` as an in-stream event after N deltas
    error: Fail | None = None
    garble_after: int | None = None         # after N deltas send a malformed SSE event, then end the body


@frozen
class Drop:
    """Close the connection without answering."""


Reply = Answer | Fail | Drop
