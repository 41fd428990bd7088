"""The daemon's side of loops: the workflow a ``--workflow NAME`` tick runs.

The loop actor (actors/loops) cannot import the stage; the daemon hands it this hook, which runs
the same ``WorkflowRunner`` as ``orchestrator run`` — on the in-process turns of the loop actor
instead of a client connection, so no CLI and no socket is involved.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import trio

from actors.loops.actor import WorkflowHook
from actors.loops.turns import InProcessTurns
from actors.workflows import RunContext

from .workflows_run import ConfigProblem, WorkflowFailed, WorkflowRunner, load_home_config, workspace_has_tests


class LoopWorkflowFailed(Exception):
    pass


def workflow_hook(home: Path) -> WorkflowHook:
    async def run(turns: InProcessTurns, name: str, text: str, workspace: str | None) -> str:
        try:
            config = await trio.to_thread.run_sync(load_home_config, home)
        except ConfigProblem as exc:
            raise LoopWorkflowFailed(f"config: {exc}") from None
        ctx = RunContext("normal", None, workspace_has_tests(workspace), False)
        runner = WorkflowRunner(cast(Any, turns), config.workflows, config.registry, config.roles, workspace=workspace)
        try:
            result = await runner.run(name, text, ctx)
        except WorkflowFailed as exc:
            raise LoopWorkflowFailed(f"workflow {name}: {exc.message} [{exc.error}]") from None
        return str(result["output"])

    return run
