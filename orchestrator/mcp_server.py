"""``orchestrator mcp``: an MCP server on stdio (the official MCP Python SDK, on trio) so Claude
Code, Codex or any MCP host can run workflows and sub-agents through the daemon (DESIGN §4.9).

Tools: ``run_workflow``, ``delegate`` (by tier or role), ``review``, ``cost`` and ``trace``. Each
call talks to the daemon over its socket with :mod:`orchestrator.client` — the daemon keeps
routing, availability, cost and cancellation. At most ``max_concurrent`` agent calls
(run_workflow, delegate, review) run at once; more wait their turn (the seed's
``MAX_CONCURRENT_AGENTS``). A failure reaches the host as a tool error with one clear line.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import trio

from protocol.errors import RemoteError

from .client import DaemonUnreachable, open_client
from .paths import resolve_paths

CONCURRENCY_VAR = "ORCHESTRATOR_MCP_MAX_CONCURRENT"
DEFAULT_MAX_CONCURRENT = 4


def max_concurrent(value: int | None, env=os.environ) -> int:
    if value is None:
        try:
            value = int(env.get(CONCURRENCY_VAR, DEFAULT_MAX_CONCURRENT))
        except ValueError:
            value = DEFAULT_MAX_CONCURRENT
    return max(1, min(value, 64))


def build_server(limit: int, endpoint: str | None = None):
    """The MCP server with its five tools; ``limit`` caps concurrent agent calls."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("orchestrator", instructions=(
        "Route sub-agent work through the orchestrator daemon: run_workflow('qc', …) for a produced, "
        "self-reviewed, cross-checked and synthesized answer with confidence and provenance; delegate for "
        "one sub-agent turn by tier (fast|balanced|deep) or role; cost and trace to inspect what ran."))
    slots = trio.Semaphore(limit)

    async def guarded(fn, *args: Any) -> Any:
        async with slots:
            return await _one_line_errors(ToolError, fn, *args)

    @server.tool(description="Run a workflow (default qc: produce → self-review → cross-check → synthesize). "
                             "Returns output, confidence (0-100 or null), concerns, steps_completed, provenance.")
    async def run_workflow(input: str, workflow: str = "qc", stakes: str = "normal",
                           time_budget_s: float | None = None, workspace: str | None = None,
                           creative: bool = False, has_tests: bool = False) -> dict[str, Any]:
        return await guarded(_run_workflow, endpoint, workflow, input, stakes, time_budget_s, workspace, creative,
                             has_tests)

    @server.tool(description="One sub-agent turn through the daemon, by tier (fast | balanced | deep) or by "
                             "role (roles.yaml; tier is then the complexity tier TRIVIAL..LARGE). "
                             "Returns output, model and turn_id.")
    async def delegate(task: str, tier: str | None = None, role: str | None = None,
                       workspace: str | None = None) -> dict[str, Any]:
        return await guarded(_delegate, endpoint, task, tier, role, workspace)

    @server.tool(description="Review the git diff of a workspace against a base revision (default HEAD) on "
                             "another model family: verdict SHIP, NEEDS_WORK or MAJOR_RETHINK with findings. "
                             "backend: a review spec backend[:model[:effort]] (default: the configured one).")
    async def review(workspace: str, backend: str | None = None, base: str | None = None) -> dict[str, Any]:
        async with slots:
            return await _review(ToolError, endpoint, workspace, backend, base)

    @server.tool(description="Spend so far: total, by model and by role (optionally one session).")
    async def cost(session_id: str | None = None) -> dict[str, Any]:
        return await _one_line_errors(ToolError, _cost, endpoint, session_id)

    @server.tool(description="Why a turn ran on its model: the route decision of a turn id.")
    async def trace(turn_id: str) -> dict[str, Any]:
        return await _one_line_errors(ToolError, _trace, endpoint, turn_id)

    return server


async def _review(tool_error: type[Exception], endpoint: str | None, workspace: str, backend: str | None,
                  base: str | None) -> dict[str, Any]:
    """`orchestrator review --json`, as a user runs it: one code path for the diff, the reviewer pick,
    the cross-family rule and the verdict parsing."""
    argv = [sys.executable, "-m", "orchestrator", "review", "--json", "--workspace", workspace]
    argv += ["--backend", backend] if backend is not None else []
    argv += ["--base", base] if base is not None else []
    env = {**os.environ, **({"ORCHESTRATOR_ENDPOINT": endpoint} if endpoint else {})}
    done = await trio.run_process(argv, env=env, capture_stdout=True, capture_stderr=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1].removeprefix("orchestrator: ") if lines else f"review failed (exit {done.returncode})"
        raise tool_error(last)
    return json.loads(done.stdout)


