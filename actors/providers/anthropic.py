"""Anthropic Messages API adapter (``POST /v1/messages``, streamed as SSE).

Structured output: the Messages API has no JSON-schema response mode, so it is emulated with a
tool whose ``input_schema`` is the requested schema. Without other tools the model is forced to
call it (``tool_choice: tool``); with other tools it must call *some* tool each step
(``tool_choice: any``), and its final answer is the structured one. Either way the tool's input is
surfaced as the answer text (streamed as it arrives) and the stop reason is ``end_turn``, exactly
like a native JSON mode. Non-object schemas are wrapped in ``{"value": ...}`` (tool inputs must be
objects) and unwrapped again.
"""
from __future__ import annotations

import json
from typing import Any
from collections.abc import AsyncGenerator

from protocol.canonical import (
    ImageBlock, Message, Role, StopReason, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock, Usage,
)

from actors.providers import errors
from actors.providers._http import HTTPAdapter, load_json
from actors.providers.toolinput import parse_tool_arguments
from actors.providers.base import (
    Completed, LLMRequest, StreamEvent, TextChunk, ThinkingChunk, ToolUseChunk,
    named_tool,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
STRUCTURED_TOOL = "structured_output"

# Effort → extended-thinking budget (tokens of thinking the model may spend before it answers).
# The API's minimum budget is 1024; max_tokens must exceed the budget, so it is raised by the
# budget: the answer keeps the room it had without thinking.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}

_STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "tool_use": StopReason.TOOL_USE,
    "max_tokens": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "refusal": StopReason.REFUSAL,
    "pause_turn": StopReason.END_TURN,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
}


# ---- canonical → wire -------------------------------------------------------------------------

def _wire_block(block: Any, role: str, request: LLMRequest) -> dict | None:
    """One content block, or None when it cannot or must not be sent in this role."""
    if isinstance(block, TextBlock):
        # The API rejects empty and whitespace-only text blocks.
        return {"type": "text", "text": block.text} if block.text.strip() else None
    if isinstance(block, ImageBlock) and role == "user":
        if not request.supports_images:
            return {"type": "text", "text": "[image omitted: this model does not accept images]"}
        if block.data is not None:
            source = {"type": "base64", "media_type": block.media_type, "data": block.data}
        elif block.url is not None:
            source = {"type": "url", "url": block.url}
        else:
            return None
        return {"type": "image", "source": source}
    if isinstance(block, ToolUseBlock) and role == "assistant":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
    if isinstance(block, ToolResultBlock) and role == "user":
        wire: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": block.content}
        if block.is_error:
            wire["is_error"] = True
        return wire
    if isinstance(block, ThinkingBlock) and role == "assistant":
        # Unsigned thinking cannot be replayed (the API verifies signatures), and models without
        # extended thinking must not receive it at all.
        # With thinking on, the tool loop must hand the last thinking block back, signed.
        if (request.supports_thinking or thinking_budget(request) is not None) and block.signature:
            return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return None


