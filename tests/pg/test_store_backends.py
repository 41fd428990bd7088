"""The store behaves the same on SQLite and PostgreSQL (``store_location`` runs each test on both)."""
import time
from decimal import Decimal

import pytest

from actors.runtime import lease
from actors.runtime.store import CostRow, PatternOutcome, StorageError, Store
from actors.runtime.store_backend import redact_url
from protocol.canonical import Message, Role, TextBlock


@pytest.fixture
def store(store_location):
    s = Store(store_location)
    yield s
    s.close()


def msg(role: Role, text: str) -> Message:
    return Message(role, (TextBlock(text),))


def test_sessions_messages_turns_and_events_read_back_as_written(store):
    store.create_session("s1", "/ws", is_worker=False)
    store.create_session("w1", "/ws", parent_session_id="s1", parent_tool_use_id="tu", is_worker=True)
    store.start_turn("t1", "s1", "m:a", {"chosen_model": "m:a", "why": "100% sure"})
    store.append_messages("s1", "t1", [msg(Role.USER, "hi % ? there"), msg(Role.ASSISTANT, "hello")])
    store.record_event("s1", "t1", "turn.started", {"model": "m:a"})
    store.finish_turn("t1", "completed", {"input_tokens": 3})
    store.set_active_model("s1", "m:b")
    assert [s.id for s in store.list_sessions()] == ["s1"]
    assert {s.id for s in store.list_sessions(include_workers=True)} == {"s1", "w1"}
    row = store.get_session("s1")
    assert row is not None and row.active_model == "m:b" and row.is_worker is False
    assert [m.text for m in store.load_messages("s1")] == ["hi % ? there", "hello"]
    assert store.turn_route("t1") == {"chosen_model": "m:a", "why": "100% sure"}
    assert store.last_turn_route("s1") == store.turn_route("t1") and store.turn_count("s1") == 1
    assert store.events(turn_id="t1", type_="turn.started") == [{"type": "turn.started", "model": "m:a"}]
    assert store.last_turn_id("s1") == "t1" and store.interrupted_turns() == []
    facts = store.turn_facts("t1")
    assert facts is not None and facts.text == "hi % ? there" and facts.workspace == "/ws"


def test_pattern_outcomes_keep_their_ids_and_fingerprints(store):
    o = PatternOutcome("t1", "s1", None, "text", "m:a", 0.5, 0.01, 1.0)
    first = store.record_outcome(o, "hashed", b"\x00\x01\xff")
    store.record_outcomes([(o, None, None), (o, None, None)])
    assert store.last_outcome_id() == first + 2
    rows = store.stored_outcomes(0, first + 2)
    assert [(r.id, r.fp_name, r.fp) for r in rows] == [(first, "hashed", b"\x00\x01\xff"), (first + 1, None, None),
                                                       (first + 2, None, None)]
    store.cache_fingerprints([(first + 1, "hashed", b"\x02")])
    assert store.stored_outcomes(first, first + 1)[0].fp == b"\x02"
    assert store.outcomes()[0] == o


def test_today_spend_sums_every_row_of_the_shared_ledger(store_location):
    one, two = Store(store_location), Store(store_location)   # two daemons on one database
    now = time.time()
    one.record_cost(CostRow("s1", None, "t1", "m:a", "planner", 1, 1, 0, 0, 0, Decimal("0.25"), now))
    two.record_cost(CostRow("s2", None, "t2", "m:a", "planner", 1, 1, 0, 0, 0, Decimal("0.5"), now))
    assert one.cost_since(now - 1) == two.cost_since(now - 1) == Decimal("0.75")
    one.close()
    two.close()


def test_a_lease_is_held_by_one_owner_until_it_expires_then_another_takes_it(store):
    a = lease.acquire(store, "session", "s1", "A", 10.0, now=100.0)
    assert a.ok and a.previous is None
    b = lease.acquire(store, "session", "s1", "B", 10.0, now=105.0)
    assert not b.ok and b.owner == "A"
    assert lease.holder(store, "session", "s1", 105.0) == "A"
    assert lease.renew(store, "A", 10.0, now=108.0) == {("session", "s1")}   # A's heartbeat
    assert not lease.acquire(store, "session", "s1", "B", 10.0, now=115.0).ok
    taken = lease.acquire(store, "session", "s1", "B", 10.0, now=118.5)   # A stopped renewing at 108
    assert taken.ok and taken.previous == "A"
    assert lease.renew(store, "A", 10.0, now=119.0) == set()              # A learns it lost it
    assert lease.acquire(store, "loop", "s1", "A", 10.0, now=119.0).ok    # kinds are separate
    lease.release(store, "session", "s1", "B")
    assert lease.holder(store, "session", "s1", 119.0) is None


def test_after_a_takeover_the_dead_owners_running_turns_are_interrupted(store):
    now = time.time()
    keeper_a = lease.LeaseKeeper(store, owner="A", ttl=60.0, clock=lambda: now)
    store.create_session("s1", None)
    store.create_session("w1", None, parent_session_id="s1", is_worker=True)
    lease.serve_session(keeper_a, store, "s1")
    store.start_turn("t1", "s1", "m:a", None)
    store.start_turn("wt1", "w1", "m:a", None)
    if store.shared:   # a neighbour's live turns are not "interrupted" at another daemon's start
        assert store.interrupted_turns() == []
    keeper_b = lease.LeaseKeeper(store, owner="B", ttl=60.0, clock=lambda: now)
    with pytest.raises(lease.SessionElsewhere, match="served by another daemon"):
        lease.serve_session(keeper_b, store, "s1")
    keeper_b.clock = lambda: now + 61   # A died: its lease ran out
    assert lease.serve_session(keeper_b, store, "s1") is True
    assert store.running_turns("s1") == []
    assert store.events() == [] and store.turn_count("s1") == 1


def test_a_storage_error_never_shows_the_password(pg_url):
    bad = pg_url.replace("@", "x@", 1)   # the right user with a wrong password
    password = bad.split(":")[2].split("@")[0]
    with pytest.raises(StorageError) as refused:
        Store(bad)
    assert password not in str(refused.value) and str(refused.value).startswith("the database failed: ")
    assert password not in redact_url(bad) and "***" in redact_url(bad)


def test_a_statement_the_server_rejects_is_a_storage_error_and_the_store_carries_on(store):
    store.start_turn("t1", "s1", "m:a", None)
    with pytest.raises(StorageError):
        store.start_turn("t1", "s1", "m:a", None)
    assert store.turn_count("s1") == 1


def test_a_keeper_whose_lease_was_taken_while_it_stalled_hears_so_on_its_next_heartbeat(store):
    now = [100.0]
    a = lease.LeaseKeeper(store, owner="A", ttl=5.0, clock=lambda: now[0])
    b = lease.LeaseKeeper(store, owner="B", ttl=5.0, clock=lambda: now[0])
    lost: list[tuple[str, str]] = []
    a.on_lost.append(lambda kind, id_: lost.append((kind, id_)))
    assert a.acquire("loop", "l_1").ok and a.acquire("session", "s_1").ok
    now[0] = 104.0
    a.heartbeat()                      # renewed: B cannot take it at 108
    now[0] = 108.0
    assert not b.acquire("loop", "l_1").ok
    now[0] = 110.0                     # A stalled past its expiry (109)
    assert b.acquire("loop", "l_1").previous == "A"
    a.heartbeat()
    assert lost == [("loop", "l_1")] and not a.holds("loop", "l_1") and a.holds("session", "s_1")
    a.release_all()
    assert lease.holder(store, "session", "s_1", 110.0) is None and b.holds("loop", "l_1")
