"""What both vendor fakes share: the reply queue, request checks, and interruption of streams."""
from __future__ import annotations

from collections import deque
from typing import Any
from collections.abc import Callable

import attrs

from .http import CUT, FakeHTTPServer, Plan, RecordedRequest, Step, json_plan
from .script import Answer, Drop, Fail, Reply, Tokens


class StreamSteps:
    """Collects a streamed body, applying the answer's delay / cut / in-stream error per delta."""

    def __init__(self, answer: Answer, render_error: Callable[[Fail], bytes]):
        self.answer = answer
        self.render_error = render_error
        self.steps: list[Step] = []
        self.deltas = 0
        self.stopped = False

    def interrupted(self) -> bool:
        a = self.answer
        if self.stopped:
            return True
        if a.cut_after is not None and self.deltas >= a.cut_after:
            self.steps.append(CUT)
            self.stopped = True
        elif a.garble_after is not None and self.deltas >= a.garble_after:
            self.steps.append(b"data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"text\n\n")
            self.stopped = True
        elif a.error_after is not None and self.deltas >= a.error_after:
            self.steps.append(self.render_error(a.error or Fail(500, "api_error", "scripted stream error")))
            self.stopped = True
        return self.stopped

    def event(self, data: bytes) -> None:
        if not self.stopped:
            self.steps.append(data)

    def delta(self, data: bytes) -> None:
        if self.interrupted():
            return
        if self.answer.delay:
            self.steps.append(self.answer.delay)
        self.steps.append(data)
        self.deltas += 1

    def finish(self, *final: bytes) -> tuple[Step, ...]:
        """The closing events, unless a cut or error is still due (fewer deltas than scripted)."""
        if not self.interrupted():
            self.steps.extend(final)
        return tuple(self.steps)


class FakeProvider:
    """Scriptable, strict fake; subclasses define the vendor's route, checks and rendering."""

    path = "/"
    not_found_type = "not_found_error"
    server_error_type = "api_error"

    def __init__(self, *, api_key: str | None = "test-key"):
        self.api_key = api_key
        self.violations: list[str] = []
        self.default: Reply | None = None
        self._queue: deque[Reply] = deque()
        self._server: FakeHTTPServer | None = None
        self._ids = 0
        # Chooses the reply for a request when the script queue is empty (before ``default``):
        # ``reply_for(model, body)``; chaos/ injects faults at a rate through it.
        self.reply_for: Callable[[str, dict], Reply] | None = None
        # What the fake billed: answers sent in full (no cut, error or garbage), by the model asked for.
        self.billed: dict[str, Tokens] = {}
        self.billed_calls: dict[str, int] = {}

    # --- test-facing API ---
    def script(self, *replies: Reply) -> None:
        """Queue replies; each request that passes the checks consumes one, in order."""
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        assert self._server is not None
        return self._server.requests

    @property
    def bodies(self) -> list[Any]:
        return [r.json for r in self.requests]

    @property
    def origin(self) -> str:
        assert self._server is not None
        return self._server.origin

    # --- vendor hooks ---
    def check_auth(self, headers: dict[str, str]) -> Fail | None:
        raise NotImplementedError

    def validate(self, body: dict, headers: dict[str, str]) -> list[str]:
        raise NotImplementedError

    def error_body(self, fail: Fail) -> dict:
        raise NotImplementedError

    def render(self, answer: Answer, body: dict) -> Plan:
        raise NotImplementedError

    # --- plumbing ---
    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:04d}"

    def error_plan(self, fail: Fail) -> Plan:
        headers = list(fail.headers)
        if fail.retry_after is not None:
            headers.append(("retry-after", fail.retry_after))
        return json_plan(fail.status, self.error_body(fail), tuple(headers))

    def handle(self, request: RecordedRequest) -> Plan:
        if request.method != "POST" or request.path != self.path:
            return self.error_plan(Fail(404, self.not_found_type, f"no route {request.method} {request.path}"))
        auth = self.check_auth(request.headers)
        if auth is not None:
            self.violations.append(f"auth: {auth.message}")
            return self.error_plan(auth)
        body = request.json
        problems = self.validate(body, request.headers) if isinstance(body, dict) else ["body: must be a JSON object"]
        if problems:
            self.violations.extend(problems)
            return self.error_plan(Fail(400, "invalid_request_error", "; ".join(problems)))
        if self._queue:
            reply: Reply | None = self._queue.popleft()
        elif self.reply_for is not None:
            reply = self.reply_for(str(body.get("model")), body)
        else:
            reply = self.default
        if reply is None:
            return self.error_plan(Fail(500, self.server_error_type, "fake: no scripted reply left"))
        if isinstance(reply, Drop):
            return Plan(drop=True)
        if isinstance(reply, Fail):
            return self.error_plan(reply)
        plan = self.render(reply, body)
        if reply.cut_after is None and reply.error_after is None and reply.garble_after is None:
            model = str(body.get("model"))
            plan = attrs.evolve(plan, on_sent=lambda: self._bill(model, reply.usage))
        return plan

    def _bill(self, model: str, usage: Tokens) -> None:
        b = self.billed.get(model, Tokens(0, 0))
        self.billed[model] = Tokens(b.input + usage.input, b.output + usage.output, b.cache_read + usage.cache_read,
                                    b.cache_write + usage.cache_write, b.reasoning + usage.reasoning)
        self.billed_calls[model] = self.billed_calls.get(model, 0) + 1
