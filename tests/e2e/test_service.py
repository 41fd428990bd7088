"""systemd integration (sd_notify) and session listing."""
import socket

import trio

from orchestrator.daemon import Daemon
from orchestrator.settings import DaemonSettings
from protocol.messages import ListSessions

from .conftest import run_turn


async def test_daemon_speaks_the_notify_protocol(nursery, paths, short_tmp, monkeypatch):
    sock_path = str(short_tmp / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", sock_path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s → a ping every 0.1 s
    received = []

    async def collect():
        while True:
            await trio.lowlevel.wait_readable(sock)
            received.append(sock.recv(4096).decode())

    nursery.start_soon(collect)
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=0.5))
    async with trio.open_nursery() as inner:
        await inner.start(daemon.run)
        await trio.sleep(0.35)
        assert any(m.startswith("READY=1") for m in received)
        assert sum(m == "WATCHDOG=1" for m in received) >= 2
        daemon.request_stop("test")
    await trio.sleep(0.05)
    assert "STOPPING=1" in received
    ready_at = next(i for i, m in enumerate(received) if m.startswith("READY=1"))
    assert received.index("STOPPING=1") > ready_at
    sock.close()


async def test_worker_sessions_are_hidden_from_listings_unless_asked_for(client):
    info = await client.open_session()
    _, events = await run_turn(client, info.session_id, "Please delegate: count to three")
    assert any(type(e).__name__ == "DelegateCompleted" for e in events)
    visible = await client.request("session", ListSessions())
    everything = await client.request("session", ListSessions(include_workers=True))
    assert [s.session_id for s in visible.sessions] == [info.session_id]
    workers = [s for s in everything.sessions if s.parent_session_id == info.session_id]
    assert len(workers) == 1


async def test_sighup_forces_a_reload_even_when_the_stat_looks_unchanged(daemon, client, home):
    import os
    import signal

    routing = home / "routing.yaml"
    before = os.stat(routing)
    text = routing.read_text()
    edited = text.replace('"^/commit|write.*commit message"', '"^/ship|write.*commit messagexx"')
    assert len(edited) == len(text)
    routing.write_text(edited)
    os.utime(routing, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime: no stat change
    info = await client.open_session()
    _, events = await run_turn(client, info.session_id, "/ship it")
    assert events[0].chosen_model == "demo:steady"      # the cached parse is still in use
    os.kill(os.getpid(), signal.SIGHUP)
    with trio.fail_after(5):
        while True:
            _, events = await run_turn(client, info.session_id, "/ship it")
            if events[0].chosen_model == "demo:swift":
                break
            await trio.sleep(0.05)
