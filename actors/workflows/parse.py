"""Parse and validate workflows.yaml (DESIGN §4.9) — text in, frozen config and error lines out.

Every problem is ``workflows.yaml:LINE: key.path: problem``, all of them in one pass; the parser
never raises on any YAML shape. With a model registry, every model reference is checked against
it; with roles, every role name.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Collection, Iterator, Mapping

from actors.config.registry import ModelRegistry
from actors.roles.model import COMPLEXITY_TIERS
from actors.router.yamlpos import Problems, describe, item_line, key_line, parse_yaml
from actors.workflows.builtin import BUILTIN
from actors.workflows.model import (
    DEFAULT_CONFIDENCE_GATE, SKIP_CONDITIONS, ChainEntry, FallbackChain, Selector, Step, Workflow, WorkflowsConfig,
)
from actors.workflows.template import step_references

_TOP_KEYS = ("schema_version", "fallback_chains", "workflows")
_ENTRY_KEYS = ("model", "timeout", "retry")
_SELECT_KEYS = ("role", "tier", "model", "chain", "same_model_as", "other_family_than")
_STEP_KEYS = ("name", "prompt", *_SELECT_KEYS, "parallel", "skip_when", "review")
_MODEL_TIERS = ("fast", "balanced", "deep")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?\Z")
MAX_RETRY = 3            # the seed: "max 3 retries, then escalate"


def join(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def parse_duration(value: Any) -> float | None:
    """``60s``, ``1.5m``, ``500ms`` or a plain number of seconds; None when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    m = _DURATION.match(value.strip())
    if not m:
        return None
    seconds = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    return seconds if seconds > 0 else None


class _Ctx:
    def __init__(self, problems: Problems, registry: ModelRegistry | None, roles: Collection[str] | None):
        self.problems, self.registry, self.roles = problems, registry, roles
        # Every chain named in the file, valid or not: a step using an invalid one is not
        # reported again as naming a missing chain (its entries' errors already say why).
        self.declared_chains: set[str] = set()

    def add(self, line: int, path: str, message: str) -> None:
        self.problems.add(line, path, message)

    def model(self, value: Any, path: str, line: int) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.add(line, path, f"expected a model id or alias, got {describe(value)}")
            return None
        if self.registry is not None and self.registry.models and self.registry.resolve(value) is None:
            self.add(line, path, f"'{value}' is not registered in models.yaml")
            return None
        return str(value)

    def unknown_keys(self, entry: Mapping, allowed: tuple[str, ...], path: str, line: int) -> None:
        for key in entry:
            if key not in allowed:
                self.add(key_line(entry, key, line), join(path, str(key)),
                         f"unknown key (expected one of: {', '.join(allowed)})")


def parse_workflows_text(text: str, filename: str = "workflows.yaml", registry: ModelRegistry | None = None,
                         roles: Collection[str] | None = None) -> tuple[WorkflowsConfig | None, list[str]]:
    """(config, []) or (None, every error). The built-in workflows are part of the config unless the
    file defines a workflow of the same name."""
    problems = Problems(filename)
    doc, ok = parse_yaml(text, problems)
    if not ok:
        return None, problems.sorted()
    ctx = _Ctx(problems, registry, roles)
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        ctx.add(1, "", f"expected a mapping at the top level, got {describe(doc)}")
        return None, problems.sorted()
    ctx.unknown_keys(doc, _TOP_KEYS, "", 1)
    if "schema_version" in doc and doc["schema_version"] != 1:
        ctx.add(key_line(doc, "schema_version", 1), "schema_version",
                f"unsupported version {describe(doc['schema_version'])} (this version reads 1)")
    chains = _chains(doc.get("fallback_chains"), key_line(doc, "fallback_chains", 1), ctx)
    workflows = _workflows(doc.get("workflows"), key_line(doc, "workflows", 1), ctx, chains)
    if problems:
        return None, problems.sorted()
    return WorkflowsConfig(chains, {**BUILTIN, **workflows}), []


def _named(raw: Any, section: str, line: int, ctx: _Ctx, kind: str,
           holds: str) -> Iterator[tuple[str, Any, str, int]]:
    """The validly named items of a ``name: body`` section, with their key path and line; a section
    that is not a mapping, or a bad name, is reported once and skipped."""
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        ctx.add(line, section, f"expected a mapping of {kind} name → {holds}, got {describe(raw)}")
        return
    for name, body in raw.items():
        path, at = join(section, str(name)), key_line(raw, name, line)
        if not isinstance(name, str) or not _NAME.match(name):
            ctx.add(at, path, f"a {kind} name is letters, digits, '_', '.', '-'")
            continue
        yield name, body, path, at


