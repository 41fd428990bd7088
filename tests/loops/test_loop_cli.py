"""`orchestrator loop …` as a user runs it: ids, progress, JSON, exit codes, and `status`."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import trio

from tests.fakes import Answer

PY = sys.executable


def _env(daemon) -> dict:
    return {**os.environ, "ORCHESTRATOR_HOME": str(daemon.paths.home), "ORCHESTRATOR_STATE": str(daemon.paths.state),
            "ORCHESTRATOR_ENDPOINT": daemon.paths.endpoint}


async def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return await trio.to_thread.run_sync(lambda: subprocess.run(
        [PY, "-m", "orchestrator", *args], env=env, capture_output=True, text=True, timeout=60))


async def test_loop_commands_show_progress_and_stop(loop_stack):
    daemon, client, fake = loop_stack
    env = _env(daemon)
    fake.default = Answer(text=("slow",) * 400, delay=0.05)
    out = await cli(env, "loop", "start", "--every", "10m", "--budget-usd", "5", "--prompt", "work")
    assert out.returncode == 0 and out.stdout.strip().startswith("l_"), out.stderr
    loop_id = out.stdout.strip()
    with trio.fail_after(20):
        while "tick 1 running" not in (listed := (await cli(env, "loop", "list")).stdout):
            await trio.sleep(0.05)
    assert loop_id in listed and "spend $" in listed
    status = await cli(env, "status")
    assert "loops:" in status.stdout and loop_id in status.stdout
    status_json = json.loads((await cli(env, "status", "--json")).stdout)
    assert status_json["loops"][0]["id"] == loop_id and status_json["loops"][0]["current_tick"] == 1
    stopped = await cli(env, "loop", "stop", loop_id)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    with trio.fail_after(20):
        while (shown := json.loads((await cli(env, "loop", "show", loop_id, "--json")).stdout))["current_tick"]:
            await trio.sleep(0.05)
    assert shown["state"] == "stopped" and shown["stop_reason"] == "stopped"
    assert [t["status"] for t in shown["ticks"]] == ["interrupted"]
    human = (await cli(env, "loop", "show", loop_id)).stdout
    assert "every 10m" in human and "budget $5" in human and "stopped" in human


async def test_unknown_loop_exits_1_and_usage_errors_exit_2(loop_stack):
    daemon, _, _ = loop_stack
    env = _env(daemon)
    for args in (("show", "l_nope"), ("stop", "l_nope"), ("resume", "l_nope")):
        out = await cli(env, "loop", *args)
        assert out.returncode == 1 and out.stderr.strip() == "orchestrator: unknown loop 'l_nope'", out.stderr
    for args in (("start",), ("start", "--prompt", "x", "--pilot", "y"), ("start", "--land", "x", "--prompt", "y"),
                 ("start", "--every", "soon", "--prompt", "x"), ("start", "--max-ticks", "0", "--prompt", "x"),
                 ("start", "--budget-usd", "-1", "--prompt", "x"), ("start", "--prompt", "  ")):
        out = await cli(env, "loop", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr


async def test_loop_commands_without_a_daemon_exit_3(short_tmp):
    env = {**os.environ, "ORCHESTRATOR_HOME": str(short_tmp), "ORCHESTRATOR_STATE": str(short_tmp / "state"),
           "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/none.sock"}
    for args in (("list",), ("start", "--prompt", "x"), ("show", "l_x")):
        out = await cli(env, "loop", *args)
        assert out.returncode == 3 and "daemon not reachable" in out.stderr


async def test_chat_loop_starts_lists_and_stops_a_loop(loop_stack, capsys):
    from orchestrator.loops_cli import chat_loop

    _, client, fake = loop_stack
    fake.default = Answer(text=("PILOT_VERDICT=ADVANCED",))
    capsys.readouterr()                                   # the daemon's start-up log line
    await chat_loop(client, ["30m", "keep", "going"])
    started = capsys.readouterr().out
    assert started.startswith("loop l_") and "every 30m" in started
    loop_id = started.split()[1]
    from protocol.messages import ShowLoop

    with trio.fail_after(20):       # its first tick is done (at 30m, the next one is far away)
        while (await client.request("loops", ShowLoop(loop_id))).loop["ticks_run"] < 1:
            await trio.sleep(0.02)
    await chat_loop(client, ["list"])
    assert loop_id in capsys.readouterr().out
    await chat_loop(client, ["stop", loop_id])
    assert f"{loop_id}: stopped" in capsys.readouterr().out
    await chat_loop(client, ["soon", "x"])
    assert capsys.readouterr().out.startswith("usage: /loop")


async def test_loop_watch_prints_the_events_until_the_loop_stops(loop_stack):
    daemon, _, fake = loop_stack
    env = _env(daemon)
    fake.script(Answer(text=("step",) * 20 + ("\nPILOT_VERDICT=ADVANCED",), delay=0.05),
                Answer(text=("PILOT_VERDICT=NO_WORK",)))
    loop_id = (await cli(env, "loop", "start", "--prompt", "go")).stdout.strip()
    out = await cli(env, "loop", "watch", loop_id, "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1] == {"type": "loop.stopped", "loop_id": loop_id, "state": "finished", "stop_reason": "no_work"}
    assert all(e["loop_id"] == loop_id for e in events)
    again = await cli(env, "loop", "watch", loop_id)                  # already over: says so and ends
    assert again.returncode == 0 and "finished: no_work" in again.stdout


async def test_loop_start_with_an_unknown_workflow_exits_1_and_starts_nothing(loop_stack):
    daemon, _, _ = loop_stack
    env = _env(daemon)
    out = await cli(env, "loop", "start", "--workflow", "nope")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.strip() == "orchestrator: no workflow named 'nope' (defined: qc)"
    assert json.loads((await cli(env, "loop", "list", "--json")).stdout) == []


def test_loop_show_says_why_a_tick_failed():
    from orchestrator.loops_cli import render_loop

    tick = {"n": 1, "status": "failed", "pilot_verdict": None, "land_verdict": None, "cost_usd": "0",
            "error": "workflow x: no workflow named 'x' [unknown_workflow]"}
    shown = render_loop({"id": "l_1", "state": "running", "stop_reason": None, "spend_usd": "0", "mode": "prompt",
                         "every": "0", "ticks": [tick], "strikes": {}})
    assert "no workflow named 'x'" in shown


async def test_loop_show_names_a_pilot_land_loop_and_its_land_prompt(loop_stack):
    daemon, _, fake = loop_stack
    env = _env(daemon)
    fake.default = Answer(text=("PILOT_VERDICT=ADVANCED",))
    loop_id = (await cli(env, "loop", "start", "--every", "1h", "--pilot", "go", "--land", "land it")).stdout.strip()
    human = (await cli(env, "loop", "show", loop_id)).stdout
    assert f"loop {loop_id} · pilot/land · every 1h" in human, human
    assert json.loads((await cli(env, "loop", "show", loop_id, "--json")).stdout)["land"] == "land it"
    await cli(env, "loop", "stop", loop_id)


async def test_loop_watch_exits_3_when_the_daemon_goes_away(loop_stack):
    daemon, _, fake = loop_stack
    env = _env(daemon)
    fake.default = Answer(text=("PILOT_VERDICT=ADVANCED",))
    loop_id = (await cli(env, "loop", "start", "--every", "1h", "--prompt", "go")).stdout.strip()
    watcher = await trio.to_thread.run_sync(lambda: subprocess.Popen(
        [PY, "-m", "orchestrator", "loop", "watch", loop_id], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
    try:
        with trio.fail_after(20):     # the watch has subscribed
            while not daemon.actors["loops"]._watchers:
                await trio.sleep(0.05)
        daemon.request_stop("gone")
        out, err = await trio.to_thread.run_sync(lambda: watcher.communicate(timeout=60))
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()   # reaped here, not reported by a later test's garbage collection
    assert watcher.returncode == 3, (out, err)
    assert err.strip().splitlines() == ["orchestrator: daemon not reachable (lost the daemon while watching loops). "
                                        "Start it with `orchestrator serve` or `systemctl --user start orchestrator`."]
