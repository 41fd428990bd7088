"""daemon.yaml `curve:`: the daemon's client endpoint on tcp with CURVE — only allow-listed client
keys get in, a client's principal is its key, and wire mode's loopback still works."""
from __future__ import annotations

import pytest

from actors.remote.config import CurveConfig
from actors.remote.keys import generate_key_pair, read_key_file, write_key_file
from orchestrator.client import CLIENT_KEY_VAR, SERVER_KEY_VAR, DaemonUnreachable, open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import EndpointRefused, Paths, check_endpoint
from orchestrator.settings import DaemonSettings, parse_settings_text
from protocol import events as ev
from protocol.errors import RemoteError
from tests.e2e.conftest import run_turn, write_demo_home


def test_a_non_loopback_tcp_endpoint_is_accepted_only_with_curve():
    with pytest.raises(EndpointRefused, match="no authenticated transport"):
        check_endpoint("tcp://0.0.0.0:7556", {"ORCHESTRATOR_ALLOW_TCP": "1"})
    assert check_endpoint("tcp://0.0.0.0:7556", {}, authenticated=True) == "tcp://0.0.0.0:7556"


def test_daemon_yaml_curve_parses_and_names_its_errors():
    settings, errors = parse_settings_text("curve:\n  allow: [keys/me.key]\n  server_key: keys/d.key\n")
    assert errors == [] and settings is not None
    assert settings.curve == CurveConfig(("keys/me.key",), "keys/d.key")
    assert parse_settings_text("curve:\n  allow: []\n  port: 1\n")[1] == [
        "daemon.yaml:2: curve.allow: expected a non-empty list of public keys or key files",
        "daemon.yaml:3: curve.port: unknown setting (known: allow, server_key)"]


@pytest.fixture(params=[False, True], ids=["local", "wire"])
async def curve_daemon(request, nursery, short_tmp, server_pair, worker_pair):
    home = short_tmp / "home"
    write_demo_home(home)
    # The worker fixture's key pair stands in for an allowed client here.
    settings = DaemonSettings(shutdown_grace_s=1.0,
                              curve=CurveConfig((worker_pair[1].public.decode(),), str(server_pair[0])))
    d = Daemon(Paths(home, short_tmp / "state", "tcp://127.0.0.1:*"), settings, wire_mode=request.param,
               demo_chunk_delay=0.001)
    await nursery.start(d.run)
    yield d
    d.request_stop("test over")


async def test_an_allowed_client_key_runs_turns_and_owns_its_sessions_across_connections(
        curve_daemon, monkeypatch, server_pair, worker_pair, short_tmp):
    monkeypatch.setenv(CLIENT_KEY_VAR, str(worker_pair[0]))
    monkeypatch.setenv(SERVER_KEY_VAR, server_pair[1].public.decode())
    endpoint = curve_daemon.node.endpoint
    async with open_client(endpoint) as client:
        info = await client.open_session()
        _, events = await run_turn(client, info.session_id, "hello over curve")
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    async with open_client(endpoint) as again:   # a new connection, the same key: the same principal
        state = await again.show_model(info.session_id)
    assert state is not None
    other = short_tmp / "other.key"
    write_key_file(other, generate_key_pair())
    curve_daemon.node.curve.policy.allowed |= {read_key_file(other).public}
    monkeypatch.setenv(CLIENT_KEY_VAR, str(other))
    async with open_client(endpoint) as stranger:   # another allowed key is another principal
        with pytest.raises(RemoteError, match="belongs to another user or connection"):
            await stranger.show_model(info.session_id)


async def test_a_client_without_an_allowed_key_is_refused(curve_daemon, monkeypatch, server_pair, short_tmp):
    endpoint = curve_daemon.node.endpoint
    monkeypatch.delenv(CLIENT_KEY_VAR, raising=False)
    with pytest.raises(DaemonUnreachable):
        async with open_client(endpoint, timeout=1.0):
            pass
    stranger = short_tmp / "stranger.key"
    write_key_file(stranger, generate_key_pair())
    monkeypatch.setenv(CLIENT_KEY_VAR, str(stranger))
    monkeypatch.setenv(SERVER_KEY_VAR, server_pair[1].public.decode())
    with pytest.raises(DaemonUnreachable):
        async with open_client(endpoint, timeout=1.0):
            pass
    assert curve_daemon.node.curve.policy.refused >= 1
    assert curve_daemon.node.bad_frames == 0 and curve_daemon.node.forbidden_frames == 0


def test_a_client_key_setting_that_cannot_work_is_named_not_blamed_on_the_daemon(short_tmp):
    import os
    import subprocess
    import sys

    key = short_tmp / "client.key"
    write_key_file(key, generate_key_pair())
    base = {**os.environ, "ORCHESTRATOR_ENDPOINT": "tcp://127.0.0.1:9", "ORCHESTRATOR_HOME": str(short_tmp),
            "ORCHESTRATOR_STATE": str(short_tmp / "state"), CLIENT_KEY_VAR: str(key)}
    for env, says in (({**base, SERVER_KEY_VAR: ""}, f"{SERVER_KEY_VAR} (the daemon's public key) is not"),
                      ({**base, SERVER_KEY_VAR: str(short_tmp / "missing.key")}, "cannot read key file")):
        out = subprocess.run([sys.executable, "-m", "orchestrator", "status"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 1, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr
        assert "orchestrator serve" not in out.stderr       # the daemon is not the problem
