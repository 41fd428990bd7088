"""Logical roles and complexity tiers (DESIGN §4.8): who writes, who reviews, on which model.

Sans-IO: :mod:`actors.roles.model` holds the frozen config and :func:`resolve`,
:mod:`actors.roles.parse` turns roles.yaml text into it (every problem as a line) and
:mod:`actors.roles.checks` adds the cross-entry drift checks and the tier-floor invariant;
:func:`parse_roles_text` (:mod:`actors.roles.validate`) runs both.
"""
from actors.roles.model import (
    COMPLEXITY_TIERS, COST_TIERS, EFFORTS, LATENCY_TIERS, Agent, Resolved, Role, RoleError, RolesConfig, TierRow,
    cost_rank, normalize_tier, resolve,
)
from actors.roles.validate import parse_roles_text

__all__ = [
    "COMPLEXITY_TIERS", "COST_TIERS", "EFFORTS", "LATENCY_TIERS", "Agent", "Resolved", "Role", "RoleError",
    "RolesConfig", "TierRow", "cost_rank", "normalize_tier", "parse_roles_text", "resolve",
]
