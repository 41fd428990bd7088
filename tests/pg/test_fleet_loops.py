"""Two `orchestrator serve` processes on one PostgreSQL: a loop started on A continues on B after A
is killed with SIGKILL mid-tick (issue 19, "Done when"); `loop stop|resume|show` on the daemon that
does not drive the loop act through the database (docs/loops.md, "Loops on a shared database")."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from actors.runtime import lease
from actors.runtime.store import Store
from orchestrator.client import open_client
from protocol.messages import GetStatus
from tests.fakes import Answer
from tests.loops.conftest import fake, write_home  # noqa: F401
from tests.loops.test_loop_survives_kill import run_cli, said, serve, show

SLOW = Answer(text=("still working",) * 400, delay=0.05)   # a tick that is streaming when its daemon dies


@pytest.fixture
def fleet(short_tmp, pg_url, fake) -> Iterator[tuple[dict, dict, list[subprocess.Popen]]]:  # noqa: F811
    """Environments of daemons A and B on one database; started processes are killed. Leases last 3 s:
    a 1 s lease can lapse on a loaded machine before the test kills A."""
    home = write_home(short_tmp, fake.base_url)
    base = {**os.environ, "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_STATE": pg_url,
            "ORCHESTRATOR_LEASE_TTL_S": "3"}
    a = {**base, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/a.sock"}
    b = {**base, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/b.sock"}
    procs: list[subprocess.Popen] = []
    yield a, b, procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


async def until(env: dict, loop_id: str, pred: Callable[[dict], bool], what: str, timeout: float = 60.0) -> dict:
    loop: dict = {}
    with trio.move_on_after(timeout):
        while True:
            loop = await show(env, loop_id)
            if pred(loop):
                return loop
            await trio.sleep(0.05)
    raise AssertionError(f"{what} (waited {timeout:g} s); the loop: {json.dumps(loop)}")


async def running_here(env: dict) -> list[str]:
    """The loops `status` says this daemon runs."""
    async with open_client(env["ORCHESTRATOR_ENDPOINT"]) as client:
        report = await client.request("control", GetStatus())
    return [lp["id"] for lp in report.loops]


async def start_loop(env: dict, *args: str) -> str:
    out = await run_cli(env, "loop", "start", "--every", "0", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


async def test_a_loop_started_on_a_continues_on_b_after_a_is_killed_mid_tick(fleet, fake, short_tmp,  # noqa: F811
                                                                              pg_url):
    a, b, procs = fleet
    fake.script(said("PILOT_VERDICT=ADVANCED fn-1"), said("PILOT_VERDICT=BLOCKED fn-2"),
                SLOW,                                               # tick 3: A dies while it streams
                said("PILOT_VERDICT=NO_WORK"))                      # tick 4, on B
    procs.append(await serve(a, short_tmp / "a.log"))
    procs.append(await serve(b, short_tmp / "b.log"))
    loop_id = await start_loop(a, "--max-ticks", "6", "--prompt", "work the queue")
    before = await until(a, loop_id, lambda lp: lp["current_tick"] == 3 and lp["ticks_run"] == 2,
                         "A never reached tick 3")
    with trio.fail_after(30):       # tick 3's turn is streaming in A
        while len(fake.requests) < 3:
            await trio.sleep(0.02)
    on_b = await show(b, loop_id)    # B reads the loop from the database
    assert on_b["state"] == "running" and on_b["daemon"] == before["daemon"] and f":{procs[0].pid}:" in on_b["daemon"]
    assert await running_here(a) == [loop_id] and await running_here(b) == []
    procs[0].kill()                  # SIGKILL: no hand-over, the loop's lease must lapse
    procs[0].wait(10)

    after = await until(b, loop_id, lambda lp: lp["state"] != "running", "B never took the loop over and ended it")
    assert after["state"] == "finished" and after["stop_reason"] == "no_work"
    assert [(t["n"], t["status"]) for t in after["ticks"]] == [
        (1, "completed"), (2, "completed"), (3, "interrupted"), (4, "completed")]
    assert after["ticks"][:2] == before["ticks"]                     # A's ticks, unchanged
    assert after["strikes"] == {"fn-2": 1}                           # strikes survived the move
    assert Decimal(after["spend_usd"]) >= Decimal(before["spend_usd"]) > 0
    assert Decimal(after["spend_usd"]) == sum(Decimal(t["cost_usd"]) for t in after["ticks"])
    assert after["daemon"] is None                                   # finished: nobody holds it
    log = (short_tmp / "b.log").read_text()
    assert "loop taken over" in log and loop_id in log
    store = Store(pg_url)
    with contextlib.closing(store):   # the loop's session moved with it: A's dead turn closed by B
        statuses = [r[0] for r in store._query("SELECT status FROM turns WHERE session_id=? ORDER BY started_at",
                                               (after["session_id"],))]
        assert statuses == ["completed", "completed", "interrupted", "completed"]
        assert lease.holder(store, "session", after["session_id"], 0.0) is None   # released when it finished


async def test_stop_on_b_stops_the_loop_a_runs_and_resume_on_b_moves_it_to_b(fleet, fake, short_tmp):  # noqa: F811
    a, b, procs = fleet
    fake.script(said("PILOT_VERDICT=ADVANCED fn-1"), SLOW, said("PILOT_VERDICT=NO_WORK"))
    procs.append(await serve(a, short_tmp / "a.log"))
    procs.append(await serve(b, short_tmp / "b.log"))
    loop_id = await start_loop(a, "--prompt", "work the queue")
    await until(a, loop_id, lambda lp: lp["current_tick"] == 2, "A never started tick 2")
    with trio.fail_after(30):
        while len(fake.requests) < 2:
            await trio.sleep(0.02)

    refused = await run_cli(b, "loop", "resume", loop_id)          # A holds it: one line naming A
    assert refused.returncode != 0 and "run by another daemon" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and f":{procs[0].pid}:" in refused.stderr
    stopped = await run_cli(b, "loop", "stop", loop_id)             # through the row: A notices
    assert stopped.returncode == 0, stopped.stderr
    on_a = await until(a, loop_id, lambda lp: lp["current_tick"] is None and lp["daemon"] is None,
                       "A never noticed the stop written by B")
    assert on_a["state"] == "stopped" and on_a["stop_reason"] == "stopped"
    assert [(t["n"], t["status"]) for t in on_a["ticks"]] == [(1, "completed"), (2, "interrupted")]
    assert await running_here(a) == []

    resumed = await run_cli(b, "loop", "resume", loop_id)           # nobody holds it now: B takes it
    assert resumed.returncode == 0, resumed.stderr
    after = await until(b, loop_id, lambda lp: lp["state"] != "running", "the loop never ended on B")
    assert after["stop_reason"] == "no_work"
    assert [(t["n"], t["status"]) for t in after["ticks"]] == [(1, "completed"), (2, "interrupted"), (3, "completed")]
    assert "loop taken over" not in Path(short_tmp / "a.log").read_text()


async def test_a_daemon_stopped_cleanly_hands_its_loop_to_the_other_at_the_next_scan(fleet, fake,  # noqa: F811
                                                                                    short_tmp):
    a, b, procs = fleet
    fake.script(said("PILOT_VERDICT=ADVANCED fn-1"), said("PILOT_VERDICT=NO_WORK"))
    procs.append(await serve(a, short_tmp / "a.log"))
    procs.append(await serve(b, short_tmp / "b.log"))
    loop_id = await start_loop(a, "--every", "5s", "--prompt", "work the queue")   # tick 2: 5 s after tick 1
    await until(a, loop_id, lambda lp: lp["ticks_run"] == 1, "A never finished tick 1")
    procs[0].terminate()             # SIGTERM: A releases its leases on the way out
    procs[0].wait(30)
    taken = await until(b, loop_id, lambda lp: lp["daemon"] is not None, "B never took the loop over")
    assert f":{procs[1].pid}:" in taken["daemon"]
    with trio.fail_after(30):        # the lease row moves first; B's loop actor starts it right after
        while await running_here(b) != [loop_id]:
            await trio.sleep(0.05)
    after = await until(b, loop_id, lambda lp: lp["state"] != "running", "the loop never ended on B")
    assert after["stop_reason"] == "no_work"
    assert [(t["n"], t["status"]) for t in after["ticks"]] == [(1, "completed"), (2, "completed")]
