"""A strict fake of the Anthropic Messages API (``POST /v1/messages``), SSE and JSON.

Strict like the real API: a request it would reject gets a 400 ``invalid_request_error`` (and is
listed in ``violations``) instead of an answer.
"""
from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from typing import Any
from collections.abc import AsyncIterator

from .base import FakeProvider, StreamSteps
from .http import CUT, Plan, json_plan, serve
from .script import Answer, Fail

_TOP_LEVEL = {
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "stream", "temperature",
    "top_p", "top_k", "stop_sequences", "metadata", "thinking", "service_tier",
}
_BLOCKS = {
    "user": {"text", "image", "tool_result", "document"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}
_MEDIA = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _sse(payload: dict) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def _check_block(where: str, role: str, block: Any) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in _BLOCKS[role]:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        return [f"{where}: block type {kind!r} is not allowed in a {role} message"]
    kind = block["type"]
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"].strip()):
        return [f"{where}.text: text content blocks must contain non-whitespace text"]
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in _MEDIA or not isinstance(source.get("data"), str):
                return [f"{where}.source: base64 images need a supported media_type and data"]
        elif source.get("type") == "url":
            if not isinstance(source.get("url"), str):
                return [f"{where}.source.url: field required"]
        else:
            return [f"{where}.source.type: must be 'base64' or 'url'"]
    if kind == "tool_use" and not (
        isinstance(block.get("id"), str) and isinstance(block.get("name"), str) and isinstance(block.get("input"), dict)
    ):
        return [f"{where}: tool_use needs id, name and an object input"]
    if kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            return [f"{where}.tool_use_id: field required"]
        if not isinstance(block.get("content", ""), (str, list)):
            return [f"{where}.content: must be a string or a list of blocks"]
    if kind == "thinking" and not (isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)):
        return [f"{where}: thinking blocks need thinking and signature"]
    return []