def _chains(raw: Any, line: int, ctx: _Ctx) -> dict[str, FallbackChain]:
    out: dict[str, FallbackChain] = {}
    for name, entries, path, cline in _named(raw, "fallback_chains", line, ctx, "chain", "entries"):
        ctx.declared_chains.add(name)
        if not isinstance(entries, list) or not entries:
            ctx.add(cline, path,
                    f"expected a non-empty list of {{model, timeout, retry}} entries, got {describe(entries)}")
            continue
        parsed = [_entry(e, join(path, i), item_line(entries, i, cline), ctx) for i, e in enumerate(entries)]
        if all(p is not None for p in parsed):
            out[name] = FallbackChain(name, tuple(p for p in parsed if p is not None), DEFAULT_CONFIDENCE_GATE)
    return out


def _entry(raw: Any, path: str, line: int, ctx: _Ctx) -> ChainEntry | None:
    if not isinstance(raw, Mapping):
        ctx.add(line, path, f"expected {{model, timeout, retry}}, got {describe(raw)}")
        return None
    before = len(ctx.problems.items)
    ctx.unknown_keys(raw, _ENTRY_KEYS, path, line)
    model = None
    if "model" not in raw:
        ctx.add(line, join(path, "model"), "missing: the model this entry tries")
    else:
        model = ctx.model(raw["model"], join(path, "model"), key_line(raw, "model", line))
    timeout = 60.0
    if "timeout" in raw:
        parsed = parse_duration(raw["timeout"])
        if parsed is None:
            ctx.add(key_line(raw, "timeout", line), join(path, "timeout"),
                    f"expected a duration like 60s, 1m or 500ms, got {describe(raw['timeout'])}")
        else:
            timeout = parsed
    retry = raw.get("retry", 0)
    if isinstance(retry, bool) or not isinstance(retry, int) or not 0 <= retry <= MAX_RETRY:
        ctx.add(key_line(raw, "retry", line), join(path, "retry"),
                f"expected a whole number 0-{MAX_RETRY} (retries after the first attempt), got {describe(retry)}")
        retry = 0
    if len(ctx.problems.items) != before or model is None:
        return None
    return ChainEntry(model, timeout, int(retry))


def _workflows(raw: Any, line: int, ctx: _Ctx, chains: Mapping[str, FallbackChain]) -> dict[str, Workflow]:
    out: dict[str, Workflow] = {}
    for name, body, path, wline in _named(raw, "workflows", line, ctx, "workflow", "{steps}"):
        if not isinstance(body, Mapping):
            ctx.add(wline, path, f"expected a mapping with 'steps', got {describe(body)}")
            continue
        ctx.unknown_keys(body, ("description", "steps"), path, wline)
        steps_raw = body.get("steps")
        sline = key_line(body, "steps", wline)
        if not isinstance(steps_raw, list) or not steps_raw:
            ctx.add(sline, join(path, "steps"), f"expected a non-empty list of steps, got {describe(steps_raw)}")
            continue
        steps: list[Step] = []
        named: list[str] = []       # earlier steps' names, valid steps or not (no cascade errors)
        ok = True
        for i, s in enumerate(steps_raw):
            step = _step(s, join(join(path, "steps"), i), item_line(steps_raw, i, sline), ctx, chains, list(named))
            ok = ok and step is not None
            if step is not None:
                steps.append(step)
            if isinstance(s, Mapping) and isinstance(s.get("name"), str) and s["name"] not in named:
                named.append(s["name"])
        description = body.get("description", "")
        if not isinstance(description, str):
            ctx.add(key_line(body, "description", wline), join(path, "description"), "expected text")
            ok = False
        if ok:
            out[name] = Workflow(name, tuple(steps), str(description))
    return out


