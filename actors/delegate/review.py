"""The review of a verified delegated change (actors/review: spec, cross-family choice, verdict).

The spec is ``delegate.review`` (a per-spec layer: it wins over ``ORCHESTRATOR_REVIEW_BACKEND``,
as in the review precedence); the writer is the delegate's model, so the reviewer is of another
family unless the spec pins one. The reviewer runs as one direct call (its usage is added to the
turn's), and its answer is parsed with the same verdict format as ``orchestrator review``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

import trio

from protocol.canonical import Message, Role, TextBlock, Usage

from actors.config.registry import ModelRegistry, ModelSpec
from actors.delegate import gitio
from actors.delegate.config import DelegateConfig
from actors.delegate.ledger import record_usage
from actors.providers.base import LLMRequest, ProviderError, collect_text
from actors.review.choose import Choice, choose_reviewer
from actors.review.precedence import ENV_VAR, Layer, resolve
from actors.review.verdict import UnparseableReview, parse_review, review_prompt
from actors.tools.workspace import SETTINGS_FILE

if TYPE_CHECKING:
    from actors.planner.actor import ActiveTurn, PlannerActor


def reviewer_for(config: DelegateConfig, agent_id: str, registry: ModelRegistry) -> Choice:
    """Who reviews the agent's accepted changes (also shown by ``orchestrator delegate show``)."""
    resolved = resolve([Layer("spec", config.review, f"{SETTINGS_FILE}: delegate.review"),
                        Layer("env", os.environ.get(ENV_VAR), ENV_VAR)], registry)
    return choose_reviewer(resolved, registry, agent_id)


async def run_review(planner: PlannerActor, turn: ActiveTurn, config: DelegateConfig, agent: ModelSpec,
                     snap: gitio.Snapshot, changed: Iterable[str], registry: ModelRegistry) -> dict[str, Any]:
    """``{"verdict", "model", "findings"}``, or ``{"verdict": None, "error"}`` when no review ran."""
    choice = reviewer_for(config, agent.id, registry)
    if choice.skipped or not choice.ok or choice.model is None:
        return {"verdict": None, "error": choice.error or "; ".join(choice.notes) or "no reviewer"}
    spec = registry.models[choice.model]
    diff = await trio.to_thread.run_sync(gitio.change_diff, snap, list(changed))
    prompt = review_prompt(diff, base=snap.head, workspace=snap.workspace)
    request = LLMRequest(model=spec.name, messages=(Message(Role.USER, (TextBlock(prompt),)),),
                         max_tokens=spec.max_output_tokens, effort=choice.effort, workspace=snap.workspace)
    text: list[str] = []
    usage = Usage()
    try:
        usage = await collect_text(planner.adapters.get(spec).stream(request), text)
    except ProviderError as exc:
        return {"verdict": None, "model": spec.id, "error": f"review failed: {exc.error_class.value}: {exc.message}"}
    turn.delegated_usage.append(await record_usage(planner, turn.run, spec, usage, registry))
    try:
        review = parse_review("".join(text))
    except UnparseableReview as exc:
        return {"verdict": None, "model": spec.id, "error": f"review unreadable: {exc}"}
    return {"verdict": review.verdict, "model": spec.id, "notes": list(choice.notes),
            "findings": [f.as_json() for f in review.findings]}
