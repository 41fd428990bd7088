"""routing.yaml text → :class:`RoutingPolicy` (spec §5.1, §5.2, §5.7, §5.9), every error in one pass."""
from __future__ import annotations

import os
from typing import Any
from collections.abc import Mapping

from actors.config.registry import TIERS, ModelRegistry

from actors.router.policy import (
    SUPPORTED_SCHEMA_VERSIONS,
    DisagreementConfig,
    PatternConfig,
    Rule,
    RoutingPolicy,
    TierMap,
    WorkspacePolicy,
)
from actors.router.predicates import budget_limits, compile_when
from actors.router.shadow import shadow_warnings
from actors.router.yamlpos import Problems, describe, item_line, join, key_line, parse_yaml, plain

_TOP_KEYS = ("schema_version", "global_default", "tiers", "pattern", "pattern_disagreement", "rules", "workspaces")
_WORKSPACE_KEYS = ("default", "pattern", "tiers", "rules")
_RULE_KEYS = ("name", "when", "use")


def _keys(mapping: Mapping, allowed: tuple[str, ...], path: str, line: int, problems: Problems) -> None:
    for key in mapping:
        if key == "fallback" and "use" in allowed:
            problems.add(key_line(mapping, key, line), join(path, key),
                         "rules do not take fallback lists; add a later rule with the same 'when' instead (spec §4.5)")
        elif key not in allowed:
            problems.add(key_line(mapping, key, line), join(path, key),
                         f"unknown key (expected one of: {', '.join(allowed)})")


