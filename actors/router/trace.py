"""Render a ``route.decided`` record as the "why this model?" view of spec §7.4."""
from __future__ import annotations

from protocol.events import RouteDecided
from protocol.routing import Policy, PolicyEvaluation, Verdict

from actors.router.texts import policy_label

LABELS = {
    Policy.PER_MESSAGE_OVERRIDE: "PER_MESSAGE_OVERRIDE",
    Policy.MANUAL_STICKY: "MANUAL_STICKY",
    Policy.RULE: "CONFIGURED_RULES",
    Policy.PATTERN: "PATTERN_RECOMMENDATION",
    Policy.DELEGATE_REQUEST: "DELEGATE_REQUEST",
    Policy.WORKSPACE_DEFAULT: "WORKSPACE_DEFAULT",
    Policy.GLOBAL_DEFAULT: "GLOBAL_DEFAULT",
}
_LABEL_W = max(map(len, LABELS.values())) + 2
_VERDICT_W = len("not_applicable") + 2
# Policies whose "chose" reason adds nothing to the model name (spec §7.4 prints just the model).
_PLAIN_CHOICE = (Policy.MANUAL_STICKY, Policy.WORKSPACE_DEFAULT, Policy.GLOBAL_DEFAULT)


def _detail(ev: PolicyEvaluation) -> tuple[str, str | None]:
    """(first line, optional continuation) for one chain entry."""
    if ev.verdict is Verdict.CHOSE:
        if ev.policy in _PLAIN_CHOICE:
            return str(ev.candidate_model), None
        return f"{ev.candidate_model} ({ev.reason})", None
    if ev.verdict is Verdict.REJECTED:
        if ev.candidate_model is None or ev.validation_failure is None:
            return ev.reason, None
        head = f'rule "{ev.rule_name}" matched → ' if ev.policy is Policy.RULE else ""
        return f"{head}{ev.candidate_model} ({ev.validation_failure.value})", ev.reason or None
    return ev.reason, None


def render_trace(event: RouteDecided) -> str:
    lines = [f"Turn {event.turn_id} · session {event.session_id} · {event.timestamp}"]
    if event.winner_index >= 0 and event.chosen_model is not None:
        lines.append(f"Chose: {event.chosen_model} ({policy_label(event.chain[event.winner_index])})")
    else:
        lines.append("Chose: nothing — the turn did not start")
    role = next((ev for ev in event.chain if ev.role is not None), None)
    if role is not None:   # dispatch by role (DESIGN §4.8): its entries are labelled ROLE below
        tier = role.tier or "none (the role's top-level row)"
        lines.append(f"Role: {role.role} · tier {tier}")
    lines.append("")
    lines.append("Chain:")
    indent = " " * (2 + 5 + _LABEL_W + _VERDICT_W)
    for i, ev in enumerate(event.chain, start=1):
        first, more = _detail(ev)
        number = f"[{i}]".ljust(5)
        label = ("ROLE" if ev.role is not None else LABELS[ev.policy]).ljust(_LABEL_W)
        verdict = ev.verdict.value.ljust(_VERDICT_W)
        lines.append(f"  {number}{label}{verdict}{first}".rstrip())
        if more:
            lines.append(f"{indent}{more}")
    if event.error:
        lines.append("")
        lines.extend(event.error.splitlines())
    if event.effort or event.warnings:
        lines.append("")
    if event.effort:
        lines.append(f"Effort: {event.effort}")
    lines.extend(f"Note: {w}" for w in event.warnings)
    lines.append("")
    lines.append(f"Decided in {event.elapsed_ms:.3f} ms")
    return "\n".join(lines)
