"""A ROUTER with a park policy: a peer that stops reading neither loses messages silently nor holds
up the other peers; what the policy keeps arrives in order once the peer reads again."""
from __future__ import annotations

import pytest
import trio
import zmq

from protocol.transport import ipc_endpoint, open_zmq_socket


class KeepAll:
    def __init__(self) -> None:
        self.parked: list[bytes] = []
        self.gone_peers: list[bytes] = []

    def park(self, frames: list[bytes], waiting: int) -> list[list[bytes]]:
        self.parked.append(frames[-1])
        return [frames]

    def gone(self, routing_id: bytes) -> None:
        self.gone_peers.append(routing_id)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


async def _hello(sock, router) -> bytes:
    await sock.send([b"hi"])
    rid, _ = await router.receive()
    return rid


async def test_a_peer_that_stops_reading_is_parked_while_others_are_served(ctx, short_tmp):
    endpoint = ipc_endpoint(short_tmp)
    policy = KeepAll()
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=endpoint, options={zmq.SNDHWM: 10}, park=policy) as router, \
            open_zmq_socket(ctx, zmq.DEALER, connect=endpoint, options={zmq.RCVHWM: 10},
                            receive_buffer=1) as slow, \
            open_zmq_socket(ctx, zmq.DEALER, connect=endpoint) as fast:
        slow_id, fast_id = await _hello(slow, router), await _hello(fast, router)
        total = 2000
        with trio.fail_after(30):
            for i in range(total):
                await router.send([slow_id, b"%d" % i])
                await router.send([fast_id, b"%d" % i])
            got_fast = [int((await fast.receive())[-1]) for _ in range(total)]
            assert got_fast == list(range(total))  # never held up by the slow peer
            # The slow peer's pipe did fill up. (Whether some are still parked right now depends on
            # how much the kernel's socket buffer took meanwhile: not asserted.)
            assert policy.parked
            got_slow = [int((await slow.receive())[-1]) for _ in range(total)]
        assert got_slow == list(range(total))  # parked, not dropped: in order once it read again
        with trio.fail_after(10):
            while router.parked:
                await trio.sleep(0.01)


async def test_messages_for_a_peer_that_left_are_dropped_and_reported(ctx, short_tmp):
    endpoint = ipc_endpoint(short_tmp)
    policy = KeepAll()
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=endpoint, park=policy) as router:
        async with open_zmq_socket(ctx, zmq.DEALER, connect=endpoint) as peer:
            rid = await _hello(peer, router)
        with trio.fail_after(10):
            while not policy.gone_peers:  # ZeroMQ notices the disconnect asynchronously
                await router.send([rid, b"anyone there?"])
                await trio.sleep(0.01)
        assert policy.gone_peers[0] == rid and router.parked == 0
        await router.send([b"never-connected", b"x"])  # an unknown peer does not take the socket down
        assert not router.closed
