"""Two `orchestrator serve` processes on one PostgreSQL database (issue 19, "Done when")."""
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.runtime import lease
from actors.runtime.store import Store

PY = sys.executable
BUDGET_RULE = '  - {name: "fleet budget", when: {cost_today_exceeds_usd: 0.00000001}, use: demo:swift}\n'


def cli(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "orchestrator", *args], env=env, capture_output=True, text=True, timeout=timeout)


def start(env: dict, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        proc = subprocess.Popen([PY, "-m", "orchestrator", "serve"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while cli(env, "status").returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"daemon did not start: {log.read_text()}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def fleet(env, pg_url, short_tmp) -> Iterator[tuple[dict, dict, list]]:
    """Environments of daemons A and B on one database; started processes are stopped. Leases last
    3 s: a 1 s lease can lapse on a loaded machine while A still runs."""
    base = {**env, "ORCHESTRATOR_STATE": pg_url, "ORCHESTRATOR_LEASE_TTL_S": "3"}
    a = {**base, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/a.sock"}
    b = {**base, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/b.sock"}
    procs: list[subprocess.Popen] = []
    yield a, b, procs
    for p in procs:
        stop(p)


def ask(env: dict, session: str, text: str) -> list[dict]:
    out = cli(env, "ask", "--session", session, "--json", text)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def chosen(events: list[dict]) -> str:
    return next(e["chosen_model"] for e in events if e["type"] == "route.decided")


def test_the_budget_rule_on_b_fires_on_spend_recorded_by_a(fleet, short_tmp):
    a, b, procs = fleet
    routing = Path(a["ORCHESTRATOR_HOME"]) / "routing.yaml"
    routing.write_text(routing.read_text().replace("rules:\n", "rules:\n" + BUDGET_RULE, 1))
    procs.append(start(a, short_tmp / "a.log"))
    procs.append(start(b, short_tmp / "b.log"))
    first = ask(a, "s_a", "hello")            # nothing spent anywhere yet: the default model
    assert chosen(first) == "demo:steady" and float(first[-1]["usage"]["cost_usd"]) > 0
    on_b = ask(b, "s_b", "hello")             # B has spent nothing itself: A's spend trips the rule
    assert chosen(on_b) == "demo:swift"
    trace = json.loads(cli(b, "trace", on_b[-1]["turn_id"], "--json").stdout)
    assert "fleet budget" in json.dumps(trace)
    today_a = json.loads(cli(a, "cost", "--json").stdout)["total_usd"]
    today_b = json.loads(cli(b, "cost", "--json").stdout)["total_usd"]
    assert today_a == today_b                 # both see the fleet's ledger


def test_a_session_moves_to_b_after_a_is_killed_mid_turn(fleet, short_tmp, pg_url):
    a, b, procs = fleet
    models = Path(a["ORCHESTRATOR_HOME"]) / "models.yaml"
    procs.append(start(a, short_tmp / "a.log"))
    procs.append(start(b, short_tmp / "b.log"))
    ask(a, "s_moved", "remember the word kumquat")
    refused = cli(b, "ask", "--session", "s_moved", "hello?")
    assert refused.returncode == 1 and "served by another daemon" in refused.stderr, refused.stderr

    fast = models.read_text()   # A's next turn streams slowly, so it is running when A dies
    models.write_text(fast.replace("demo: {kind: demo}", "demo: {kind: demo, options: {chunk_delay: 0.2}}"))
    slow = subprocess.Popen([PY, "-m", "orchestrator", "ask", "--session", "s_moved", "--json", "a long answer"],
                            env=a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while json.loads(cli(a, "status", "--json").stdout)["turns_running"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    procs[0].kill()                           # kill -9: no clean hand-over, the lease must lapse
    procs[0].wait(10)
    slow.wait(30)
    models.write_text(fast)

    deadline = time.monotonic() + 30
    while (out := cli(b, "ask", "--session", "s_moved", "--json", "what was the word?")).returncode != 0:
        assert "served by another daemon" in out.stderr, out.stderr
        assert time.monotonic() < deadline, "B never took the session over"
        time.sleep(0.2)
    store = Store(pg_url)
    with contextlib.closing(store):
        owner = lease.holder(store, "session", "s_moved", time.time())
        assert owner is not None and f":{procs[1].pid}:" in owner
        statuses = [r[0] for r in store._query("SELECT status FROM turns WHERE session_id=? ORDER BY started_at",
                                               ("s_moved",))]
        assert statuses == ["completed", "interrupted", "completed"]   # A's dead turn closed by B
        texts = [m.text for m in store.load_messages("s_moved")]
        assert texts[0] == "remember the word kumquat" and texts[-2] == "what was the word?"
