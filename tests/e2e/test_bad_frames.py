"""Hostile input on the daemon's socket gets error replies; the daemon keeps serving."""
import random

import msgpack
import trio
import zmq

from protocol.codec import decode
from protocol.messages import Failure
from protocol.transport import open_zmq_socket


async def test_thousands_of_random_frames_each_get_an_error_reply_and_the_daemon_keeps_serving(daemon, client):
    rng = random.Random(1234)
    frames = []
    for i in range(3000):
        kind = i % 4
        if kind == 0:
            frames.append(rng.randbytes(rng.randint(0, 200)))                         # not msgpack (mostly)
        elif kind == 1:
            frames.append(msgpack.packb([1, 0, "no.such.tag", f"m{i}", None, "x/y", "session", {}]))
        elif kind == 2:
            frames.append(msgpack.packb([9, 0, "ping", f"m{i}", None, "x/y", "control", {}]))  # newer major
        else:
            frames.append(msgpack.packb([1, 0, "turn.start", f"m{i}", None, "x/y", "session", {"text": 5}]))
    frames.append(b"\x00" * (16 * 1024 * 1024 + 10))                                 # oversized
    codes = []
    async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=daemon.paths.endpoint) as sock:
        async def send_all():
            for f in frames:
                await sock.send([f])

        async with trio.open_nursery() as n:
            n.start_soon(send_all)
            with trio.fail_after(60):
                while len(codes) < len(frames):
                    reply = decode((await sock.receive())[-1])
                    assert isinstance(reply.body, Failure)
                    codes.append(reply.body.code)
    assert {"not_msgpack", "unknown_tag", "unsupported_version", "malformed_frame", "frame_too_large"} <= set(codes)
    assert daemon.node.bad_frames == len(frames)
    status = await client.status()
    assert status.accepting_turns
