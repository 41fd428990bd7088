"""OpenAI Chat Completions adapter (``POST {base_url}/chat/completions``), also for compatible servers.

Usage semantics (shared with pricing.py): OpenAI's ``prompt_tokens`` *includes* the cached tokens,
so canonical ``input_tokens`` is ``prompt_tokens - cached_tokens`` and ``cache_read_tokens`` is the
cached part — the same meaning Anthropic's counts have, so one pricing rule fits both.
``output_tokens`` is ``completion_tokens`` and already contains the reasoning tokens;
``reasoning_tokens`` is only the breakdown and is never added again.

Compatible servers (vLLM, llama.cpp, DeepSeek…) that stream ``reasoning_content`` get it surfaced
as thinking. Thinking blocks are never sent back: Chat Completions has no field for them.
"""
from __future__ import annotations

import json
import weakref
from collections import OrderedDict
from typing import Any
from collections.abc import AsyncGenerator

from protocol.canonical import ImageBlock, Message, Role, StopReason, TextBlock, ToolResultBlock, ToolUseBlock, Usage

from actors.providers import errors
from actors.providers._http import HTTPAdapter, load_json
from actors.providers.toolinput import parse_tool_arguments
from actors.providers.base import (
    Completed, LLMRequest, StreamEvent, TextChunk, ThinkingChunk, ToolUseChunk,
    named_tool,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_FINISH_REASONS = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE,
    "content_filter": StopReason.REFUSAL,
}


# ---- canonical → wire -------------------------------------------------------------------------

def _user_part(block: Any, supports_images: bool) -> dict | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        if not supports_images:
            return {"type": "text", "text": "[image omitted: this model does not accept images]"}
        url = f"data:{block.media_type};base64,{block.data}" if block.data is not None else block.url
        return {"type": "image_url", "image_url": {"url": url}} if url else None
    return None


def wire_messages(request: LLMRequest) -> list[dict]:
    out: list[dict] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    images = request.supports_images
    for message in request.messages:
        wire = _WIRE_CACHE.get(message, images)
        if wire is None:
            wire = _WIRE_CACHE.put(message, images, _wire_message(message, images))
        out.extend(wire)
    return out


