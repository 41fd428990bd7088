"""The session actor: owns sessions, their history and the turn lock.

At most one turn per session is in flight. The model the router picks at turn start owns every
LLM call of the turn (the planner actor runs the loop on it). ``/model`` during a turn is queued
for the next boundary, last write wins. Cancelling asks the planner to stop and waits, bounded,
until it has unwound, so the lock is only released when nothing of the turn still runs.

Every turn that starts ends with exactly one terminal event: a handler fault elsewhere does not
touch it (the kernel answers the faulty request and carries on), a database failure ends it with
``storage_error``, and if this actor itself goes down the turn's shielded cleanup stops the
planner and sends ``turn.failed`` (``internal_error``). Idle sessions leave memory (least recently
used first, beyond ``max_cached``) and reload from the store when next used.
"""
from __future__ import annotations

import os
from collections import deque

import attrs
import trio

from protocol import events as ev
from protocol.canonical import ContentBlock, Message, Role, TextBlock, Usage
from protocol.codec import Envelope, converter, event_to_json_obj
from protocol.errors import RemoteError
from protocol.messages import (
    CancelTurn, ClearModel, DecideRoute, DrainTurns, EventNotice, Failure, GetHistory, GetSessionStats,
    ListSessions, OpenSession, RouteDecision, RunTurn, SessionInfo, SetModel, ShowModel, StartTurn, SubmitToolResult,
    TurnAccepted, TurnOutcome, TurnProgress, TurnStatus,
)

from actors.runtime.kernel import RequestTimeout
from actors.runtime.lease import LeaseKeeper, serve_session
from actors.router.context import extract_file_extensions
from actors.runtime.store import Batch, StorageError, Store
from actors.planner.tokens import estimate_input_tokens
from actors.session.commands import SessionCommands
from actors.session.fallback import failed_before_first_byte
from actors.session.idle import IdleSessions
from actors.session.state import RunningTurn, SessionState, answer_text, new_session_id, new_turn_id
from actors.session.turn_control import (  # noqa: F401 — STOP_GRACE_S and the rest: imported from here
    ABANDON_S, ACTOR_FAILED_MESSAGE, PLANNER_LOST_MESSAGE, STOP_GRACE_S, TURN_LIVENESS_S, Terminal, TurnControl,
)

# Idle sessions kept in memory; older ones are evicted and reload from the store on demand.
MAX_CACHED_SESSIONS = 256
PERSISTED_EVENT_TYPES = frozenset(
    t.TYPE for t in ev.EVENT_TYPES if t not in (ev.TextDelta, ev.ThinkingDelta)
)


