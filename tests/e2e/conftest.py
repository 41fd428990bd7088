"""A real daemon on a temporary home, once in-process delivery and once with every inter-actor
message forced through ZeroMQ + msgpack (wire mode)."""
from importlib import resources
import os
from pathlib import Path

import pytest

from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings


def write_demo_home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    for name in ("models.yaml", "routing.yaml"):
        (home / name).write_text(resources.files("orchestrator").joinpath("demo_config", name).read_text())


@pytest.fixture
def home(short_tmp):
    h = short_tmp / "home"
    write_demo_home(h)
    return h


@pytest.fixture
def paths(short_tmp, home):
    return Paths(home, short_tmp / "state", f"ipc://{short_tmp / 'd.sock'}")


@pytest.fixture(params=[False, True], ids=["local", "wire"])
def wire_mode(request):
    return request.param


@pytest.fixture
async def daemon(request, nursery, paths, wire_mode):
    marker = request.node.get_closest_marker("chunk_delay")
    delay = marker.args[0] if marker else 0.002
    d = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0), wire_mode=wire_mode, demo_chunk_delay=delay)
    await nursery.start(d.run)
    yield d
    d.request_stop("test over")


@pytest.fixture
async def client(daemon):
    async with open_client(daemon.paths.endpoint) as c:
        yield c


async def run_turn(client, session_id, text, **kw):
    events = []
    async with client.turn(session_id, text, **kw) as turn:
        async for e in turn:
            events.append(e)
    return turn, events


@pytest.fixture
def env(short_tmp):
    home = short_tmp / "home"
    write_demo_home(home)
    e = dict(os.environ)
    e.update(ORCHESTRATOR_HOME=str(home), ORCHESTRATOR_STATE=str(short_tmp / "state"),
             ORCHESTRATOR_ENDPOINT=f"ipc://{short_tmp}/d.sock")
    return e
