"""delegate() (spec §6): a planner hands a sub-task to a worker session on a cheaper tier.

The tool handler runs inside the parent turn's cancel scope. It opens a worker session, asks the
router for the worker's model (the chain runs end to end with ``delegate_request`` choosing),
runs the worker's turn on the worker actor, and turns the outcome into a ``DelegateResult``.
Cancelling the parent cancels the worker: the handler sends ``StopTurn`` (shielded, bounded) and
waits for the worker to unwind before it lets the parent's cancellation continue, so the parent's
turn lock is only released when no worker, provider stream or tool process is left.
"""
from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

import attrs
import trio

from protocol import events as ev
from protocol.canonical import (
    Message, Role, StopReason, TextBlock, ToolDefinition, ToolResultBlock, ToolUseBlock, Usage,
)
from protocol.codec import converter
from protocol.errors import RemoteError
from protocol.messages import DecideRoute, RouteDecision, RunTurn, StopTurn, TurnOutcome, TurnProgress

from actors.runtime.kernel import RequestTimeout
from actors.runtime.store import Store
from actors.planner.tokens import estimate_input_tokens

if TYPE_CHECKING:
    from actors.config.registry import ModelSpec
    from actors.planner.actor import ActiveTurn, PlannerActor
    from actors.planner.support import ToolHandler

TIERS = ("fast", "balanced", "deep")
COMPLEXITY_TIERS = ("TRIVIAL", "SMALL", "MEDIUM", "LARGE")
# Route failures the planner gets back as they are (the router's text is the explanation).
ROLE_FAILURES = ("tier_floor", "waiting_approval", "unknown_role")
STOP_WAIT_S = 5.0
REQUEST_CONTEXT_TOOL = "_request_context"

WORKER_PROMPT = """You are a sub-agent invoked by another agent (the "planner") to handle
a specific sub-task. You are running on model {worker_model}.

Your task:
{task}

{context_summary}

Guidelines:
- Focus only on this task. Do not pursue tangents.
- If you need information not provided, use the available tools to fetch it.
- Do not ask the user for clarification. If clarification is needed, return
a structured response indicating what's missing.
- Be terse. The planner will see your final output and integrate it.
{schema_line}- Return when complete. Do not produce a summary unless asked.

Available tools: {allowed_tools}"""

MISSING_TYPES = ("file", "file_range", "message", "tool_result", "decision", "other")
INSUFFICIENT_CONTEXT_SCHEMA = {
    "type": "object",
    "required": ["missing", "summary"],
    "additionalProperties": False,
    "properties": {
        "missing": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["type", "ref", "hint"], "additionalProperties": False,
            "properties": {"type": {"enum": list(MISSING_TYPES)}, "ref": {"type": "string"},
                           "hint": {"type": "string"}}}},
        "summary": {"type": "string"},
    },
}

DELEGATE_TOOL = ToolDefinition(
    "delegate",
    "Hand a focused, mechanical sub-task to a worker model on a cheaper tier and get its result. "
    "Use context mode 'minimal' for self-contained tasks, 'explicit' with references otherwise.",
    {
        "type": "object",
        "required": ["task", "context"],
        "properties": {
            "tier": {"type": "string", "enum": list(TIERS),
                     "description": "the worker's model tier; give tier or role, not both"},
            "role": {"type": "string", "description": "a role of roles.yaml (e.g. capable-implementer): the "
                                                      "worker runs on that role's model for the complexity"},
            "complexity": {"type": "string", "enum": list(COMPLEXITY_TIERS),
                           "description": "with role: the task's complexity tier"},
            "high_risk": {"type": "boolean", "description": "with a reviewer role: an unresolved high risk "
                                                            "(reviews at LARGE)"},
            "task": {"type": "string", "description": "focused instruction for the worker"},
            "context": {
                "type": "object",
                "required": ["mode"],
                "properties": {
                    "mode": {"type": "string", "enum": ["minimal", "explicit"]},
                    "include": {"type": "array", "items": {"type": "object"}},
                },
            },
            "output_schema": {"type": "object", "description": "optional JSON schema the output must match"},
            "allowed_tools": {"type": "array", "items": {"type": "string"}},
            "max_tokens": {"type": "integer", "minimum": 1},
        },
    },
)

