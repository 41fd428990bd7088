"""Quality-control workflows and fallback chains (DESIGN §4.9) — the sans-IO core.

:mod:`~actors.workflows.parse` reads workflows.yaml, :mod:`~actors.workflows.builtin` holds the
``qc`` workflow, :mod:`~actors.workflows.template` fills prompts and reads confidence and concerns
back, :mod:`~actors.workflows.skip` is the seed's skip table and :mod:`~actors.workflows.fallback`
the fallback-chain state machine. The runner that turns steps into daemon turns is
``orchestrator.workflows_run``.
"""
from actors.workflows.builtin import BUILTIN, QC
from actors.workflows.fallback import AllModelsFailed, Attempt, ChainResult, ChainRun, Outcome
from actors.workflows.model import ChainEntry, FallbackChain, Selector, Step, Workflow, WorkflowsConfig
from actors.workflows.parse import parse_workflows_text
from actors.workflows.skip import RunContext, skip_reason
from actors.workflows.template import concerns, confidence, render

__all__ = [
    "BUILTIN", "QC", "AllModelsFailed", "Attempt", "ChainEntry", "ChainResult", "ChainRun", "FallbackChain",
    "Outcome", "RunContext", "Selector", "Step", "Workflow", "WorkflowsConfig", "concerns", "confidence",
    "parse_workflows_text", "render", "skip_reason",
]
