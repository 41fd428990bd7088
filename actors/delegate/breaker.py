"""The circuit breaker and the escalation ledger (sans-IO).

Breaker, per session (a loop's ticks all run in the loop's one session, so "the session" is "the
rest of the loop"): a CLI failure (not found, non-zero exit, timeout) opens it at once; three
consecutive task failures (verification failed) open it; a success resets the count. Once open
it stays open for the session.

Escalation, per (session, task id): each NEEDS_WORK review counts; at the configured count the
task is escalated and never delegated again — it goes to the session model. MAJOR_RETHINK
escalates at once: a rethink is judgment, which never goes to the delegate.
"""
from __future__ import annotations

from attrs import evolve, frozen

TASK_FAILURES_TO_OPEN = 3


@frozen
class BreakerState:
    failures: int = 0                 # consecutive task failures
    open_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.open_reason is not None


def on_cli_failure(state: BreakerState, why: str) -> BreakerState:
    return evolve(state, open_reason=state.open_reason or f"the delegate's command failed ({why})")


def on_task_failure(state: BreakerState, why: str) -> BreakerState:
    failures = state.failures + 1
    if failures >= TASK_FAILURES_TO_OPEN and state.open_reason is None:
        return BreakerState(failures, f"{failures} delegated tasks in a row failed verification (last: {why})")
    return evolve(state, failures=failures)


def on_success(state: BreakerState) -> BreakerState:
    return evolve(state, failures=0)


@frozen
class TaskState:
    needs_work: int = 0
    escalated: str | None = None      # why the task no longer goes to the delegate


def on_review(state: TaskState, verdict: str, limit: int) -> TaskState:
    if verdict == "MAJOR_RETHINK":
        return evolve(state, escalated=state.escalated or "the review asked for a MAJOR_RETHINK")
    if verdict != "NEEDS_WORK":
        return state
    count = state.needs_work + 1
    if count >= limit and state.escalated is None:
        return TaskState(count, f"its review came back NEEDS_WORK {count} times")
    return evolve(state, needs_work=count)
