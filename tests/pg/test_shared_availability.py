"""Availability seen by one daemon informs the others (issue 19)."""
import time

import trio

from actors.availability.actor import AvailabilityActor
from actors.availability.shared import MAX_AGE_S, Observation, SharedObservations, fold_remote
from actors.availability.state import MODEL_FAILURE_THRESHOLD, AvailabilityTracker
from actors.runtime.kernel import ActorSystem
from actors.runtime.store import Store
from protocol.messages import AvailabilityView, CallOutcome, GetAvailability


def failures(n: int, at: float, daemon: str = "A") -> list[Observation]:
    return [Observation(i, daemon, "demo", "demo:swift", False, "server", at) for i in range(1, n + 1)]


def test_other_daemons_failures_trip_the_model_like_local_ones_and_stale_ones_do_not():
    tracker = AvailabilityTracker()
    assert fold_remote(tracker, failures(MODEL_FAILURE_THRESHOLD, at=1000.0 - MAX_AGE_S - 1), 50.0, 1000.0) == []
    assert tracker.check("demo:swift", 50.0)[0]                     # too old to matter
    changes = fold_remote(tracker, failures(MODEL_FAILURE_THRESHOLD, at=999.0), 60.0, 1000.0)
    assert [(c.kind, c.scope) for c in changes] == [("unavailable", "demo:swift")]
    assert tracker.check("demo:swift", 60.0) == (False, "model", "demo:swift model-specific outage")


def test_each_daemon_reads_only_the_others_observations_once(store_location):
    store = Store(store_location)
    a, b = SharedObservations(store, "A"), SharedObservations(store, "B")
    now = time.time()
    a.record("demo", "demo:swift", False, "network", now)
    assert [o.daemon for o in b.start(now)] == ["A"] and a.start(now) == []
    b.record("demo", "demo:swift", True, None, now)
    a.record("demo", "demo:sage", False, None, now)
    assert [(o.daemon, o.model) for o in b.new()] == [("A", "demo:sage")]
    assert b.new() == [] and [(o.daemon, o.ok) for o in a.new()] == [("B", True)]
    a.prune(now + 10 * 3600)
    assert b.start(now) == []
    store.close()


async def test_a_model_failing_on_daemon_a_is_unavailable_on_daemon_b(pg_url):
    store_a, store_b = Store(pg_url), Store(pg_url)
    system_a, system_b = ActorSystem(), ActorSystem()
    actor_a = AvailabilityActor(system_a, router=None, shared=SharedObservations(store_a, "A"))
    actor_b = AvailabilityActor(system_b, router=None, shared=SharedObservations(store_b, "B"))
    async with trio.open_nursery() as nursery:
        await nursery.start(actor_a.run)
        await nursery.start(actor_b.run)
        for _ in range(MODEL_FAILURE_THRESHOLD):
            await system_a.tell("availability", CallOutcome("demo", "demo:swift", False, "server"))
        with trio.fail_after(20):
            while True:
                view = await system_b.request("availability", GetAvailability(), timeout=5)
                assert isinstance(view, AvailabilityView)
                if "demo:swift" in view.unavailable:
                    break
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    store_a.close()
    store_b.close()
