"""The ``delegate:`` section of ``.orchestrator/workspace.yaml`` (sans-IO).

    delegate:
      agent: "codex:gpt-5.5"        # a model of a cli provider in models.yaml
      effort: medium                # the floor: the delegate never runs below it
      test_command: "pytest -q"     # re-run by the daemon before a result is accepted (required)
      test_timeout_s: 600
      allow: ["src/**", "tests/**"] # the only files it may change
      escalate_after_needs_work: 2  # NEEDS_WORK reviews of one task before it goes to the session model
      review: "openai"              # optional review spec (backend[:model[:effort]]); none: no review

Absent section: delegation is off. A malformed section is off too, and says why.
"""
from __future__ import annotations

from typing import Any

from attrs import frozen

from actors.config.registry import EFFORTS

DELEGATE_KEYS = ("agent", "effort", "test_command", "test_timeout_s", "allow", "escalate_after_needs_work",
                 "review")
DEFAULT_TEST_TIMEOUT_S = 600.0
DEFAULT_ESCALATE_AFTER = 2


@frozen
class DelegateConfig:
    agent: str
    test_command: str
    allow: tuple[str, ...]
    effort: str | None = None
    test_timeout_s: float = DEFAULT_TEST_TIMEOUT_S
    escalate_after_needs_work: int = DEFAULT_ESCALATE_AFTER
    review: str | None = None


def parse_delegate(value: Any, filename: str) -> tuple[DelegateConfig | None, tuple[str, ...]]:
    """(the config or None, the problems). Any problem turns delegation off: it grants nothing."""
    where = f"{filename}: delegate"
    if value is None:
        return None, ()
    if not isinstance(value, dict):
        return None, (f"{where}: expected a mapping with agent, test_command and allow",)
    errors = [f"{where}: unknown key {k!r} (expected: {', '.join(DELEGATE_KEYS)})"
              for k in value if k not in DELEGATE_KEYS]
    agent = value.get("agent")
    if not isinstance(agent, str) or ":" not in agent:
        errors.append(f"{where}.agent: expected the id of a cli model of models.yaml (provider:model)")
    test_command = value.get("test_command")
    if not isinstance(test_command, str) or not test_command.strip():
        errors.append(f"{where}.test_command: required: the command the daemon re-runs to verify a "
                      "delegated change (a delegate's own summary is never evidence)")
    allow = value.get("allow")
    if not (isinstance(allow, list) and allow and all(isinstance(g, str) and g.strip() for g in allow)):
        errors.append(f"{where}.allow: expected a non-empty list of globs (the files the delegate may change)")
        allow = []
    for glob in allow:
        if isinstance(glob, str) and glob.strip().endswith("/"):
            errors.append(f"{where}.allow: {glob!r} names a folder, which matches no file: write "
                          f"{glob.strip().rstrip('/') + '/**'!r}")
    effort = value.get("effort")
    if effort is not None and effort not in EFFORTS:
        errors.append(f"{where}.effort: expected one of {', '.join(EFFORTS)}, got {effort!r}")
    timeout = value.get("test_timeout_s", DEFAULT_TEST_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        errors.append(f"{where}.test_timeout_s: expected seconds in (0, 86400]")
        timeout = DEFAULT_TEST_TIMEOUT_S
    escalate = value.get("escalate_after_needs_work", DEFAULT_ESCALATE_AFTER)
    if isinstance(escalate, bool) or not isinstance(escalate, int) or escalate < 1:
        errors.append(f"{where}.escalate_after_needs_work: expected a positive integer")
        escalate = DEFAULT_ESCALATE_AFTER
    review = value.get("review")
    if review is not None and (not isinstance(review, str) or not review.strip()):
        errors.append(f"{where}.review: expected a review spec such as openai or openai:gpt-5.4:high")
    if errors:
        return None, tuple(errors)
    assert isinstance(agent, str) and isinstance(test_command, str)
    return DelegateConfig(agent, test_command.strip(), tuple(g.strip() for g in allow), effort, float(timeout),
                          escalate, review.strip() if isinstance(review, str) else None), ()


def effort_with_floor(requested: str | None, floor: str | None,
                      accepted: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(the effort the delegate runs with, or an error). Never below ``floor``; a model that declares
    efforts gets the lowest declared one at or above the wanted one; a model without efforts gets none."""
    wanted = [e for e in (requested, floor) if e in EFFORTS]
    if not wanted:
        return None, None
    need = max(EFFORTS.index(e) for e in wanted)
    if not accepted:
        return None, None
    fits = [e for e in EFFORTS[need:] if e in accepted]
    if not fits:
        return None, (f"the delegate accepts efforts {', '.join(accepted)}, none at or above "
                      f"{EFFORTS[need]} (the delegate effort floor)")
    return fits[0], None
