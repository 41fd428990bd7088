"""Start-up with a big outcome table: the router serves turns while the store loads in the
background (slot 4 says so), and fingerprints are cached in the table so the next start decodes."""
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_live_router import BASE, OPUS, HAIKU, SONNET, ask, home, pattern_entry, rated, start  # noqa: E402

from actors.patterns.fingerprint import HashedFingerprinter, unpack_vector  # noqa: E402
from actors.patterns.store import PatternStore  # noqa: E402
from actors.router.actor import RouterActor  # noqa: E402
from actors.router.learned import LOADING_REASON, LivePatterns  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.runtime.kernel import ActorSystem  # noqa: E402
from actors.runtime.store import Store  # noqa: E402
from protocol.messages import GetPatternStats  # noqa: E402

from routing_helpers import BOTH_KEYS  # noqa: E402
from test_router_actor import StubAvailability, StubCost  # noqa: E402

ROUTING = BASE + "pattern: {min_confidence: 0.5}\n"


async def test_first_turn_is_answered_while_the_store_is_still_loading(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05, n=200)
    rated(store, HAIKU, 0.0, 0.002, n=200)
    gate = threading.Event()

    def held_loader(live, chunk):       # runs in the loader's worker thread until the test lets go
        gate.wait(30)
        return LivePatterns.load_stored(live, chunk)

    system = ActorSystem()
    files = home(tmp_path, ROUTING)
    loader = PolicyLoader(str(files / "models.yaml"), str(files / "routing.yaml"), env=BOTH_KEYS)
    await nursery.start(StubAvailability(system, {}).run)
    await nursery.start(StubCost(system, "0").run)
    router = RouterActor(system, loader, store=store, pattern_loader=held_loader)
    await nursery.start(router.run)
    try:
        route = await ask(system)
        assert not router.patterns_loaded.is_set()
        entry = pattern_entry(route)
        assert (entry.verdict.value, entry.reason) == ("not_applicable", LOADING_REASON)
        assert route.chosen_model == SONNET
        stats = (await system.request("router", GetPatternStats(), timeout=5)).stats
        assert stats["loading"] is True
    finally:
        gate.set()
    await router.patterns_loaded.wait()
    route = await ask(system)
    assert route.chosen_model == OPUS and pattern_entry(route).verdict.value == "chose"
    assert (await system.request("router", GetPatternStats(), timeout=5)).stats["outcomes"] == 400


async def test_start_up_caches_fingerprints_in_the_table(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05)
    assert {r.fp_name for r in store.stored_outcomes(0, store.last_outcome_id())} == {None}
    await start(nursery, home(tmp_path, ROUTING), store)
    fp = HashedFingerprinter()
    for r in store.stored_outcomes(0, store.last_outcome_id()):
        assert r.fp_name == "hashed" and r.fp is not None
        assert np.array_equal(unpack_vector(r.fp), fp(r.outcome.text))


class NoFingerprinting(HashedFingerprinter):
    def __call__(self, text):
        raise AssertionError("a cached fingerprint was recomputed")


def test_cached_fingerprints_load_without_fingerprinting(tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05)
    first = LivePatterns()
    store.cache_fingerprints(first.load_stored(store.stored_outcomes(0, store.last_outcome_id())))
    again = LivePatterns(PatternStore(NoFingerprinting()))
    assert again.load_stored(store.stored_outcomes(0, store.last_outcome_id())) == []
    assert len(again.store) == len(first.store) == 12
    probe = first.fingerprint("review the database migration script")
    assert again.store.explain(probe) == first.store.explain(probe)


def test_a_fingerprint_of_another_kind_is_recomputed(tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05, n=2)
    rows = store.stored_outcomes(0, store.last_outcome_id())
    store.cache_fingerprints([(r.id, "minilm", b"D" + bytes(4 * 384)) for r in rows])
    fresh = LivePatterns().load_stored(store.stored_outcomes(0, store.last_outcome_id()))
    assert [(i, name) for i, name, _ in fresh] == [(r.id, "hashed") for r in rows]


def test_patterns_stats_says_the_store_is_still_loading():
    from orchestrator.rating import render_stats
    assert "still loading" in render_stats({"loading": True, "outcomes": 0}, as_json=False)
    assert render_stats({"loading": False, "outcomes": 3, "models": {}}, as_json=False).startswith("outcomes: 3")


async def test_a_failed_load_leaves_routing_on_and_says_why(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05)

    def broken_loader(live, chunk):
        raise ValueError("fingerprint table damaged")

    system = ActorSystem()
    files = home(tmp_path, ROUTING)
    loader = PolicyLoader(str(files / "models.yaml"), str(files / "routing.yaml"), env=BOTH_KEYS)
    await nursery.start(StubAvailability(system, {}).run)
    await nursery.start(StubCost(system, "0").run)
    router = RouterActor(system, loader, store=store, pattern_loader=broken_loader)
    await nursery.start(router.run)
    await router.patterns_loaded.wait()
    route = await ask(system)
    entry = pattern_entry(route)
    assert entry.verdict.value == "not_applicable" and "fingerprint table damaged" in entry.reason
    assert route.chosen_model == SONNET


def test_a_database_from_before_the_fingerprint_columns_is_upgraded_on_open(tmp_path):
    import sqlite3
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE pattern_outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, turn_id TEXT, session_id TEXT, "
                "workspace TEXT, text TEXT NOT NULL, model TEXT NOT NULL, score REAL NOT NULL, cost_usd REAL NOT NULL, "
                "at REAL NOT NULL)")
    con.execute("INSERT INTO pattern_outcomes (turn_id, text, model, score, cost_usd, at) "
                "VALUES ('t1', 'fix the parser', 'm', 1.0, 0.01, 5.0)")
    con.commit()
    con.close()
    store = Store(db)
    [row] = store.stored_outcomes(0, store.last_outcome_id())
    assert (row.outcome.source, row.fp_name, row.fp) == ("rating", None, None)
    fresh = LivePatterns().load_stored([row])
    store.cache_fingerprints(fresh)
    assert store.stored_outcomes(0, 1)[0].fp_name == "hashed"