async def _one_line_errors(tool_error: type[Exception], fn, *args: Any) -> Any:
    from .workflows_run import ConfigProblem, WorkflowFailed

    try:
        try:
            return await fn(*args)
        except BaseExceptionGroup as group:
            # open_client's nursery wraps what the body raised: report the one error, not the group.
            leaves = _leaves(group)
            if len(leaves) == 1 and isinstance(leaves[0], Exception):
                raise leaves[0] from None
            raise
    except WorkflowFailed as exc:
        raise tool_error(f"{exc.message} [{exc.error}]") from None
    except RemoteError as exc:
        raise tool_error(f"{exc.message} [{exc.code}]") from None
    except DaemonUnreachable as exc:
        raise tool_error(f"daemon not reachable ({exc}); start it with `orchestrator serve`") from None
    except ConfigProblem as exc:
        raise tool_error(f"{exc} (run `orchestrator check`)") from None


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def _run_workflow(endpoint: str | None, workflow: str, task: str, stakes: str, time_budget_s: float | None,
                        workspace: str | None, creative: bool, has_tests: bool) -> dict[str, Any]:
    from actors.workflows import RunContext

    from .workflows_run import WorkflowFailed, WorkflowRunner, load_home_config, workspace_has_tests

    if stakes not in ("low", "normal", "high"):
        raise WorkflowFailed("bad_request", f"stakes must be low, normal or high, not {stakes!r}")
    workspace = _workspace(workspace)
    home = load_home_config(resolve_paths().home)
    ctx = RunContext(stakes, time_budget_s, has_tests or workspace_has_tests(workspace), creative)
    async with open_client(endpoint) as client:
        runner = WorkflowRunner(client, home.workflows, home.registry, home.roles, workspace=workspace)
        return await runner.run(workflow, task, ctx)


async def _delegate(endpoint: str | None, task: str, tier: str | None, role: str | None,
                    workspace: str | None) -> dict[str, Any]:
    from actors.workflows.model import Selector, Step, Workflow, WorkflowsConfig
    from actors.workflows import RunContext

    from .workflows_run import WorkflowFailed, WorkflowRunner, load_home_config

    if role is None and tier is not None and tier not in ("fast", "balanced", "deep"):
        raise WorkflowFailed("bad_request", f"tier must be fast, balanced or deep (or give a role), not {tier!r}")
    home = load_home_config(resolve_paths().home)
    selector = Selector(role=role, role_tier=tier.upper() if role and tier else None, tier=None if role else tier)
    one = Workflow("delegate", (Step("delegate", "{input}", selector),))
    config = WorkflowsConfig(home.workflows.chains, {"delegate": one})
    async with open_client(endpoint) as client:
        runner = WorkflowRunner(client, config, home.registry, home.roles, workspace=_workspace(workspace))
        result = await runner.run("delegate", task, RunContext())
    prov = result["provenance"][0]
    return {"output": result["output"], "model": prov["model"], "turn_id": prov["turn_id"],
            "confidence": result["confidence"]}


async def _cost(endpoint: str | None, session_id: str | None) -> dict[str, Any]:
    from protocol.codec import converter

    async with open_client(endpoint) as client:
        data = converter.unstructure(await client.cost(session_id))
    return {k: data[k] for k in ("total_usd", "by_model", "by_role", "unknown_cost_calls")}


async def _trace(endpoint: str | None, turn_id: str) -> dict[str, Any]:
    from protocol.codec import event_to_json_obj

    async with open_client(endpoint) as client:
        reply = await client.trace(turn_id)
    return event_to_json_obj(reply.route)


def _workspace(workspace: str | None) -> str | None:
    from .workflows_run import WorkflowFailed

    if not workspace:
        return None
    path = os.path.abspath(workspace)
    if not os.path.isdir(path):
        raise WorkflowFailed("bad_request", f"workspace {path} is not a directory")
    return path


def run_mcp(limit: int | None) -> int:
    """Serve MCP on stdin/stdout until the host closes it."""
    import anyio

    server = build_server(max_concurrent(limit))
    anyio.run(server.run_stdio_async, backend="trio")
    return 0
