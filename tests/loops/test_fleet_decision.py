"""Which loops a daemon on a shared database takes over, and which it stops because another daemon
wrote `loop stop` (actors/loops/fleet.py: pure, no database)."""
from __future__ import annotations

from actors.loops.fleet import FleetView, decide, scan_interval

ME, OTHER = "host:1:aa", "host:2:bb"


def view(running: dict[str, str], *, driving=(), loops=None, sessions=None) -> FleetView:
    return FleetView(running, frozenset(driving), loops or {}, sessions or {}, ME)


def test_a_running_loop_whose_lease_nobody_holds_is_taken_over():
    assert decide(view({"l_1": "s_1"})).take == ("l_1",)


def test_a_loop_another_live_daemon_holds_is_left_to_it():
    assert decide(view({"l_1": "s_1"}, loops={"l_1": OTHER})).take == ()


def test_a_loop_whose_session_a_live_daemon_still_serves_waits_for_the_next_scan():
    assert decide(view({"l_1": "s_1"}, sessions={"s_1": OTHER})).take == ()


def test_a_loop_whose_session_this_daemon_serves_is_taken():
    assert decide(view({"l_1": "s_1"}, sessions={"s_1": ME})).take == ("l_1",)


def test_a_loop_this_daemon_drives_is_never_taken_again():
    assert decide(view({"l_1": "s_1"}, driving=["l_1"])).take == ()


def test_a_loop_this_daemon_holds_but_no_longer_drives_is_taken_again():
    # e.g. the loop actor was restarted by its supervisor: its drives ended, its leases did not
    assert decide(view({"l_1": "s_1"}, loops={"l_1": ME})).take == ("l_1",)


def test_a_driven_loop_whose_row_no_longer_says_running_was_stopped_elsewhere():
    decision = decide(view({"l_2": "s_2"}, driving=["l_1", "l_2"]))
    assert decision.stop == ("l_1",) and decision.take == ()


def test_several_free_loops_are_taken_in_a_stable_order():
    assert decide(view({"l_b": "s_b", "l_a": "s_a", "l_c": "s_c"}, loops={"l_c": OTHER})).take == ("l_a", "l_b")


def test_the_scan_runs_three_times_per_lease_ttl():
    assert scan_interval(30.0) == 10.0
