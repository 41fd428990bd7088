"""Loops in a real daemon, ticking against a scripted fake provider."""
from __future__ import annotations

import os
from decimal import Decimal

import pytest
import trio

from protocol.errors import RemoteError
from protocol.messages import ListLoops, ResumeLoop, ShowLoop, StartLoop, StopLoop
from tests.fakes import Answer


def said(*lines: str) -> Answer:
    return Answer(text=("Worked on it.\n", *[line + "\n" for line in lines]))


async def wait_for(client, loop_id: str, pred, *, timeout: float = 20.0) -> dict:
    with trio.fail_after(timeout):
        while True:
            loop = (await client.request("loops", ShowLoop(loop_id))).loop
            if pred(loop):
                return loop
            await trio.sleep(0.02)


@pytest.mark.parametrize("loop_stack", [False, True], ids=["local", "wire"], indirect=True)
async def test_pilot_land_loop_runs_three_ticks_and_stops_on_no_work(loop_stack):
    daemon, client, fake = loop_stack
    fake.script(said("PILOT_VERDICT=ADVANCED fn-1"),
                said("PILOT_VERDICT=DEFERRED_TO_LAND fn-1"), said("LAND_VERDICT=LANDED fn-1"),
                said("PILOT_VERDICT=NO_WORK"), said("LAND_VERDICT=NO_WORK"))
    events: list[dict] = []
    async with client.watch_loops() as stream:
        info = await client.request("loops", StartLoop("pilot", "run the pilot", land="run land"))
        loop_id = info.loop["id"]
        assert loop_id.startswith("l_")
        with trio.fail_after(20):
            async for event in stream:
                events.append(event)
                if event["type"] == "loop.stopped":
                    break
    loop = (await client.request("loops", ShowLoop(loop_id))).loop
    assert loop["state"] == "finished" and loop["stop_reason"] == "no_work"
    assert [(t["n"], t["status"], t["pilot_verdict"], t["land_verdict"]) for t in loop["ticks"]] == [
        (1, "completed", "ADVANCED fn-1", None),
        (2, "completed", "DEFERRED_TO_LAND fn-1", "LANDED fn-1"),
        (3, "completed", "NO_WORK", "NO_WORK")]
    costs = [Decimal(t["cost_usd"]) for t in loop["ticks"]]
    assert all(c > 0 for c in costs) and Decimal(loop["spend_usd"]) == sum(costs)
    assert [e["type"] for e in events] == ["loop.tick_started", "loop.tick_finished"] * 3 + ["loop.stopped"]
    assert events[-1]["stop_reason"] == "no_work"
    # every tick is a turn in the loop's one session: the land turn sees the pilot turn before it
    assert len({t for tick in loop["ticks"] for t in tick["turn_ids"]}) == 5
    last = fake.requests[-1].json["messages"]
    assert [m["content"] for m in last if m["role"] == "user"][-2:] == ["run the pilot", "run land"]
    # verdicts became pattern-store outcomes: ADVANCED and LANDED → 1 (NO_WORK → no signal)
    with trio.fail_after(10):
        while len(daemon.store.outcomes()) < 2:
            await trio.sleep(0.02)
    assert sorted(o.score for o in daemon.store.outcomes()) == [1.0, 1.0]


async def test_blocked_twice_strikes_the_item_and_the_next_prompt_skips_it(loop_stack):
    _, client, fake = loop_stack
    fake.script(said("PILOT_VERDICT=BLOCKED fn-7"), said("PILOT_VERDICT=BLOCKED fn-7"),
                said("PILOT_VERDICT=NEEDS_HUMAN"))
    info = await client.request("loops", StartLoop("prompt", "work the queue"))
    loop = await wait_for(client, info.loop["id"], lambda lp: lp["state"] != "running")
    assert loop["stop_reason"] == "needs_human"
    assert loop["strikes"] == {"fn-7": 2} and loop["struck"] == ["fn-7"]
    third = [m["content"] for m in fake.requests[2].json["messages"] if m["role"] == "user"][-1]
    assert third.startswith("work the queue") and "fn-7" in third and "Skip" in third
    fake.script(said("PILOT_VERDICT=NO_WORK"))
    cleared = (await client.request("loops", ResumeLoop(info.loop["id"], clear_strikes=True))).loop
    assert cleared["strikes"] == {} and cleared["state"] == "running"
    loop = await wait_for(client, info.loop["id"], lambda lp: lp["state"] != "running")
    assert loop["stop_reason"] == "no_work" and [t["n"] for t in loop["ticks"]] == [1, 2, 3, 4]
    fourth = [m["content"] for m in fake.requests[3].json["messages"] if m["role"] == "user"][-1]
    assert fourth == "work the queue"                      # cleared: nothing to skip any more


async def test_a_malformed_verdict_is_a_strike_and_the_budget_stops_the_loop(loop_stack):
    _, client, fake = loop_stack
    fake.script(said("PILOT_VERDICT=DONE"), said("PILOT_VERDICT=ADVANCED"))
    fake.default = said("PILOT_VERDICT=ADVANCED")
    info = await client.request("loops", StartLoop("prompt", "go", budget_usd="0.04"))
    loop = await wait_for(client, info.loop["id"], lambda lp: lp["state"] != "running")
    assert loop["stop_reason"] == "budget" and Decimal(loop["spend_usd"]) >= Decimal("0.04")
    assert loop["ticks"][0]["status"] == "completed" and loop["ticks"][0]["pilot_verdict"] is None
    assert loop["strikes"] == {"(no verdict)": 1}