REQUEST_CONTEXT_DEF = ToolDefinition(
    REQUEST_CONTEXT_TOOL,
    "Stop and tell the planner exactly which context you are missing (ends your session).",
    INSUFFICIENT_CONTEXT_SCHEMA,
)


class DelegationError(ValueError):
    """A delegate() call the planner must fix (bad tier, unknown reference …)."""


@attrs.frozen
class DelegateResult:
    success: bool
    output: Any
    error: str | None
    usage_summary: dict
    worker_session_id: str

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), default=str)


@attrs.define
class WorkerRun:
    turn_id: str
    progress: list = attrs.field(factory=list)
    outcome: TurnOutcome | None = None
    done: trio.Event = attrs.field(factory=trio.Event)


class Delegator:
    """The ``delegate`` and ``_request_context`` tools, plugged into the planner's ToolBox."""

    def __init__(self, store: Store, *, router: str = "router", worker: str = "worker"):
        self.store = store
        self.router = router
        self.worker = worker
        self.runs: dict[str, WorkerRun] = {}

    # --- what the ToolBox asks ---------------------------------------------------------------------

    def definitions(self, run: RunTurn, spec: ModelSpec) -> tuple[ToolDefinition, ...]:
        if run.is_worker:
            return (REQUEST_CONTEXT_DEF,)
        return (DELEGATE_TOOL,) if run.can_delegate else ()

    def handlers(self) -> dict[str, ToolHandler[PlannerActor, ActiveTurn]]:
        return {"delegate": self.delegate, REQUEST_CONTEXT_TOOL: self.request_context}

    def on_worker_message(self, msg: TurnProgress | TurnOutcome) -> bool:
        """Progress and outcomes of worker turns come back to the planner; route them here."""
        wr = self.runs.get(msg.turn_id)
        if wr is None:
            return False
        if isinstance(msg, TurnOutcome):
            wr.outcome = msg
            wr.done.set()
        else:
            wr.progress.append(msg.event)
        return True

    # --- _request_context (workers only) ----------------------------------------------------------------

    async def request_context(self, planner: PlannerActor, turn: ActiveTurn, use: ToolUseBlock) -> tuple[str, bool]:
        if not turn.run.is_worker:
            return f"unknown tool: {REQUEST_CONTEXT_TOOL}", True
        import jsonschema

        try:
            jsonschema.validate(use.input, INSUFFICIENT_CONTEXT_SCHEMA)
        except jsonschema.ValidationError as exc:
            return f"invalid InsufficientContextRequest: {exc.message}", True
        turn.terminate_with = ("insufficient_context", dict(use.input))
        return "context request sent to the planner; your session ends here", False

    # --- delegate ---------------------------------------------------------------------------------

    async def delegate(self, planner: PlannerActor, turn: ActiveTurn, use: ToolUseBlock) -> tuple[str, bool]:
        parent = turn.run
        if parent.is_worker:
            return "unknown tool: delegate — workers cannot delegate", True
        if not parent.can_delegate:
            return f"unknown tool: delegate — {parent.model} cannot delegate", True
        try:
            args = self._check_args(use.input)
            brief, has_images = self._context(args, parent, turn)
        except DelegationError as exc:
            return f"delegate: {exc}", True
        worker_sid = "w_" + os.urandom(6).hex()
        self.store.create_session(worker_sid, parent.workspace, parent_session_id=parent.session_id,
                                  parent_tool_use_id=use.id, is_worker=True)
        result = await self._run_worker(planner, turn, use, args, brief, has_images, worker_sid)
        usage = Usage(**{k: v for k, v in result.usage_summary.items() if k in attrs.fields_dict(Usage)})
        turn.delegated_usage.append(usage)
        if result.success:
            await planner.emit(parent, ev.DelegateCompleted(parent.turn_id, use.id, worker_sid,
                                                            result.usage_summary.get("model"), usage))
        else:
            await planner.emit(parent, ev.DelegateFailed(parent.turn_id, use.id, worker_sid, result.error or "",
                                                         result.output, usage))
        return result.to_json(), not result.success

    def _check_args(self, raw: dict) -> dict:
        tier, role = raw.get("tier"), raw.get("role")
        complexity, high_risk = raw.get("complexity"), raw.get("high_risk", False)
        if role is not None:
            if tier is not None:
                raise DelegationError("give tier or role, not both (a role picks its model by complexity)")
            if not isinstance(role, str) or not role.strip():
                raise DelegationError("role must be the name of a role of roles.yaml")
            if complexity is not None and complexity not in COMPLEXITY_TIERS:
                raise DelegationError(f"complexity must be one of {', '.join(COMPLEXITY_TIERS)} (got {complexity!r})")
            if not isinstance(high_risk, bool):
                raise DelegationError("high_risk must be true or false")
        elif tier not in TIERS:
            raise DelegationError(f"tier must be one of fast, balanced, deep (got {tier!r}), or give a role")
        elif complexity is not None or raw.get("high_risk") is not None:
            raise DelegationError("complexity and high_risk go with role, not with tier")
        task = raw.get("task")
        if not isinstance(task, str) or not task.strip():
            raise DelegationError("task must be a non-empty string")
        context = raw.get("context") or {"mode": "minimal"}
        if not isinstance(context, dict) or context.get("mode") not in ("minimal", "explicit"):
            raise DelegationError("context.mode must be 'minimal' or 'explicit' (there is no auto mode)")
        schema = raw.get("output_schema")
        if schema is not None:
            import jsonschema

            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise DelegationError(f"output_schema is not a valid JSON schema: {exc.message}") from None
        allowed = raw.get("allowed_tools")
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(t, str) for t in allowed)):
            raise DelegationError("allowed_tools must be a list of tool names")
        max_tokens = raw.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                       or max_tokens < 1):
            raise DelegationError("max_tokens must be a positive integer")
        return {"tier": tier, "task": task.strip(), "context": context, "output_schema": schema,
                "allowed_tools": allowed, "max_tokens": max_tokens, "role": role, "complexity": complexity,
                "high_risk": bool(high_risk)}

    def _context(self, args: dict, parent: RunTurn, turn: ActiveTurn) -> tuple[str, bool]:
        """The context summary of §6.4: files by reference, everything else inlined."""
        context = args["context"]
        if context["mode"] == "minimal":
            return "", False
        items = context.get("include") or []
        if not isinstance(items, list):
            raise DelegationError("context.include must be a list")
        history = turn.history()
        lines, has_images = ["Context:"], False
        for i, item in enumerate(items):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind in ("file", "file_range"):
                path = item.get("path")
                if not isinstance(path, str) or not parent.workspace:
                    raise DelegationError(f"include[{i}]: a {kind} needs a path inside the workspace")
                full = os.path.realpath(os.path.join(parent.workspace, path))
                if not full.startswith(os.path.realpath(parent.workspace) + os.sep) or not os.path.isfile(full):
                    raise DelegationError(f"include[{i}]: unknown reference: file {path!r} "
                                          "does not exist in the workspace")
                if kind == "file":
                    lines.append(f"- file {path} (read it with read_file)")
                else:
                    rng = item.get("lines")
                    if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(n, int) for n in rng)):
                        raise DelegationError(f"include[{i}]: file_range needs lines: [start, end]")
                    lines.append(f"- file {path}, lines {rng[0]}-{rng[1]} (read them with read_file "
                                 f"start_line={rng[0]} end_line={rng[1]})")
            elif kind == "tool_result":
                ref = item.get("tool_use_id")
                found = next((b for m in history for b in m.content
                              if isinstance(b, ToolResultBlock) and b.tool_use_id == ref), None)
                if found is None:
                    raise DelegationError(f"include[{i}]: unknown reference: no tool result {ref!r} in this session")
                lines.append(f"- result of tool call {ref}:\n{found.content}")
            elif kind == "message":
                ref = item.get("message_id")
                found_msg = next((m for m in history if m.id and m.id == ref), None)
                if found_msg is None:
                    raise DelegationError(f"include[{i}]: unknown reference: no message {ref!r} in this session")
                has_images = has_images or found_msg.has_images()
                lines.append(f"- message {ref} ({found_msg.role.value}):\n{found_msg.text}")
            elif kind == "inline":
                text = item.get("text")
                if not isinstance(text, str):
                    raise DelegationError(f"include[{i}]: inline needs text")
                lines.append(f"- {item.get('label') or 'note'}: {text}")
            else:
                raise DelegationError(f"include[{i}]: unknown include type {kind!r} "
                                      "(file, file_range, tool_result, message, inline)")
        return "\n".join(lines), has_images

    async def _run_worker(self, planner, turn, use, args, brief, has_images, worker_sid) -> DelegateResult:
        parent = turn.run
        wturn = "t_" + os.urandom(6).hex()
        summary = {"model": None, "turns": 0, "tool_calls": 0, "input_tokens": 0, "output_tokens": 0,
                   "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": "0"}

        def failed(error: str, output: Any = "") -> DelegateResult:
            return DelegateResult(False, output, error, summary, worker_sid)

        decide = DecideRoute(worker_sid, wturn, args["task"], has_images=has_images, has_tool_definitions=True,
                             requires_structured_output=args["output_schema"] is not None,
                             estimated_input_tokens=estimate_input_tokens(
                                 None, (), [Message(Role.USER, (TextBlock(args["task"] + brief),))]),
                             workspace=parent.workspace, delegate_tier=args["tier"], is_worker=True,
                             role=args["role"], role_tier=args["complexity"], high_risk=args["high_risk"],
                             delegated_by=parent.model)
        try:
            decision: RouteDecision = await planner.request(self.router, decide, timeout=30)
        except (RemoteError, RequestTimeout) as exc:
            return failed(f"worker_error: routing failed: {exc}")
        model = decision.route.chosen_model
        self.store.start_turn(wturn, worker_sid, model, converter.unstructure(decision.route))
        asked = args["tier"] or f"{args['role']}/{args['complexity'] or 'default'}"
        await planner.emit(parent, ev.DelegateStarted(parent.turn_id, use.id, worker_sid, asked, model,
                                                      args["task"], wturn))
        if model is None:
            self.store.finish_turn(wturn, "failed", error=decision.error)
            if decision.error_code in ROLE_FAILURES:   # e.g. refused by the tier floor: the planner reads why
                return failed(decision.error_code or "", decision.error or "")
            return failed("no_model_available_for_tier")
        summary["model"] = model
        allowed = args["allowed_tools"]
        tools_line = (", ".join(allowed) if allowed is not None
                      else "same as the planner (read/list/write/edit files, load_skill, run_command if granted)")
        schema_line = (f"- Your final response must conform to this schema:\n{json.dumps(args['output_schema'])}\n"
                       if args["output_schema"] is not None else "")
        system = WORKER_PROMPT.format(worker_model=model, task=args["task"], context_summary=brief,
                                      schema_line=schema_line, allowed_tools=tools_line)
        user = Message(Role.USER, (TextBlock(args["task"] + ("\n\n" + brief if brief else "")),), id=f"{wturn}:u")
        self.store.append_messages(worker_sid, wturn, [user])
        run = RunTurn(worker_sid, wturn, model, (user,), parent.workspace, (), False, True, parent.session_id,
                      system, tuple(allowed) if allowed is not None else None, args["max_tokens"],
                      args["output_schema"], reply_to=planner.system.address(planner.name), effort=decision.effort)
        wr = self.runs[wturn] = WorkerRun(wturn)
        try:
            await planner.request(self.worker, run, timeout=30)
            await wr.done.wait()
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_WAIT_S):
                try:
                    await planner.request(self.worker, StopTurn(wturn, "cancelled_by_user"), timeout=STOP_WAIT_S)
                    await wr.done.wait()
                except (RemoteError, RequestTimeout):
                    pass
                self._finish(worker_sid, wturn, wr, summary)
                turn.delegated_usage.append(_usage(summary))  # the cancelled parent's usage counts its worker
                await planner.emit(parent, ev.DelegateFailed(parent.turn_id, use.id, worker_sid, "cancelled_by_user",
                                                             _partial(wr), _usage(summary)))
            raise
        except (RemoteError, RequestTimeout) as exc:
            self.runs.pop(wturn, None)
            return failed(f"worker_error: {exc}")
        return self._result(worker_sid, wturn, wr, summary, args)

    def _finish(self, worker_sid: str, wturn: str, wr: WorkerRun, summary: dict) -> None:
        self.runs.pop(wturn, None)
        out = wr.outcome
        if out is None:
            self.store.finish_turn(wturn, "cancelled", error="cancelled_by_user")
            return
        self.store.append_messages(worker_sid, wturn, out.messages)
        u = out.usage
        summary.update(turns=1, tool_calls=sum(len(m.tool_uses()) for m in out.messages), input_tokens=u.input_tokens,
                       output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_tokens,
                       cache_write_tokens=u.cache_write_tokens, reasoning_tokens=u.reasoning_tokens,
                       cost_usd=u.cost_usd)
        self.store.finish_turn(wturn, out.status, converter.unstructure(u), out.message)

    def _result(self, worker_sid: str, wturn: str, wr: WorkerRun, summary: dict, args: dict) -> DelegateResult:
        self._finish(worker_sid, wturn, wr, summary)
        out = wr.outcome
        assert out is not None
        final = next((m for m in reversed(out.messages) if m.role is Role.ASSISTANT), None)
        text = final.text if final else ""
        if out.error == "insufficient_context":
            return DelegateResult(False, json.loads(out.message or "{}"), "insufficient_context", summary, worker_sid)
        if out.status == "cancelled":
            return DelegateResult(False, text, "cancelled_by_user", summary, worker_sid)
        if out.status != "completed":
            return DelegateResult(False, out.partial_text or text, f"worker_error: {out.message or out.error}",
                                  summary, worker_sid)
        if final is not None and final.stop_reason is StopReason.MAX_TOKENS:
            return DelegateResult(False, text, "max_tokens_exceeded", summary, worker_sid)
        if args["output_schema"] is not None:
            return self._validated(text, args["output_schema"], summary, worker_sid)
        return DelegateResult(True, text, None, summary, worker_sid)

    def _validated(self, text: str, schema: dict, summary: dict, worker_sid: str) -> DelegateResult:
        import jsonschema

        try:
            data = json.loads(_strip_fences(text))
            jsonschema.validate(data, schema)
        except (ValueError, jsonschema.ValidationError):
            return DelegateResult(False, text, "output_schema_validation_failed", summary, worker_sid)
        return DelegateResult(True, data, None, summary, worker_sid)


def _strip_fences(text: str) -> str:
    m = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return m.group(1) if m else text


def _partial(wr: WorkerRun) -> str:
    return "".join(e.text for e in wr.progress if isinstance(e, ev.TextDelta))


def _usage(summary: dict) -> Usage:
    return Usage(summary["input_tokens"], summary["output_tokens"], summary["cache_read_tokens"],
                 summary["cache_write_tokens"], summary["reasoning_tokens"], summary["cost_usd"])
