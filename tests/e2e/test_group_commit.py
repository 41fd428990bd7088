"""Group commit: a turn's writes go to SQLite in one transaction per phase, off the event loop —
and a turn the client saw complete is on disk, even if the daemon is killed right after."""
import json
from pathlib import Path

from actors.runtime.store import Store

from .test_cli_process import cli, start_daemon


def test_a_completed_turn_is_on_disk_when_the_daemon_is_killed_right_after(env):
    proc = start_daemon(env)
    try:
        out = cli(env, "ask", "--session", "s_durable", "--json", "remember the number 42")
        events = [json.loads(line) for line in out.stdout.splitlines()]
        assert events[-1]["type"] == "turn.completed", out.stdout + out.stderr
    finally:
        proc.kill()  # SIGKILL: no shutdown path, nothing flushed on the way out
        proc.wait(10)
    turn_id = events[-1]["turn_id"]
    store = Store(Path(env["ORCHESTRATOR_STATE"]) / "orchestrator.db")
    try:
        assert store.interrupted_turns() == []
        assert store.turn_count("s_durable") == 1
        messages = store.load_messages("s_durable")
        assert [m.role.value for m in messages] == ["user", "assistant"]
        assert messages[0].text == "remember the number 42"
        streamed = "".join(e["text"] for e in events if e["type"] == "text.delta")
        assert messages[1].text == streamed  # every byte the client saw, in order, and nothing else
        types = [e["type"] for e in store.events(turn_id=turn_id)]
        assert "turn.started" in types and types[-1] == "turn.completed"
        facts = store.turn_facts(turn_id)
        assert facts is not None and facts.session_id == "s_durable"
    finally:
        store.close()