async def test_stop_cancels_the_running_tick_and_status_lists_running_loops(loop_stack):
    _, client, fake = loop_stack
    fake.default = Answer(text=("slow",) * 200, delay=0.05)
    info = await client.request("loops", StartLoop("prompt", "go", max_ticks=5))
    loop_id = info.loop["id"]
    await wait_for(client, loop_id, lambda lp: lp["current_tick"] == 1)
    report = await client.status()
    assert [lp["id"] for lp in report.loops] == [loop_id] and report.loops[0]["current_tick"] == 1
    await client.request("loops", StopLoop(loop_id))
    loop = await wait_for(client, loop_id, lambda lp: lp["current_tick"] is None)
    assert loop["state"] == "stopped" and loop["stop_reason"] == "stopped"
    assert loop["ticks"][0]["status"] == "interrupted"
    assert (await client.status()).loops == ()
    listed = (await client.request("loops", ListLoops())).loops
    assert [lp["id"] for lp in listed] == [loop_id]


async def test_unknown_loop_and_invalid_start_are_answered_as_errors(loop_stack):
    _, client, _ = loop_stack
    with pytest.raises(RemoteError) as err:
        await client.request("loops", ShowLoop("l_nope"))
    assert err.value.code == "unknown_loop"
    with pytest.raises(RemoteError) as err:
        await client.request("loops", StartLoop("prompt", "  "))
    assert err.value.code == "invalid_loop"


async def test_a_failing_tick_is_data_and_other_sessions_keep_working(loop_stack):
    from tests.fakes import Fail

    _, client, fake = loop_stack
    fake.script(Fail(400, "invalid_request_error", "scripted"), said("PILOT_VERDICT=NO_WORK"))
    info = await client.request("loops", StartLoop("prompt", "go"))
    loop = await wait_for(client, info.loop["id"], lambda lp: lp["state"] != "running")
    assert [t["status"] for t in loop["ticks"]] == ["failed", "completed"]
    assert loop["strikes"] == {"(no verdict)": 1} and loop["stop_reason"] == "no_work"
    fake.script(Answer(text=("fine",)))
    session = await client.open_session()
    async with client.turn(session.session_id, "hello") as turn:
        async for _ in turn:
            pass
    assert type(turn.terminal).__name__ == "TurnCompleted"


async def test_a_workflow_tick_runs_the_workflow_and_reads_its_output(loop_stack):
    _, client, fake = loop_stack
    fake.default = said("Confidence: 90", "PILOT_VERDICT=NO_WORK")
    info = await client.request("loops", StartLoop("workflow", workflow="qc", max_ticks=3))
    loop = await wait_for(client, info.loop["id"], lambda lp: lp["state"] != "running")
    assert loop["stop_reason"] == "no_work", loop
    tick = loop["ticks"][0]
    assert tick["status"] == "completed" and tick["pilot_verdict"] == "NO_WORK" and len(tick["turn_ids"]) >= 1
    assert Decimal(tick["cost_usd"]) > 0


async def test_an_unknown_workflow_fails_the_tick_in_one_line(loop_stack):
    _, client, fake = loop_stack
    info = await client.request("loops", StartLoop("workflow", workflow="nope", max_ticks=1))
    loop = await wait_for(client, info.loop["id"], lambda lp: lp["state"] != "running")
    assert loop["stop_reason"] == "max_ticks" and loop["ticks"][0]["status"] == "failed"
    assert "nope" in loop["ticks"][0]["error"]


async def test_sigterm_mid_tick_records_it_interrupted_and_the_next_daemon_resumes(short_tmp, fake):
    from orchestrator.client import open_client
    from orchestrator.daemon import Daemon
    from orchestrator.paths import Paths
    from orchestrator.settings import DaemonSettings

    from .conftest import write_home

    paths = Paths(write_home(short_tmp, fake.base_url), short_tmp / "state", f"ipc://{short_tmp}/d.sock")
    fake.script(said("PILOT_VERDICT=ADVANCED"), Answer(text=("slow",) * 400, delay=0.05))
    async with trio.open_nursery() as nursery:
        daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=0.2))
        await nursery.start(daemon.run)
        async with open_client(paths.endpoint) as client:
            loop_id = (await client.request("loops", StartLoop("prompt", "go"))).loop["id"]
            await wait_for(client, loop_id, lambda lp: lp["current_tick"] == 2)
        daemon.request_stop("SIGTERM")
    fake.script(said("PILOT_VERDICT=NO_WORK"))
    async with trio.open_nursery() as nursery:
        daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=0.2))
        await nursery.start(daemon.run)
        async with open_client(paths.endpoint) as client:
            loop = await wait_for(client, loop_id, lambda lp: lp["state"] != "running")
        daemon.request_stop("test over")
    assert [(t["n"], t["status"]) for t in loop["ticks"]] == [
        (1, "completed"), (2, "interrupted"), (3, "completed")], loop["ticks"]
    assert loop["stop_reason"] == "no_work" and loop["strikes"] == {}


async def test_another_users_connection_may_not_start_or_see_loops(loop_stack):
    from protocol.codec import Envelope
    from protocol.messages import Failure

    daemon, _, _ = loop_stack
    actor = daemon.actors["loops"]
    stranger = f"~u{os.getuid() + 1}.ab12/client"
    for body in (StartLoop("prompt", "rm -rf"), ListLoops(), ShowLoop("l_x"), StopLoop("l_x")):
        reply = await actor.table[type(body)](Envelope(body, "loops", stranger))
        assert isinstance(reply, Failure) and reply.code == "forbidden_loop"
