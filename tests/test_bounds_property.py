"""Property: random *well-formed* messages of every tag, with random field values, sent by a client
to a running daemon (`orchestrator serve`, a real ipc socket) never restart an actor, never stop
the daemon answering `status`, and leave nothing spinning once they are answered."""
from __future__ import annotations

import enum
import os
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import attrs
import pytest
import trio
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.codec import Envelope, decode, encode
from protocol.messages import TAGS, GetStatus, Ping, Pong, StatusReport
from tests.e2e.conftest import write_demo_home

PY = sys.executable
ACTORS = ("session", "control", "cost", "router", "planner", "worker", "availability", "nobody")

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                     max_leaves=60)


def _deep(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"k": value}
    return value


_maps = st.one_of(st.dictionaries(st.text(max_size=10), _json, max_size=5),
                  st.integers(30, 400).map(_deep))


@st.composite
def _for_type(draw, tp):
    origin = typing.get_origin(tp)
    if tp is type(None):
        return None
    if origin in (typing.Union, types.UnionType):
        return draw(st.one_of(*[_for_type(arg) for arg in typing.get_args(tp)]))
    if origin is tuple:
        args = typing.get_args(tp)
        return tuple(draw(st.lists(_for_type(args[0]), max_size=3)))
    if tp is typing.Any:
        return draw(_json)
    if tp is dict or origin is dict:
        return draw(_maps)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return draw(st.sampled_from(list(tp)))
    if tp is bool:
        return draw(st.booleans())
    if tp is int:
        return draw(st.one_of(st.integers(-5, 5), st.integers(-(2**63), 2**64 - 1)))
    if tp is float:
        return draw(st.floats(allow_nan=True, allow_infinity=True))
    if tp is str:
        return draw(st.one_of(st.text(max_size=30), st.sampled_from(["NaN", "abc", "-1", "1e400", ""]),
                              st.integers(300, 20_000).map(lambda n: "x" * n)))
    if tp is bytes:
        return draw(st.binary(max_size=50))
    if attrs.has(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{a.name: draw(_for_type(hints[a.name])) for a in attrs.fields(tp) if a.init})
    raise NotImplementedError(tp)


def _payload(cls: type) -> st.SearchStrategy[bytes | None]:
    @st.composite
    def build(draw):
        body = draw(_for_type(cls))
        recipient = draw(st.sampled_from(ACTORS))
        try:
            return encode(Envelope(body, recipient, "prop/client"))
        except (ValueError, OverflowError, TypeError):
            return None  # not packable (nesting beyond msgpack's limit): not a well-formed frame
    return build()


messages = st.one_of(*[_payload(cls) for cls in TAGS.values()])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _exchange(endpoint: str, payloads: list[bytes]) -> StatusReport:
    """Send everything, then a Ping as a barrier; return the daemon's status afterwards."""
    from protocol.transport import open_zmq_socket

    async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=endpoint) as sock:
        for p in payloads:
            await sock.send([p])
        barrier = Envelope(Ping(b"barrier"), "control", "prop/client")
        await sock.send([encode(barrier)])
        status_req = Envelope(GetStatus(), "control", "prop/client")
        with trio.fail_after(60):
            while True:
                env = decode((await sock.receive())[-1])
                if env.correlation_id == barrier.msg_id:
                    assert env.body == Pong(b"barrier")
                    break
            await sock.send([encode(status_req)])
            while True:
                env = decode((await sock.receive())[-1])
                if env.correlation_id == status_req.msg_id:
                    assert isinstance(env.body, StatusReport), env.body
                    return env.body


@pytest.fixture(params=[[], ["--wire-mode"]], ids=["local", "wire"])
def serve(short_tmp, request):
    home = short_tmp / "home"
    write_demo_home(home)
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_STATE": str(short_tmp / "state"),
           "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/d.sock"}
    log = open(short_tmp / "daemon.log", "w")
    proc = subprocess.Popen([PY, "-m", "orchestrator", "serve", *request.param], env=env, stdout=log, stderr=log)
    endpoint = env["ORCHESTRATOR_ENDPOINT"]
    deadline = time.monotonic() + 30
    while not os.path.exists(endpoint[len("ipc://"):]):
        assert proc.poll() is None and time.monotonic() < deadline, (short_tmp / "daemon.log").read_text()
        time.sleep(0.05)
    yield proc, endpoint
    proc.terminate()
    proc.wait(15)
    log.close()


def test_random_well_formed_messages_never_restart_an_actor_or_leave_the_daemon_busy(serve):
    proc, endpoint = serve

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(messages, min_size=1, max_size=12))
    def batch(payloads):
        status = trio.run(_exchange, endpoint, [p for p in payloads if p is not None])
        assert isinstance(status, StatusReport)
        assert {name: a["restarts"] for name, a in status.actors.items() if a["restarts"]} == {}

    batch()
    assert proc.poll() is None
    # Turns the random StartTurns began run out (demo model: about a second); then the daemon idles.
    deadline = time.monotonic() + 60
    while (status := trio.run(_exchange, endpoint, [])).turns_running:
        assert time.monotonic() < deadline, "turns never finished"
        time.sleep(0.2)
    before = _cpu_seconds(proc.pid)
    time.sleep(1.0)
    busy = _cpu_seconds(proc.pid) - before
    assert busy < 0.3, f"the idle daemon used {busy:.2f} s of CPU in one second"
    assert all(a["restarts"] == 0 and a["status"] == "running" for a in status.actors.values()), status.actors
