"""Issue 11 M5: a full disk (any SQLite error) is a clear turn failure, never an actor crash.

The database really refuses writes: ``PRAGMA query_only`` on the store's own connection makes
every write fail inside SQLite (a full disk fails the same statements with "database or disk is
full"; ``test_a_full_database_raises_storage_error`` shows that error reaches the same seam).
"""
import pytest

from actors.runtime.store import StorageError
from protocol import events as ev
from protocol.errors import RemoteError
from protocol.messages import GetHistory, ListSessions

from .conftest import run_turn


def fill_the_disk(store) -> None:
    store.db.execute("PRAGMA query_only = 1")


def free_the_disk(store) -> None:
    store.db.execute("PRAGMA query_only = 0")


def test_a_full_database_raises_storage_error(tmp_path):
    from actors.runtime.store import Store

    store = Store(tmp_path / "s.db")
    db = store.db
    db.execute("CREATE TABLE filler (x BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + 1}")
    with pytest.raises(StorageError, match="database or disk is full"):
        while True:
            db.execute("INSERT INTO filler VALUES (zeroblob(4000))")
    store.close()


async def test_a_full_disk_before_a_turn_fails_it_with_storage_error_and_reads_keep_working(daemon, client):
    sid = (await client.open_session()).session_id
    _, first = await run_turn(client, sid, "remember this")
    fill_the_disk(daemon.store)
    _, events = await run_turn(client, sid, "and this?")
    terminal = events[-1]
    assert isinstance(terminal, ev.TurnFailed) and terminal.error == "storage_error", events
    assert terminal.message.startswith("the database failed: ")
    # Reads still work: history (as stored), listings, traces, status — and nothing restarted.
    history = await client.request("session", GetHistory(sid))
    assert [m.role.value for m in history.messages] == ["user", "assistant"]
    assert sid in [s.session_id for s in (await client.request("session", ListSessions())).sessions]
    assert (await client.trace(first[-1].turn_id)).route.turn_id == first[-1].turn_id
    status = await client.status()
    assert all(a["restarts"] == 0 for a in status.actors.values())
    with pytest.raises(RemoteError) as refused:  # a new session cannot be written: said plainly
        await client.open_session()
    assert refused.value.code == "storage_error"
    free_the_disk(daemon.store)
    _, again = await run_turn(client, sid, "and now?")
    assert isinstance(again[-1], ev.TurnCompleted)


@pytest.mark.chunk_delay(0.01)
async def test_a_disk_that_fills_mid_stream_fails_the_turn_but_the_client_keeps_the_streamed_text(daemon, client):
    sid = (await client.open_session()).session_id
    streamed = []
    async with client.turn(sid, "tell me something long") as turn:
        async for e in turn:
            if isinstance(e, ev.TextDelta):
                if not streamed:
                    fill_the_disk(daemon.store)
                streamed.append(e.text)
    terminal = turn.terminal
    assert isinstance(terminal, ev.TurnFailed) and terminal.error == "storage_error"
    assert "not saved" in terminal.message
    assert terminal.partial_text == "".join(streamed) and terminal.partial_text.startswith("[demo model")
    history = await client.request("session", GetHistory(sid))
    assert [m.role.value for m in history.messages] == ["user"]  # memory mirrors what the store holds
    status = await client.status()
    assert all(a["restarts"] == 0 and a["status"] == "running" for a in status.actors.values())
    free_the_disk(daemon.store)
    _, again = await run_turn(client, sid, "once more")
    assert isinstance(again[-1], ev.TurnCompleted)
