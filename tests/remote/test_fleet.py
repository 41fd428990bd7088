"""Heartbeat liveness and the choice of a worker in a pool (sans-IO: times are plain numbers)."""
from actors.remote.fleet import MISSES, Fleet, Silence, timeout_for


def test_a_peer_is_lost_only_after_three_missed_heartbeats():
    silence = Silence(heartbeat_s=5, now=100.0)
    assert timeout_for(5) == 5 * MISSES == 15
    assert not silence.lost(115.0)
    assert silence.lost(115.1)
    silence.heard(114.0)
    assert not silence.lost(129.0) and silence.lost(129.5)


def test_hearing_an_old_timestamp_never_moves_liveness_back():
    silence = Silence(heartbeat_s=1, now=10.0)
    silence.heard(5.0)
    assert silence.last_heard == 10.0


def test_the_least_busy_live_worker_of_the_pool_is_chosen_ties_to_the_earliest_joined():
    fleet = Fleet(heartbeat_s=1)
    a = fleet.join("w1", "build", "h1", 11, now=0.0)
    b = fleet.join("w2", "build", "h2", 12, now=0.5)
    fleet.join("w3", "gpu", "h3", 13, now=0.6)
    assert fleet.choose("build", now=1.0) is a
    a.running = 1
    assert fleet.choose("build", now=1.0) is b
    assert fleet.choose("nowhere", now=1.0) is None
    assert fleet.pools() == {"build": 2, "gpu": 1}


def test_a_silent_worker_is_swept_and_new_work_goes_to_the_live_one():
    fleet = Fleet(heartbeat_s=1)
    fleet.join("w1", "build", "h1", 11, now=0.0)
    fleet.join("w2", "build", "h2", 12, now=0.0)
    for t in (1.0, 2.0, 3.0):
        assert fleet.heard("w2", now=t)
    # w1 went silent at 0: not chosen once its timeout passed, even before a sweep removes it.
    assert fleet.choose("build", now=3.5).worker_id == "w2"
    lost = fleet.sweep(now=3.5)
    assert [w.worker_id for w in lost] == ["w1"]
    assert not fleet.heard("w1", now=3.6)   # a lost worker must say hello again
    assert fleet.sweep(now=3.6) == []
    assert list(fleet.workers) == ["w2"]


def test_an_empty_pool_has_no_choice():
    fleet = Fleet(heartbeat_s=1)
    fleet.join("w1", "build", "h", 1, now=0.0)
    assert fleet.sweep(now=10.0)
    assert fleet.choose("build", now=10.0) is None


# --- the hub's sweep on trio's clock (no sockets: a hub that is not serving sends nothing) -----------

async def test_the_hub_drops_a_silent_worker_within_the_heartbeat_timeout(nursery, autojump_clock, short_tmp):
    import trio

    from actors.remote.hub import WorkerHub
    from actors.remote.keys import generate_key_pair
    from protocol.messages import WorkerHello

    from .conftest import workers_config

    hub = WorkerHub(workers_config(short_tmp / "unused.key", heartbeat_s=2.0), generate_key_pair(), [])
    await hub._on_hello(b"rid-1", WorkerHello("build", "host", 42), trio.current_time())
    assert hub.fleet.pools() == {"build": 1}
    nursery.start_soon(hub._beat)
    await trio.sleep(hub.fleet.timeout - 0.5)
    assert hub.fleet.pools() == {"build": 1}       # silent, but not for three heartbeats yet
    await trio.sleep(0.5 + hub.config.heartbeat_s / 2 + 0.01)
    assert hub.fleet.pools() == {}                  # swept at the next half-beat after the timeout


def test_status_describes_each_worker_in_join_order_with_its_heartbeat_age_and_running_calls():
    fleet = Fleet(heartbeat_s=5)
    for n in (2, 10, 1):
        fleet.join(f"w{n}", "build", "box", 100 + n, now=0.0, public_key=f"key-{n}")
    fleet.heard("w10", 7.25)
    fleet.workers["w2"].running = 3
    listed = fleet.describe_all(now=8.0)
    assert [w["id"] for w in listed] == ["w1", "w2", "w10"]
    assert listed[1] == {"id": "w2", "public_key": "key-2", "pool": "build", "host": "box", "pid": 102,
                         "heartbeat_age_s": 8.0, "running": 3}
    assert listed[2]["heartbeat_age_s"] == 0.8
    assert Fleet(heartbeat_s=5).describe_all(now=1.0) == ()


def test_status_text_shows_one_line_per_worker_with_a_key_prefix():
    from orchestrator.worker_cli import render_status_workers

    key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
    text = render_status_workers([{"id": "w1", "public_key": key, "pool": "build", "host": "box", "pid": 42,
                                   "heartbeat_age_s": 1.5, "running": 1}])
    assert text == ("remote workers:\n"
                    "  w1   pool build      box pid 42 · key rq:rM>}U?@… · heartbeat 1.5s ago · running 1 call")
