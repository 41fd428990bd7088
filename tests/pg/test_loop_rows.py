"""The loop rows a fleet of daemons shares (actors/loops/store.py), on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from actors.loops.driver import LoopSpec
from actors.loops.runner import LoopState, TickRecord
from actors.loops.store import LoopStore
from actors.runtime.store import Store


@pytest.fixture
def db(store_location):
    s = Store(store_location)
    yield LoopStore(s)
    s.close()


def loop(db: LoopStore, loop_id: str) -> LoopState:
    db.store.create_session("s_" + loop_id, None)
    lp = LoopState(loop_id, LoopSpec("prompt", "work"), "s_" + loop_id, created_at=1.0)
    db.save_loop(lp)
    return lp


def test_a_takeover_closes_the_running_tick_of_that_loop_only(db):
    one, two = loop(db, "l_1"), loop(db, "l_2")
    for lp in (one, two):
        db.save_tick(lp.id, TickRecord(1, turn_ids=["t_" + lp.id], started_at=2.0))
    assert db.close_interrupted_ticks("l_1") == 1
    assert [t.status for t in db.load("l_1").ticks] == ["interrupted"]
    assert [t.status for t in db.load("l_2").ticks] == ["running"]    # another daemon's live tick


def test_the_driving_daemon_never_overwrites_a_stop_written_by_another(db):
    mine = loop(db, "l_1")
    elsewhere = db.load("l_1")
    elsewhere.state, elsewhere.stop_reason = "stopped", "stopped"
    db.save_loop(elsewhere)                                  # `loop stop` on the other daemon
    mine.strikes = {"fn-2": 1}
    db.save_loop(mine, unless_stopped=True)                  # the owner's tick boundary
    assert db.state_of("l_1") == "stopped" and db.load("l_1").strikes == {}
    assert db.running_sessions() == {}


def test_running_sessions_lists_every_running_loop_with_its_session(db):
    loop(db, "l_1")
    done = loop(db, "l_2")
    done.state, done.stop_reason = "finished", "no_work"
    db.save_loop(done)
    assert db.running_sessions() == {"l_1": "s_l_1"}
