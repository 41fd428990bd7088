"""What both HTTP APIs translate to: one stateless turn over canonical messages (protocol/canonical)."""
from __future__ import annotations

import json
from typing import Any

import attrs
from attrs import frozen

from protocol.canonical import Message, Role, StopReason, TextBlock, ThinkingBlock, ToolDefinition, ToolUseBlock, Usage

from .errors import bad_request


@frozen
class GatewayRequest:
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolDefinition, ...] = ()
    max_tokens: int | None = None
    output_schema: dict | None = None
    stream: bool = False
    include_usage: bool = False      # OpenAI stream_options.include_usage
    tool_choice: str | None = None   # auto | none | required | tool:<name> (LLMRequest.tool_choice)
    parallel_tool_calls: bool | None = None

    @property
    def routing_text(self) -> str:
        """What the routing predicates read: the last user message's text."""
        for m in reversed(self.messages):
            if m.role is Role.USER and m.text:
                return m.text
        return ""

    @property
    def has_images(self) -> bool:
        return any(m.has_images() for m in self.messages)

    @property
    def has_tool_calls_in_history(self) -> bool:
        return any(m.tool_uses() for m in self.messages if m.role is Role.ASSISTANT)


@frozen
class TurnResult:
    """One gateway turn's answer: the assistant message that ended it and what it cost."""

    turn_id: str
    model: str
    policy: str
    message: Message
    usage: Usage = Usage()

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        return self.message.tool_uses()

    @property
    def thinking(self) -> tuple[ThinkingBlock, ...]:
        return tuple(b for b in self.message.content if isinstance(b, ThinkingBlock))


def final_message(messages: tuple[Message, ...] | list[Message]) -> Message:
    """The assistant messages a turn produced, as one (a gateway turn has one model call; a kept
    partial answer after a failure is folded in)."""
    assistants = [m for m in messages if m.role is Role.ASSISTANT]
    if not assistants:
        return Message(Role.ASSISTANT, (), stop_reason=StopReason.END_TURN)
    if len(assistants) == 1:
        return assistants[0]
    blocks = tuple(b for m in assistants for b in m.content)
    return attrs.evolve(assistants[-1], content=blocks)


def tool_definition(name: Any, description: Any, schema: Any, where: str) -> ToolDefinition:
    if not isinstance(name, str) or not name:
        raise bad_request(f"{where}.name: expected a non-empty string")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise bad_request(f"{where}: the schema must be a JSON object")
    return ToolDefinition(name, description if isinstance(description, str) else "", schema)


def tool_choice(kind: str | None, name: Any, tools: tuple[ToolDefinition, ...], where: str) -> str | None:
    """Either API's tool choice, already reduced to its kind (auto|none|required|tool), as the
    canonical one; a named tool must be one of the request's tools."""
    if kind is None:
        return None
    if kind == "tool":
        if not any(t.name == name for t in tools):
            raise bad_request(f"{where}: no tool named {name!r} in tools")
        return f"tool:{name}"
    return kind


def arguments_of(raw: Any, where: str) -> dict:
    """A tool call's arguments: OpenAI sends a JSON string, Anthropic an object."""
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            raise bad_request(f"{where}: arguments are not valid JSON") from None
        if isinstance(value, dict):
            return value
    raise bad_request(f"{where}: arguments must be a JSON object")


def text_of(content: Any, where: str) -> str:
    """A string, or a list of text parts (both APIs allow either in places)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise bad_request(f"{where}[{i}]: expected a text part")
        return "".join(parts)
    raise bad_request(f"{where}: expected a string or a list of text parts")


def positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"{where}: expected a positive integer")
    return value


def text_blocks(text: str) -> tuple[TextBlock, ...]:
    return (TextBlock(text),) if text else ()