def _step(raw: Any, path: str, line: int, ctx: _Ctx, chains: Mapping[str, FallbackChain],
          earlier: list[str]) -> Step | None:
    if not isinstance(raw, Mapping):
        ctx.add(line, path, f"expected a step mapping (name, prompt, role|model|chain|tier), got {describe(raw)}")
        return None
    before = len(ctx.problems.items)
    ctx.unknown_keys(raw, _STEP_KEYS, path, line)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        ctx.add(key_line(raw, "name", line), join(path, "name"),
                f"expected a step name (letters, digits, '_', '.', '-'), got {describe(name)}")
        name = None
    elif name in earlier:
        ctx.add(key_line(raw, "name", line), join(path, "name"), f"'{name}' is already a step of this workflow")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        ctx.add(key_line(raw, "prompt", line), join(path, "prompt"),
                f"expected the step's prompt text, got {describe(prompt)}")
        prompt = None
    else:
        for ref in step_references(prompt):
            if ref not in earlier:
                ctx.add(key_line(raw, "prompt", line), join(path, "prompt"),
                        f"{{steps.{ref}}} names no earlier step (earlier: {', '.join(earlier) or 'none'})")
    selector = _selector(raw, path, line, ctx, chains, earlier)
    branches: list[Selector] = []
    if "parallel" in raw:
        pl = key_line(raw, "parallel", line)
        par = raw["parallel"]
        if any(k in raw for k in _SELECT_KEYS):
            ctx.add(pl, join(path, "parallel"), "a step has either 'parallel' branches or one role/model/chain/tier")
        if not isinstance(par, list) or not 2 <= len(par) <= 16:
            ctx.add(pl, join(path, "parallel"), f"expected a list of 2-16 branches, got {describe(par)}")
        else:
            for i, b in enumerate(par):
                bpath, bline = join(join(path, "parallel"), i), item_line(par, i, pl)
                if not isinstance(b, Mapping):
                    ctx.add(bline, bpath, f"expected {{role|model|chain|tier: …}}, got {describe(b)}")
                    continue
                ctx.unknown_keys(b, _SELECT_KEYS, bpath, bline)
                sel = _selector(b, bpath, bline, ctx, chains, earlier)
                if sel is not None:
                    branches.append(sel)
    skip = _skip_when(raw, path, line, ctx)
    review = raw.get("review", False)
    if not isinstance(review, bool):
        ctx.add(key_line(raw, "review", line), join(path, "review"), f"expected true or false, got {describe(review)}")
    if len(ctx.problems.items) != before or name is None or prompt is None or selector is None or skip is None:
        return None
    return Step(name, prompt, selector, tuple(branches), skip, bool(review), line)


def _selector(raw: Mapping, path: str, line: int, ctx: _Ctx, chains: Mapping[str, FallbackChain],
              earlier: list[str]) -> Selector | None:
    chosen = [k for k in ("role", "model", "chain") if k in raw]
    if "tier" in raw and "role" not in raw:
        chosen.append("tier")
    if "same_model_as" in raw:
        chosen.append("same_model_as")
    if len(chosen) > 1:
        ctx.add(line, path, f"choose one of role / model / chain / tier / same_model_as, not {' and '.join(chosen)}")
        return None
    values: dict[str, str | None] = {}
    for key in _SELECT_KEYS:
        if key not in raw:
            continue
        value, kline = raw[key], key_line(raw, key, line)
        if not isinstance(value, str) or not value.strip():
            ctx.add(kline, join(path, key), f"expected a name, got {describe(value)}")
            return None
        values[key] = str(value)
        if key == "model" and ctx.model(value, join(path, key), kline) is None:
            return None
        if key == "chain" and value not in chains:
            if value not in ctx.declared_chains:
                defined = ", ".join(sorted(ctx.declared_chains)) or "none"
                ctx.add(kline, join(path, key), f"no fallback chain named '{value}' (defined: {defined})")
            return None
        if key == "role" and ctx.roles is not None and value not in ctx.roles:
            ctx.add(kline, join(path, key), f"no role named '{value}' in roles.yaml")
            return None
        if key in ("same_model_as", "other_family_than") and value not in earlier:
            ctx.add(kline, join(path, key), f"'{value}' names no earlier step")
            return None
        if key == "tier":
            allowed = COMPLEXITY_TIERS if "role" in raw else _MODEL_TIERS
            upper = value.upper() if "role" in raw else value
            if upper not in allowed:
                what = "the role's complexity tier" if "role" in raw else "a models.yaml tier"
                ctx.add(kline, join(path, key), f"'{value}' is not {what} (one of: {', '.join(allowed)})")
                return None
            values[key] = upper
    role = values.get("role")
    return Selector(role=role, role_tier=values.get("tier") if role else None, model=values.get("model"),
                    chain=values.get("chain"), tier=None if role else values.get("tier"),
                    same_model_as=values.get("same_model_as"), other_family_than=values.get("other_family_than"))


def _skip_when(raw: Mapping, path: str, line: int, ctx: _Ctx) -> frozenset[str] | None:
    value = raw.get("skip_when", [])
    sline = key_line(raw, "skip_when", line)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        ctx.add(sline, join(path, "skip_when"), f"expected a list of conditions ({', '.join(SKIP_CONDITIONS)})")
        return None
    bad = [v for v in value if v not in SKIP_CONDITIONS]
    if bad:
        ctx.add(sline, join(path, "skip_when"), f"unknown condition {bad[0]!r} (one of: {', '.join(SKIP_CONDITIONS)})")
        return None
    return frozenset(str(v) for v in value)
