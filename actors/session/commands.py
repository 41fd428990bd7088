"""The session actor's commands besides turns: /model, listing, history, stats, draining, and who
may act on a session (docs/security.md). A part of ``SessionActor`` (actor.py), kept apart to keep
each module about one thing."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from protocol import events as ev
from protocol.codec import converter
from protocol.errors import RemoteError
from protocol.identity import principal_of
from protocol.messages import (
    Ack, DrainTurns, Failure, History, ModelResolved, ModelState, ResolveModel, SessionInfo, SessionListing,
    SessionStats, SetModel,
)

from actors.runtime.kernel import Actor, RequestTimeout
from actors.runtime.store import Batch, StorageError, Store
from actors.session.state import DAEMON_OWNER, RunningTurn, SessionState, owns, swap_banner
from actors.session.turn_control import STOP_GRACE_S


class SessionCommands(Actor):
    if TYPE_CHECKING:  # what the session actor (actor.py) provides
        store: Store
        sessions: dict[str, SessionState]
        router: str
        accepting: bool
        turns_idle: trio.Event
        _running: set[RunningTurn]

        def _get(self, session_id: str) -> SessionState | None: ...
        def _create(self, session_id: str | None, workspace: str | None) -> SessionState: ...
        def _info(self, s: SessionState, turns: int | None = None) -> SessionInfo: ...
        async def _emit(self, state: SessionState, turn: RunningTurn, event: Any, *, persist: bool = True,
                        into: Batch | None = None) -> None: ...
        async def _stop(self, turn: RunningTurn, reason: str) -> None: ...

    async def on_stats(self, env) -> SessionStats:
        return SessionStats(self.accepting, len(self.sessions), len(self._running))

    async def on_list(self, env):
        principal = principal_of(env.sender)
        rows = self.store.list_sessions(env.body.include_workers) if principal in (None, DAEMON_OWNER) else []
        listed = [SessionInfo(r.id, r.workspace, r.active_model, parent_session_id=r.parent_session_id) for r in rows
                  if owns(principal, self.sessions.get(r.id))]
        if principal not in (None, DAEMON_OWNER):  # their sessions live only in memory (never the daemon user's)
            listed += [self._info(s) for s in self.sessions.values() if s.owner == principal]
        return SessionListing(tuple(listed))

    async def on_history(self, env):
        state = self._visible(env)
        if isinstance(state, Failure):
            return state
        return History(state.id, tuple(state.messages))

    # --- /model -------------------------------------------------------------------------------------

    async def on_set_model(self, env):
        if denied := self._denied_or_claim(env, env.body.session_id):
            return denied
        # The router owns the registry: ask it, from a task of its own so that every other session
        # keeps streaming while the question is out.
        self.spawn(self._set_model, env)
        return None

    async def _set_model(self, env) -> None:
        msg: SetModel = env.body
        try:
            resolved: ModelResolved = await self.request(self.router, ResolveModel(msg.model), timeout=10)
        except (RemoteError, RequestTimeout) as exc:
            reply: object = Failure("routing_error", f"could not resolve {msg.model!r}: {exc}")
        else:
            if resolved.model is None:
                reply = Failure("unknown_model", f"unknown model or alias {msg.model!r}")
            else:
                try:
                    reply = await self._swap(msg.session_id, resolved.model)
                except StorageError as exc:
                    reply = Failure("storage_error", str(exc))
        await self._reply(env, reply)

    async def on_clear_model(self, env):
        if denied := self._denied_or_claim(env, env.body.session_id):
            return denied
        return await self._swap(env.body.session_id, None)

    async def _swap(self, session_id: str, model: str | None) -> ModelState:
        """/model: applies now between turns; during a turn it is queued, and the last swap wins."""
        state = self._get(session_id) or self._create(session_id, None)
        if state.turn is not None:
            state.pending_model, state.pending_clear = model, model is None
            banner = swap_banner(model)
            await self._emit(state, state.turn, ev.Banner(banner, state.turn.turn_id, "model_swap"))
            return self._model_state(state, banner)
        state.active_model = model
        self.store.set_active_model(state.id, model)
        return self._model_state(state)

    async def on_show_model(self, env):
        state = self._visible(env)
        if isinstance(state, Failure):
            return state
        return self._model_state(state)

    def _model_state(self, state: SessionState, banner: str | None = None) -> ModelState:
        route = self.store.last_turn_route(state.id)
        last = converter.structure(route, ev.RouteDecided) if route else None
        return ModelState(state.id, state.active_model, state.pending_model, state.pending_clear, banner, last)

    async def on_drain(self, env):
        self.accepting = False  # at once: no turn starts after this message
        self.spawn(self._drain, env)
        return None

    async def _drain(self, env) -> None:
        msg: DrainTurns = env.body
        with trio.move_on_after(msg.grace_s if msg.grace_s >= 0 else 0.0):  # NaN → no grace
            await self.turns_idle.wait()
        left = len(self._running)
        if left:
            self.log.info("grace period over; cancelling running turns", turns=left)
            await self.cancel_all(msg.reason)
        await self._reply(env, Ack(detail=f"{left} turn(s) cancelled"))

    async def cancel_all(self, reason: str) -> None:
        """Cancel every running turn and wait (bounded) until each has unwound."""
        self.accepting = False
        running = list(self._running)
        async with trio.open_nursery() as nursery:
            for turn in running:
                nursery.start_soon(self._stop, turn, reason)
        with trio.move_on_after(STOP_GRACE_S):
            await self.turns_idle.wait()

    def running_turns(self) -> int:
        return len(self._running)

    # --- ownership (docs/security.md) ------------------------------------------------------------------

    def _visible(self, env) -> SessionState | Failure:
        """The request's existing session if the asker may see it; otherwise the refusal."""
        state = self._get(env.body.session_id)
        if state is None:
            return Failure("unknown_session", f"no session {env.body.session_id!r}")
        return self._denied(env, state) or state

    def _denied(self, env, state: SessionState | None) -> Failure | None:
        if state is None or owns(principal_of(env.sender), state):
            return None
        return Failure("forbidden_session", f"session {state.id} belongs to another user or connection")

    def _denied_or_claim(self, env, session_id: str, workspace: str | None = None) -> Failure | None:
        """As ``_denied``; a session that does not exist yet is created now, owned by the asker."""
        state = self._claimed(env, session_id, workspace)
        return state if isinstance(state, Failure) else None

    def _claimed(self, env, session_id: str, workspace: str | None = None) -> SessionState | Failure:
        """The session if the asker may act on it (one that does not exist yet is created now,
        owned by the asker); otherwise the refusal."""
        state = self._get(session_id)
        if state is None:
            return self._claim(env, self._create(session_id, workspace))
        return self._denied(env, state) or state

    def _claim(self, env, state: SessionState) -> SessionState:
        principal = principal_of(env.sender)
        state.owner = None if principal == DAEMON_OWNER else principal
        return state
