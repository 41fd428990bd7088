"""User-facing routing texts, worded exactly as the spec shows them (§4.5, §4.6, §5.4, §5.6, §8.7)."""
from __future__ import annotations

from decimal import Decimal
from collections.abc import Sequence

from attrs import frozen

from protocol.routing import Policy, PolicyEvaluation, ValidationFailure

FAILURE_WORDS = {
    ValidationFailure.NOT_CONFIGURED: "not configured",
    ValidationFailure.PROVIDER_UNAVAILABLE: "unavailable",
    ValidationFailure.NO_VISION_SUPPORT: "no vision support",
    ValidationFailure.EXCEEDS_CONTEXT_WINDOW: "context window too small",
    ValidationFailure.NO_TOOL_SUPPORT: "no tool support",
    ValidationFailure.NO_SYSTEM_PROMPT_SUPPORT: "no system prompt support",
    ValidationFailure.NO_STRUCTURED_OUTPUT_SUPPORT: "no structured output support",
}


@frozen
class Tried:
    model: str
    failure: ValidationFailure
    scope: str | None        # provider_unavailable scope: "model" | "provider"
    provider: str
    short: str               # first alias, else the id


def money(amount: Decimal | float) -> str:
    return f"${Decimal(str(amount)):.2f}"


def policy_label(ev: PolicyEvaluation) -> str:
    """How a winner is named after "Chose: <model> (...)" and in fall-through banners."""
    if ev.role is not None:
        return f'role "{ev.role}" {ev.tier or "top-level row"}'
    match ev.policy:
        case Policy.PER_MESSAGE_OVERRIDE:
            return ev.reason or "per-message override"
        case Policy.MANUAL_STICKY:
            return "sticky model"
        case Policy.RULE:
            return f'rule "{ev.rule_name}"'
        case Policy.PATTERN:
            return "pattern recommendation"
        case Policy.DELEGATE_REQUEST:
            return "delegate request"
        case Policy.WORKSPACE_DEFAULT:
            return "workspace default"
        case _:
            return "global default"


def fell_through(tried: Tried, winner: str, winner_label: str) -> str:
    # The spec words the two scopes differently (§4.5): only the provider-wide banner names the
    # policy that caught the turn.
    if tried.scope == "provider":
        return f"{tried.provider} provider currently unavailable. Routing fell through to {winner} ({winner_label})."
    return f"{tried.model} currently unavailable. Routing fell through to {winner}."


def explicit_rejected(who: str, model: str, failure: ValidationFailure, why: str, winner: str) -> str:
    """An @override or sticky model that cannot take the turn is never dropped silently.

    ``who`` is the token as typed (``@mini``) or ``Sticky model``; ``why`` the not_configured
    reason (e.g. ``OPENAI_API_KEY is not set in the daemon's environment``)."""
    named = who if who.lstrip("@") == model else f"{who} ({model})" if who.startswith("@") else f"{who} {model}"
    if failure is ValidationFailure.NOT_CONFIGURED:
        problem = f"is not configured: {why}"
    else:
        problem = f"cannot take this turn ({FAILURE_WORDS[failure]})"
    return f"{named} {problem}. Routing fell through to {winner}."


def config_changes(before_rules: Sequence[dict], after_rules: Sequence[dict], before_models: Sequence[str],
                   after_models: Sequence[str], before_default: str | None, after_default: str | None,
                   before_nc: dict, after_nc: dict) -> list[str]:
    """What a ``rules reload`` changed, one line each (empty: nothing changed)."""
    old = {r.get("name"): r for r in before_rules}
    new = {r.get("name"): r for r in after_rules}
    out = [f'rule "{n}" added' for n in new if n not in old]
    out += [f'rule "{n}" removed' for n in old if n not in new]
    out += [f'rule "{n}" changed' for n in new if n in old and new[n] != old[n]]
    if [n for n in new if n in old] != [n for n in old if n in new]:
        out.append("rules reordered")
    out += [f"model {m} added" for m in after_models if m not in before_models]
    out += [f"model {m} removed" for m in before_models if m not in after_models]
    if before_default != after_default:
        out.append(f"global_default {before_default} → {after_default}")
    out += [f"{m} is now not_configured: {why}" for m, why in after_nc.items()
            if m not in before_nc and m in before_models]
    out += [f"{m} is configured again" for m in before_nc if m not in after_nc and m in after_models]
    return out


def budget(limit: Decimal, spent: Decimal, rule_name: str) -> str:
    return f'Daily budget {money(limit)} exceeded ({money(spent)} today). Routing per "{rule_name}" rule.'


def disagreement(chosen: str, rule_name: str, suggested: str, confidence: float, samples: int, display: str) -> str:
    return "\n".join((
        f'→ Routing to {chosen} per rule "{rule_name}"',
        f"Pattern store suggests: {suggested} (confidence {confidence:.2f}, {samples} similar tasks)",
        f"/route override to use {display} for this turn",
        "/route ignore to dismiss",
    ))


def no_model(tried: Sequence[Tried], other_providers: Sequence[str]) -> str:
    """Hard failure (§4.6); the provider-wide variant of §8.7 when one provider is down as a whole."""
    head = "No model available for this turn."
    providers = {t.provider for t in tried}
    if tried and len(providers) == 1 and all(
        t.failure is ValidationFailure.PROVIDER_UNAVAILABLE and t.scope == "provider" for t in tried
    ):
        provider = tried[0].provider
        alternatives = [p for p in other_providers if p != provider]
        suggestion = f" ({', '.join(alternatives)})" if alternatives else ""
        return "\n".join((
            head,
            f"{provider} provider currently unavailable.",
            f"Tried: {', '.join(t.short for t in tried)} — all on {provider}.",
            f"Run /model <id> to choose a model from a configured provider{suggestion}, or wait for recovery.",
        ))
    listed = ", ".join(f"{t.model} ({FAILURE_WORDS[t.failure]})" for t in tried) or "no candidate model"
    return "\n".join((head, f"Tried: {listed}", "Run /model <id> to choose explicitly, or /rules check."))


def no_model_for_tier(tier: str, tried: Sequence[Tried], why: str = "") -> str:
    listed = ", ".join(f"{t.model} ({FAILURE_WORDS[t.failure]})" for t in tried)
    lines = [f'No model available for tier "{tier}".']
    if why:
        lines.append(why)
    if listed:
        lines.append(f"Tried: {listed}")
    return "\n".join(lines)
