"""Mid-turn fallback (opt-in per workspace, docs/workflows.md): the pure decisions and texts.

A turn whose model failed with a transient provider error (the adapter's retries already spent)
*before the first streamed byte* moves to the next validated candidate of the routing chain. Only
then: once anything streamed, the client has seen part of an answer from that model and the
spec's behaviour stands (the turn fails, the partial answer is kept and marked).
"""
from __future__ import annotations

from protocol.messages import TurnOutcome, TurnStatus

from actors.providers.base import TRANSIENT

# The planner reports a provider failure as ``provider_<ErrorClass>``.
RETRYABLE_ERRORS = frozenset(f"provider_{c.value}" for c in TRANSIENT)


def failed_before_first_byte(outcome: TurnOutcome | None, streamed: bool) -> bool:
    """A transient provider failure with nothing of the turn produced: no progress event went to
    the client, no message (no tool round either), no partial text, no output tokens billed."""
    return (outcome is not None and outcome.status is TurnStatus.FAILED and outcome.error in RETRYABLE_ERRORS
            and not streamed and not outcome.messages and not outcome.partial_text
            and outcome.usage.output_tokens == 0)


def reason_of(outcome: TurnOutcome) -> str:
    return (outcome.error or "failed").removeprefix("provider_")


def fallback_banner(failed: str, reason: str, to: str) -> str:
    """In the style of the spec's fall-through banners (§4.5)."""
    return f"{failed} failed before answering ({reason}). Falling back to {to}."


def tried_text(failed: list[tuple[str, str]]) -> str:
    return ", then ".join(f"{model} ({reason})" for model, reason in failed)


def exhausted_message(failed: list[tuple[str, str]], last_message: str) -> str:
    """Every candidate tried failed before answering and no validated one is left."""
    return (f"{tried_text(failed)} failed before answering; no other validated candidate is left to fall back to. "
            f"Last error: {last_message}")


def fallback_failed_message(failed: list[tuple[str, str]], model: str, message: str) -> str:
    """The fallback model itself failed (after its first byte, or not transiently)."""
    return f"{tried_text(failed)} failed before answering; fell back to {model}, which failed too: {message}"
