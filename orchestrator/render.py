"""Human-readable renderings of replies (the --json forms print the data itself)."""
from __future__ import annotations

import json
from pathlib import Path

from protocol.messages import CostReport, ModelState, RulesReport, StatusReport


def render_trace(route, fallback=()) -> str:
    """The turn's decision, then each mid-turn fallback decision (docs/workflows.md) after it."""
    from actors.router.trace import render_trace as render

    parts = [render(route)]
    for i, later in enumerate(fallback, start=1):
        failed = route.chosen_model if i == 1 else fallback[i - 2].chosen_model
        parts.append(f"Fallback {i}: {failed} failed before answering; routed again without it\n" + render(later))
    return "\n\n".join(parts)


def render_model_state(state: ModelState, *, with_trace: bool = True) -> str:
    lines = [f"Session {state.session_id}",
             f"Active model: {state.active_model or '(none — routing by rules and defaults)'}"]
    if state.pending_model or state.pending_clear:
        lines.append(f"Pending for next turn: {state.pending_model or 'clear sticky model'}")
    if state.banner:
        lines.append(state.banner)
    if with_trace and state.last_route is not None:
        lines.append("")
        lines.append("Last turn:")
        lines.append(render_trace(state.last_route))
    return "\n".join(lines)


def _flow(value: object) -> str:
    """A value in YAML flow style, as one would write it in routing.yaml."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_when(when: object) -> str:
    """A rule's ``when`` for ``rules show``: ``message_matches: "x", has_images: true``."""
    if isinstance(when, dict):
        if not when:
            return "{} (every turn)"
        return ", ".join(f"{k}: {_flow(v)}" for k, v in when.items())
    return _flow(when)


def render_rules(report: RulesReport) -> str:
    lines = []
    for e in report.errors:
        lines.append(f"error: {e}")
    for w in report.warnings:
        lines.append(f"warning: {w}")
    if not report.rules:
        lines.append("(no rules)")
    for i, r in enumerate(report.rules):
        scope = r.get("scope", "global")
        where = "" if scope == "global" else f" [workspace {r.get('workspace') or scope}]"
        synthetic = " (synthetic name)" if r.get("synthetic") else ""
        lines.append(f"{i + 1:>3}. {r.get('name')}{synthetic}{where}")
        lines.append(f"     when: {render_when(r.get('when'))}")
        lines.append(f"     use:  {r.get('use')}")
    return "\n".join(lines)


def _calls(n: int) -> str:
    return f"{n} call(s)"


def render_money(cost_usd: str | None, unknown_calls: int = 0) -> str:
    """A cost for text output: ``$0.0123``, ``$0.0123 + 3 calls of unknown cost`` or ``unknown``.

    Unknown is never shown as $0 (DESIGN §4.5): a cost with no priced call behind it is ``unknown``;
    priced calls beside unpriced ones show their sum and how many were not priced.
    """
    if cost_usd is None:
        return f"unknown ({_calls(unknown_calls)} of unknown cost)" if unknown_calls else "unknown"
    if unknown_calls:
        return f"${cost_usd} + {_calls(unknown_calls)} of unknown cost"
    return f"${cost_usd}"


