"""The fallback-chain state machine on a stepped clock: timeout → retry the same entry; low
confidence → the next entry without a retry; exhaustion → all_models_failed naming the chain."""
import pytest

from actors.workflows.fallback import AllModelsFailed, ChainRun, Outcome
from actors.workflows.model import ChainEntry, FallbackChain

CHAIN = FallbackChain("production", (ChainEntry("a:sonnet", 60.0, 1), ChainEntry("b:gpt", 45.0, 1)))


class SteppedClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_timeout_retries_the_same_entry_then_moves_on():
    clock = SteppedClock()
    run = ChainRun(CHAIN, clock)
    first = run.next_attempt()
    assert (first.model, first.attempt, first.depth, first.deadline) == ("a:sonnet", 1, 0, 160.0)
    clock.now = 160.0
    assert run.record(first, Outcome("timeout")) == "timeout"
    second = run.next_attempt()
    assert (second.model, second.attempt, second.deadline) == ("a:sonnet", 2, 220.0)
    run.record(second, Outcome("rate_limited"))
    third = run.next_attempt()
    assert (third.model, third.attempt, third.depth) == ("b:gpt", 1, 1)
    run.record(third, Outcome("ok", "answer", 80))
    assert run.result is not None
    assert (run.result.model, run.result.attempt, run.result.fallback_depth, run.result.confidence) == (
        "b:gpt", 1, 1, 80)
    assert run.next_attempt() is None


def test_low_confidence_moves_to_the_next_entry_without_retry():
    run = ChainRun(CHAIN, SteppedClock())
    first = run.next_attempt()
    assert run.record(first, Outcome("ok", "meh\nConfidence: 10", 10)) == "low_confidence"
    nxt = run.next_attempt()
    assert (nxt.model, nxt.attempt) == ("b:gpt", 1)


def test_confidence_at_the_gate_and_missing_confidence_pass():
    run = ChainRun(CHAIN, SteppedClock())
    run.record(run.next_attempt(), Outcome("ok", "x", 30))
    assert run.result.model == "a:sonnet"
    run = ChainRun(CHAIN, SteppedClock())
    run.record(run.next_attempt(), Outcome("ok", "x", None))
    assert run.result is not None and run.result.confidence is None


def test_a_non_retryable_failure_moves_on_at_once():
    run = ChainRun(CHAIN, SteppedClock())
    assert run.record(run.next_attempt(), Outcome("failed", error="provider_auth")) == "failed"
    assert run.next_attempt().model == "b:gpt"


def test_exhaustion_is_all_models_failed_naming_the_chain():
    run = ChainRun(CHAIN, SteppedClock())
    while (attempt := run.next_attempt()) is not None:
        run.record(attempt, Outcome("timeout"))
    assert run.result is None and len(run.tried) == 4
    failure = run.failure()
    assert isinstance(failure, AllModelsFailed) and failure.error == "all_models_failed"
    assert "chain 'production'" in str(failure)
    with pytest.raises(AllModelsFailed):
        raise failure