def wire_messages(request: LLMRequest) -> list[dict]:
    """History as alternating user/assistant turns; TOOL messages become user ``tool_result``s."""
    out: list[dict] = []
    for message in request.messages:
        role = "assistant" if message.role is Role.ASSISTANT else "user"
        blocks = [b for b in (_wire_block(x, role, request) for x in message.content) if b is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # the API wants strict alternation
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        if turn["role"] == "user":
            # tool_result blocks must open the user turn that answers the tool calls.
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return out


def _structured_schema(schema: dict) -> tuple[dict, bool]:
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True


def thinking_budget(request: LLMRequest) -> int | None:
    """The thinking budget for the request's effort, or None: no effort, or one the API cannot
    combine with thinking — a forced tool call (structured output, tool_choice required or named) is
    refused with thinking on."""
    forced = bool(request.tools) and (request.tool_choice == "required" or named_tool(request.tool_choice) is not None)
    if request.effort is None or request.output_schema is not None or forced:
        return None
    return THINKING_BUDGETS.get(request.effort)


def wire_request(request: LLMRequest, *, stream: bool) -> dict:
    budget = thinking_budget(request)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens + (budget or 0),
        "messages": wire_messages(request),
    }
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if request.system:
        body["system"] = request.system
    tools = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools]
    if request.output_schema is not None:
        schema, _ = _structured_schema(request.output_schema)
        tools.append({
            "name": STRUCTURED_TOOL,
            "description": "Give your final answer by calling this tool; its input is the answer.",
            "input_schema": schema,
        })
        body["tool_choice"] = {"type": "any"} if request.tools else {"type": "tool", "name": STRUCTURED_TOOL}
    elif request.tools:   # structured output's forced tool wins over the client's choice
        choice = tool_choice(request.tool_choice, request.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    if tools:
        body["tools"] = tools
    if request.temperature is not None and budget is None:  # thinking accepts only the default temperature
        body["temperature"] = request.temperature
    if stream:
        body["stream"] = True
    return body


def tool_choice(choice: str | None, parallel: bool | None) -> dict | None:
    """The canonical tool choice in the Messages API's words (None: leave the provider default)."""
    name = named_tool(choice)
    if name is not None:
        wire: dict[str, Any] = {"type": "tool", "name": name}
    elif choice == "none":
        return {"type": "none"}   # takes no parallel flag
    elif choice == "required":
        wire = {"type": "any"}
    elif choice == "auto" or parallel is False:
        wire = {"type": "auto"}
    else:
        return None
    if parallel is False:
        wire["disable_parallel_tool_use"] = True
    return wire


# ---- wire → canonical (sans-IO) ---------------------------------------------------------------

class StreamState:
    """Folds Messages API stream events into chunks and the final ``Completed``."""

    def __init__(self, request: LLMRequest):
        self.structured = request.output_schema is not None
        self.wrapped = request.output_schema is not None and _structured_schema(request.output_schema)[1]
        self.blocks: dict[Any, dict] = {}   # keyed by the wire's "index" as sent (an int from a sane server)
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.message_id = ""
        self.finished = False
        self.text_parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def _text(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        self.text_parts.append(text)
        return [TextChunk(text)]

    def _is_structured(self, block: dict) -> bool:
        return self.structured and block["type"] == "tool_use" and block["name"] == STRUCTURED_TOOL

    def feed(self, payload: Any) -> list[StreamEvent]:
        if not isinstance(payload, dict):
            raise errors.malformed("event is not an object")
        kind = payload.get("type")
        if kind == "error":
            raise errors.from_payload(payload)
        if kind == "message_start":
            message = payload.get("message") or {}
            self.message_id = message.get("id", "")
            self.usage.update(message.get("usage") or {})
            return []
        if kind == "content_block_start":
            return self._block_start(payload.get("index"), payload.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(self.blocks.get(payload.get("index")), payload.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(self.blocks.get(payload.get("index")))
        if kind == "message_delta":
            self.stop_reason = (payload.get("delta") or {}).get("stop_reason") or self.stop_reason
            # message_delta carries cumulative counts; a field it omits keeps its earlier value.
            self.usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            self.finished = True
        return []  # ping, and event types newer than this adapter (the API may add them)

    def feed_data(self, data: str) -> list[StreamEvent]:
        return self.feed(load_json(data))

    def feed_message(self, message: Any) -> list[StreamEvent]:
        """A non-streamed response, replayed through the same state machine."""
        if not isinstance(message, dict) or message.get("type") == "error":
            raise errors.from_payload(message)
        out = self.feed({"type": "message_start", "message": message})
        for index, block in enumerate(message.get("content") or []):
            out += self.feed({"type": "content_block_start", "index": index, "content_block": block})
            out += self.feed({"type": "content_block_stop", "index": index})
        out += self.feed({"type": "message_delta", "delta": {"stop_reason": message.get("stop_reason")}})
        return out + self.feed({"type": "message_stop"})

    feed_body = feed_message

    def _block_start(self, index: Any, start: dict) -> list[StreamEvent]:
        if not isinstance(index, int):
            raise errors.malformed("content block without an index")
        kind = start.get("type")
        if kind == "text":
            self.blocks[index] = block = {"type": "text", "text": start.get("text", "")}
            return self._text(block["text"])
        if kind == "thinking":
            self.blocks[index] = block = {
                "type": "thinking", "thinking": start.get("thinking", ""), "signature": start.get("signature"),
            }
            return [ThinkingChunk(block["thinking"])] if block["thinking"] else []
        if kind == "tool_use":
            initial = start.get("input") or {}
            self.blocks[index] = {
                "type": "tool_use", "id": start.get("id", ""), "name": start.get("name", ""),
                "json": json.dumps(initial) if initial else "",
            }
        return []  # redacted_thinking, server tools: nothing the canonical format carries

    def _block_delta(self, block: dict | None, delta: dict) -> list[StreamEvent]:
        if block is None:
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] += delta.get("text", "")
            return self._text(delta.get("text", ""))
        if kind == "thinking_delta":
            block["thinking"] += delta.get("thinking", "")
            return [ThinkingChunk(delta["thinking"])] if delta.get("thinking") else []
        if kind == "signature_delta":
            block["signature"] = (block.get("signature") or "") + delta.get("signature", "")
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            block["json"] += fragment
            if self._is_structured(block) and not self.wrapped:
                return self._text(fragment)  # the JSON answer streams as text, as it arrives
        return []

    def _block_stop(self, block: dict | None) -> list[StreamEvent]:
        if block is None or block["type"] != "tool_use":
            return []
        try:
            block["input"] = parse_tool_arguments(block["json"])
        except ValueError:
            # Cut off by max_tokens mid-call; completed() accepts that only with that stop reason.
            block["incomplete"] = True
            return []
        if self._is_structured(block):
            if self.wrapped:
                block["answer"] = json.dumps(block["input"].get("value"))
                return self._text(block["answer"])
            block["answer"] = block["json"]
            return []
        return [ToolUseChunk(ToolUseBlock(block["id"], block["name"], block["input"]))]

    def _content(self) -> tuple:
        content: list = []
        for _, block in sorted(self.blocks.items()):
            if block["type"] == "text" and block["text"]:
                content.append(TextBlock(block["text"]))
            elif block["type"] == "thinking":
                content.append(ThinkingBlock(block["thinking"], block.get("signature")))
            elif block["type"] == "tool_use" and "answer" in block:
                content.append(TextBlock(block["answer"]))
            elif block["type"] == "tool_use" and "input" in block:
                content.append(ToolUseBlock(block["id"], block["name"], block["input"]))
        return tuple(content)

    def completed(self, model: str) -> Completed:
        answered = any("answer" in b for b in self.blocks.values())
        stop = _STOP_REASONS.get(self.stop_reason or "end_turn", StopReason.END_TURN)
        broken = [b["name"] for b in self.blocks.values() if b.get("incomplete")]
        if broken and stop is not StopReason.MAX_TOKENS:
            raise errors.malformed(f"tool input of {broken[0]!r} is not JSON")
        if answered and stop is StopReason.TOOL_USE:
            stop = StopReason.END_TURN  # the "tool call" was the structured answer itself
        u = self.usage
        usage = Usage(
            # Anthropic's input_tokens already excludes cache reads and writes (see pricing.py).
            input_tokens=int(u.get("input_tokens") or 0),
            output_tokens=int(u.get("output_tokens") or 0),
            cache_read_tokens=int(u.get("cache_read_input_tokens") or 0),
            cache_write_tokens=int(u.get("cache_creation_input_tokens") or 0),
        )
        message = Message(Role.ASSISTANT, self._content(), id=self.message_id, model=model, stop_reason=stop)
        return Completed(message, usage)


# ---- the adapter ------------------------------------------------------------------------------

class AnthropicAdapter(HTTPAdapter):
    def __init__(self, *, api_key: str | None, base_url: str | None = None, **kwargs: Any):
        super().__init__(base_url=base_url or DEFAULT_BASE_URL, **kwargs)
        self._api_key = api_key

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, "accept": "application/json"}
        if self.streaming:
            headers["accept"] = "text/event-stream"
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        return self.answer(
            "/v1/messages", self._headers(), wire_request(request, stream=self.streaming),
            request, StreamState(request), cut_short="stream ended before message_stop",
        )
