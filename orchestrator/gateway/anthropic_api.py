"""Anthropic Messages ↔ the canonical turn (sans-IO: dicts and bytes in, dicts and bytes out)."""
from __future__ import annotations

import json
from typing import Any

from protocol.canonical import (
    ContentBlock, ImageBlock, Message, Role, StopReason, TextBlock, ThinkingBlock, ToolDefinition, ToolResultBlock,
    ToolUseBlock, Usage,
)

from .canonical import GatewayRequest, TurnResult, positive_int, text_of, tool_choice, tool_definition
from .errors import GatewayError, bad_request

STOP = {StopReason.TOOL_USE: "tool_use", StopReason.MAX_TOKENS: "max_tokens",
        StopReason.STOP_SEQUENCE: "stop_sequence", StopReason.REFUSAL: "refusal"}


def parse_request(body: Any, *, count_only: bool = False) -> GatewayRequest:
    """``count_only``: /v1/messages/count_tokens, where max_tokens is not part of the request."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model: required (a registry id, an alias, fast|balanced|deep or auto)")
    max_tokens = positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is None and not count_only:
        raise bad_request("max_tokens: required")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages: expected a non-empty list")
    messages: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise bad_request(f"{where}.role: expected user or assistant")
        messages.extend(_message(m["role"], m.get("content"), where))
    system = body.get("system")
    tools = _tools(body.get("tools"))
    choice, parallel = _tool_choice(body.get("tool_choice"), tools)
    return GatewayRequest(model=model, messages=tuple(messages),
                          system=text_of(system, "system") if system is not None else None,
                          tools=tools, max_tokens=max_tokens, stream=body.get("stream") is True,
                          tool_choice=choice, parallel_tool_calls=parallel)


def _message(role: str, content: Any, where: str) -> list[Message]:
    """One API message → canonical messages: a user message's tool_result blocks become the
    canonical ``tool`` message (first, as the API requires them first), its other blocks a user message."""
    if isinstance(content, str):
        return [Message(Role.USER if role == "user" else Role.ASSISTANT, (TextBlock(content),))]
    if not isinstance(content, list):
        raise bad_request(f"{where}.content: expected a string or a list of blocks")
    results: list[ContentBlock] = []
    blocks: list[ContentBlock] = []
    for j, b in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text" and isinstance(b.get("text"), str):
            blocks.append(TextBlock(b["text"]))
        elif kind == "image" and role == "user":
            blocks.append(_image(b.get("source"), at))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(b.get("id"), str) or not isinstance(b.get("name"), str):
                raise bad_request(f"{at}: tool_use needs id and name")
            value = b.get("input", {})
            if not isinstance(value, dict):
                raise bad_request(f"{at}.input: expected an object")
            blocks.append(ToolUseBlock(b["id"], b["name"], value))
        elif kind == "tool_result" and role == "user":
            if not isinstance(b.get("tool_use_id"), str):
                raise bad_request(f"{at}.tool_use_id: required")
            results.append(ToolResultBlock(b["tool_use_id"], _result_text(b.get("content"), at),
                                           b.get("is_error") is True))
        elif kind == "thinking" and role == "assistant" and isinstance(b.get("thinking"), str):
            blocks.append(ThinkingBlock(b["thinking"], b.get("signature")))
        elif kind == "redacted_thinking" and role == "assistant":
            continue   # opaque to every other provider
        else:
            raise bad_request(f"{at}: unsupported {role} block {kind!r}")
    out: list[Message] = []
    if results:
        out.append(Message(Role.TOOL, tuple(results)))
    if blocks or not results:
        if role == "user":
            out.append(Message(Role.USER, tuple(blocks)))
        else:
            stop = StopReason.TOOL_USE if any(isinstance(b, ToolUseBlock) for b in blocks) else StopReason.END_TURN
            out.append(Message(Role.ASSISTANT, tuple(blocks), stop_reason=stop))
    return out


def _result_text(content: Any, where: str) -> str:
    if isinstance(content, list):  # text blocks (images in a tool result are dropped: the canonical result is text)
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return text_of(content, f"{where}.content")


def _image(source: Any, where: str) -> ImageBlock:
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        return ImageBlock(str(source.get("media_type") or "image/png"), data=source["data"])
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return ImageBlock(url=source["url"])
    raise bad_request(f"{where}.source: expected a base64 or url image source")


def _tools(raw: Any) -> tuple[ToolDefinition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_request("tools: expected a list")
    return tuple(tool_definition(t.get("name"), t.get("description"), t.get("input_schema"), f"tools[{i}]")
                 if isinstance(t, dict) else tool_definition(None, None, None, f"tools[{i}]")
                 for i, t in enumerate(raw))


CHOICES = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}


def _tool_choice(raw: Any, tools: tuple[ToolDefinition, ...]) -> tuple[str | None, bool | None]:
    """``tool_choice`` {type: auto|any|tool|none, name?, disable_parallel_tool_use?} → (canonical choice,
    parallel_tool_calls); ignored without tools."""
    if raw is None or not tools:
        return None, None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or kind not in CHOICES:
        raise bad_request("tool_choice.type: expected auto, any, tool or none")
    flag = raw.get("disable_parallel_tool_use")
    if flag is not None and not isinstance(flag, bool):
        raise bad_request("tool_choice.disable_parallel_tool_use: expected a boolean")
    return tool_choice(CHOICES[kind], raw.get("name"), tools, "tool_choice.name"), False if flag else None


# --- responses -------------------------------------------------------------------------------------


def usage_of(usage: Usage) -> dict:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens}


def stop_reason(result: TurnResult) -> str:
    if result.tool_uses:
        return "tool_use"
    return STOP.get(result.message.stop_reason or StopReason.END_TURN, "end_turn")


def content_of(result: TurnResult) -> list[dict]:
    blocks: list[dict] = []
    for b in result.message.content:
        if isinstance(b, ThinkingBlock):
            blocks.append({"type": "thinking", "thinking": b.thinking, "signature": b.signature or ""})
        elif isinstance(b, TextBlock) and b.text:
            blocks.append({"type": "text", "text": b.text})
        elif isinstance(b, ToolUseBlock):
            blocks.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
    return blocks


def response(result: TurnResult) -> dict:
    return {"id": f"msg_{result.turn_id}", "type": "message", "role": "assistant", "model": result.model,
            "content": content_of(result), "stop_reason": stop_reason(result), "stop_sequence": None,
            "usage": usage_of(result.usage)}


def _event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"


class EventStream:
    """The Messages streaming event sequence: message_start, content_block_start/delta/stop per block,
    message_delta (stop_reason, usage), message_stop. Text deltas use a prebuilt frame: this runs per chunk."""

    _TEXT_HEAD = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": '

    def __init__(self, turn_id: str, model: str):
        self.turn_id, self.model = turn_id, model
        self.index = -1            # of the open block
        self.text_open = False

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_{self.turn_id}", "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage_of(Usage())}
        return _event("message_start", {"type": "message_start", "message": message})

    def _open_text(self) -> bytes:
        self.index += 1
        self.text_open = True
        self._text_prefix = self._TEXT_HEAD + str(self.index).encode() + b', "delta": {"type": "text_delta", "text": '
        return _event("content_block_start", {"type": "content_block_start", "index": self.index,
                                              "content_block": {"type": "text", "text": ""}})

    def _close(self) -> bytes:
        self.text_open = False
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def text(self, text: str) -> bytes:
        head = b"" if self.text_open else self._open_text()
        return head + self._text_prefix + json.dumps(text).encode() + b"}}\n\n"

    def finish(self, result: TurnResult) -> bytes:
        out = self._close() if self.text_open else b""
        for use in result.tool_uses:
            self.index += 1
            out += _event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                  "content_block": {"type": "tool_use", "id": use.id,
                                                                    "name": use.name, "input": {}}})
            out += _event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                  "delta": {"type": "input_json_delta",
                                                            "partial_json": json.dumps(use.input)}})
            out += self._close()
        out += _event("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": stop_reason(result), "stop_sequence": None},
                                        "usage": usage_of(result.usage)})
        return out + _event("message_stop", {"type": "message_stop"})

    def error(self, err: GatewayError) -> bytes:
        return _event("error", err.anthropic_body())
