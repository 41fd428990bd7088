"""A client that speaks our codec over a bare DEALER and writes whatever it likes into a frame —
the way an adversary would, without the politeness of ``orchestrator.client``."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio
import zmq

from protocol.codec import Envelope, decode, encode, new_id
from protocol.transport import ZmqSocket, open_zmq_socket


class RawClient:
    def __init__(self, sock: ZmqSocket):
        self.sock = sock
        self.inbox: list[Envelope] = []

    async def send(self, body: Any, recipient: str, *, sender: str = "mallory/client",
                   correlation_id: str | None = None) -> str:
        env = Envelope(body, recipient, sender, new_id(), correlation_id)
        await self.sock.send([encode(env)])
        return env.msg_id

    async def send_raw(self, payload: bytes) -> None:
        await self.sock.send([payload])

    async def next(self, timeout: float = 30) -> Envelope:
        with trio.fail_after(timeout):
            return decode((await self.sock.receive())[-1])

    async def reply_to(self, msg_id: str, timeout: float = 30) -> Envelope:
        """The reply to ``msg_id``; anything else that arrives meanwhile is kept in ``inbox``."""
        for i, env in enumerate(self.inbox):
            if env.correlation_id == msg_id:
                return self.inbox.pop(i)
        while True:
            env = await self.next(timeout)
            if env.correlation_id == msg_id:
                return env
            self.inbox.append(env)

    async def ask(self, body: Any, recipient: str, *, timeout: float = 10, **kw) -> Any:
        return (await self.reply_to(await self.send(body, recipient, **kw), timeout)).body


@contextlib.asynccontextmanager
async def open_raw_client(endpoint: str, *, identity: bytes | None = None,
                          options: dict | None = None, receive_buffer: int = 256) -> AsyncIterator[RawClient]:
    async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=endpoint, identity=identity,
                               options=options, receive_buffer=receive_buffer) as sock:
        yield RawClient(sock)
