"""The CLI against a real `orchestrator serve` process, as a user runs it."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path



PY = sys.executable


def cli(env, *args, timeout=60, input=None):
    return subprocess.run([PY, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, input=input)


def start_daemon(env):
    log = open(env["ORCHESTRATOR_STATE"] + ".log", "a")
    proc = subprocess.Popen([PY, "-m", "orchestrator", "serve"], env=env, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if cli(env, "status").returncode == 0:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited: {open(env['ORCHESTRATOR_STATE'] + '.log').read()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("daemon did not become ready")


def stop_daemon(proc, sig=signal.SIGTERM, timeout=15):
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


@contextlib.contextmanager
def running_daemon(env):
    proc = start_daemon(env)
    try:
        yield proc
    finally:
        stop_daemon(proc)


def test_ask_json_prints_one_object_per_event_ending_in_turn_completed(env):
    proc = start_daemon(env)
    try:
        out = cli(env, "ask", "--json", "hello")
        assert out.returncode == 0, out.stderr
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        types = [e["type"] for e in lines]
        assert types[0] == "route.decided" and types[1] == "turn.started"
        assert "text.delta" in types and types[-1] == "turn.completed"
        assert lines[-1]["usage"]["input_tokens"] > 0 and "cost_usd" in lines[-1]["usage"]
        trace = cli(env, "trace", lines[0]["turn_id"])
        assert trace.returncode == 0 and "Chose: demo:steady (global default)" in trace.stdout
    finally:
        assert stop_daemon(proc) == 0


def test_sigterm_during_a_turn_exits_zero_and_history_survives_a_restart(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    (home / "daemon.yaml").write_text("shutdown_grace_s: 1.0\n")
    models = home / "models.yaml"
    fast_config = models.read_text()
    proc = start_daemon(env)
    assert cli(env, "ask", "--session", "s_keep", "--json", "first question").returncode == 0
    # Hot reload: the next turn streams slowly enough to still be running at SIGTERM.
    models.write_text(fast_config.replace("demo: {kind: demo}", "demo: {kind: demo, options: {chunk_delay: 0.2}}"))
    slow = subprocess.Popen([PY, "-m", "orchestrator", "ask", "--session", "s_keep", "--json", "second question"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while json.loads(cli(env, "status", "--json").stdout)["turns_running"] < 1:
        assert time.monotonic() < deadline, "the second turn never started"
        time.sleep(0.05)
    t0 = time.monotonic()
    assert stop_daemon(proc) == 0
    assert time.monotonic() - t0 < 10
    slow_out, _ = slow.communicate(timeout=10)
    models.write_text(fast_config)
    last = json.loads(slow_out.splitlines()[-1])
    assert last["type"] == "turn.cancelled" and last["reason"] == "daemon_shutdown"
    with running_daemon(env):
        out = cli(env, "ask", "--session", "s_keep", "--json", "third question")
        assert out.returncode == 0, out.stderr
        show = cli(env, "model", "show", "--session", "s_keep", "--json")
        assert show.returncode == 0
    import sqlite3
    db = sqlite3.connect(env["ORCHESTRATOR_STATE"] + "/orchestrator.db")
    request_close = db.close
    roles = [r[0] for r in db.execute("SELECT role FROM messages WHERE session_id='s_keep' ORDER BY seq")]
    assert roles[:2] == ["user", "assistant"] and roles[-2:] == ["user", "assistant"]
    assert roles.count("user") == 3
    statuses = [r[0] for r in db.execute("SELECT status FROM turns WHERE session_id='s_keep' ORDER BY started_at")]
    request_close()
    assert statuses[0] == "completed" and statuses[-1] == "completed" and "running" not in statuses


def test_commands_without_a_daemon_exit_3_with_a_hint(env):
    out = cli(env, "status")
    assert out.returncode == 3
    assert "daemon not reachable" in out.stderr and "orchestrator serve" in out.stderr
    assert out.stderr.count("\n") == 1


def test_usage_errors_exit_2(env):
    assert cli(env, "model", "set").returncode == 2
    assert cli(env, "no-such-command").returncode == 2


def test_serve_refuses_a_non_loopback_tcp_endpoint(env):
    env = {**env, "ORCHESTRATOR_ENDPOINT": "tcp://0.0.0.0:5555"}
    out = cli(env, "serve", timeout=20)
    assert out.returncode == 1 and "non-loopback" in out.stderr


def test_serve_creates_the_socket_folder_private(env, short_tmp):
    env = {**env, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/run/d.sock"}
    with running_daemon(env):
        assert (os.stat(short_tmp / "run").st_mode & 0o777) == 0o700


def test_cost_after_kill_9_mid_turn_equals_the_committed_calls(env):
    from decimal import Decimal

    home = Path(env["ORCHESTRATOR_HOME"])
    models = home / "models.yaml"
    fast_config = models.read_text()
    proc = start_daemon(env)
    completed = []
    for text in ("one", "two"):
        out = cli(env, "ask", "--session", "s_cost", "--json", text)
        completed.append(Decimal(json.loads(out.stdout.splitlines()[-1])["usage"]["cost_usd"]))
    models.write_text(fast_config.replace("demo: {kind: demo}", "demo: {kind: demo, options: {chunk_delay: 0.2}}"))
    slow = subprocess.Popen([PY, "-m", "orchestrator", "ask", "--session", "s_cost", "--json", "three"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while json.loads(cli(env, "status", "--json").stdout)["turns_running"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    _, err = slow.communicate(timeout=20)
    assert slow.returncode == 3 and "lost the daemon" in err   # the client notices, it does not hang
    models.write_text(fast_config)
    with running_daemon(env):
        report = json.loads(cli(env, "cost", "--session", "s_cost", "--json").stdout)
        assert Decimal(report["total_usd"]) == sum(completed)
        assert sum(m["calls"] for m in report["by_model"]) == 2
        assert Decimal(report["by_role"]["planner"]) == sum(completed)
        today = json.loads(cli(env, "cost", "--json").stdout)
        assert Decimal(today["total_usd"]) == sum(completed)
        out = cli(env, "ask", "--session", "s_cost", "--json", "four")   # the session still works
        assert out.returncode == 0


def test_a_second_serve_on_the_same_endpoint_is_refused(env):
    with running_daemon(env):
        second = cli(env, "serve", timeout=30)
        assert second.returncode == 1 and "already serving" in second.stderr
        assert cli(env, "status").returncode == 0   # the first daemon is untouched


def test_demo_runs_offline_and_shows_every_step_of_the_tour(env):
    out = cli(env, "demo", "--fast", timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for expected in ("Chose: demo:steady (global default)", 'Chose: demo:swift (rule "fast for commits")',
                     'Chose: demo:sage (override "@sage")', "Chose: demo:swift (sticky model)",
                     "delegate(tier=fast)", "DELEGATE_REQUEST        chose", "└─ workers:",
                     "Demo finished; the daemon stopped cleanly."):
        assert expected in text, expected


def test_sigterm_to_ask_cancels_the_turn_in_the_daemon_too(env):
    """`timeout 2 orchestrator ask …` killed the client while the daemon ran the turn to its end
    and billed it. SIGTERM (and SIGHUP) now cancel the turn like Ctrl-C."""
    home = Path(env["ORCHESTRATOR_HOME"])
    models = home / "models.yaml"
    slow = "demo: {kind: demo, options: {chunk_delay: 0.2}}"
    models.write_text(models.read_text().replace("demo: {kind: demo}", slow))
    proc = start_daemon(env)
    try:
        ask = subprocess.Popen([PY, "-m", "orchestrator", "ask", "--json", "a long answer please"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = ask.stdout.readline()  # route.decided: the turn is running
        assert json.loads(first)["type"] == "route.decided"
        ask.send_signal(signal.SIGTERM)
        out, err = ask.communicate(timeout=20)
        assert ask.returncode == 130, err
        last = json.loads(out.splitlines()[-1])
        assert last["type"] == "turn.cancelled"
        assert json.loads(cli(env, "status", "--json").stdout)["turns_running"] == 0
    finally:
        assert stop_daemon(proc) == 0
