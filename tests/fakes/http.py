"""A small real HTTP/1.1 server on 127.0.0.1 for fake providers: h11 over trio sockets.

A vendor fake turns each request into a ``Plan`` — status, headers and a list of steps (bytes to
send, seconds to sleep, or ``CUT`` to drop the connection mid-body). Responses without a
content-length are sent chunked, like the real streaming APIs, so a ``CUT`` is seen by the client
as an incomplete body, exactly as when a provider's connection dies.
"""
from __future__ import annotations

import functools
import json
from contextlib import asynccontextmanager
from typing import Any
from collections.abc import AsyncIterator, Callable

import attrs
import h11
import trio

CUT = object()
Step = bytes | float | object


@attrs.frozen
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@attrs.frozen
class Plan:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    steps: tuple[Step, ...] = ()
    headers_delay: float = 0.0
    drop: bool = False  # close the connection without any response
    # Called once the whole response (EndOfMessage included) was written: how a fake counts what it
    # actually served, e.g. the usage it billed (chaos/ compares it with the daemon's ledger).
    on_sent: Callable[[], None] | None = None


def json_plan(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Plan:
    body = json.dumps(payload).encode()
    return Plan(
        status,
        (("content-type", "application/json"), ("content-length", str(len(body))), *headers),
        (body,),
    )


class FakeHTTPServer:
    """Serves ``handler(request) -> Plan``; keeps every request in ``requests``."""

    def __init__(self, handler: Callable[[RecordedRequest], Plan]):
        self._handler = handler
        self.requests: list[RecordedRequest] = []
        self.port: int | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read_request(self, conn: h11.Connection, stream: trio.SocketStream) -> RecordedRequest | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                return RecordedRequest(request.method.decode(), request.target.decode(), headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _send(self, conn: h11.Connection, stream: trio.SocketStream, plan: Plan) -> bool:
        """Send one planned response; False when the connection must now be closed."""
        if plan.headers_delay:
            await trio.sleep(plan.headers_delay)
        if plan.drop:
            return False
        await stream.send_all(conn.send(h11.Response(status_code=plan.status, headers=list(plan.headers))))
        for step in plan.steps:
            if step is CUT:
                return False
            if isinstance(step, (int, float)):
                await trio.sleep(step)
            elif step:
                await stream.send_all(conn.send(h11.Data(data=step)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        if plan.on_sent is not None:
            plan.on_sent()
        return True

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(conn, stream)
                if request is None:
                    return
                self.requests.append(request)
                keep_open = await self._send(conn, stream, self._handler(request))
                if not keep_open or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return  # the client went away (e.g. it timed out): nothing to answer
        finally:
            await trio.aclose_forcefully(stream)


@asynccontextmanager
async def serve(handler: Callable[[RecordedRequest], Plan]) -> AsyncIterator[FakeHTTPServer]:
    server = FakeHTTPServer(handler)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, server._serve_connection, 0,
                                                          host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
