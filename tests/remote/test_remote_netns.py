"""Issue 19's Done-when on two simulated hosts: `orchestrator serve` in network namespace A and
`orchestrator worker` in namespace B, joined by a veth pair (10.77.0.1/24 ↔ 10.77.0.2/24), over
tcp + CURVE. A workspace turn's tool runs on the worker; a worker whose key is not allowed is
refused; `kill -9` of the worker fails the running tool call with `worker_lost`.

Where namespaces cannot be created (no iproute2, no privilege; or ORCHESTRATOR_TEST_NETNS=off) the
same tests run both processes on plain loopback and print that they did. The client talks to the
daemon over its ipc socket: the namespaces share the filesystem.

The fake provider listens on the test's own loopback, which namespace A cannot reach: a small
relay listens on A's loopback (its socket is created by a thread that entered A) and forwards to it.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from protocol import events as ev
from tests.fakes import Answer

from .conftest import (
    LONG_COMMAND, REPO, WorkerProcess, check_a_turns_tool_runs_on, key_file, spawn, start_worker_process,
    stop_worker_process, turn_with_long_remote_command, worker_argv,
)

DAEMON_IP, WORKER_IP, NETNS_PORT = "10.77.0.1", "10.77.0.2", 7555
CLONE_NEWNET = 0x40000000
MODELS = """
providers:
  loc: {{kind: openai_compatible, base_url: "{url}", api_key_env: null}}
models:
  "loc:m": {{tier: balanced, can_delegate: true}}
"""
ROUTING = "schema_version: 1\nglobal_default: loc:m\ntiers: {fast: loc:m, balanced: loc:m, deep: loc:m}\n"
DAEMON_YAML = """shutdown_grace_s: 1
workers:
  listen: "{listen}"
  server_key: {server_key}
  allow: ["{allowed}"]
  heartbeat_s: 0.5
  pools: [build]
