"""Which steps run, by the seed's table ("When to Skip Steps"), decided before anything runs.

| Scenario                         | Skip      | condition       |
| Low-stakes internal task         | steps 3-4 | low_stakes      |
| Time-critical (< 30 s budget)    | steps 2-4 | time_critical   |
| High-stakes client deliverable   | none      | (overrides all) |
| Coding task with tests           | step 3    | has_tests       |
| Creative / subjective work       | step 3    | creative        |

Each step names the conditions it is skipped under (``skip_when``); the built-in ``qc`` carries the
table's columns.
"""
from __future__ import annotations

from attrs import frozen

from actors.workflows.model import TIME_CRITICAL_S, Step

REASONS = {
    "low_stakes": "low stakes: self-review is sufficient",
    "time_critical": "time budget under 30 s: single model, accept the risk",
    "has_tests": "a coding task with tests: the tests serve as the cross-check",
    "creative": "creative work: a cross-check adds noise, not signal",
}


@frozen
class RunContext:
    stakes: str = "normal"                  # low | normal | high
    time_budget_s: float | None = None
    has_tests: bool = False
    creative: bool = False

    def conditions(self) -> list[str]:
        """The table's conditions that hold, in the table's order; high stakes: none."""
        if self.stakes == "high":
            return []
        held = []
        if self.stakes == "low":
            held.append("low_stakes")
        if self.time_budget_s is not None and self.time_budget_s < TIME_CRITICAL_S:
            held.append("time_critical")
        if self.has_tests:
            held.append("has_tests")
        if self.creative:
            held.append("creative")
        return held


def skip_reason(step: Step, ctx: RunContext) -> str | None:
    """Why ``step`` is skipped under ``ctx`` (the first matching row), or None: it runs."""
    for cond in ctx.conditions():
        if cond in step.skip_when:
            return REASONS[cond]
    return None
