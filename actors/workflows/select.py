"""Which model a step runs on — decided before its turn starts, from the registry and roles.

- ``model``: pinned (a pin may even review its own output).
- ``tier``: the registry's first model of that tier, preferring one that did not write an output
  this step reads (the same model never reviews its own output unless pinned).
- ``same_model_as``: the model that step used — the seed's self-review, a pin by design.
- ``other_family_than``: never that step's model family (the registry's ``family`` when it has
  one, else the provider's kind); from the role's chain when a role is named, else from the
  registry, balanced tier first. None at all: the step is skipped, saying why.
- ``role``: the daemon resolves the role (its own ``route.decided``); when the role's primary wrote
  an output this step reads and a fallback did not, that fallback is pinned instead.
- nothing: the router decides, as for an ordinary turn.
"""
from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from actors.config.registry import ModelRegistry
from actors.roles.model import RoleError, RolesConfig, resolve
from actors.workflows.model import Selector

_TIER_ORDER = ("balanced", "deep", "fast")


@frozen
class Plan:
    model: str | None = None        # pinned on the step's session (SetModel); None: route normally
    role: str | None = None         # dispatch by role (StartTurn.role)
    role_tier: str | None = None
    chain: str | None = None        # run through the fallback chain
    skip: str | None = None         # no model may run this step: why
    note: str = ""                  # why this model, for the provenance


def family_of(registry: ModelRegistry, model_id: str) -> str:
    """The model's family: the registry's ``family`` when models.yaml has one, else the provider's
    kind (anthropic, openai, …), else the provider prefix of the id."""
    spec = registry.resolve(model_id)
    if spec is None:
        return model_id.split(":", 1)[0]
    family = getattr(spec, "family", None)
    if isinstance(family, str) and family:
        return family
    provider = registry.providers.get(spec.provider)
    return provider.kind if provider is not None else spec.provider


def _canonical(registry: ModelRegistry, model: str) -> str:
    spec = registry.resolve(model)
    return spec.id if spec is not None else model


def plan_step(selector: Selector, registry: ModelRegistry, roles: RolesConfig | None,
              used: Mapping[str, str], reads: list[str]) -> Plan:
    """``used``: step name → the model it ran on; ``reads``: the steps whose output this one reads."""
    avoid = {used[s] for s in reads if s in used}
    if selector.chain is not None:
        return Plan(chain=selector.chain, note=f"fallback chain {selector.chain}")
    if selector.model is not None:
        return Plan(model=_canonical(registry, selector.model), note="pinned by the workflow")
    if selector.same_model_as is not None:
        model = used.get(selector.same_model_as)
        if model is None:
            return Plan(note=f"{selector.same_model_as} did not run: the router decides")
        return Plan(model=model, note=f"the same model as {selector.same_model_as} (pinned by the workflow)")
    if selector.other_family_than is not None:
        return _other_family(selector, registry, roles, used)
    if selector.role is not None:
        return _role(selector, roles, avoid)
    if selector.tier is not None:
        tier_models = [m.id for m in registry.models_of_tier(selector.tier)]
        fresh = [m for m in tier_models if m not in avoid]
        if fresh:
            return Plan(model=fresh[0], note=f"the first {selector.tier} model")
        if tier_models:
            return Plan(model=tier_models[0], note=f"the only {selector.tier} model")
        return Plan(note=f"no {selector.tier} model registered: the router decides")
    return Plan(note="the router decides")


def _role(selector: Selector, roles: RolesConfig | None, avoid: set[str]) -> Plan:
    plan = Plan(role=selector.role, role_tier=selector.role_tier, note=f"role {selector.role}")
    if roles is None or selector.role is None:
        return plan
    try:
        resolved = resolve(roles, selector.role, selector.role_tier)
    except RoleError:
        return plan          # the daemon names the problem in the turn's failure
    if resolved.model in avoid:
        for alt in resolved.fallbacks:
            if alt not in avoid:
                return Plan(model=alt, note=f"role {selector.role}'s fallback: {resolved.model} wrote what it reviews")
    return plan


def _other_family(selector: Selector, registry: ModelRegistry, roles: RolesConfig | None,
                  used: Mapping[str, str]) -> Plan:
    assert selector.other_family_than is not None
    producer = used.get(selector.other_family_than)
    if producer is None:
        return Plan(skip=f"{selector.other_family_than} did not run: nothing to cross-check")
    family = family_of(registry, producer)
    candidates: list[str] = []
    if selector.role is not None and roles is not None:
        try:
            candidates = list(resolve(roles, selector.role, selector.role_tier).candidates)
        except RoleError:
            candidates = []
    else:
        for tier in _TIER_ORDER:
            candidates += [m.id for m in registry.models_of_tier(tier)]
        candidates += [m for m in registry.models if m not in candidates]
    for model in candidates:
        if family_of(registry, model) != family:
            return Plan(model=_canonical(registry, model), note=f"outside the producer's family ({family})")
    return Plan(skip=f"no registered model outside the producer's family ({family})")
