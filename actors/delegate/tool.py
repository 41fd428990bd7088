"""``delegate_code``: implementation work handed to the workspace's command-line coding agent.

Offered only when the workspace opts in (``delegate:`` in ``.orchestrator/workspace.yaml``), the
user consented to exactly that blast radius (``orchestrator delegate consent``, stored in the
state database, never in the workspace), the session's breaker is closed, and the agent is a
registered ``cli`` model. The handler re-checks all of it (a revoke or a tripped breaker since
the turn started refuses with one line), then: snapshot → run the agent in the workspace →
verify independently → accept, or roll back exactly what it changed and hand the task back.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

from protocol.canonical import Message, Role, TextBlock, ToolDefinition, ToolUseBlock, Usage
from protocol.messages import RunTurn

from actors.config.registry import DEFAULT_KEY_ENV, EFFORTS, ModelRegistry, ModelSpec
from actors.delegate import breaker as brk
from actors.delegate import gitio, state
from actors.delegate.ledger import record_usage
from actors.delegate.config import DelegateConfig, effort_with_floor
from actors.delegate.consent import BlastRadius, blast_radius, consent_hint
from actors.delegate.review import run_review
from actors.delegate.verify import Evidence, CheckRun, decide, parse_claimed
from actors.providers.base import LLMRequest, ProviderError, collect_text
from actors.providers.cli import build_argv
from actors.providers.redact import configured_keys, scrub
from actors.runtime.store import PatternOutcome, Store
from actors.tools.workspace import SETTINGS_FILE, WorkspaceSettings, load_workspace_settings

if TYPE_CHECKING:
    from actors.planner.actor import ActiveTurn, PlannerActor
    from actors.planner.support import ToolHandler

log = structlog.get_logger("delegate")

TOOL_NAME = "delegate_code"
ROLLBACK_BOUND_S = 30.0
OUTPUT_TAIL = 1500
RESET_COMMAND = "orchestrator delegate reset --session {session}"

AGENT_PROMPT = """You are a coding agent. Implement the task below by editing files in the current
directory ({workspace}).

Task {task_id}:
{task}

Rules:
- Change only files matching: {allow}. Never touch .orchestrator/ or .git/.
- Do not run git commands that change the repository (no commit, checkout, reset, stash, branch, add).
- Your change is verified independently: `{test_command}` must pass afterwards.
- End your output with exactly one line listing every file you changed, created or deleted,
  relative to this directory and comma-separated:
FILES_CHANGED=path/one.py,path/two.py
"""


def agent_command(config: DelegateConfig, registry: ModelRegistry) -> tuple[ModelSpec, tuple[str, ...]] | str:
    """The agent's model and argv (with the effort floor filled in), or why it cannot run."""
    spec = registry.models.get(config.agent)
    if spec is None:
        return f"delegate.agent {config.agent!r} is not registered in models.yaml"
    provider = registry.providers.get(spec.provider)
    if provider is None or provider.kind != "cli":
        return f"delegate.agent {config.agent!r} is not a model of a cli provider"
    template = spec.command or provider.options.get("command")
    if not template:
        return f"cli model {config.agent!r} has no command"
    effort, problem = effort_with_floor(None, config.effort, spec.efforts)
    if problem:
        return problem
    return spec, tuple(build_argv(tuple(template), spec.name, effort))


def radius_for(config: DelegateConfig, registry: ModelRegistry, workspace: str) -> BlastRadius | str:
    found = agent_command(config, registry)
    if isinstance(found, str):
        return found
    return blast_radius(config, found[1], os.path.realpath(workspace))


def _tool_definition(config: DelegateConfig) -> ToolDefinition:
    return ToolDefinition(
        TOOL_NAME,
        f"Hand a clear, mechanical implementation task to the workspace's command-line coding agent "
        f"({config.agent}). It edits files in the workspace (only {', '.join(config.allow)}); the daemon then "
        f"verifies the change itself — HEAD unchanged, exactly the files it reports, `{config.test_command}` "
        "passing — and otherwise rolls back exactly what it changed and tells you why, so you do the task "
        "yourself. You keep judgment, git, review and commits. Keep UI, copy, API design and anything "
        "ambiguous for yourself. Give each task a stable task_id: a task whose review comes back NEEDS_WORK "
        f"{config.escalate_after_needs_work} times is no longer delegated.",
        {
            "type": "object",
            "required": ["task_id", "task"],
            "properties": {
                "task_id": {"type": "string", "description": "a stable id for this task (e.g. fn-12.3)"},
                "task": {"type": "string", "description": "the full, self-contained instruction for the agent"},
                "effort": {"type": "string", "enum": list(EFFORTS),
                           "description": "reasoning effort; never below the workspace's delegate effort floor"},
            },
        },
    )