def render_cost(report: CostReport, session: str | None) -> str:
    title = f"Session {session}" if session else "Today (since UTC midnight)"
    tree = report.tree or {}
    planner = tree.get("planner", {})
    workers = tree.get("workers", {})
    lines = [f"{title} — total {render_money(report.total_usd, report.unknown_cost_calls)}"]
    models = ", ".join(planner.get("models", [])) or "-"
    planner_cost = render_money(planner.get("cost_usd", "0"), planner.get("unknown_cost_calls", 0))
    lines.append(f"├─ planner ({models}): {planner_cost}, {planner.get('turns', 0)} turns")
    items = workers.get("items", [])
    workers_cost = render_money(workers.get("cost_usd", "0"), workers.get("unknown_cost_calls", 0))
    lines.append(f"└─ workers: {workers_cost}, {workers.get('delegations', 0)} delegations")
    for i, w in enumerate(items):
        branch = "└─" if i == len(items) - 1 else "├─"
        cost = render_money(w.get("cost_usd"), w.get("unknown_cost_calls", 0))
        lines.append(f"   {branch} {w['worker_session_id']} → {w['model']}: {cost}, {w['turns']} turn(s)")
    if report.by_model:
        lines.append("")
        lines.append(f"{'model':<40} {'role':<8} {'calls':>5} {'in':>8} {'out':>8} {'cost $':>10}")
        for m in report.by_model:
            cost = m["cost_usd"] if m.get("cost_usd") is not None else "unknown"
            unknown = m.get("unknown_cost_calls", 0)
            if unknown and m.get("cost_usd") is not None:
                cost = f"{cost} + {unknown} unknown"
            lines.append(f"{m['model']:<40} {m['role']:<8} {m['calls']:>5} {m['input_tokens']:>8} "
                         f"{m['output_tokens']:>8} {cost:>10}")
    if report.unknown_cost_calls:
        lines.append(f"({report.unknown_cost_calls} call(s) with unknown price are not in the total: cost unknown, "
                     "not $0)")
    return "\n".join(lines)


def render_status(s: StatusReport) -> str:
    lines = [f"orchestrator {s.version} · pid {s.pid} · up {s.uptime_s:.0f}s · {s.endpoint}",
             f"accepting turns: {'yes' if s.accepting_turns else 'no (shutting down)'} · "
             f"sessions open: {s.sessions_open} · turns running: {s.turns_running}",
             "actors:"]
    for name, a in s.actors.items():
        extra = f" (restarts: {a['restarts']})" if a.get("restarts") else ""
        lines.append(f"  {name:<14} {a['status']}{extra}")
    if s.availability:
        lines.append("unavailable:")
        for scope in s.availability:
            lines.append(f"  {scope['scope']:<36} since {scope['since']} — {scope['reason']}")
    else:
        lines.append("availability: all providers and models healthy")
    return "\n".join(lines)


def render_config_health(rules: RulesReport, units: list[str]) -> str:
    """What ``status`` adds about the config: an invalid file and its first error, models that
    cannot be used and why, and whether a systemd unit is installed."""
    lines = []
    if rules.errors:
        first = rules.errors[0]
        broken = first.split(":", 1)[0]
        more = f" (+{len(rules.errors) - 1} more)" if len(rules.errors) > 1 else ""
        lines.append(f"config: {broken} is INVALID — a running daemon keeps its last good version; serve refuses it")
        lines.append(f"  {first}{more}")
        lines.append("  run `orchestrator check` to see every error")
    else:
        lines.append("config: ok (" + ", ".join(str(p) for p in rules.source.values()) + ")")
    for w in rules.waiting_approval:   # dispatch by role: every configured model of the row is down
        lines.append(f"waiting approval: role {w['role']} tier {w['tier'] or 'none'} since {w['since']} "
                     f"(turn {w['turn_id']}): {', '.join(w['tried'])}; no unconfigured substitute is used")
    if rules.not_configured:
        lines.append("not configured (routing falls through past these):")
        for model, why in rules.not_configured.items():
            lines.append(f"  {model:<36} {why}")
    lines.append(f"service: unit installed at {', '.join(units)}" if units
                 else "service: no systemd unit installed (`orchestrator service install`)")
    return "\n".join(lines)


def render_reload(report: RulesReport) -> list[str]:
    """``rules reload``'s answer: what it changed, or why the last-known-good rules stay."""
    if report.errors:
        return [*report.errors, "not reloaded: the last-known-good configuration stays active "
                "(`orchestrator check` lists every error)"]
    files = ", ".join(Path(p).name for p in report.source.values())
    head = f"reloaded {files}: {len(report.rules)} rule(s) active"
    changes = report.changes or ()
    return [head, *(f"  {c}" for c in changes)] if changes else [head + "; no changes"]
