"""Which model reviews: the resolved spec, held to the cross-family rule (sans-IO).

The model that writes never reviews its own work: a review does not run on the writer's family
(models.yaml ``family``, default the provider's kind) unless the spec pins that model explicitly
(``backend:model`` from the task, a spec, the environment or config) — then it runs, and the
note says so. The *default* reviewer (routing.yaml's global default) and a backend named without
a model give way to a model of another family, and the note says which and why. With no writer
known there is nothing to keep apart from.
"""
from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from actors.config.registry import ModelRegistry, ModelSpec
from actors.review.precedence import Resolved
from actors.review.spec import reviewer_order


@frozen
class Choice:
    model: str | None = None          # registry id of the reviewer
    effort: str | None = None
    notes: tuple[str, ...] = ()       # for the user and the turn's route.decided trace
    error: str | None = None
    skipped: bool = False             # backend none: no review runs

    @property
    def ok(self) -> bool:
        return self.error is None


def family_of(model: str, registry: ModelRegistry) -> str:
    """A registered model's family; for an unknown id, its provider's kind (or the provider name)."""
    family = registry.family_of(model)
    if family is not None:
        return family
    provider = registry.providers.get(model.partition(":")[0])
    return provider.kind if provider is not None else model.partition(":")[0]


def choose_reviewer(resolved: Resolved, registry: ModelRegistry, writer: str | None,
                    unusable: Mapping[str, str] | None = None) -> Choice:
    """``unusable``: model id → why it cannot run now (not_configured, …); avoided when there is a choice."""
    spec = resolved.spec
    if spec is None:
        return Choice(error="; ".join(resolved.errors) or "no review spec")
    if spec.disabled:
        return Choice(skipped=True, notes=(f"review disabled: backend 'none' (from {resolved.source})",))
    unusable = unusable or {}
    writer_family = family_of(writer, registry) if writer else None
    who = f"writer {writer} (family {writer_family})"
    if spec.model_id is not None:
        model = spec.model_id
        if model not in registry.models:
            return Choice(error=f"review model '{model}' is not registered in models.yaml: add it under models: "
                                "to review with it")
        family = family_of(model, registry)
        if writer_family is None or family != writer_family:
            notes = (f"cross-family review: {who}, reviewer {model} (family {family})",) if writer else ()
            return Choice(model, spec.effort, notes)
        if resolved.source != "default":
            return Choice(model, spec.effort, (
                f"same-family review: {who}; reviewer {model} pinned explicitly by {resolved.source} "
                f"({resolved.origin or spec.text()})",))
        other = _other_family(registry, writer_family, unusable)
        if other is None:
            return Choice(error=_no_other_family(writer_family, who))
        return Choice(other.id, None, (
            f"default reviewer {model} is the writer's family ({writer_family}): reviewing with {other.id} "
            f"(family {family_of(other.id, registry)}) instead; {who}",))
    # A backend without a model: its deepest model outside the writer's family.
    own = [m for m in registry.models.values() if m.provider == spec.backend]
    if not own:
        return Choice(error=f"backend '{spec.backend}' has no model registered in models.yaml")
    allowed = [m for m in own if writer_family is None or family_of(m.id, registry) != writer_family]
    if not allowed:
        return Choice(error=f"backend '{spec.backend}' has only models of the writer's family ({writer_family}; "
                            f"{who}): pin one as {spec.backend}:MODEL to review on the same family anyway, "
                            "or choose another backend")
    pick = _prefer_usable(allowed, unusable)
    note = f"reviewer {pick.id} (family {family_of(pick.id, registry)}) from backend '{spec.backend}'"
    return Choice(pick.id, None, (note + (f"; {who}" if writer else ""),))


def _prefer_usable(models: list[ModelSpec], unusable: Mapping[str, str]) -> ModelSpec:
    ranked = reviewer_order(models)
    return next((m for m in ranked if m.id not in unusable), ranked[0])


def _other_family(registry: ModelRegistry, writer_family: str, unusable: Mapping[str, str]) -> ModelSpec | None:
    others = [m for m in registry.models.values() if family_of(m.id, registry) != writer_family]
    return _prefer_usable(others, unusable) if others else None


def _no_other_family(writer_family: str, who: str) -> str:
    return (f"no model outside the writer's family ({writer_family}) is registered ({who}): register one in "
            "models.yaml, or pin a reviewer with --backend BACKEND:MODEL to review on the same family")
