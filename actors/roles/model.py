"""The roles.yaml model and ``resolve(role, tier, high_risk)`` (seed: controlflow model routing).

A role names what kind of model a task needs; its top-level row (``primary``, ``fallbacks``,
``cost_tier``, ``latency_tier``) is the default, and ``by_tier`` may override it per complexity
tier (TRIVIAL/SMALL/MEDIUM/LARGE) or say ``{inherit_from: default}``. The resolution rule::

    resolve(role, tier) = by_tier[tier] is {inherit_from: default} (or absent) ? role default : by_tier[tier]

No tier known → the role's top-level row (``tier`` None), never "no model". For a reviewer role an
unresolved high risk forces the effective tier to LARGE.
"""
from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

COMPLEXITY_TIERS = ("TRIVIAL", "SMALL", "MEDIUM", "LARGE")
COST_TIERS = ("low", "medium", "high")
LATENCY_TIERS = ("fast", "medium", "slow")
EFFORTS = ("low", "medium", "high")
MODES = ("auto", "pinned")
# models.yaml tiers on the same scale as a role's cost_tier (the tier floor compares them).
_REGISTRY_RANK = {"fast": 0, "balanced": 1, "deep": 2}


class RoleError(ValueError):
    """An unknown role or tier asked of :func:`resolve`: one line for the user."""


@frozen
class TierRow:
    primary: str
    fallbacks: tuple[str, ...] = ()
    cost_tier: str = "medium"
    latency_tier: str = "medium"

    @property
    def candidates(self) -> tuple[str, ...]:
        """The models a dispatch may use, in order: the primary, then the configured fallbacks."""
        return (self.primary, *self.fallbacks)


@frozen
class Role:
    name: str
    default: TierRow
    reviewer: bool = False
    reasoning_effort_hint: str | None = None      # None: absent or not one we know (ignored safely)
    consumers: tuple[str, ...] = ()
    by_tier: Mapping[str, TierRow] = {}           # only explicit overrides; absent = inherit_from default

    def row(self, tier: str | None) -> TierRow:
        if tier is None:
            return self.default
        return self.by_tier.get(tier, self.default)


@frozen
class Agent:
    name: str
    role: str
    mode: str = "auto"                            # auto | pinned
    model: str | None = None                      # pinned agents only: = the role's top-level primary


@frozen
class RolesConfig:
    roles: Mapping[str, Role] = {}
    agents: Mapping[str, Agent] = {}
    orchestrator: str | None = None               # the dispatching agent: the tier floor is checked against it
    schema_version: int = 1

    def pinned_models(self, role: str) -> frozenset[str]:
        """Models that a pinned agent of ``role`` runs on: the runtime tier floor lets them through."""
        return frozenset(a.model for a in self.agents.values() if a.role == role and a.mode == "pinned" and a.model)


@frozen
class Resolved:
    role: str
    tier: str | None                  # the effective tier; None: no tier known (top-level row)
    model: str
    fallbacks: tuple[str, ...]
    cost_tier: str
    latency_tier: str
    effort: str | None
    inherited: bool                   # the row is the role's default (no tier, absent or inherit_from)
    forced_large: bool = False        # an unresolved high risk raised a reviewer's tier to LARGE

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.model, *self.fallbacks)

    def to_json(self) -> dict:
        """``roles resolve --json`` (DESIGN §4.8)."""
        return {"role": self.role, "tier": self.tier, "model": self.model, "fallbacks": list(self.fallbacks),
                "cost_tier": self.cost_tier, "effort": self.effort}


def normalize_tier(tier: str | None) -> str | None:
    """``medium`` → ``MEDIUM``; None and "" stay "no tier"; an unknown tier raises RoleError."""
    if tier is None or tier == "":
        return None
    upper = tier.strip().upper()
    if upper not in COMPLEXITY_TIERS:
        raise RoleError(f"unknown tier {tier!r} (expected one of: {', '.join(COMPLEXITY_TIERS)})")
    return upper


def resolve(config: RolesConfig, role: str, tier: str | None = None, high_risk: bool = False) -> Resolved:
    """The role's row for ``tier`` with its configured fallbacks; see the module docstring."""
    spec = config.roles.get(role)
    if spec is None:
        known = ", ".join(sorted(config.roles)) or "none configured"
        raise RoleError(f"unknown role {role!r} (roles.yaml roles: {known})")
    effective = normalize_tier(tier)
    forced = False
    if high_risk and spec.reviewer and effective != "LARGE":
        effective, forced = "LARGE", True
    row = spec.row(effective)
    return Resolved(spec.name, effective, row.primary, row.fallbacks, row.cost_tier, row.latency_tier,
                    spec.reasoning_effort_hint, row is spec.default, forced)


def cost_rank(cost_tier: str | None) -> int | None:
    """low/medium/high → 0/1/2 (also models.yaml's fast/balanced/deep); None when unknown."""
    if cost_tier is None:
        return None
    if cost_tier in COST_TIERS:
        return COST_TIERS.index(cost_tier)
    return _REGISTRY_RANK.get(cost_tier)
