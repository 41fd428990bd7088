"""What intervenes in a running turn of the session actor: cancelling and stopping it, client tool
results, the planner-liveness watch, a mid-turn fallback to another model, and the shielded
cleanup when the actor itself goes down. A part of ``SessionActor`` (actor.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from protocol import events as ev
from protocol.canonical import Message, Usage
from protocol.codec import Envelope, converter
from protocol.errors import RemoteError
from protocol.identity import connection_of
from protocol.messages import (
    Ack, CancelTurn, DecideRoute, Failure, RouteDecision, RunTurn, StopTurn, SubmitToolResult,
    TurnAlive, TurnOutcome, TurnStatus,
)

from actors.runtime.kernel import Actor, RequestTimeout
from actors.runtime.store import Batch, Store
from actors.planner.support import add_usage
from actors.session.fallback import (
    exhausted_message, failed_before_first_byte, fallback_banner, fallback_failed_message, reason_of,
)
from actors.session.state import RunningTurn, SessionState
from actors.tools.workspace import load_workspace_settings

STOP_GRACE_S = 5.0
# Bounds the shielded cleanup of a turn whose actor is going down (StopTurn, terminal event).
ABANDON_S = 2.0
# While a turn runs, the planner is asked this often whether it still has it.
TURN_LIVENESS_S = 30.0
PLANNER_LOST_MESSAGE = ("the planner no longer runs this turn and its result never arrived; the turn was ended. "
                        "Send your message again.")
ACTOR_FAILED_MESSAGE = ("the session actor failed during this turn; the turn was stopped. "
                        "Your session and its history are kept: send your message again.")
Terminal = ev.TurnCompleted | ev.TurnFailed | ev.TurnCancelled


class TurnControl(Actor):
    if TYPE_CHECKING:  # what the session actor (actor.py) provides
        store: Store
        sessions: dict[str, SessionState]
        router: str
        planner: str
        accepting: bool
        liveness_s: float

        async def _emit(self, state: SessionState, turn: RunningTurn, event: Any, *, persist: bool = True,
                        into: Batch | None = None) -> None: ...
        async def _finish(self, state: SessionState, turn: RunningTurn, terminal: Terminal, *,
                          batch: Batch | None = None, saved: list[Message] | None = None,
                          strict: bool = False) -> None: ...
        def _denied(self, env: Envelope[Any], state: SessionState | None) -> Failure | None: ...

    async def _abandon(self, state: SessionState, turn: RunningTurn) -> None:
        if turn.finished:
            return
        reason = turn.stop_requested or ("daemon_shutdown" if not self.accepting else "internal_error")
        if turn.model is not None:  # the planner may be running it: a tell, nobody waits for the Ack
            try:
                await self.system.tell(self.planner, StopTurn(turn.turn_id, reason))
            except Exception as exc:
                self.log.warning("could not stop the planner's turn", turn_id=turn.turn_id, error=repr(exc))
        terminal: Terminal
        if reason == "internal_error":
            terminal = ev.TurnFailed(state.id, turn.turn_id, "internal_error", ACTOR_FAILED_MESSAGE, turn.model)
        else:
            terminal = ev.TurnCancelled(state.id, turn.turn_id, reason)
        try:
            await self._finish(state, turn, terminal)
        except Exception as exc:  # e.g. the client's node is gone: nothing else to tell it
            self.log.warning("terminal event not delivered", turn_id=turn.turn_id, error=repr(exc))

    async def _fall_back(self, state: SessionState, turn: RunningTurn, decide: DecideRoute, route: ev.RouteDecided,
                         run: RunTurn) -> None:
        """Mid-turn fallback (docs/workflows.md), when the workspace opts in: while the turn's model
        failed transiently before its first streamed byte, ask the router again with the failed
        models out and run the turn on its choice. The turn keeps its one ``route.decided``; each
        later decision is appended to the stored route (``fallback``) and shown by ``trace``."""
        settings = await trio.to_thread.run_sync(load_workspace_settings, state.workspace)
        if not settings.mid_turn_fallback:
            return
        failed: list[tuple[str, str]] = []
        later: list[dict] = []
        spent = Usage()   # what the failed attempts cost (usually nothing): the turn's usage includes it
        outcome = turn.outcome
        while outcome is not None and failed_before_first_byte(outcome, turn.streamed) and not turn.stop_requested:
            failed.append((turn.model or "?", reason_of(outcome)))
            spent = add_usage(spent, outcome.usage)
            try:
                decision: RouteDecision = await self.request(
                    self.router, attrs.evolve(decide, failed_models=tuple(m for m, _ in failed)), timeout=30)
            except (RemoteError, RequestTimeout) as exc:
                self.log.warning("mid-turn fallback: routing failed", turn_id=turn.turn_id, error=str(exc))
                decision = RouteDecision(route, decide.text, (), "routing_error", str(exc))
            new = decision.route.chosen_model
            if decision.error_code or new is None:
                if decision.route is not route:   # the router's answer: the trace shows nothing was left
                    later.append(converter.unstructure(decision.route))
                    self.store.set_turn_route(turn.turn_id, turn.model, {**converter.unstructure(route),
                                                                         "fallback": later})
                turn.outcome = attrs.evolve(outcome, message=exhausted_message(failed, outcome.message or ""),
                                            usage=spent)
                return
            later.append(converter.unstructure(decision.route))
            self.store.set_turn_route(turn.turn_id, new, {**converter.unstructure(route), "fallback": later})
            await self._emit(state, turn, ev.Banner(fallback_banner(*failed[-1], new), turn.turn_id, "fallback"))
            turn.model, turn.outcome, turn.done, turn.streamed = new, None, trio.Event(), False
            if turn.stop_requested:
                break
            try:
                await self.request(self.planner, attrs.evolve(run, model=new, effort=decision.route.effort,
                                                                can_delegate=decision.can_delegate), timeout=30)
            except (RemoteError, RequestTimeout) as exc:
                turn.outcome = TurnOutcome(state.id, turn.turn_id, TurnStatus.FAILED, error="planner_error",
                                           message=str(exc))
                break
            if turn.stop_requested:  # a cancel that raced the new run: stop it (the planner has it now)
                await self._stop(turn, turn.stop_requested)
            await self._await_outcome(state, turn)
            outcome = turn.outcome
        if turn.outcome is None:   # cancelled between two attempts: nothing runs
            turn.outcome = TurnOutcome(state.id, turn.turn_id, TurnStatus.CANCELLED, error=turn.stop_requested)
        final = turn.outcome
        if final.status is TurnStatus.FAILED and failed and final.error != "planner_error":
            final = attrs.evolve(final, message=fallback_failed_message(failed, turn.model or "?", final.message or ""))
        turn.outcome = attrs.evolve(final, usage=add_usage(spent, final.usage))

    async def _await_outcome(self, state: SessionState, turn: RunningTurn) -> None:
        """Wait for the planner's outcome; now and then ask whether it still runs the turn, so an
        outcome lost on the way (a planner gone down, a peer that vanished) cannot hold the
        session's turn lock for ever."""
        while True:
            with trio.move_on_after(self.liveness_s):
                await turn.done.wait()
                return
            try:
                alive = await self.request(self.planner, TurnAlive(turn.turn_id), timeout=self.liveness_s)
            except (RemoteError, RequestTimeout):
                continue  # busy or restarting: ask again next round
            if alive.ok:
                continue
            with trio.move_on_after(self.liveness_s):  # its outcome may still be on the way
                await turn.done.wait()
                return
            self.log.error("planner lost the turn", session_id=state.id, turn_id=turn.turn_id)
            turn.outcome = TurnOutcome(state.id, turn.turn_id, TurnStatus.FAILED, error="internal_error",
                                       message=PLANNER_LOST_MESSAGE, partial_text=None)
            return

    async def on_tool_result(self, env: Envelope[SubmitToolResult]):
        msg = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or state.turn.turn_id != msg.turn_id:
            return Failure("no_such_turn", f"turn {msg.turn_id} is not running")
        client = connection_of(env.sender)
        if client is not None and client != connection_of(state.turn.client):
            return Failure("forbidden_session", "only the connection that started a turn answers its tool calls")
        try:  # the planner's answer (a duplicate or unknown call is an error) goes back to the client
            return await self.request(self.planner, msg, timeout=STOP_GRACE_S)
        except RemoteError as exc:
            return Failure(exc.code, exc.message, exc.details)
        except RequestTimeout as exc:
            return Failure("planner_error", str(exc))

    async def on_cancel(self, env: Envelope[CancelTurn]):
        msg = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or (msg.turn_id and state.turn.turn_id != msg.turn_id):
            return Failure("no_turn_in_progress", f"session {msg.session_id} has no turn in progress")
        if denied := self._denied(env, state):
            return denied
        turn = state.turn
        self.spawn(self._stop, turn, msg.reason)
        return Ack(detail=turn.turn_id)

    async def _stop(self, turn: RunningTurn, reason: str) -> None:
        turn.stop_requested = reason
        if turn.model is None:
            return  # routing still running: the turn body checks stop_requested before the planner
        try:
            await self.request(self.planner, StopTurn(turn.turn_id, reason), timeout=STOP_GRACE_S)
        except (RemoteError, RequestTimeout) as exc:
            self.log.warning("planner did not acknowledge stop", turn_id=turn.turn_id, error=str(exc))
            if not turn.done.is_set():
                turn.outcome = TurnOutcome("", turn.turn_id, TurnStatus.CANCELLED, error=reason)
                turn.done.set()
