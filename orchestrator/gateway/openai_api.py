"""OpenAI Chat Completions ↔ the canonical turn (sans-IO: dicts and bytes in, dicts and bytes out)."""
from __future__ import annotations

import json
import time
from typing import Any

from protocol.canonical import (
    ContentBlock, ImageBlock, Message, Role, StopReason, TextBlock, ToolDefinition, ToolResultBlock, ToolUseBlock,
    Usage,
)

from .canonical import (
    GatewayRequest, TurnResult, arguments_of, positive_int, text_blocks, text_of, tool_choice, tool_definition,
)
from .errors import GatewayError, bad_request

FINISH = {StopReason.TOOL_USE: "tool_calls", StopReason.MAX_TOKENS: "length", StopReason.REFUSAL: "content_filter"}


def parse_request(body: Any) -> GatewayRequest:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model: required (a registry id, an alias, fast|balanced|deep or auto)")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages: expected a non-empty list")
    system: list[str] = []
    messages: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{where}: expected an object")
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(text_of(m.get("content"), f"{where}.content"))
        elif role == "user":
            messages.append(Message(Role.USER, _user_content(m.get("content"), f"{where}.content")))
        elif role == "assistant":
            messages.append(_assistant(m, where))
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(f"{where}.tool_call_id: required")
            block = ToolResultBlock(call_id, text_of(m.get("content"), f"{where}.content"))
            if messages and messages[-1].role is Role.TOOL:   # one canonical message per round of results
                messages[-1] = Message(Role.TOOL, (*messages[-1].content, block))
            else:
                messages.append(Message(Role.TOOL, (block,)))
        else:
            raise bad_request(f"{where}.role: expected system, developer, user, assistant or tool, got {role!r}")
    if not messages:
        raise bad_request("messages: at least one user message is needed")
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), tools)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("parallel_tool_calls: expected a boolean")
    options = body.get("stream_options")
    return GatewayRequest(
        model=model, messages=tuple(messages), system="\n\n".join(system) if system else None, tools=tools,
        max_tokens=positive_int(body.get("max_completion_tokens", body.get("max_tokens")), "max_tokens"),
        output_schema=_schema(body.get("response_format")), stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        tool_choice=choice, parallel_tool_calls=parallel if tools else None,
    )


def _user_content(content: Any, where: str) -> tuple[ContentBlock, ...]:
    if isinstance(content, str):
        return text_blocks(content) or (TextBlock(""),)
    if not isinstance(content, list):
        raise bad_request(f"{where}: expected a string or a list of parts")
    blocks: list[ContentBlock] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(TextBlock(part["text"]))
        elif kind == "image_url":
            url = part.get("image_url", {})
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str):
                raise bad_request(f"{where}[{i}].image_url.url: required")
            blocks.append(_image(url))
        else:
            raise bad_request(f"{where}[{i}]: expected a text or image_url part")
    return tuple(blocks)


def _image(url: str) -> ImageBlock:
    if url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return ImageBlock(head[len("data:"):] or "image/png", data=data)
    return ImageBlock(url=url)


def _assistant(m: dict, where: str) -> Message:
    blocks: list[ContentBlock] = list(text_blocks(text_of(m.get("content"), f"{where}.content")))
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_request(f"{where}.tool_calls: expected a list")
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
            raise bad_request(f"{where}.tool_calls[{j}]: expected id and function.name")
        blocks.append(ToolUseBlock(call["id"], fn["name"], arguments_of(fn.get("arguments"),
                                                                        f"{where}.tool_calls[{j}]")))
    return Message(Role.ASSISTANT, tuple(blocks), stop_reason=StopReason.TOOL_USE if calls else StopReason.END_TURN)


def _tools(raw: Any) -> tuple[ToolDefinition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_request("tools: expected a list")
    defs = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict):
            raise bad_request(f"tools[{i}]: expected {{type: function, function: {{name, parameters}}}}")
        defs.append(tool_definition(fn.get("name"), fn.get("description"), fn.get("parameters"), f"tools[{i}]"))
    return tuple(defs)


def _tool_choice(raw: Any, tools: tuple[ToolDefinition, ...]) -> str | None:
    """``tool_choice``: auto | none | required | {type: function, function: {name}}; ignored without tools."""
    if raw is None or not tools:
        return None
    if raw in ("auto", "none", "required"):
        return tool_choice(raw, None, tools, "tool_choice")
    fn = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_request("tool_choice: expected auto, none, required or {type: function, function: {name}}")
    return tool_choice("tool", fn["name"], tools, "tool_choice")


def _schema(fmt: Any) -> dict | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_request("response_format.json_schema.schema: expected a JSON schema object")
        return schema
    raise bad_request("response_format.type: expected text, json_object or json_schema")


# --- responses -------------------------------------------------------------------------------------


def usage_of(usage: Usage) -> dict:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    out: dict = {"prompt_tokens": prompt, "completion_tokens": usage.output_tokens,
                 "total_tokens": prompt + usage.output_tokens}
    if usage.cache_read_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def tool_calls_of(uses: tuple[ToolUseBlock, ...]) -> list[dict]:
    return [{"id": u.id, "type": "function", "function": {"name": u.name, "arguments": json.dumps(u.input)}}
            for u in uses]


def finish_reason(result: TurnResult) -> str:
    if result.tool_uses:
        return "tool_calls"
    return FINISH.get(result.message.stop_reason or StopReason.END_TURN, "stop")


def response(result: TurnResult, created: int | None = None) -> dict:
    message: dict = {"role": "assistant", "content": result.text if result.text or not result.tool_uses else None}
    if result.tool_uses:
        message["tool_calls"] = tool_calls_of(result.tool_uses)
    return {
        "id": f"chatcmpl-{result.turn_id}", "object": "chat.completion",
        "created": int(time.time()) if created is None else created, "model": result.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(result), "logprobs": None}],
        "usage": usage_of(result.usage),
    }


class ChunkStream:
    """Server-sent chunks of one streamed completion. Text deltas use a prebuilt frame: this runs per chunk."""

    def __init__(self, turn_id: str, model: str, include_usage: bool, created: int | None = None):
        self.include_usage = include_usage
        self.head = {"id": f"chatcmpl-{turn_id}", "object": "chat.completion.chunk",
                     "created": int(time.time()) if created is None else created, "model": model}
        prefix = json.dumps({**self.head, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": None}]})
        cut = prefix.index('"content": ""') + len('"content": ')
        self._before, self._after = ("data: " + prefix[:cut]).encode(), (prefix[cut + 2:] + "\n\n").encode()

    def _chunk(self, choices: list, **extra: Any) -> bytes:
        return b"data: " + json.dumps({**self.head, "choices": choices, **extra}).encode() + b"\n\n"

    def start(self) -> bytes:
        return self._chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])

    def text(self, text: str) -> bytes:
        return self._before + json.dumps(text).encode() + self._after

    def finish(self, result: TurnResult) -> bytes:
        out = b""
        for i, call in enumerate(tool_calls_of(result.tool_uses)):
            out += self._chunk([{"index": 0, "delta": {"tool_calls": [{"index": i, **call}]}, "finish_reason": None}])
        out += self._chunk([{"index": 0, "delta": {}, "finish_reason": finish_reason(result)}])
        if self.include_usage:
            out += self._chunk([], usage=usage_of(result.usage))
        return out + b"data: [DONE]\n\n"

    def error(self, err: GatewayError) -> bytes:
        return b"data: " + json.dumps(err.openai_body()).encode() + b"\n\n"