class _Parser:
    def __init__(self, registry: ModelRegistry | None, problems: Problems, home: str | None):
        self.problems = problems
        self.home = home
        # None: the registry could not be read, so references are taken as written (and not checked).
        self.refs: dict[str, str] | None = None
        if registry is not None:
            self.refs = {m: m for m in registry.models}
            self.refs.update(registry.alias_table())

    def model(self, value: Any, path: str, line: int) -> str | None:
        if not isinstance(value, str) or not value:
            self.problems.add(line, path, f"expected a model id or alias, got {describe(value)}")
            return None
        if self.refs is None:
            return value
        resolved = self.refs.get(value)
        if resolved is None:
            self.problems.add(line, path, f"model '{value}' is not registered")
        return resolved

    def unit(self, block: Mapping, key: str, path: str, line: int, default: float) -> float:
        if key not in block:
            return default
        value = block[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value <= 1.0):
            self.problems.add(key_line(block, key, line), join(path, key),
                              f"must be a number between 0.0 and 1.0, got {plain(value)!r}")
            return default
        return float(value)

    def count(self, block: Mapping, key: str, path: str, line: int, default: int) -> int:
        if key not in block:
            return default
        value = block[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problems.add(key_line(block, key, line), join(path, key),
                              f"must be an integer ≥ 1, got {plain(value)!r}")
            return default
        return int(value)

    def pattern(self, block: Any, path: str, line: int) -> PatternConfig:
        if not isinstance(block, dict):
            self.problems.add(line, path, f"expected a mapping, got {describe(block)}")
            return PatternConfig()
        _keys(block, ("cost_weight", "min_confidence", "min_sample_size", "k"), path, line, self.problems)
        d = PatternConfig()
        return PatternConfig(
            cost_weight=self.unit(block, "cost_weight", path, line, d.cost_weight),
            min_confidence=self.unit(block, "min_confidence", path, line, d.min_confidence),
            min_sample_size=self.count(block, "min_sample_size", path, line, d.min_sample_size),
            k=self.count(block, "k", path, line, d.k),
        )

    def disagreement(self, block: Any, path: str, line: int) -> DisagreementConfig:
        d = DisagreementConfig()
        if not isinstance(block, dict):
            self.problems.add(line, path, f"expected a mapping, got {describe(block)}")
            return d
        _keys(block, ("surface", "min_confidence", "min_sample_size"), path, line, self.problems)
        surface = block.get("surface", d.surface)
        if not isinstance(surface, bool):
            self.problems.add(key_line(block, "surface", line), join(path, "surface"),
                              f"expected true or false, got {describe(surface)}")
            surface = d.surface
        return DisagreementConfig(
            surface=surface,
            min_confidence=self.unit(block, "min_confidence", path, line, d.min_confidence),
            min_sample_size=self.count(block, "min_sample_size", path, line, d.min_sample_size),
        )

    def tiers(self, block: Any, path: str, line: int) -> TierMap | None:
        if not isinstance(block, dict):
            self.problems.add(line, path, f"expected a mapping of fast/balanced/deep to models, got {describe(block)}")
            return None
        _keys(block, TIERS, path, line, self.problems)
        # Every tier that is present is checked even when others are missing: every error in one pass.
        models = {t: self.model(block[t], join(path, t), key_line(block, t, line)) for t in TIERS if t in block}
        missing = [t for t in TIERS if t not in block]
        if missing:
            self.problems.add(line, path, f"partial tier map: missing {', '.join(missing)} "
                                          "(define all three of fast, balanced, deep, or omit tiers)")
            return None
        fast, balanced, deep = (models[t] for t in TIERS)
        if fast is None or balanced is None or deep is None:
            return None
        return TierMap(fast=fast, balanced=balanced, deep=deep)

    def rules(self, items: Any, path: str, line: int, scope: str) -> tuple[Rule, ...]:
        if items is None:
            return ()
        if not isinstance(items, list):
            self.problems.add(line, path, f"expected a list of rules, got {describe(items)}")
            return ()
        out: list[Rule] = []
        named: dict[str, tuple[int, int]] = {}
        for i, item in enumerate(items):
            rpath, rline = join(path, i), item_line(items, i, line)
            if not isinstance(item, dict):
                self.problems.add(rline, rpath, f"expected a rule mapping with 'when' and 'use', got {describe(item)}")
                continue
            _keys(item, _RULE_KEYS, rpath, rline, self.problems)
            name, synthetic = f"rule_{i}", True
            if "name" in item:
                raw = item["name"]
                nline = key_line(item, "name", rline)
                if not isinstance(raw, str) or not raw.strip():
                    self.problems.add(nline, join(rpath, "name"), f"expected a non-empty string, got {describe(raw)}")
                elif raw in named:
                    j, jline = named[raw]
                    self.problems.add(nline, join(rpath, "name"),
                                      f"duplicate rule name '{raw}' (also {join(path, j)} at line {jline})")
                else:
                    named[raw] = (i, rline)
                    name, synthetic = str(raw), False
            if "when" not in item:
                self.problems.add(rline, join(rpath, "when"), "missing (use 'when: {}' to match every turn)")
                pred = None
            else:
                pred = compile_when(item["when"], path=join(rpath, "when"),
                                    line=key_line(item, "when", rline), problems=self.problems)
            if "use" not in item:
                self.problems.add(rline, join(rpath, "use"), "missing: the model this rule routes to")
                use = None
            else:
                use = self.model(item["use"], join(rpath, "use"), key_line(item, "use", rline))
            if pred is not None and use is not None:
                out.append(Rule(name=name, synthetic=synthetic, when=pred, use=use, index=i, line=rline,
                                scope=scope, use_as_written=str(item["use"]), budget_limits=budget_limits(pred.node)))
        return tuple(out)

    def expand(self, key: str) -> str:
        if key == "~" or key.startswith("~/"):
            home = self.home if self.home is not None else os.path.expanduser("~")
            key = home + key[1:]
        elif key.startswith("~"):
            key = os.path.expanduser(key)
        return os.path.normpath(key) if key else key

    def workspaces(self, block: Any, line: int) -> tuple[WorkspacePolicy, ...]:
        if block is None:
            return ()
        if not isinstance(block, dict):
            self.problems.add(line, "workspaces", f"expected a mapping of paths to settings, got {describe(block)}")
            return ()
        out: list[WorkspacePolicy] = []
        seen: dict[str, str] = {}
        for key, entry in block.items():
            path, wline = join("workspaces", key), key_line(block, key, line)
            if not isinstance(key, str) or not key:
                self.problems.add(wline, path, "workspace key must be a path")
                continue
            root = self.expand(key)
            if not os.path.isabs(root):
                self.problems.add(wline, path, f"workspace path '{key}' must be absolute or start with ~")
                continue
            if root in seen:
                self.problems.add(wline, path, f"same directory as workspace '{seen[root]}'")
                continue
            seen[root] = key
            entry = {} if entry is None else entry
            if not isinstance(entry, dict):
                self.problems.add(wline, path, f"expected a mapping, got {describe(entry)}")
                continue
            _keys(entry, _WORKSPACE_KEYS, path, wline, self.problems)
            kl = lambda k, e=entry, ln=wline: key_line(e, k, ln)  # noqa: E731  (binds this iteration's entry)
            default = self.model(entry["default"], join(path, "default"), kl("default")) if "default" in entry else None
            pattern = (self.pattern(entry["pattern"], join(path, "pattern"), kl("pattern"))
                       if "pattern" in entry else None)
            tiers = self.tiers(entry["tiers"], join(path, "tiers"), kl("tiers")) if "tiers" in entry else None
            rules = self.rules(entry.get("rules"), join(path, "rules"), kl("rules"), scope=key)
            out.append(WorkspacePolicy(key=key, path=root, default=default, pattern=pattern, tiers=tiers,
                                       rules=rules, line=wline))
        return tuple(out)


def parse_policy(text: str, filename: str, registry: ModelRegistry | None, *,
                 home: str | None = None) -> tuple[RoutingPolicy | None, list[str], list[str]]:
    """``registry`` None: check everything but the model references (models.yaml is unreadable)."""
    problems = Problems(filename)
    data, ok = parse_yaml(text, problems)
    if not ok:
        return None, problems.sorted(), []
    if not isinstance(data, dict):
        problems.add(1, "", f"expected a mapping with schema_version and global_default, got {describe(data)}")
        return None, problems.sorted(), []
    p = _Parser(registry, problems, home)
    _keys(data, _TOP_KEYS, "", 1, problems)
    kl = lambda k: key_line(data, k, 1)  # noqa: E731
    version = data.get("schema_version")
    supported = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
    if "schema_version" not in data:
        problems.add(1, "schema_version", f"missing (supported: {supported})")
    elif isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        problems.add(kl("schema_version"), "schema_version",
                     f"unsupported version {plain(version)!r} (supported: {supported})")
    default = None
    if "global_default" not in data:
        problems.add(1, "global_default", "missing: the model used when nothing else applies")
    else:
        default = p.model(data["global_default"], "global_default", kl("global_default"))
    # An empty section ("pattern:" with nothing under it) means "absent", as for tiers.
    tiers = p.tiers(data["tiers"], "tiers", kl("tiers")) if data.get("tiers") is not None else None
    pattern = (p.pattern(data["pattern"], "pattern", kl("pattern"))
               if data.get("pattern") is not None else PatternConfig())
    disagreement = (p.disagreement(data["pattern_disagreement"], "pattern_disagreement", kl("pattern_disagreement"))
                    if data.get("pattern_disagreement") is not None else DisagreementConfig())
    rules = p.rules(data.get("rules"), "rules", kl("rules"), scope="global")
    workspaces = p.workspaces(data.get("workspaces"), kl("workspaces"))
    if problems or default is None or not isinstance(version, int):   # no problems: version is supported
        return None, problems.sorted(), []
    policy = RoutingPolicy(
        global_default=default, schema_version=version, tiers=tiers, pattern=pattern,
        pattern_disagreement=disagreement, rules=rules, workspaces=workspaces, source=filename,
    )
    warnings = shadow_warnings(rules, filename)
    for ws in workspaces:
        warnings.extend(shadow_warnings(ws.rules, filename))
    return policy, [], warnings


def implicit_policy(registry: ModelRegistry, filename: str = "routing.yaml") -> RoutingPolicy:
    """Used when routing.yaml does not exist: no rules; the global default is the first model listed
    in models.yaml with tier ``balanced``, else the first model listed. Deterministic and visible in
    ``rules check`` (as a warning), rather than refusing to route at all."""
    balanced = registry.models_of_tier("balanced")
    default = balanced[0].id if balanced else next(iter(registry.models))
    return RoutingPolicy(global_default=default, source=filename, implicit=True)