def _wire_message(message: Message, supports_images: bool) -> list[dict]:
    """One canonical message as OpenAI messages (none, one, or tool results + the user's text)."""
    if message.role is Role.ASSISTANT:
        calls = [
            {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": json.dumps(b.input)}}
            for b in message.tool_uses()
        ]
        text = message.text
        if not text and not calls:
            return []  # e.g. a thinking-only turn
        wire: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            wire["tool_calls"] = calls
        return [wire]
    out: list[dict] = []
    # Tool results go first, one "tool" message each, right after the assistant's calls.
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            # No is_error field on the wire; the marker keeps the failure visible to the model.
            content = f"[error] {block.content}" if block.is_error else block.content
            out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
    parts = [p for p in (_user_part(b, supports_images) for b in message.content) if p is not None]
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


# The wire forms of about 3,500 chat turns (≈ 1.2 KB each by ``wire_footprint``): a long session
# stays converted, and what a crowd of live sessions can pin here is bounded.
WIRE_CACHE_MAX_BYTES = 4 * 1024 * 1024
# Estimated CPython sizes (64-bit): an entry's own bookkeeping (key, weakref, tuple, ordered-dict
# slot), and the containers of a wire form. Strings the message already holds are shared, not counted.
_ENTRY_BYTES = 270
_DICT_BYTES = 232
_LIST_BYTES = 56
_STR_BYTES = 49
_SHARED_FIELDS = ("text", "content", "id", "name")
_LITERALS = frozenset({"system", "user", "assistant", "tool", "function", "text", "image_url"})


class _WireCache:
    """Each message's wire form, built once and kept while there is room for it.

    A session's whole history is sent with every turn; converting only the messages not seen
    before keeps a turn O(new messages). Keyed by identity (messages are immutable; an entry
    goes when its message does). The cached dicts are shared: nothing may mutate a request body.

    Bounded by size, least recently used out first: otherwise every message held anywhere (a
    thousand live sessions' histories, chaos soak) keeps a second, wire copy of itself (≈ 1.1 KB
    a chat turn, measured). Each request touches all of its messages, so a session in use stays at the
    recent end and keeps O(new messages) turns however long its history grows, as long as the
    histories used together fit in ``max_bytes``; beyond that a turn converts again what fell
    out (a miss costs a conversion, never a different body).
    """

    def __init__(self, max_bytes: int = WIRE_CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0   # the entries' estimated footprint (``wire_footprint``), always ≤ max_bytes
        self._by_id: OrderedDict[int, tuple[weakref.KeyedRef, bool, list[dict], int]] = OrderedDict()
        self._gone = self._forget   # one bound method for every entry's weakref callback

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, message: Message, supports_images: bool) -> list[dict] | None:
        key = id(message)
        hit = self._by_id.get(key)
        if hit is None or hit[0]() is not message or hit[1] != supports_images:
            return None
        self._by_id.move_to_end(key)
        return hit[2]

    def put(self, message: Message, supports_images: bool, wire: list[dict]) -> list[dict]:
        key = id(message)
        size = wire_footprint(message, wire)
        self._drop(key)
        if size > self.max_bytes:
            return wire
        self._by_id[key] = (weakref.KeyedRef(message, self._gone, key), supports_images, wire, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, _, _, old) = self._by_id.popitem(last=False)
            self.bytes -= old
        return wire

    def _drop(self, key: int) -> None:
        hit = self._by_id.pop(key, None)
        if hit is not None:
            self.bytes -= hit[3]

    def _forget(self, ref: weakref.KeyedRef) -> None:
        hit = self._by_id.get(ref.key)
        if hit is not None and hit[0] is ref:   # not a newer message that reused the id
            self._drop(ref.key)


def wire_footprint(message: Message, wire: list[dict]) -> int:
    """What caching ``wire`` costs in memory, estimated without walking anything but ``wire``."""
    shared = {id(getattr(b, field, None)) for b in message.content for field in _SHARED_FIELDS}
    total = _ENTRY_BYTES
    stack: list[object] = [wire]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            total += _DICT_BYTES
            stack.extend(value.values())
        elif isinstance(value, list):
            total += _LIST_BYTES + 8 * len(value)
            stack.extend(value)
        elif isinstance(value, str) and id(value) not in shared and value not in _LITERALS:
            total += _STR_BYTES + (len(value) if value.isascii() else 4 * len(value))
    return total


_WIRE_CACHE = _WireCache()


def wire_request(request: LLMRequest, *, stream: bool, max_tokens_field: str) -> dict:
    body: dict[str, Any] = {"model": request.model, "messages": wire_messages(request)}
    body[max_tokens_field] = request.max_tokens
    if request.tools:
        body["tools"] = [
            {"type": "function",
             "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}
            for t in request.tools
        ]
        choice = tool_choice(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.output_schema is not None:
        # strict mode would reject schemas that are not fully closed (additionalProperties,
        # all-required), and we accept arbitrary schemas, so the schema guides but is not enforced.
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.output_schema, "strict": False},
        }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.effort is not None:
        # Chat Completions' own parameter, with the same words (minimal … xhigh) models.yaml uses.
        body["reasoning_effort"] = request.effort
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def tool_choice(choice: str | None) -> str | dict | None:
    """The canonical tool choice in Chat Completions' words (None: leave the provider default)."""
    name = named_tool(choice)
    if name is not None:
        return {"type": "function", "function": {"name": name}}
    return choice if choice in ("auto", "none", "required") else None


# ---- wire → canonical (sans-IO) ---------------------------------------------------------------

# A delta with no other keys than these carries only text (``_delta`` would find nothing else).
_TEXT_ONLY = frozenset({"role", "content"})

class StreamState:
    """Folds ``chat.completion.chunk``s (or one ``chat.completion``) into chunks and ``Completed``."""

    def __init__(self) -> None:
        self.text_parts: list[str] = []
        self.thinking_parts: list[str] = []
        self.calls: dict[int, dict] = {}
        self.emitted_calls: list[ToolUseBlock] = []
        self.finish_reason: str | None = None
        self.refused = False
        self.usage: dict = {}
        self.message_id = ""
        self.done = False

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def finished(self) -> bool:
        return self.done or self.finish_reason is not None

    def feed(self, chunk: Any) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            raise errors.malformed("chunk is not an object")
        if "error" in chunk:
            raise errors.from_payload(chunk)
        self.message_id = chunk.get("id") or self.message_id
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        out: list[StreamEvent] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # we never ask for n > 1
            delta = choice.get("delta") or {}
            if _TEXT_ONLY.issuperset(delta):   # nearly every chunk: a piece of the answer's text
                text = delta.get("content")
                if isinstance(text, str) and text:
                    self.text_parts.append(text)
                    out.append(TextChunk(text))
            else:
                out += self._delta(delta)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                out += self.flush_calls()
        return out

    def feed_data(self, data: str) -> list[StreamEvent]:
        if data[:1] != "{" and data.strip() == "[DONE]":
            self.done = True
            return self.flush_calls()  # in case finish_reason never came
        return self.feed(load_json(data))

    def feed_completion(self, body: Any) -> list[StreamEvent]:
        """A non-streamed ``chat.completion``, replayed as one big delta."""
        if not isinstance(body, dict) or "error" in body:
            raise errors.from_payload(body)
        choices = body.get("choices") or []
        message = dict((choices[0].get("message") if choices else None) or {})
        message["tool_calls"] = [dict(call, index=i) for i, call in enumerate(message.get("tool_calls") or [])]
        finish = choices[0].get("finish_reason") if choices else None
        out = self.feed({"id": body.get("id"), "usage": body.get("usage"),
                         "choices": [{"index": 0, "delta": message, "finish_reason": finish or "stop"}]})
        self.done = True
        return out

    feed_body = feed_completion

    def _delta(self, delta: dict) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self.thinking_parts.append(reasoning)
            out.append(ThinkingChunk(reasoning))
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self.refused = self.refused or key == "refusal"
                self.text_parts.append(text)
                out.append(TextChunk(text))
        for position, fragment in enumerate(delta.get("tool_calls") or []):
            call = self.calls.setdefault(fragment.get("index", position), {"id": "", "name": "", "arguments": ""})
            function = fragment.get("function") or {}
            call["id"] = call["id"] or fragment.get("id") or ""
            call["name"] = call["name"] or function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""
        return out

    def flush_calls(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for _, call in sorted(self.calls.items()):
            try:
                arguments = parse_tool_arguments(call["arguments"])
            except ValueError:
                if self.finish_reason == "length":
                    continue  # cut off by max_tokens: the stop reason already says so
                raise errors.malformed(f"arguments of tool call {call['name']!r} are not JSON") from None
            # Some compatible servers omit the id; a stable stand-in keeps call and result paired.
            call_id = call["id"] or f"call_{len(self.emitted_calls)}"
            block = ToolUseBlock(call_id, call["name"], arguments if isinstance(arguments, dict) else {})
            self.emitted_calls.append(block)
            out.append(ToolUseChunk(block))
        self.calls.clear()
        return out

    def completed(self, model: str) -> Completed:
        stop = _FINISH_REASONS.get(self.finish_reason or "stop", StopReason.END_TURN)
        if self.refused:
            stop = StopReason.REFUSAL
        content: list = [TextBlock(self.text)] if self.text else []
        content += self.emitted_calls
        u = self.usage
        cached = int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        usage = Usage(
            input_tokens=max(0, int(u.get("prompt_tokens") or 0) - cached),
            output_tokens=int(u.get("completion_tokens") or 0),
            cache_read_tokens=cached,
            reasoning_tokens=int((u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
        )
        message = Message(Role.ASSISTANT, tuple(content), id=self.message_id, model=model, stop_reason=stop)
        return Completed(message, usage)


# ---- the adapter ------------------------------------------------------------------------------

class OpenAIAdapter(HTTPAdapter):
    """Kind ``openai`` and ``openai_compatible``: without an API key no Authorization header is sent."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        max_tokens_field: str = "max_completion_tokens",
        **kwargs: Any,
    ):
        super().__init__(base_url=base_url or DEFAULT_BASE_URL, **kwargs)
        self._api_key = api_key
        self.max_tokens_field = max_tokens_field

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream" if self.streaming else "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        return self.answer(
            "/chat/completions", self._headers(),
            wire_request(request, stream=self.streaming, max_tokens_field=self.max_tokens_field),
            request, StreamState(), cut_short="stream ended before finish_reason",
        )
