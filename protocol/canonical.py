"""The canonical message format every adapter translates to and from.

Routing (spec §4.4) and the turn loop only ever see these shapes; provider wire formats stay inside
the adapters.
"""
from __future__ import annotations

import enum
from typing import ClassVar

import attrs
from attrs import frozen


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@frozen
class TextBlock:
    TAG: ClassVar[str] = "text"
    text: str


@frozen
class ImageBlock:
    """An image either inline (base64 ``data``) or by ``url``."""

    TAG: ClassVar[str] = "image"
    media_type: str = "image/png"
    data: str | None = None
    url: str | None = None


@frozen
class ToolUseBlock:
    TAG: ClassVar[str] = "tool_use"
    id: str
    name: str
    input: dict = attrs.field(factory=dict)


@frozen
class ToolResultBlock:
    TAG: ClassVar[str] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool = False


@frozen
class ThinkingBlock:
    TAG: ClassVar[str] = "thinking"
    thinking: str
    signature: str | None = None


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
CONTENT_BLOCK_TYPES: tuple[type, ...] = (TextBlock, ImageBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock)


class StopReason(enum.StrEnum):
    END_TURN = "end_turn"
    TOOL_USE = "tool_use"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    REFUSAL = "refusal"
    ERROR = "error"
    CANCELLED = "cancelled"


@frozen
class Message:
    role: Role
    content: tuple[ContentBlock, ...] = ()
    id: str = ""
    model: str | None = None
    stop_reason: StopReason | None = None

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))

    def has_images(self) -> bool:
        return any(isinstance(b, ImageBlock) for b in self.content)


@frozen
class ToolDefinition:
    name: str
    description: str = ""
    input_schema: dict = attrs.field(factory=lambda: {"type": "object", "properties": {}})


@frozen
class AdapterCapabilities:
    """What a model can do. Defaults follow spec §4.4 for undeclared fields."""

    max_context_tokens: int = 128_000
    supports_images: bool = False
    supports_tools: bool = True
    supports_system_prompt: bool = True
    supports_structured_output: bool = False
    supports_thinking: bool = False
    supports_streaming: bool = True


@frozen
class Usage:
    """Token counts of one call or a sum of calls; ``cost_usd`` is a decimal string or None if unknown."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: str | None = "0"