def _key_names(registry: ModelRegistry) -> set[str]:
    return set(DEFAULT_KEY_ENV.values()) | {p.api_key_env for p in registry.providers.values() if p.api_key_env}


class CodeDelegation:
    """The ``delegate_code`` tool, plugged into the planner's ToolBox as workspace tools."""

    def __init__(self, store: Store, registry: Any, *, env: Mapping[str, str] | None = None):
        self.store = store
        self.registry = registry          # () -> ModelRegistry: the last-known-good registry
        self.env = env
        # One delegation at a time per workspace: two agents (or two snapshots) in one tree would
        # each see the other's changes as their own.
        self._locks: dict[str, trio.Lock] = {}

    # --- what the ToolBox asks ---------------------------------------------------------------------

    async def offered(self, run: RunTurn, spec: ModelSpec, settings: WorkspaceSettings) -> tuple[ToolDefinition, ...]:
        if run.is_worker or run.gateway or not run.workspace or settings.delegate is None:
            return ()
        # A thread: the consent and breaker rows, and the workspace's real path (consent is keyed by it).
        why = await trio.to_thread.run_sync(self._why_not, run.session_id, run.workspace, settings.delegate)
        if why is not None:
            log.info("delegate_code not offered", workspace=run.workspace, reason=why)
            return ()
        return (_tool_definition(settings.delegate),)

    def handlers(self) -> dict[str, ToolHandler[PlannerActor, ActiveTurn]]:
        return {TOOL_NAME: self.delegate_code}

    def _why_not(self, session_id: str, workspace: str, config: DelegateConfig) -> str | None:
        radius = radius_for(config, self.registry(), workspace)
        if isinstance(radius, str):
            return radius
        try:
            gitio.check_repository(radius.directory)
        except gitio.GitProblem as exc:
            return str(exc)
        consent = state.get_consent(self.store, radius.directory)
        if consent is None:
            return f"no consent for this workspace: run `{consent_hint(radius.directory)}`"
        if consent.fingerprint != radius.fingerprint():
            return (f"the delegate's blast radius changed since consent was given: run "
                    f"`{consent_hint(radius.directory)}` again")
        breaker = state.get_breaker(self.store, session_id)
        if breaker.is_open:
            return (f"the circuit breaker is open for this session: {breaker.open_reason} (the user closes it with "
                    f"`{RESET_COMMAND.format(session=session_id)}`)")
        return None

    # --- the call ---------------------------------------------------------------------------------

    async def delegate_code(self, planner: PlannerActor, turn: ActiveTurn, use: ToolUseBlock) -> tuple[str, bool]:
        run = turn.run
        if run.is_worker or not run.workspace:
            return f"unknown tool: {TOOL_NAME}", True
        task_id, task, effort = use.input.get("task_id"), use.input.get("task"), use.input.get("effort")
        if not isinstance(task_id, str) or not task_id.strip() or not isinstance(task, str) or not task.strip():
            return f"{TOOL_NAME}: task_id and task must be non-empty strings", True
        if effort is not None and effort not in EFFORTS:
            return f"{TOOL_NAME}: effort must be one of {', '.join(EFFORTS)}", True
        task_id = task_id.strip()
        settings = await trio.to_thread.run_sync(load_workspace_settings, run.workspace)
        config = settings.delegate
        if config is None:
            return f"{TOOL_NAME}: delegation is off in this workspace (no delegate: in {SETTINGS_FILE})", True
        why = await trio.to_thread.run_sync(self._why_not, run.session_id, run.workspace, config)
        if why is not None:
            return f"{TOOL_NAME}: refused: {why}. Do the task yourself.", True
        task_state = state.get_task(self.store, run.session_id, task_id)
        if task_state.escalated:
            return (f"{TOOL_NAME}: task {task_id} is no longer delegated ({task_state.escalated}): "
                    "implement it yourself on the session model.", True)
        registry = self.registry()
        found = agent_command(config, registry)
        assert not isinstance(found, str)   # _why_not checked it
        agent = found[0]
        run_effort, problem = effort_with_floor(effort, config.effort, agent.efforts)
        if problem:
            return f"{TOOL_NAME}: {problem}", True
        # By the real path: a symlinked spelling of the same tree is the same tree.
        real = await trio.to_thread.run_sync(os.path.realpath, run.workspace)
        lock = self._locks.setdefault(real, trio.Lock())
        async with lock:
            return await self._locked(planner, turn, config, agent, run_effort, task_id, task.strip(), settings,
                                      registry)

    async def _locked(self, planner: PlannerActor, turn: ActiveTurn, config: DelegateConfig, agent: ModelSpec,
                      run_effort: str | None, task_id: str, task: str, settings: WorkspaceSettings,
                      registry: ModelRegistry) -> tuple[str, bool]:
        assert turn.run.workspace is not None
        breaker = state.get_breaker(self.store, turn.run.session_id)   # it may have opened while we waited
        if breaker.is_open:
            return (f"{TOOL_NAME}: refused: the circuit breaker is open for this session: {breaker.open_reason} "
                    f"(the user closes it with `{RESET_COMMAND.format(session=turn.run.session_id)}`). "
                    "Do the task yourself.", True)
        try:
            snap = await trio.to_thread.run_sync(gitio.snapshot, turn.run.workspace)
        except gitio.GitProblem as exc:
            return f"{TOOL_NAME}: refused: {exc}. Do the task yourself.", True
        accepted = trio.Event()
        try:
            result = await self._run_and_verify(planner, turn, config, agent, run_effort, snap, task_id,
                                                task, settings, registry, accepted)
        except BaseException:
            # Cancelled (or a bug) before the change was accepted: what the agent wrote so far is
            # undone, shielded and bounded, before the cancellation goes on. An accepted change stays.
            if not accepted.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(ROLLBACK_BOUND_S):
                    await trio.to_thread.run_sync(self._undo, snap)
            raise
        return json.dumps(result), not result["accepted"]

    async def _run_and_verify(self, planner: PlannerActor, turn: ActiveTurn, config: DelegateConfig,
                              agent: ModelSpec, effort: str | None, snap: gitio.Snapshot, task_id: str, task: str,
                              settings: WorkspaceSettings, registry: ModelRegistry,
                              accepted: trio.Event) -> dict[str, Any]:
        run = turn.run
        prompt = AGENT_PROMPT.format(workspace=snap.workspace, task_id=task_id, task=task,
                                     allow=", ".join(config.allow), test_command=config.test_command)
        request = LLMRequest(model=agent.name, messages=(Message(Role.USER, (TextBlock(prompt),)),),
                             max_tokens=agent.max_output_tokens, workspace=snap.workspace, effort=effort)
        text: list[str] = []
        usage = Usage()
        cli_failure: str | None = None
        try:
            adapter = planner.adapters.get(agent)
            # No retries: an agent that failed half-way has already written files.
            usage = await collect_text(adapter.stream(request), text)
        except ProviderError as exc:
            # Its stderr tail is in the message: scrubbed of configured keys like any provider error.
            cli_failure = f"{exc.error_class.value}: {scrub(exc.message, configured_keys(registry, self.env))}"
        turn.delegated_usage.append(await record_usage(planner, run, agent, usage, registry))
        output = "".join(text)
        result: dict[str, Any] = {"accepted": False, "task_id": task_id, "agent": agent.id, "effort": effort,
                                  "files": [], "reasons": [], "rolled_back": [], "tests": None, "review": None,
                                  # What it said, for context only: never evidence (that is verified above).
                                  "agent_said": output[-OUTPUT_TAIL:]}
        breaker = state.get_breaker(self.store, run.session_id)
        if cli_failure is not None:
            result["reasons"] = [f"the agent's command failed: {cli_failure}"]
            result["rolled_back"], problems = await trio.to_thread.run_sync(self._undo, snap)
            breaker = brk.on_cli_failure(breaker, cli_failure)
            return self._finish(run, result, breaker, problems, task, agent, usage)
        try:
            evidence = await trio.to_thread.run_sync(self._evidence, snap, output)
        except gitio.GitProblem as exc:   # the change cannot even be inspected: certainly not accepted
            result["reasons"] = [f"verification failed: {exc}"]
            result["rolled_back"], problems = await trio.to_thread.run_sync(self._undo, snap)
            return self._finish(run, result, brk.on_task_failure(breaker, str(exc)), problems, task, agent, usage)
        verdict = decide(evidence, config.allow, None)
        tests: CheckRun | None = None
        if verdict.run_tests:
            tests = await self._run_tests(snap.workspace, config, settings, registry)
            result["tests"] = tests.summary
            verdict = decide(evidence, config.allow, tests)
        result["files"] = sorted(evidence.changed)
        if not verdict.accepted:
            result["reasons"] = list(verdict.reasons)
            result["rolled_back"], problems = await trio.to_thread.run_sync(self._undo, snap)
            breaker = brk.on_task_failure(breaker, verdict.text())
            return self._finish(run, result, breaker, problems, task, agent, usage)
        result["accepted"] = True
        accepted.set()
        result["reasons"] = list(verdict.reasons)
        breaker = brk.on_success(breaker)
        if config.review:
            result["review"] = await self._review(planner, turn, config, agent, snap, evidence, task_id, task)
        return self._finish(run, result, breaker, [], task, agent, usage)

    def _evidence(self, snap: gitio.Snapshot, output: str) -> Evidence:
        head_after, branch_after = gitio.head(snap.workspace), gitio.branch(snap.workspace)
        if head_after != snap.head or branch_after != snap.branch:
            gitio.restore_refs(snap)   # the delegate's commits become differences from HEAD: rolled back below
        changed = gitio.changes(snap)
        claimed = parse_claimed(output, snap.workspace)
        return Evidence(snap.head, head_after, snap.branch, branch_after, changed, claimed,
                        gitio.index_changes(snap) - changed)

    def _undo(self, snap: gitio.Snapshot) -> tuple[list[str], list[str]]:
        try:
            gitio.restore_refs(snap)
            changed = gitio.changes(snap)
            return sorted(changed), gitio.rollback(snap, changed)
        except gitio.GitProblem as exc:
            return [], [str(exc)]

    async def _run_tests(self, workspace: str, config: DelegateConfig, settings: WorkspaceSettings,
                         registry: ModelRegistry) -> CheckRun:
        from actors.tools import ToolContext
        from actors.tools._command import run_command

        source = os.environ if self.env is None else self.env
        ctx = ToolContext(workspace=Path(workspace), run_command_allowed=True, command_timeout_s=config.test_timeout_s,
                          command_env=settings.command_env(source, secret_names=_key_names(registry)))
        text, failed = await run_command(ctx, config.test_command)
        status = text.splitlines()[1] if len(text.splitlines()) > 1 else text
        tail = text[-1500:] if failed else ""
        return CheckRun(not failed, status + (f"\n{tail}" if tail else ""))

    def _finish(self, run: RunTurn, result: dict[str, Any], breaker: brk.BreakerState, problems: list[str],
                task: str, agent: ModelSpec, usage: Usage) -> dict[str, Any]:
        state.put_breaker(self.store, run.session_id, breaker)
        if problems:
            result["rollback_problems"] = problems
        if breaker.is_open:
            result["breaker"] = (f"open: {breaker.open_reason}; {TOOL_NAME} is off for the rest of this session "
                                 f"(the user closes it with `{RESET_COMMAND.format(session=run.session_id)}`)")
        if not result["accepted"]:
            result["next"] = "The delegated change was not accepted and was rolled back: implement the task yourself."
        self._outcome(run, task, agent, 1.0 if result["accepted"] else 0.0, usage, "delegate_verify")
        log.info("delegate_code", session_id=run.session_id, task_id=result["task_id"], accepted=result["accepted"],
                 reasons=result["reasons"], breaker=breaker.open_reason)
        return result

    def _outcome(self, run: RunTurn, task: str, agent: ModelSpec, score: float, usage: Usage, source: str) -> None:
        """A pattern-store outcome signal for the delegate model (read by the router's pattern store)."""
        try:
            cost = float(usage.cost_usd) if usage.cost_usd is not None else 0.0
            self.store.record_outcome(PatternOutcome(run.turn_id, run.session_id, run.workspace, task, agent.id,
                                                     score, cost, time.time(), source))
        except Exception as exc:   # an outcome signal is never worth failing the delegation for
            log.warning("delegate outcome not recorded", error=repr(exc))

    async def _review(self, planner: PlannerActor, turn: ActiveTurn, config: DelegateConfig, agent: ModelSpec,
                      snap: gitio.Snapshot, evidence: Evidence, task_id: str, task: str) -> dict[str, Any]:
        run = turn.run
        review = await run_review(planner, turn, config, agent, snap, evidence.changed, self.registry())
        if review.get("verdict") is None:
            return review
        before = state.get_task(self.store, run.session_id, task_id)
        after = brk.on_review(before, review["verdict"], config.escalate_after_needs_work)
        state.put_task(self.store, run.session_id, task_id, after)
        review["needs_work_count"] = after.needs_work
        if after.escalated:
            review["escalated"] = (f"task {task_id} is no longer delegated ({after.escalated}): fix it yourself "
                                   "on the session model")
        score = {"SHIP": 1.0, "NEEDS_WORK": 0.5}.get(review["verdict"], 0.0)
        self._outcome(run, task, agent, score, Usage(), "delegate_review")
        return review


