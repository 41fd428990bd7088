"""Spec §4.5 availability state machine on a stepped clock (no sleeping)."""
from actors.availability.state import AvailabilityTracker

OPUS, SONNET, HAIKU = "anthropic:claude-opus-4-7", "anthropic:claude-sonnet-4-6", "anthropic:claude-haiku-4-5"


def fail(t, model, at, cls="server_error"):
    return t.record(model.split(":")[0], model, False, cls, at)


def ok(t, model, at):
    return t.record(model.split(":")[0], model, True, None, at)


def test_five_consecutive_failures_within_two_minutes_mark_only_that_model():
    t = AvailabilityTracker()
    for i in range(4):
        fail(t, OPUS, i * 10.0)
    assert t.check(OPUS, 40)[0]
    changes = fail(t, OPUS, 40.0)
    assert [(c.kind, c.scope) for c in changes] == [("unavailable", OPUS)]
    assert t.check(OPUS, 41) == (False, "model", f"{OPUS} model-specific outage")
    assert t.check(SONNET, 41)[0]  # spec test 19: Sonnet stays healthy


def test_a_gap_just_over_120s_restarts_the_streak():
    t = AvailabilityTracker()
    times = [0, 30, 60, 90, 210.5]  # the fifth is 120.5 s after the first
    for at in times:
        fail(t, OPUS, at)
    assert t.check(OPUS, 211)[0]


def test_a_success_clears_the_streak_and_the_model():
    t = AvailabilityTracker()
    for i in range(5):
        fail(t, OPUS, i)
    assert not t.check(OPUS, 5)[0]
    changes = ok(t, OPUS, 6)
    assert ("recovered", OPUS) in [(c.kind, c.scope) for c in changes]
    assert t.check(OPUS, 7)[0]
    for i in range(4):
        fail(t, OPUS, 10 + i)
    assert t.check(OPUS, 20)[0]  # the streak restarted at the success


def test_one_auth_error_makes_the_whole_provider_unavailable():
    t = AvailabilityTracker()
    changes = fail(t, HAIKU, 0, "auth")
    assert [(c.kind, c.scope) for c in changes] == [("unavailable", "anthropic")]
    assert t.check(OPUS, 1) == (False, "provider", "all anthropic models temporarily unavailable")


def test_auth_unavailable_clears_after_301_seconds_without_attempts():
    t = AvailabilityTracker()
    fail(t, HAIKU, 0, "auth")
    assert not t.check(SONNET, 299)[0]
    assert t.check(SONNET, 301)[0]
    assert [(c.kind, c.scope) for c in t.tick(301)] == [("recovered", "anthropic")]


def test_two_network_errors_within_30s_mark_the_provider():
    t = AvailabilityTracker()
    assert fail(t, OPUS, 0, "network") == []
    assert t.check(SONNET, 1)[0]  # a single network error is not an outage
    changes = fail(t, SONNET, 29.5, "network")
    assert ("unavailable", "anthropic") in [(c.kind, c.scope) for c in changes]


def test_network_errors_31s_apart_stay_healthy():
    t = AvailabilityTracker()
    fail(t, OPUS, 0, "network")
    fail(t, SONNET, 31, "network")
    assert t.check(HAIKU, 32)[0]


def test_a_single_network_error_counts_toward_the_model_streak():
    t = AvailabilityTracker()
    for i, cls in enumerate(["server_error", "network", "server_error", "timeout", "rate_limit"]):
        fail(t, OPUS, i * 25.0, cls)  # one network error only: no provider escalation
    assert t.check(OPUS, 101) == (False, "model", f"{OPUS} model-specific outage")


def test_three_models_unavailable_within_two_minutes_escalate_to_the_provider():
    t = AvailabilityTracker()
    for m, base in ((OPUS, 0), (SONNET, 20), (HAIKU, 40)):
        for i in range(5):
            changes = fail(t, m, base + i)
    assert ("unavailable", "anthropic") in [(c.kind, c.scope) for c in changes]
    assert t.check("anthropic:other", 50) == (False, "provider", "all anthropic models temporarily unavailable")


def test_three_models_tripped_across_more_than_120s_do_not_escalate():
    t = AvailabilityTracker()
    for m, base in ((OPUS, 0), (SONNET, 60), (HAIKU, 125)):
        for i in range(5):
            fail(t, m, base + i)
    # Opus tripped at 4 s, Haiku at 129 s: 125 s apart, so no provider-wide outage.
    assert t.check("anthropic:other", 130)[0]


def test_any_success_on_a_provider_clears_the_provider_and_its_network_window():
    t = AvailabilityTracker()
    fail(t, OPUS, 0, "network")
    fail(t, OPUS, 1, "network")
    assert not t.check(HAIKU, 2)[0]
    ok(t, HAIKU, 3)
    assert t.check(SONNET, 4)[0]
    fail(t, OPUS, 5, "network")  # the window restarted: one error is not enough
    assert t.check(SONNET, 6)[0]


def test_reset_forces_recovery():
    t = AvailabilityTracker()
    fail(t, OPUS, 0, "auth")
    changes = t.reset("anthropic", 1)
    assert ("recovered", "anthropic") in [(c.kind, c.scope) for c in changes]
    assert t.check(OPUS, 2)[0]


def test_attempts_keep_an_unavailable_scope_from_auto_clearing():
    t = AvailabilityTracker()
    for i in range(5):
        fail(t, OPUS, i)
    fail(t, OPUS, 200)   # still failing: last attempt at 200
    assert not t.check(OPUS, 499)[0]
    assert t.check(OPUS, 500)[0]
