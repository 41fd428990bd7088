"""The validated routing policy (routing.yaml, spec §5) as frozen data.

Parsing lives in :mod:`actors.router.policy_file`; everything here is already resolved: model
references are full ``provider:model`` ids, workspace paths are absolute, predicates compiled.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from attrs import frozen

from actors.router.predicates import Predicate

SUPPORTED_SCHEMA_VERSIONS = (1,)


@frozen
class PatternConfig:
    cost_weight: float = 0.05
    min_confidence: float = 0.05
    min_sample_size: int = 5
    k: int = 10


@frozen
class DisagreementConfig:
    surface: bool = False
    min_confidence: float = 0.85
    min_sample_size: int = 20


@frozen
class TierMap:
    fast: str
    balanced: str
    deep: str

    def get(self, tier: str) -> str | None:
        if tier == "fast":
            return self.fast
        if tier == "balanced":
            return self.balanced
        if tier == "deep":
            return self.deep
        return None


@frozen(eq=False)
class Rule:
    name: str
    synthetic: bool               # True when the file gave no name (``rule_<index>``)
    when: Predicate
    use: str                      # resolved model id
    index: int                    # position in its list
    line: int                     # line of the list item in the file
    scope: str = "global"         # "global" or the workspace key as written
    use_as_written: str = ""      # alias or id exactly as in the file
    budget_limits: tuple[Decimal, ...] = ()   # positive cost_today_exceeds_usd thresholds

    @property
    def label(self) -> str:
        where = "rules" if self.scope == "global" else f"workspaces[{self.scope!r}].rules"
        return f'{where}[{self.index}] "{self.name}"'


@frozen(eq=False)
class WorkspacePolicy:
    key: str                      # as written in the file ("~/code/myproject")
    path: str                     # absolute, ``~`` expanded, no trailing slash
    default: str | None = None
    pattern: PatternConfig | None = None
    tiers: TierMap | None = None
    rules: tuple[Rule, ...] = ()
    line: int = 0

    def contains(self, workspace: str) -> bool:
        root = self.path
        if workspace == root:
            return True
        prefix = root if root.endswith("/") else root + "/"
        return workspace.startswith(prefix)


@frozen(eq=False)
class RoutingPolicy:
    global_default: str
    schema_version: int = 1
    tiers: TierMap | None = None
    pattern: PatternConfig = PatternConfig()
    pattern_disagreement: DisagreementConfig = DisagreementConfig()
    rules: tuple[Rule, ...] = ()
    workspaces: tuple[WorkspacePolicy, ...] = ()
    source: str = "routing.yaml"
    implicit: bool = False        # built in because routing.yaml does not exist

    def workspace_for(self, workspace: str | None) -> WorkspacePolicy | None:
        """The workspace entry equal to or containing ``workspace``; the longest path wins."""
        if not workspace:
            return None
        best: WorkspacePolicy | None = None
        for ws in self.workspaces:
            if ws.contains(workspace) and (best is None or len(ws.path) > len(best.path)):
                best = ws
        return best


def rule_rows(policy: RoutingPolicy) -> list[dict[str, Any]]:
    """``rules show`` data: one plain dict per rule, in the order they are evaluated per scope."""
    rows: list[dict[str, Any]] = []

    def add(rule: Rule, scope: str, path: str | None) -> None:
        rows.append({
            "name": rule.name,
            "synthetic": rule.synthetic,
            "scope": scope,
            "workspace_path": path,
            "index": rule.index,
            "line": rule.line,
            "when": rule.when.data,
            "use": rule.use,
        })

    for rule in policy.rules:
        add(rule, "global", None)
    for ws in policy.workspaces:
        for rule in ws.rules:
            add(rule, ws.key, ws.path)
    return rows
