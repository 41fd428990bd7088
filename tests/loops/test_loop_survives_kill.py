"""Done when (issue 18): a loop runs ticks, the daemon is killed with SIGKILL mid-tick, `orchestrator
serve` restarts, and the loop resumes at the next tick with ticks, strikes and spend intact; the
interrupted tick is recorded ``interrupted``, never ``completed``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import trio

from orchestrator.client import DaemonUnreachable, open_client
from protocol.messages import ShowLoop
from tests.fakes import Answer

from .conftest import write_home

PY = sys.executable


def said(*lines: str) -> Answer:
    return Answer(text=("Worked on it.\n", *[line + "\n" for line in lines]))


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "orchestrator", *args], env=env, capture_output=True, text=True, timeout=60)


async def run_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    # In a thread: the fake provider answers from this test's event loop meanwhile.
    return await trio.to_thread.run_sync(lambda: cli(env, *args))


async def serve(env: dict, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        proc = subprocess.Popen([PY, "-m", "orchestrator", "serve"], env=env, stdout=out,  # noqa: ASYNC220
                                stderr=out)
    with trio.fail_after(30):
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                async with open_client(env["ORCHESTRATOR_ENDPOINT"], timeout=2):
                    return proc
            except DaemonUnreachable:
                await trio.sleep(0.05)


async def show(env: dict, loop_id: str) -> dict:
    async with open_client(env["ORCHESTRATOR_ENDPOINT"]) as client:
        return (await client.request("loops", ShowLoop(loop_id))).loop


async def wait_for(env: dict, loop_id: str, pred, timeout: float = 30.0) -> dict:
    with trio.fail_after(timeout):
        while True:
            loop = await show(env, loop_id)
            if pred(loop):
                return loop
            await trio.sleep(0.05)


async def test_a_loop_resumes_after_kill_9_mid_tick_with_ticks_strikes_and_spend_intact(short_tmp, fake):
    home = write_home(short_tmp, fake.base_url)
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_STATE": str(short_tmp / "state"),
           "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/d.sock"}
    log = short_tmp / "serve.log"
    fake.script(said("PILOT_VERDICT=ADVANCED fn-1"), said("PILOT_VERDICT=BLOCKED fn-2"),
                said("PILOT_VERDICT=ADVANCED fn-1"),
                Answer(text=("still working",) * 400, delay=0.05))       # tick 4: killed mid-stream
    proc = await serve(env, log)
    try:
        out = await run_cli(env, "loop", "start", "--every", "0", "--max-ticks", "6", "--prompt", "work the queue")
        assert out.returncode == 0, out.stderr
        loop_id = out.stdout.strip()
        assert loop_id.startswith("l_")
        before = await wait_for(env, loop_id, lambda lp: lp["current_tick"] == 4 and lp["ticks_run"] == 3)
        with trio.fail_after(20):       # tick 4's turn is streaming in the daemon
            while len(fake.requests) < 4:
                await trio.sleep(0.02)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [t["status"] for t in before["ticks"]] == ["completed"] * 3
    assert before["strikes"] == {"fn-2": 1}

    fake.script(said("PILOT_VERDICT=NO_WORK"))                            # tick 5, after the restart
    proc = await serve(env, log)
    try:
        after = await wait_for(env, loop_id, lambda lp: lp["state"] != "running")
        out = await run_cli(env, "loop", "show", loop_id, "--json")
        assert out.returncode == 0, out.stderr
        shown = json.loads(out.stdout)
        human = await run_cli(env, "loop", "show", loop_id)
        listed = await run_cli(env, "loop", "list", "--json")
    finally:
        proc.terminate()
        proc.wait(15)
    assert after["stop_reason"] == "no_work" and after["state"] == "finished"
    assert [(t["n"], t["status"]) for t in after["ticks"]] == [
        (1, "completed"), (2, "completed"), (3, "completed"), (4, "interrupted"), (5, "completed")]
    assert after["ticks"][:3] == before["ticks"]                           # the first ticks, unchanged
    assert after["ticks"][3]["pilot_verdict"] is None and after["ticks"][4]["pilot_verdict"] == "NO_WORK"
    assert after["strikes"] == {"fn-2": 1}                                  # strikes survived
    assert Decimal(after["spend_usd"]) >= Decimal(before["spend_usd"]) > 0  # spend survived (tick 4 billed what it got)
    assert Decimal(after["spend_usd"]) == sum(Decimal(t["cost_usd"]) for t in after["ticks"])
    assert list(shown)[:6] == ["id", "state", "stop_reason", "spend_usd", "ticks", "strikes"]
    assert list(shown["ticks"][0])[:5] == ["n", "status", "pilot_verdict", "land_verdict", "cost_usd"]
    assert shown["ticks"] == after["ticks"]
    assert "interrupted" in human.stdout and "no_work" in human.stdout
    assert [lp["id"] for lp in json.loads(listed.stdout)] == [loop_id]
