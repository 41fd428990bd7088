"""The role step of the chain (DESIGN §4.8): a turn or delegation that names a role.

The role's tier row (``actors.roles.resolve``) gives the candidates: its primary, then its
configured fallbacks, in order — and nothing else. Each candidate is validated like any chain
candidate (registry, key, availability, capabilities) and gets its own trace entry saying why it
was taken or passed over. When every configured candidate fails, the dispatch ends in
``waiting_approval`` instead of falling through to a default: the seed's rule that no unconfigured
model is ever a silent substitute.

For a delegated worker (``ctx.delegated_by``) the tier floor holds at run time too: a candidate
above the delegating model's cost tier is passed over ("tier floor") unless a pinned agent of the
role runs on it (roles.yaml's check guarantees the orchestrator's tier covers its pins). A row
whose every candidate is above the floor ends in ``tier_floor``, which the delegate tool turns into
a refusal.
"""
from __future__ import annotations

from attrs import frozen

from actors.config.registry import ModelRegistry
from actors.roles import RoleError, RolesConfig, TierRow, cost_rank, resolve
from protocol.routing import Policy, PolicyEvaluation, Verdict

from actors.router import texts
from actors.router.context import TurnContext
from actors.router.validation import Availability, Validator

WAITING_APPROVAL = "waiting_approval"
TIER_FLOOR = "tier_floor"
UNKNOWN_ROLE = "unknown_role"


@frozen
class RoleOutcome:
    entries: tuple[PolicyEvaluation, ...]
    chosen: str | None
    effort: str | None = None
    error_code: str | None = None
    error: str | None = None
    tried: tuple[texts.Tried, ...] = ()


def model_rank(registry: ModelRegistry, model: str, row: TierRow | None = None) -> int | None:
    """A model's cost tier on one scale: its models.yaml tier, else (for a role row's models) the
    row's cost_tier; None when neither is known."""
    spec = registry.models.get(model)
    rank = cost_rank(spec.tier) if spec is not None else None
    if rank is None and row is not None:
        rank = cost_rank(row.cost_tier)
    return rank


def tier_name(registry: ModelRegistry, model: str, row: TierRow | None = None) -> str:
    spec = registry.models.get(model)
    if spec is not None and spec.tier:
        return spec.tier
    return f"cost_tier {row.cost_tier}" if row is not None else "no tier"


def floor_problem(registry: ModelRegistry, delegated_by: str | None, model: str,
                  row: TierRow | None = None) -> str | None:
    """Why ``model`` may not run for a worker of ``delegated_by`` (the tier floor), or None."""
    if not delegated_by:
        return None
    ceiling = model_rank(registry, delegated_by)
    rank = model_rank(registry, model, row)
    if ceiling is None or rank is None or rank <= ceiling:
        return None
    return (f"tier floor: {model} ({tier_name(registry, model, row)}) is above the delegating model "
            f"{delegated_by} ({tier_name(registry, delegated_by)})")


def role_step(roles: RolesConfig | None, registry: ModelRegistry, validator: Validator, ctx: TurnContext,
              availability: Availability | None, policy: Policy) -> RoleOutcome:
    role = ctx.role or ""
    if roles is None:
        # The engine cannot tell "absent" from "invalid since the daemon started" (no last-known-good
        # version): name both, so a user with a broken file is not told it does not exist.
        why = (f"role '{role}' is not configured: no roles.yaml is loaded — the home has none, or it has been "
               "invalid since the daemon started (`orchestrator roles check` lists its errors)")
        return RoleOutcome((PolicyEvaluation(policy, Verdict.REJECTED, None, why, role=role),), None,
                           error_code=UNKNOWN_ROLE, error=why)
    try:
        resolved = resolve(roles, role, ctx.role_tier, ctx.high_risk)
    except RoleError as exc:
        return RoleOutcome((PolicyEvaluation(policy, Verdict.REJECTED, None, str(exc), role=role,
                                             tier=ctx.role_tier),), None, error_code=UNKNOWN_ROLE, error=str(exc))
    spec = roles.roles[resolved.role]
    row = spec.row(resolved.tier)
    where = f'role "{resolved.role}" {resolved.tier or "top-level row (no tier)"}'
    if resolved.forced_large:
        where += " (unresolved high risk → LARGE)"
    pinned = roles.pinned_models(resolved.role)
    entries: list[PolicyEvaluation] = []
    tried: list[texts.Tried] = []
    floored: list[str] = []

    def entry(verdict: Verdict, model: str, reason: str, **extra) -> None:
        entries.append(PolicyEvaluation(policy, verdict, model, reason, role=resolved.role, tier=resolved.tier,
                                        **extra))

    for i, model in enumerate(resolved.candidates):
        label = "primary" if i == 0 else f"configured fallback {i}"
        floor = floor_problem(registry, ctx.delegated_by, model, row)
        allowed_by_pin = floor is not None and model in pinned
        if floor is not None and not allowed_by_pin:
            entry(Verdict.REJECTED, model, f"{where} {label}: {floor}")
            floored.append(model)
            continue
        rejection = validator.check(model, ctx, availability)
        if rejection is None:
            pin = f"; {floor.removeprefix('tier floor: ')}, allowed: a pinned agent of the role runs on it" \
                if allowed_by_pin and floor else ""
            entry(Verdict.CHOSE, model, f"{where} {label}{pin}")
            return RoleOutcome(tuple(entries), model, resolved.effort, tried=tuple(tried))
        entry(Verdict.REJECTED, model, f"{where} {label}: {rejection.reason}", validation_failure=rejection.failure)
        tried.append(texts.Tried(model, rejection.failure, rejection.scope, validator.provider_of(model), model))
    if floored and not tried:
        parent = ctx.delegated_by or ""
        error = (f"tier floor: {where} resolves to {', '.join(floored)}, above the delegating model {parent} "
                 f"({tier_name(registry, parent)}); a worker never runs on a higher cost tier than the model "
                 "that delegated. Choose a lower complexity tier or another role.")
        return RoleOutcome(tuple(entries), None, resolved.effort, TIER_FLOOR, error, tuple(tried))
    listed = ", ".join([f"{t.model} ({texts.FAILURE_WORDS[t.failure]})" for t in tried]
                       + [f"{m} (above the tier floor)" for m in floored])
    error = "\n".join((
        f"Waiting for approval: every configured model of {where} is unavailable.",
        f"Tried: {listed}",
        "No unconfigured model is used as a substitute. Choose a model explicitly (@ALIAS), "
        "or retry when one recovers.",
    ))
    return RoleOutcome(tuple(entries), None, resolved.effort, WAITING_APPROVAL, error, tuple(tried))
