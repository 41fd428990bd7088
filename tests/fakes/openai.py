"""A strict fake of OpenAI Chat Completions (``POST /v1/chat/completions``), SSE and JSON.

With ``api_key=None`` it plays an open compatible server (Ollama, vLLM) that needs no key.
"""
from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from typing import Any
from collections.abc import AsyncIterator

from .base import FakeProvider, StreamSteps
from .http import CUT, Plan, json_plan, serve
from .script import Answer, Fail, Tokens

_TOP_LEVEL = {
    "model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options", "tools",
    "tool_choice", "response_format", "temperature", "top_p", "n", "stop", "seed", "user",
    "parallel_tool_calls", "reasoning_effort", "presence_penalty", "frequency_penalty", "metadata", "store",
}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")


def _data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _check_parts(where: str, content: Any, allow_images: bool) -> list[str]:
    if isinstance(content, str):
        return []
    if not isinstance(content, list) or not content:
        return [f"{where}: must be a string or a non-empty array of content parts"]
    problems = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and allow_images:
            url = (part.get("image_url") or {}).get("url")
            if not isinstance(url, str) or not (url.startswith("https://") or url.startswith("http://")
                                                or _DATA_URL.match(url)):
                problems.append(f"{where}[{j}].image_url.url: must be an http(s) URL or a base64 image data URL")
            continue
        problems.append(f"{where}[{j}]: invalid content part type {kind!r}")
    return problems


def validate_messages(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages: field required (a non-empty array)"]
    problems: list[str] = []
    open_calls: set[str] = set()       # ids of the last assistant tool_calls not yet answered
    answering = False                  # inside the run of tool messages after tool_calls
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role") if isinstance(m, dict) else None
        if role not in _ROLES:
            problems.append(f"{where}.role: must be one of {sorted(_ROLES)}")
            continue
        if role != "tool" and open_calls:
            problems.append(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                "'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(sorted(open_calls))}"
            )
            open_calls = set()
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not answering or call_id not in open_calls:
                problems.append(
                    f"Invalid parameter: {where}: messages with role 'tool' must be a response to a preceding "
                    "message with 'tool_calls'."
                )
            open_calls.discard(call_id)
            if not isinstance(m.get("content"), str):
                problems.append(f"{where}.content: must be a string")
            continue
        answering = False
        if role == "assistant":
            calls = m.get("tool_calls")
            if m.get("content") is None and not calls:
                problems.append(f"{where}.content: required unless tool_calls is given")
            elif m.get("content") is not None:
                problems += _check_parts(f"{where}.content", m["content"], allow_images=False)
            for k, call in enumerate(calls or []):
                function = call.get("function") if isinstance(call, dict) else None
                if not (isinstance(call.get("id"), str) and call.get("type") == "function"
                        and isinstance(function, dict) and isinstance(function.get("name"), str)
                        and isinstance(function.get("arguments"), str)):
                    problems.append(f"{where}.tool_calls[{k}]: needs id, type 'function', function.name, "
                                    "function.arguments (a string)")
                else:
                    open_calls.add(call["id"])
            answering = bool(open_calls)
        else:
            if "content" not in m:
                problems.append(f"{where}.content: field required")
            else:
                problems += _check_parts(f"{where}.content", m["content"], allow_images=role == "user")
    if open_calls:
        problems.append(f"tool_call_ids without response messages: {', '.join(sorted(open_calls))}")
    return problems


def validate_request(body: dict) -> list[str]:
    problems = [f"Unrecognized request argument supplied: {key}" for key in sorted(set(body) - _TOP_LEVEL)]
    if not isinstance(body.get("model"), str):
        problems.append("model: field required")
    problems += validate_messages(body.get("messages"))
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"{key}: must be a positive integer")
    if "stream_options" in body and not body.get("stream"):
        problems.append("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not (isinstance(tool, dict) and tool.get("type") == "function" and isinstance(function, dict)
                and _NAME.match(str(function.get("name", "")))):
            problems.append(f"tools[{i}]: must be {{type: 'function', function: {{name, ...}}}}")
        elif "parameters" in function and not isinstance(function["parameters"], dict):
            problems.append(f"tools[{i}].function.parameters: must be an object")
    effort = body.get("reasoning_effort")
    if "reasoning_effort" in body and effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
        problems.append("reasoning_effort: must be one of none, minimal, low, medium, high, xhigh")
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in {"text", "json_object", "json_schema"}:
            problems.append("response_format.type: must be text, json_object or json_schema")
        elif kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not _NAME.match(str(spec.get("name", ""))):
                problems.append("response_format.json_schema.name: field required")
            elif "schema" in spec and not isinstance(spec["schema"], dict):
                problems.append("response_format.json_schema.schema: must be an object")
    return problems


