"""A client the daemon's CURVE handshake refuses is told so at once (the DEALER's monitor reports the
failed handshake), not left to wait for a reply that cannot come, nor told the daemon was lost."""
import pytest
import trio

from actors.remote.keys import generate_key_pair, write_key_file
from orchestrator.client import CLIENT_KEY_VAR, SERVER_KEY_VAR, DaemonUnreachable, open_client

from .test_curve_endpoint import curve_daemon  # noqa: F401  (the fixture)


async def test_a_client_whose_key_the_daemon_refuses_is_told_its_handshake_was_refused(
        curve_daemon, monkeypatch, server_pair, short_tmp):  # noqa: F811
    stranger = short_tmp / "stranger.key"
    write_key_file(stranger, generate_key_pair())
    monkeypatch.setenv(CLIENT_KEY_VAR, str(stranger))
    monkeypatch.setenv(SERVER_KEY_VAR, server_pair[1].public.decode())
    with trio.fail_after(20), pytest.raises(DaemonUnreachable, match="refused this client's handshake"):
        # An unbounded wait for the first Ping: only the refusal can end it.
        async with open_client(curve_daemon.node.endpoint, timeout=float("inf")):
            pass
