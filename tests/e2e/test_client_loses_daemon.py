"""A client request in flight when the daemon process dies is failed as soon as the connection
drops, not after its timeout (the client watches its connection with a ZeroMQ socket monitor)."""
import math
import signal

import pytest
import trio

from orchestrator.client import DaemonUnreachable, open_client
from protocol.messages import GetStatus

from .test_cli_process import start_daemon


async def test_a_request_in_flight_when_the_daemon_process_dies_fails_without_waiting_for_its_timeout(env):
    proc = await trio.to_thread.run_sync(start_daemon, env)
    try:
        async with open_client(env["ORCHESTRATOR_ENDPOINT"]) as client:
            proc.send_signal(signal.SIGSTOP)   # connected, but answering nothing: the request stays in flight
            async with trio.open_nursery() as n:
                async def kill_once_sent() -> None:
                    while not client._pending:
                        await trio.sleep(0.01)
                    proc.kill()

                n.start_soon(kill_once_sent)
                with trio.fail_after(20), pytest.raises(DaemonUnreachable, match="lost the daemon"):
                    await client.request("control", GetStatus(), timeout=math.inf)
    finally:
        proc.kill()
        await trio.to_thread.run_sync(proc.wait)
