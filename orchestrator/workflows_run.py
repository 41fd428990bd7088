"""Run a workflow (DESIGN §4.9): each step one daemon turn, on its own session, with its own
``route.decided``; the result carries output, confidence, concerns and provenance.

Why the runner lives in the client library, not in a daemon actor: every step already *is* a
daemon turn, so routing, availability, the cost ledger (one row per step's turn) and cancellation
(CancelTurn per running step) stay the daemon's; the runner only sequences turns and reads their
answers, which is what a client does. The CLI, chat and the MCP server share this one runner. The
price: a runner killed with SIGKILL leaves its running step to finish in the daemon (it is not
cancelled, but it is still bounded, recorded and billed like any turn). See docs/workflows.md.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio
from attrs import frozen

from protocol import events as ev
from protocol.codec import event_to_json_obj
from protocol.errors import RemoteError

from actors.config.registry import ModelRegistry
from actors.roles.model import RolesConfig
from actors.workflows import (
    AllModelsFailed, ChainRun, Outcome, RunContext, Step, Workflow, WorkflowsConfig, concerns, confidence, render,
    skip_reason,
)
from actors.workflows.select import Plan, plan_step
from actors.workflows.template import step_references

from .client import Client, DaemonUnreachable

Emit = Callable[[dict], None]
CANCEL_GRACE_S = 5.0            # bound on telling the daemon to stop a step's turn


class WorkflowFailed(Exception):
    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error, self.message = error, message

    def as_event(self) -> dict:
        return {"type": "workflow.failed", "error": self.error, "message": self.message}


@frozen
class TurnResult:
    turn_id: str
    model: str | None
    kind: str                   # ok | timeout | rate_limited | failed | cancelled
    output: str = ""
    error: str | None = None
    message: str = ""
    cost_usd: str | None = None


class WorkflowRunner:
    def __init__(self, client: Client, config: WorkflowsConfig, registry: ModelRegistry,
                 roles: RolesConfig | None = None, *, workspace: str | None = None, emit: Emit | None = None,
                 clock: Callable[[], float] = trio.current_time):
        self.client, self.config, self.registry, self.roles = client, config, registry, roles
        self.workspace = workspace
        self.emit = emit or (lambda _obj: None)
        self.clock = clock

    async def run(self, name: str, task: str, ctx: RunContext) -> dict[str, Any]:
        """The ``workflow.completed`` result; raises WorkflowFailed."""
        workflow = self.config.workflows.get(name)
        if workflow is None:
            known = ", ".join(sorted(self.config.workflows))
            raise WorkflowFailed("unknown_workflow", f"no workflow named {name!r} (defined: {known})")
        return await self._run(workflow, task, ctx)

    async def _run(self, workflow: Workflow, task: str, ctx: RunContext) -> dict[str, Any]:
        outputs: dict[str, str] = {}
        used: dict[str, str] = {}
        provenance: list[dict[str, Any]] = []
        last_output, ran = "", 0
        for step in workflow.steps:
            reason = skip_reason(step, ctx)
            plans = [self._plan(sel, step, used) for sel in (step.parallel or (step.selector,))]
            if reason is None and all(p.skip for p in plans):
                reason = plans[0].skip
            if reason is not None:
                provenance.append(_record(step, None, None, None, "skipped", reason))
                continue
            prompt = render(step.prompt, task, outputs)
            results = await self._run_step(step, [p for p in plans if not p.skip], prompt)
            for plan, result, extra in results:
                provenance.append(_record(step, plan.role, result.model, result.turn_id, "run", plan.note,
                                          cost_usd=result.cost_usd, **extra))
            output = _join([r for _, r, _ in results])
            outputs[step.name] = output
            if not step.review:
                last_output = output
            model = results[0][1].model
            if model is not None:
                used[step.name] = model
            ran += 1
        return {"output": last_output, "confidence": confidence(last_output), "concerns": concerns(last_output),
                "steps_completed": ran, "provenance": provenance, "cost_usd": _total_cost(provenance)}

    def _plan(self, selector, step: Step, used: dict[str, str]) -> Plan:
        return plan_step(selector, self.registry, self.roles, used, step_references(step.prompt))

    async def _run_step(self, step: Step, plans: list[Plan], prompt: str) -> list[tuple[Plan, TurnResult, dict]]:
        """One step; parallel branches run together and are cancelled together (one nursery)."""
        results: list[tuple[Plan, TurnResult, dict] | None] = [None] * len(plans)
        failures: list[WorkflowFailed] = []

        async def branch(i: int, plan: Plan, cancel_scope: trio.CancelScope) -> None:
            label = {"step": step.name, **({"branch": i} if len(plans) > 1 else {})}
            try:
                plan_, result, extra = await self._run_plan(plan, prompt, label)
                results[i] = plan_, result, {**extra, **({"branch": i} if len(plans) > 1 else {})}
            except RemoteError as exc:      # the daemon refused the step's session or turn
                failures.append(WorkflowFailed(exc.code, f"step {step.name!r}: {exc.message}"))
                cancel_scope.cancel()
            except WorkflowFailed as exc:   # the step has failed: its other branches stop too
                failures.append(exc)
                cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for i, plan in enumerate(plans):
                nursery.start_soon(branch, i, plan, nursery.cancel_scope)
        if failures:
            raise failures[0]
        return [r for r in results if r is not None]

    async def _run_plan(self, plan: Plan, prompt: str, label: dict) -> tuple[Plan, TurnResult, dict]:
        if plan.chain is None:
            result = await self._turn(prompt, label, model=plan.model, role=plan.role, tier=plan.role_tier)
            if result.kind != "ok":
                on = f" on {result.model}" if result.model else ""
                raise WorkflowFailed(result.error or "step_failed",
                                     f"step {label['step']!r} failed{on}: {result.message or result.kind}")
            return plan, result, {}
        chain = self.config.chains[plan.chain]
        run = ChainRun(chain, self.clock)
        while (attempt := run.next_attempt()) is not None:
            result = await self._turn(prompt, {**label, "attempt": attempt.attempt, "fallback_depth": attempt.depth},
                                      model=attempt.model, deadline=attempt.deadline)
            run.record(attempt, Outcome(result.kind, result.output, confidence(result.output), result.error))
            if run.result is not None:
                extra = {"attempt": run.result.attempt, "fallback_depth": run.result.fallback_depth,
                         "chain": chain.name}
                return plan, result, extra
        failure: AllModelsFailed = run.failure()
        raise WorkflowFailed(failure.error, str(failure))

    async def _turn(self, prompt: str, label: dict, *, model: str | None = None, role: str | None = None,
                    tier: str | None = None, deadline: float = math.inf) -> TurnResult:
        """One turn on a fresh session; past ``deadline`` (the runner's clock) it is cancelled and
        counts as a timeout. A cancelled runner cancels the turn in the daemon before it unwinds."""
        info = await self.client.open_session(None, self.workspace)
        if model is not None:
            await self.client.set_model(info.session_id, model)
        parts: list[str] = []
        used_model = model
        async with self.client.turn(info.session_id, prompt, workspace=self.workspace, role=role, tier=tier) as turn:
            timed_out = False
            try:
                with trio.move_on_at(deadline) as scope:
                    async for event in turn:
                        self.emit({**event_to_json_obj(event), **label})
                        if isinstance(event, ev.TextDelta):
                            parts.append(event.text)
                        elif isinstance(event, ev.TurnStarted):
                            used_model = event.model
                timed_out = scope.cancelled_caught
            except trio.Cancelled:
                await _cancel_turn(turn, lambda e: self.emit({**event_to_json_obj(e), **label}))
                raise
            if timed_out:
                await _cancel_turn(turn, lambda e: self.emit({**event_to_json_obj(e), **label}))
                return TurnResult(turn.turn_id, used_model, "timeout", error="timeout",
                                  message="no answer within the chain entry's timeout")
        terminal = turn.terminal
        if isinstance(terminal, ev.TurnCompleted):
            return TurnResult(turn.turn_id, terminal.model, "ok", "".join(parts), cost_usd=terminal.usage.cost_usd)
        if isinstance(terminal, ev.TurnFailed):
            kind = "rate_limited" if terminal.error == "provider_rate_limit" else (
                "timeout" if terminal.error == "provider_timeout" else "failed")
            return TurnResult(turn.turn_id, terminal.model or used_model, kind, error=terminal.error,
                              message=terminal.message.splitlines()[0] if terminal.message else "")
        reason = terminal.reason if isinstance(terminal, ev.TurnCancelled) else "no terminal event"
        return TurnResult(turn.turn_id, used_model, "cancelled", error="cancelled",
                          message=f"turn cancelled ({reason})")


async def _cancel_turn(turn, emit: Callable[[Any], None]) -> None:
    """Tell the daemon to stop the turn and wait (bounded, shielded) for its turn.cancelled, so its
    history is complete before we unwind."""
    with trio.move_on_after(CANCEL_GRACE_S) as scope:
        scope.shield = True
        try:
            await turn.cancel()
            if turn.terminal is None:
                async for event in turn:
                    emit(event)
        except (RemoteError, DaemonUnreachable):
            pass        # already over, or the daemon is gone: nothing left to stop


def _record(step: Step, role: str | None, model: str | None, turn_id: str | None, status: str, reason: str,
            **extra: Any) -> dict[str, Any]:
    return {"step": step.name, "role": role, "model": model, "turn_id": turn_id, "status": status,
            "reason": reason, **extra}


def _total_cost(provenance: list[dict[str, Any]]) -> str | None:
    """The steps' turns' cost (chain attempts that were not accepted are in the cost ledger, not
    here); None when a step's cost is unknown."""
    from decimal import Decimal, InvalidOperation

    total = Decimal(0)
    for p in provenance:
        if p["status"] != "run":
            continue
        try:
            total += Decimal(p["cost_usd"])
        except (TypeError, InvalidOperation):
            return None
    return str(total)


def _join(results: list[TurnResult]) -> str:
    if len(results) == 1:
        return results[0].output
    return "\n\n".join(f"[{r.model}]\n{r.output}" for r in results)


@frozen
class HomeConfig:
    workflows: WorkflowsConfig
    registry: ModelRegistry
    roles: RolesConfig | None


class ConfigProblem(Exception):
    """The home's files do not allow a run: the lines say why."""


def load_home_config(home) -> HomeConfig:
    """models.yaml (required), roles.yaml and workflows.yaml (optional) of the home, checked as
    ``orchestrator check`` does; a problem raises ConfigProblem with the error lines."""
    from pathlib import Path

    from actors.config.files import load_registry_text, read_text
    from actors.roles import parse_roles_text
    from actors.workflows import parse_workflows_text

    home = Path(home)
    models_text = read_text(str(home / "models.yaml"))
    if models_text is None:
        raise ConfigProblem(f"models.yaml:1: file not found ({home / 'models.yaml'})")
    registry, errors = load_registry_text(models_text)
    if registry is None:
        raise ConfigProblem("; ".join(errors))
    roles = None
    roles_text = read_text(str(home / "roles.yaml"))
    if roles_text is not None:
        roles, errors = parse_roles_text(roles_text, "roles.yaml", registry)
        if roles is None:
            raise ConfigProblem("; ".join(errors))
    wf_text = read_text(str(home / "workflows.yaml"))
    workflows, errors = parse_workflows_text(wf_text or "", "workflows.yaml", registry,
                                            set(roles.roles) if roles is not None else set())
    if workflows is None:
        raise ConfigProblem("; ".join(errors))
    return HomeConfig(workflows, registry, roles)


def workspace_has_tests(workspace: str | None) -> bool:
    """A workspace with a test suite: its tests stand in for the cross-check (the seed's table)."""
    import os

    if not workspace:
        return False
    return any(os.path.isdir(os.path.join(workspace, d)) for d in ("tests", "test"))


def run_workflow(workflow: str, text: str, *, stakes: str = "normal", time_budget_s: float | None = None,
                 workspace: str | None = None, creative: bool = False, has_tests: bool = False,
                 endpoint: str | None = None) -> dict[str, Any]:
    """Blocking, for scripts: run a workflow through the daemon and return the
    ``workflow.completed`` result (raises WorkflowFailed, ConfigProblem, DaemonUnreachable)."""
    from .client import open_client
    from .paths import resolve_paths

    home = load_home_config(resolve_paths().home)
    ctx = RunContext(stakes, time_budget_s, has_tests or workspace_has_tests(workspace), creative)

    async def main() -> dict[str, Any]:
        async with open_client(endpoint) as client:
            runner = WorkflowRunner(client, home.workflows, home.registry, home.roles, workspace=workspace)
            return await runner.run(workflow, text, ctx)

    return trio.run(main)