"""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def _netns_unavailable() -> str | None:
    """None when `ip netns add` works here, else why not (probed once per test run)."""
    if os.environ.get("ORCHESTRATOR_TEST_NETNS") == "off":   # to exercise the fallback on purpose
        return "ORCHESTRATOR_TEST_NETNS=off"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"orch-probe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    _ip("netns", "del", probe)
    return None


class Hosts:
    """Where the daemon and the worker run: two namespaces, or (fallback) plain loopback."""

    def __init__(self, daemon_ns: str | None, worker_ns: str | None, daemon_ip: str, port: int):
        self.daemon_ns, self.worker_ns = daemon_ns, worker_ns
        self.endpoint = f"tcp://{daemon_ip}:{port}"

    @staticmethod
    def prefix(ns: str | None) -> list[str]:
        return ["ip", "netns", "exec", ns] if ns else []


@pytest.fixture(scope="module")
def netns_unavailable() -> str | None:
    return _netns_unavailable()


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hosts(netns_unavailable: str | None) -> Iterator[Hosts]:
    if netns_unavailable is not None:
        print(f"\nnetwork namespaces unavailable ({netns_unavailable}): running both processes on loopback")
        yield Hosts(None, None, "127.0.0.1", _free_loopback_port())
        return
    tag = uuid.uuid4().hex[:6]
    a, b = f"orch-a-{tag}", f"orch-b-{tag}"
    veth_a, veth_b = f"oa{tag}", f"ob{tag}"
    steps = [
        ("netns", "add", a), ("netns", "add", b),
        ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
        ("link", "set", veth_a, "netns", a), ("link", "set", veth_b, "netns", b),
        ("-n", a, "addr", "add", f"{DAEMON_IP}/24", "dev", veth_a),
        ("-n", b, "addr", "add", f"{WORKER_IP}/24", "dev", veth_b),
        ("-n", a, "link", "set", veth_a, "up"), ("-n", b, "link", "set", veth_b, "up"),
        ("-n", a, "link", "set", "lo", "up"), ("-n", b, "link", "set", "lo", "up"),
    ]
    try:
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr.strip()}"
        print(f"\nnetwork namespaces {a} ({DAEMON_IP}) and {b} ({WORKER_IP}) joined by a veth pair")
        yield Hosts(a, b, DAEMON_IP, NETNS_PORT)
    finally:
        for ns in (a, b):   # deleting a namespace deletes its end of the veth pair, and the pair with it
            _ip("netns", "del", ns)
        _ip("link", "del", veth_a)   # only if it never moved into A


def _listen_in(ns: str | None) -> socket.socket:
    """A listening socket on the loopback of namespace ``ns`` (or of this one)."""
    if ns is None:
        return socket.create_server(("127.0.0.1", 0))
    made: list[socket.socket | BaseException] = []

    def enter_and_listen() -> None:   # a throwaway thread: entering A changes only this thread
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{ns}") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns}")
            made.append(socket.create_server(("127.0.0.1", 0)))
        except BaseException as exc:  # noqa: BLE001 — handed to the caller
            made.append(exc)

    thread = threading.Thread(target=enter_and_listen)
    thread.start()
    thread.join(timeout=30)
    assert made, f"no listening socket in namespace {ns}"
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _relay(listener: socket.socket, target_port: int) -> None:
    async def forward(client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", target_port) as upstream:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, client, upstream)
                nursery.start_soon(_pump, upstream, client)

    sock = trio.socket.from_stdlib_socket(listener)
    await trio.serve_listeners(forward, [trio.SocketListener(sock)])


@pytest.fixture
async def provider_url(nursery, fake, hosts: Hosts) -> str:
    """The fake provider's base URL as seen from the daemon's host."""
    if hosts.daemon_ns is None:
        return str(fake.base_url)
    listener = _listen_in(hosts.daemon_ns)
    port = listener.getsockname()[1]
    nursery.start_soon(_relay, listener, fake._server.port)
    return str(fake.base_url).replace(f":{fake._server.port}/", f":{port}/")


@pytest.fixture
async def served(short_tmp: Path, hosts: Hosts, provider_url: str) -> AsyncIterator[tuple[str, Path, bytes]]:
    """`orchestrator serve` on the daemon's host: (its ipc endpoint, the worker's key file, its public key)."""
    home, state = short_tmp / "home", short_tmp / "state"
    home.mkdir()
    worker_key = short_tmp / "worker.key"
    server_public = key_file(home / "server.key")[1].public
    (home / "models.yaml").write_text(MODELS.format(url=provider_url))
    (home / "routing.yaml").write_text(ROUTING)
    (home / "daemon.yaml").write_text(DAEMON_YAML.format(
        listen=hosts.endpoint, server_key=home / "server.key", allowed=key_file(worker_key)[1].public.decode()))
    endpoint = f"ipc://{short_tmp}/d.sock"
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCHESTRATOR_HOME": str(home),
           "ORCHESTRATOR_STATE": str(state), "ORCHESTRATOR_ENDPOINT": endpoint}
    proc = spawn([*Hosts.prefix(hosts.daemon_ns), sys.executable, "-m", "orchestrator", "serve"], short_tmp, env)
    try:
        with trio.move_on_after(60) as waited:
            while not (short_tmp / "d.sock").exists() and proc.poll() is None:
                await trio.sleep(0.05)
        if waited.cancelled_caught or proc.poll() is not None:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"`orchestrator serve` did not come up within 60 s: {err[-2000:]!r}")
        yield endpoint, worker_key, server_public
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
async def worker(served, hosts: Hosts, short_tmp: Path) -> AsyncIterator[WorkerProcess]:
    """`orchestrator worker` on the worker's host, connected (it printed its "connected" line)."""
    _, key, server_public = served
    started = await start_worker_process(hosts.endpoint, key, server_public, short_tmp / "worker", mark="on-host-b",
                                         prefix=Hosts.prefix(hosts.worker_ns))
    try:
        yield started
    finally:
        stop_worker_process(started)


async def test_across_namespaces_a_turns_tool_runs_on_the_worker_host(served, worker, fake, workspace):
    await check_a_turns_tool_runs_on(served[0], fake, workspace, worker, "on-host-b")


async def test_across_namespaces_a_worker_with_a_key_not_allowed_is_refused(
        served, worker, hosts: Hosts, short_tmp: Path):
    # The allowed worker connected from the same host over the same path: the refusal is the key's.
    _, _, server_public = served
    stranger = short_tmp / "stranger.key"
    key_file(stranger)
    argv = worker_argv(hosts.endpoint, stranger, server_public, hello_timeout="2", prefix=Hosts.prefix(hosts.worker_ns))
    result = await trio.run_process(argv, capture_stdout=True,
                                    capture_stderr=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    err = result.stderr.decode().strip()
    assert result.returncode == 1, err
    assert err.startswith(f"orchestrator: no answer from {hosts.endpoint}") and "refused this worker's key" in err
    assert len(err.splitlines()) == 1 and result.stdout == b""
    assert worker.proc.poll() is None


async def test_across_namespaces_kill_9_of_the_worker_fails_the_running_tool_call_with_worker_lost(
        served, worker, fake, workspace):
    fake.script(Answer(text=(), tool_calls=(LONG_COMMAND,)))

    async def kill_9(client, turn, command_pid: int) -> None:
        os.kill(worker.pid, signal.SIGKILL)

    call = await turn_with_long_remote_command(served[0], workspace, "run something long", kill_9)
    failed = call.events[-1]
    assert isinstance(failed, ev.TurnFailed), failed
    assert failed.error == "worker_lost"
    assert "remote worker w1 (pool 'build'" in failed.message
    assert "was lost (no heartbeat for 1.5 s) while running tool run_command" in failed.message