def _usage(u: Tokens) -> dict:
    prompt = u.input + u.cache_read  # OpenAI counts cached tokens inside prompt_tokens
    return {
        "prompt_tokens": prompt, "completion_tokens": u.output, "total_tokens": prompt + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


class FakeOpenAI(FakeProvider):
    path = "/v1/chat/completions"
    not_found_type = "invalid_request_error"
    server_error_type = "server_error"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def check_auth(self, headers: dict[str, str]) -> Fail | None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return Fail(401, "invalid_request_error", "Incorrect API key provided", code="invalid_api_key")
        return None

    def validate(self, body: dict, headers: dict[str, str]) -> list[str]:
        return validate_request(body)

    def error_body(self, fail: Fail) -> dict:
        return {"error": {"message": fail.message, "type": fail.type, "param": None, "code": fail.code}}

    def render(self, answer: Answer, body: dict) -> Plan:
        finish = answer.stop_reason or ("tool_calls" if answer.tool_calls else "stop")
        ids = [call.id or self.next_id("call_") for call in answer.tool_calls]
        base = {"id": self.next_id("chatcmpl-"), "created": 1700000000, "model": body["model"],
                "system_fingerprint": "fp_fake"}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.text) or None, "refusal": None}
            if answer.tool_calls:
                message["tool_calls"] = [
                    {"id": i, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                    for i, c in zip(ids, answer.tool_calls, strict=True)
                ]
            whole = dict(base, object="chat.completion", usage=_usage(answer.usage),
                         choices=[{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}])
            plan = json_plan(200, whole)
            steps = plan.steps if answer.cut_after is None else (plan.steps[0][: len(plan.steps[0]) // 2], CUT)
            return Plan(200, plan.headers, steps, headers_delay=answer.headers_delay)

        def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _data(dict(base, object="chat.completion.chunk", choices=[choice]))

        steps = StreamSteps(answer, lambda fail: _data(self.error_body(fail)))
        steps.event(chunk({"role": "assistant", "content": "", "refusal": None}))
        for text in answer.thinking:
            steps.delta(chunk({"reasoning_content": text}))
        for text in answer.text:
            steps.delta(chunk({"content": text}))
        fragments = []
        for index, (call_id, call) in enumerate(zip(ids, answer.tool_calls, strict=True)):
            head = {"index": index, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            fragments.append([head] + [{"index": index, "function": {"arguments": a}}
                                       for a in call.argument_fragments()])
        if answer.interleave_tool_calls:
            order = [f for group in _round_robin(fragments) for f in group]
        else:
            order = [f for group in fragments for f in group]
        for fragment in order:
            steps.delta(chunk({"tool_calls": [fragment]}))
        final = [chunk({}, finish)]
        if (body.get("stream_options") or {}).get("include_usage"):
            final.append(_data(dict(base, object="chat.completion.chunk", choices=[], usage=_usage(answer.usage))))
        final.append(b"data: [DONE]\n\n")
        headers = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"))
        return Plan(200, headers, steps.finish(*final), headers_delay=answer.headers_delay)


def _round_robin(groups: list[list[dict]]) -> list[list[dict]]:
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.append([g[i] for g in groups if i < len(g)])
    return out


@asynccontextmanager
async def open_fake_openai(*, api_key: str | None = "test-key") -> AsyncIterator[FakeOpenAI]:
    """``async with open_fake_openai() as srv:`` — ``srv.base_url`` ends in ``/v1``."""
    fake = FakeOpenAI(api_key=api_key)
    async with serve(fake.handle) as server:
        fake._server = server
        yield fake