def validate_messages(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages: field required (a non-empty list)"]
    problems: list[str] = []
    previous_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _BLOCKS:
            problems.append(f"{where}.role: must be 'user' or 'assistant'")
            continue
        if i == 0 and role != "user":
            problems.append(f"{where}: the first message must use the 'user' role")
        if i > 0 and isinstance(messages[i - 1], dict) and messages[i - 1].get("role") == role:
            problems.append(f"{where}: roles must alternate between 'user' and 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list) or not content:
            problems.append(f"{where}.content: must be a non-empty string or list")
            continue
        for j, block in enumerate(content):
            problems += _check_block(f"{where}.content.{j}", role, block)
        blocks = [b for b in content if isinstance(b, dict)]
        if role == "user":
            results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
            for tool_use_id in results:
                if tool_use_id not in previous_tool_uses:
                    problems.append(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {tool_use_id}. Each "
                        "`tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )
            missing = previous_tool_uses - set(results)
            if missing:
                problems.append(
                    f"{where}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    + ", ".join(sorted(missing))
                )
            kinds = [b.get("type") for b in blocks]
            if results and kinds[: len(results)] != ["tool_result"] * len(results):
                problems.append(f"{where}: tool_result blocks must come first in the user message")
            previous_tool_uses = set()
        else:
            previous_tool_uses = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
    if previous_tool_uses:
        problems.append("messages: the last assistant message has tool_use blocks without tool_result blocks")
    return problems


def validate_request(body: dict, headers: dict[str, str]) -> list[str]:
    problems = []
    if "anthropic-version" not in headers:
        problems.append("anthropic-version: header is required")
    problems += [f"{key}: Extra inputs are not permitted" for key in sorted(set(body) - _TOP_LEVEL)]
    if not isinstance(body.get("model"), str):
        problems.append("model: field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        problems.append("max_tokens: field required (a positive integer)")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        problems.append("system: must be a string or a list of text blocks")
    problems += validate_messages(body.get("messages"))
    tools = body.get("tools") or []
    names = []
    for i, tool in enumerate(tools if isinstance(tools, list) else [None]):
        if not isinstance(tool, dict) or not _TOOL_NAME.match(str(tool.get("name", ""))):
            problems.append(f"tools.{i}.name: must match {_TOOL_NAME.pattern}")
            continue
        names.append(tool["name"])
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            problems.append(f"tools.{i}.input_schema: must be a JSON schema with type 'object'")
    if len(names) != len(set(names)):
        problems.append("tools: tool names must be unique")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in {"auto", "any", "tool", "none"}:
            problems.append("tool_choice.type: must be one of auto, any, tool, none")
        elif choice["type"] in {"any", "tool"} and not names:
            problems.append("tool_choice: requires tools")
        elif choice["type"] == "tool" and choice.get("name") not in names:
            problems.append(f"tool_choice.name: no tool named {choice.get('name')!r}")
    if "stream" in body and not isinstance(body["stream"], bool):
        problems.append("stream: must be a boolean")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        problems.append("temperature: must be between 0 and 1")
    problems += _validate_thinking(body)
    return problems


def _validate_thinking(body: dict) -> list[str]:
    """Extended thinking as the API checks it: a budget of at least 1024 below max_tokens, no
    custom temperature, no forced tool choice."""
    if "thinking" not in body:
        return []
    thinking = body["thinking"]
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        return ["thinking: must be {type: enabled, budget_tokens: N} or {type: disabled}"]
    if thinking["type"] == "disabled":
        return []
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
        return ["thinking.budget_tokens: must be an integer >= 1024"]
    problems = []
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and budget >= max_tokens:
        problems.append("max_tokens: must be greater than thinking.budget_tokens")
    if body.get("temperature") not in (None, 1):
        problems.append("temperature: may only be set to 1 when thinking is enabled")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        problems.append("tool_choice: thinking may not be enabled when tool_choice forces tool use")
    return problems


class FakeAnthropic(FakeProvider):
    path = "/v1/messages"
    not_found_type = "not_found_error"
    server_error_type = "api_error"

    @property
    def base_url(self) -> str:
        return self.origin

    def check_auth(self, headers: dict[str, str]) -> Fail | None:
        if self.api_key is not None and headers.get("x-api-key") != self.api_key:
            return Fail(401, "authentication_error", "invalid x-api-key")
        return None

    def validate(self, body: dict, headers: dict[str, str]) -> list[str]:
        return validate_request(body, headers)

    def error_body(self, fail: Fail) -> dict:
        return {"type": "error", "error": {"type": fail.type, "message": fail.message},
                "request_id": self.next_id("req_")}

    def _blocks(self, answer: Answer) -> list[tuple[dict, list[dict], dict]]:
        """(content_block_start block, its deltas, the whole block) for each block of the answer."""
        blocks: list[tuple[dict, list[dict], dict]] = []
        if answer.thinking:
            deltas = [{"type": "thinking_delta", "thinking": t} for t in answer.thinking]
            deltas.append({"type": "signature_delta", "signature": answer.signature})
            whole = {"type": "thinking", "thinking": "".join(answer.thinking), "signature": answer.signature}
            blocks.append(({"type": "thinking", "thinking": ""}, deltas, whole))
        if any(answer.text):
            deltas = [{"type": "text_delta", "text": t} for t in answer.text]
            blocks.append(({"type": "text", "text": ""}, deltas, {"type": "text", "text": "".join(answer.text)}))
        for call in answer.tool_calls:
            start = {"type": "tool_use", "id": call.id or self.next_id("toolu_"), "name": call.name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in call.argument_fragments()]
            blocks.append((start, deltas, dict(start, input=call.arguments)))
        return blocks

    def render(self, answer: Answer, body: dict) -> Plan:
        stop_reason = answer.stop_reason or ("tool_use" if answer.tool_calls else "end_turn")
        u = answer.usage
        usage = {"input_tokens": u.input, "cache_creation_input_tokens": u.cache_write,
                 "cache_read_input_tokens": u.cache_read, "output_tokens": u.output}
        message = {"id": self.next_id("msg_"), "type": "message", "role": "assistant", "model": body["model"],
                   "content": [], "stop_reason": None, "stop_sequence": None}
        blocks = self._blocks(answer)
        if not body.get("stream"):
            whole = dict(message, content=[b[2] for b in blocks], stop_reason=stop_reason, usage=usage)
            plan = json_plan(200, whole)
            steps = plan.steps
            if answer.cut_after is not None:
                steps = (steps[0][: len(steps[0]) // 2], CUT)
            return Plan(200, plan.headers, steps, headers_delay=answer.headers_delay)

        steps = StreamSteps(answer, lambda fail: _sse({"type": "error",
                                                       "error": {"type": fail.type, "message": fail.message}}))
        steps.event(_sse({"type": "message_start", "message": dict(message, usage=dict(usage, output_tokens=1))}))
        steps.event(_sse({"type": "ping"}))
        for index, (start, deltas, _) in enumerate(blocks):
            steps.event(_sse({"type": "content_block_start", "index": index, "content_block": start}))
            for delta in deltas:
                steps.delta(_sse({"type": "content_block_delta", "index": index, "delta": delta}))
            steps.event(_sse({"type": "content_block_stop", "index": index}))
        final = steps.finish(
            _sse({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                  "usage": {"output_tokens": u.output}}),
            _sse({"type": "message_stop"}),
        )
        headers = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
                   ("request-id", self.next_id("req_")))
        return Plan(200, headers, final, headers_delay=answer.headers_delay)


@asynccontextmanager
async def open_fake_anthropic(*, api_key: str | None = "test-key") -> AsyncIterator[FakeAnthropic]:
    """``async with open_fake_anthropic() as srv:`` — ``srv.base_url``, ``srv.script(...)``, ``srv.requests``."""
    fake = FakeAnthropic(api_key=api_key)
    async with serve(fake.handle) as server:
        fake._server = server
        yield fake
