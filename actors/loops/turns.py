"""Turns started from inside the daemon, by message, as a client would start them.

The loop actor (and a workflow run on a loop's tick) uses this instead of the client library:
``StartTurn`` goes to the session actor with the loop actor as sender, so the turn's events come
back to the loop actor's mailbox as ``EventNotice`` and are handed to the turn that waits for them
(``deliver``). Same shape as the client library's ``open_session`` / ``set_model`` / ``turn``, so
the workflow runner drives either.
"""
from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from actors.runtime.kernel import ActorSystem, RequestTimeout
from protocol import events as ev
from protocol.errors import RemoteError
from protocol.messages import CancelTurn, EventNotice, ModelState, OpenSession, SessionInfo, SetModel, StartTurn

REQUEST_S = 30.0
CANCEL_GRACE_S = 5.0


class InProcessTurn:
    def __init__(self, turns: InProcessTurns, session_id: str, turn_id: str, events: trio.MemoryReceiveChannel):
        self.turns, self.session_id, self.turn_id = turns, session_id, turn_id
        self._events = events
        self.terminal: Any = None

    def __aiter__(self) -> InProcessTurn:
        return self

    async def __anext__(self) -> Any:
        if self.terminal is not None:
            raise StopAsyncIteration
        while True:
            event = await self._events.receive()
            if getattr(event, "turn_id", self.turn_id) in (self.turn_id, None):
                break
        if isinstance(event, ev.TERMINAL_EVENT_TYPES):
            self.terminal = event
        return event

    async def cancel(self) -> None:
        await self.turns.request(CancelTurn(self.session_id, self.turn_id, "loop_stopped"))


class InProcessTurns:
    """Sessions and turns by message from the actor named ``owner`` (whose mailbox gets the events)."""

    def __init__(self, system: ActorSystem, owner: str, *, session: str = "session",
                 on_turn: Callable[[str], None] | None = None):
        self.system, self.owner, self.session = system, owner, session
        self.on_turn = on_turn
        self._follow: dict[str, trio.MemorySendChannel] = {}

    async def request(self, body: Any) -> Any:
        return await self.system.request(self.session, body, timeout=REQUEST_S, sender_name=self.owner)

    def deliver(self, notice: EventNotice) -> bool:
        """Hand an event to the turn of its session; False when nobody here follows that session."""
        chan = self._follow.get(notice.session_id)
        if chan is None:
            return False
        chan.send_nowait(notice.event)   # unbounded: the session actor never waits on a loop
        return True

    async def open_session(self, session_id: str | None = None, workspace: str | None = None) -> SessionInfo:
        info: SessionInfo = await self.request(OpenSession(session_id, workspace))
        return info

    async def set_model(self, session_id: str, model: str) -> ModelState:
        state: ModelState = await self.request(SetModel(session_id, model))
        return state

    @asynccontextmanager
    async def turn(self, session_id: str, text: str, *, workspace: str | None = None, role: str | None = None,
                   tier: str | None = None, **_: Any) -> AsyncIterator[InProcessTurn]:
        if session_id in self._follow:
            raise RuntimeError(f"a turn of session {session_id} is already followed")
        send, recv = trio.open_memory_channel[Any](math.inf)
        self._follow[session_id] = send
        try:
            accepted = await self.request(StartTurn(session_id, text, workspace=workspace, role=role, tier=tier))
            if self.on_turn is not None:
                self.on_turn(accepted.turn_id)
            yield InProcessTurn(self, accepted.session_id, accepted.turn_id, recv)
        finally:
            self._follow.pop(session_id, None)


async def cancel_turn(turn: InProcessTurn) -> None:
    """Stop the turn in the session actor and wait (bounded, shielded) for its terminal event."""
    with trio.move_on_after(CANCEL_GRACE_S) as scope:
        scope.shield = True
        try:
            await turn.cancel()
            async for _ in turn:
                pass
        except (RemoteError, RequestTimeout):
            pass        # already over