class SessionActor(TurnControl, SessionCommands):
    name = "session"

    def __init__(self, system, store: Store, *, router: str = "router", planner: str = "planner",
                 max_cached: int = MAX_CACHED_SESSIONS, leases: LeaseKeeper | None = None):
        super().__init__(system)
        self.store = store
        self.leases = leases   # several daemons on one database: serve a session only under its lease
        self.router = router
        self.planner = planner
        self.sessions: dict[str, SessionState] = {}   # every session in memory, idle or running a turn
        # The idle ones (no turn running: only these may leave memory), least recently used first:
        # eviction takes from the cold end, so an open or a turn end costs O(1) however many are cached.
        self._idle = IdleSessions()
        self.max_cached = max_cached
        self.liveness_s = TURN_LIVENESS_S
        self.accepting = True
        self.turns_idle = trio.Event()
        self.turns_idle.set()
        self._running: set[RunningTurn] = set()   # O(1) "any turn running?" however many sessions

    def handlers(self):
        return {
            OpenSession: self.on_open, StartTurn: self.on_start_turn, CancelTurn: self.on_cancel,
            TurnProgress: self.on_progress, TurnOutcome: self.on_outcome, SetModel: self.on_set_model,
            ClearModel: self.on_clear_model, ShowModel: self.on_show_model, GetHistory: self.on_history,
            ListSessions: self.on_list, SubmitToolResult: self.on_tool_result, GetSessionStats: self.on_stats,
            DrainTurns: self.on_drain,
        }

    async def setup(self, nursery: trio.Nursery) -> None:
        for turn_id, _session_id in self.store.interrupted_turns():
            # A crash (kill -9) left these running: close them so history stays valid.
            self.store.finish_turn(turn_id, "interrupted", error="daemon stopped during the turn")

    # --- sessions ---------------------------------------------------------------------------------

    def _get(self, session_id: str) -> SessionState | None:
        if self.leases is not None:
            self._lease(session_id)
        state = self.sessions.get(session_id)
        if state is not None:
            self._idle.touch(session_id)
        else:
            row = self.store.get_session(session_id)
            if row is None:
                return None
            state = SessionState(row.id, row.workspace, row.active_model, parent_session_id=row.parent_session_id,
                                 is_worker=row.is_worker)
            state.messages = self.store.load_messages(session_id)
            state.file_extensions = extract_file_extensions(state.messages)
            self._remember(state)
        return state

    def _create(self, session_id: str | None, workspace: str | None) -> SessionState:
        sid = session_id or new_session_id()
        ws = os.path.abspath(os.path.expanduser(workspace)) if workspace else None
        if self.leases is not None:
            self._lease(sid)
        self.store.create_session(sid, ws)
        state = SessionState(sid, ws)
        self._remember(state)
        return state

    def _lease(self, session_id: str) -> None:
        assert self.leases is not None
        cached = self.sessions.get(session_id)
        if serve_session(self.leases, self.store, session_id) and cached is not None and cached.turn is None:
            del self.sessions[session_id]   # another daemon may have served it since: reload
            self._idle.drop(session_id)

    def _remember(self, state: SessionState) -> None:
        self.sessions[state.id] = state
        if state.turn is None:
            self._idle.add(state)
        self._evict_idle(keep=state.id)

    # What idle sessions' histories may hold in memory together (estimated: 4 bytes a token of
    # text plus each message's objects), besides ``max_cached``: a count alone bounds nothing
    # once histories grow long. A session shed here reloads from the store on its next turn.
    max_idle_history_bytes = 16 * 1024 * 1024

    def _unlock(self, state: SessionState, turn: RunningTurn) -> None:
        """The session's turn lock is released (once): it is idle again, if still in memory."""
        if state.turn is turn:
            state.turn = None
            if self.sessions.get(state.id) is state:
                self._idle.add(state)

    def _evict_idle(self, keep: str | None = None) -> None:
        """Drop the least recently used idle sessions beyond ``max_cached`` or beyond
        ``max_idle_history_bytes`` of history: all they hold is in the store (a queued /model swap
        is applied on the way out, as the next turn would). O(1) per call plus O(1) per session
        evicted."""
        idle = self._idle
        while len(self.sessions) > self.max_cached or idle.bytes > self.max_idle_history_bytes:
            sid = idle.coldest()
            if sid is None or sid == keep:   # none idle, or only the session just remembered
                break
            idle.drop(sid)
            state = self.sessions.pop(sid)
            if state.pending_model is not None or state.pending_clear:
                try:
                    self._apply_pending_swap(state)
                except StorageError as exc:
                    self.log.error("queued /model swap not saved", session_id=sid, error=str(exc))
            if self.leases is not None:   # in no daemon's memory now: any daemon may serve it
                self.leases.release("session", sid)

    def _info(self, s: SessionState, turns: int | None = None) -> SessionInfo:
        """``turns``: the session's turn count when known (a session created just now has none)."""
        return SessionInfo(s.id, s.workspace, s.active_model, s.pending_model, s.turn.turn_id if s.turn else None,
                           self.store.turn_count(s.id) if turns is None else turns,
                           parent_session_id=s.parent_session_id)

    async def on_open(self, env: Envelope[OpenSession]):
        msg = env.body
        state = self._get(msg.session_id) if msg.session_id else None
        if denied := self._denied(env, state):
            return denied
        if state is None:
            return self._info(self._claim(env, self._create(msg.session_id, msg.workspace)), turns=0)
        return self._info(state)

    def _apply_pending_swap(self, state: SessionState) -> None:
        if state.pending_model is not None or state.pending_clear:
            state.active_model = state.pending_model
            state.pending_model, state.pending_clear = None, False
            self.store.set_active_model(state.id, state.active_model)

    # --- turns --------------------------------------------------------------------------------------

    async def on_start_turn(self, env: Envelope[StartTurn]):
        msg = env.body
        if not self.accepting:
            return Failure("shutting_down", "the daemon is shutting down and accepts no new turns")
        state = self._claimed(env, msg.session_id, msg.workspace)
        if isinstance(state, Failure):
            return state
        if state.turn is not None:
            return Failure("turn_in_progress",
                           f"session {state.id} already has turn {state.turn.turn_id} in progress",
                           {"turn_id": state.turn.turn_id})
        turn = state.turn = RunningTurn(new_turn_id(), env.sender)
        self._idle.drop(state.id)   # a session running a turn never leaves memory
        self._running.add(turn)
        self.turns_idle = trio.Event() if self.turns_idle.is_set() else self.turns_idle
        self.spawn(self._run_turn, state, turn, msg)
        return TurnAccepted(state.id, turn.turn_id)

    async def _run_turn(self, state: SessionState, turn: RunningTurn, msg: StartTurn) -> None:
        try:
            await self._turn_body(state, turn, msg)
        except StorageError as exc:
            self.log.error("turn failed: storage", session_id=state.id, turn_id=turn.turn_id, error=str(exc))
            await self._finish(state, turn, ev.TurnFailed(
                state.id, turn.turn_id, "storage_error",
                f"{exc}; this turn was not saved (the text streamed so far is all there is)", turn.model,
                turn.partial_text))
        except Exception as exc:  # never leave a client waiting without a terminal event
            self.log.error("turn crashed", session_id=state.id, turn_id=turn.turn_id, error=repr(exc))
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, "internal_error", repr(exc)))
        except BaseException:
            # This actor is going down (a crash outside the handlers, or the daemon stopping): the
            # turn still ends with one terminal event and the planner is told to stop.
            with trio.CancelScope(shield=True), trio.move_on_after(ABANDON_S):
                await self._abandon(state, turn)
            raise
        finally:
            self._unlock(state, turn)
            self._running.discard(turn)
            if not self._running:
                self.turns_idle.set()
            self._evict_idle()

    async def _turn_body(self, state: SessionState, turn: RunningTurn, msg: StartTurn) -> None:
        self._apply_pending_swap(state)
        user_blocks: tuple[ContentBlock, ...] = (TextBlock(msg.text), *msg.images)
        # Tools are offered when the turn has a workspace (the built-in tools) or client tools. The
        # delegate tool depends on the model chosen, so the router offers it only to a model that
        # supports tools (RouteDecision.can_delegate); it needs no gate here. The system prompt
        # that matters is the workspace's instruction files; without a workspace there is only
        # the planner's generic default, which a model without system-prompt support goes without.
        offers_tools = bool(state.workspace) or bool(msg.tools)
        history_tokens, tool_calls_in_history = state.history_facts()  # O(new messages), not O(history)
        decide = DecideRoute(
            state.id, turn.turn_id, msg.text, has_images=bool(msg.images), has_tool_definitions=offers_tools,
            has_system_prompt=bool(state.workspace),
            has_tool_calls_in_history=tool_calls_in_history,
            estimated_input_tokens=history_tokens + estimate_input_tokens(None, msg.tools,
                                                                          [Message(Role.USER, user_blocks)]),
            workspace=state.workspace, sticky_model=state.active_model,
            file_extensions=tuple(sorted(state.file_extensions)), is_worker=state.is_worker,
            role=msg.role, role_tier=msg.tier, effort=msg.effort,
        )
        try:
            decision: RouteDecision = await self.request(self.router, decide, timeout=30)
        except (RemoteError, RequestTimeout) as exc:
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, "routing_error", str(exc)))
            return
        if msg.trace_notes:  # the caller's own lines (a review's reviewer pick) belong to this trace
            decision = attrs.evolve(decision, route=attrs.evolve(
                decision.route, warnings=decision.route.warnings + tuple(msg.trace_notes)))
        # The start phase (turn row, user message, events) is one transaction, committed while the
        # planner already runs the provider call; nothing waits on SQLite before the first token.
        start = self.store.batch()
        self.store.start_turn(turn.turn_id, state.id, decision.route.chosen_model,
                              converter.unstructure(decision.route), into=start)
        turn.recorded = True  # the row travels in the start batch: whoever commits it writes the row
        await self._emit(state, turn, decision.route, persist=False)
        for banner in decision.banners:
            await self._emit(state, turn, ev.Banner(banner, turn.turn_id, "routing"), into=start)
        if decision.error_code or decision.route.chosen_model is None:
            await self._finish(state, turn, ev.TurnFailed(
                state.id, turn.turn_id, decision.error_code or "no_model_available",
                decision.error or "No model available for this turn."), batch=start)
            return
        model = turn.model = decision.route.chosen_model
        user = Message(Role.USER, (TextBlock(decision.text), *msg.images), id=f"{turn.turn_id}:u")
        self.store.append_messages(state.id, turn.turn_id, [user], into=start)
        await self._emit(state, turn, ev.TurnStarted(state.id, turn.turn_id, model), into=start)
        if turn.stop_requested:
            await self._finish(state, turn, ev.TurnCancelled(state.id, turn.turn_id, turn.stop_requested),
                               batch=start, saved=[user])
            return
        run = RunTurn(state.id, turn.turn_id, model, (*state.messages, user), state.workspace, tuple(msg.tools),
                      can_delegate=decision.can_delegate, is_worker=state.is_worker,
                      parent_session_id=state.parent_session_id, effort=decision.route.effort)
        turn.held = deque()
        try:
            await self.request(self.planner, run, timeout=30)
        except (RemoteError, RequestTimeout) as exc:
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, "planner_error", str(exc), model),
                               batch=start, saved=[user])
            return
        try:
            await self.store.commit(start)
        except StorageError:
            # Not durable: stop the planner's run, then fail the turn (``_run_turn``) as before.
            turn.recorded = False
            turn.stop_requested = turn.stop_requested or "storage_error"
            await self._stop(turn, "storage_error")
            await self._release_held(state, turn)
            raise
        state.messages.append(user)  # memory mirrors the store
        await self._release_held(state, turn)
        await self._await_outcome(state, turn)
        if failed_before_first_byte(turn.outcome, turn.streamed) and not turn.stop_requested:
            await self._fall_back(state, turn, decide, decision.route, run)
            model = turn.model or model
        outcome = turn.outcome
        assert outcome is not None
        new = [m for m in outcome.messages]
        turn.partial_text = outcome.partial_text or answer_text(new) or None
        end = self.store.batch()
        self.store.append_messages(state.id, turn.turn_id, new, into=end)
        terminal: Terminal
        if outcome.status == TurnStatus.COMPLETED:
            terminal = ev.TurnCompleted(state.id, turn.turn_id, model, outcome.usage)
        elif outcome.status == TurnStatus.CANCELLED:
            terminal = ev.TurnCancelled(state.id, turn.turn_id, outcome.error or "cancelled_by_user", outcome.usage)
        else:
            terminal = ev.TurnFailed(state.id, turn.turn_id, outcome.error or "turn_failed", outcome.message or "",
                                     model, outcome.partial_text, outcome.usage)
        await self._finish(state, turn, terminal, batch=end, saved=new, strict=True)

    async def _finish(self, state: SessionState, turn: RunningTurn, terminal: Terminal, *,
                      batch: Batch | None = None, saved: list[Message] | None = None, strict: bool = False) -> None:
        """Exactly one terminal event per turn; a database failure here still lets it go out.

        The turn's end (``batch``: the phase's writes so far, e.g. its new messages, plus the turn's
        end and the terminal event) is ONE transaction, committed before the terminal event goes
        out: a client that saw ``turn.completed`` finds the turn on disk even if the daemon dies
        next. ``saved`` messages join the in-memory history once committed. With ``strict``, a
        failed commit raises StorageError (the turn then fails with ``storage_error``)."""
        if turn.finished:
            return
        status = {ev.TurnCompleted: TurnStatus.COMPLETED, ev.TurnCancelled: TurnStatus.CANCELLED}.get(
            type(terminal), TurnStatus.FAILED)
        data = event_to_json_obj(terminal)   # its usage (every terminal has one) is the turn row's too
        usage = data.get("usage") or converter.unstructure(Usage())
        end = batch if batch is not None else self.store.batch()
        committed = False
        try:
            if not turn.recorded:  # failed before routing finished
                self.store.start_turn(turn.turn_id, state.id, turn.model, None, into=end)
            self.store.finish_turn(turn.turn_id, status.value, usage, getattr(terminal, "message", None), into=end)
            if terminal.TYPE in PERSISTED_EVENT_TYPES:
                self.store.record_event(state.id, turn.turn_id, terminal.TYPE, data, into=end)
            await self.store.commit(end)
            committed = True
        except StorageError as exc:
            if strict:
                raise
            self.log.error("turn end not saved", turn_id=turn.turn_id, error=str(exc))
        turn.finished = True
        if committed:
            turn.recorded = True
            if saved:
                state.messages.extend(saved)
                state.file_extensions |= extract_file_extensions(saved)
        await self._release_held(state, turn)
        await self._emit(state, turn, terminal, persist=False)
        self._unlock(state, turn)

    async def _emit(self, state: SessionState, turn: RunningTurn, event, *, persist: bool = True,
                    into: Batch | None = None) -> None:
        if persist and event.TYPE in PERSISTED_EVENT_TYPES:
            try:
                self.store.record_event(state.id, turn.turn_id, event.TYPE, event_to_json_obj(event), into=into)
            except StorageError as exc:  # the client still gets the event; the turn's end says more
                self.log.warning("event not saved", turn_id=turn.turn_id, type=event.TYPE, error=str(exc))
        if turn.client:
            await self.system.tell(turn.client, EventNotice(state.id, event), sender=self.system.address(self.name))

    async def _release_held(self, state: SessionState, turn: RunningTurn) -> None:
        """Send the progress held back while the turn's start was committed, in order; progress
        arriving meanwhile queues behind it (``on_progress``)."""
        held = turn.held
        while held:
            await self._emit(state, turn, held.popleft())
        turn.held = None

    async def on_progress(self, env: Envelope[TurnProgress]):
        msg = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or state.turn.turn_id != msg.turn_id:
            return None
        state.turn.streamed = True
        if state.turn.held is not None:  # the turn's start is still being committed
            state.turn.held.append(msg.event)
            return None
        await self._emit(state, state.turn, msg.event)
        return None

    async def on_outcome(self, env: Envelope[TurnOutcome]):
        msg = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or state.turn.turn_id != msg.turn_id:
            return None
        state.turn.outcome = msg
        state.turn.done.set()
        return None
