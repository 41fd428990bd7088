"""The session actor: owns sessions, their history and the turn lock.

At most one turn per session is in flight. The model the router picks at turn start owns every
LLM call of the turn (the planner actor runs the loop on it). ``/model`` during a turn is queued
for the next boundary, last write wins. Cancelling asks the planner to stop and waits, bounded,
until it has unwound, so the lock is only released when nothing of the turn still runs.
"""
from __future__ import annotations

import os

import attrs
import trio

from protocol import events as ev
from protocol.canonical import Message, Role, TextBlock, Usage
from protocol.codec import converter, event_to_json_obj
from protocol.errors import RemoteError
from protocol.identity import connection_of, principal_of
from protocol.messages import (
    Ack, CancelTurn, ClearModel, DecideRoute, EventNotice, Failure, GetHistory, History, ListSessions,
    ModelState, OpenSession, RouteDecision, RunTurn, SessionInfo, SessionListing, SetModel, ShowModel,
    StartTurn, StopTurn, SubmitToolResult, TurnAccepted, TurnOutcome, TurnProgress,
)

from actors.runtime.kernel import Actor, RequestTimeout
from actors.router.context import extract_file_extensions
from actors.runtime.store import Store
from actors.planner.tokens import estimate_input_tokens

STOP_GRACE_S = 5.0
PERSISTED_EVENT_TYPES = frozenset(
    t.TYPE for t in ev.EVENT_TYPES if t not in (ev.TextDelta, ev.ThinkingDelta)
)


def new_turn_id() -> str:
    return "t_" + os.urandom(6).hex()


def new_session_id() -> str:
    return "s_" + os.urandom(6).hex()


def swap_banner(model: str | None) -> str:
    if model is None:
        return "Model swap pending: sticky model cleared. Applies to next turn."
    return f"Model swap pending: {model}. Applies to next turn."


@attrs.define(eq=False)
class RunningTurn:
    turn_id: str
    client: str
    model: str | None = None
    outcome: TurnOutcome | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    stop_requested: str | None = None
    recorded: bool = False           # the turns table has its row


@attrs.define
class SessionState:
    id: str
    workspace: str | None
    active_model: str | None = None
    pending_model: str | None = None
    pending_clear: bool = False
    turn: RunningTurn | None = None
    messages: list[Message] = attrs.field(factory=list)
    file_extensions: frozenset[str] = frozenset()
    parent_session_id: str | None = None
    is_worker: bool = False
    owner: str | None = None         # principal that opened it (None: the daemon's user; docs/security.md)


# Sessions from the database and those the daemon's actors open belong to the daemon's own user.
DAEMON_OWNER = f"uid:{os.getuid()}"


class SessionActor(Actor):
    name = "session"

    def __init__(self, system, store: Store, *, router: str = "router", planner: str = "planner",
                 resolve_model=None):
        super().__init__(system)
        self.store = store
        self.router = router
        self.planner = planner
        # Resolves "/model haiku" to "anthropic:claude-haiku-4-5"; None → ids only.
        self.resolve_model = resolve_model or (lambda name: name)
        self.sessions: dict[str, SessionState] = {}
        self.accepting = True
        self._nursery: trio.Nursery | None = None
        self.turns_idle = trio.Event()
        self.turns_idle.set()
        self._running: set[RunningTurn] = set()   # O(1) "any turn running?" however many sessions

    def handlers(self):
        return {
            OpenSession: self.on_open, StartTurn: self.on_start_turn, CancelTurn: self.on_cancel,
            TurnProgress: self.on_progress, TurnOutcome: self.on_outcome, SetModel: self.on_set_model,
            ClearModel: self.on_clear_model, ShowModel: self.on_show_model, GetHistory: self.on_history,
            ListSessions: self.on_list, SubmitToolResult: self.on_tool_result,
        }

    async def setup(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        for turn_id, session_id in self.store.interrupted_turns():
            # A crash (kill -9) left these running: close them so history stays valid.
            self.store.finish_turn(turn_id, "interrupted", error="daemon stopped during the turn")

    # --- sessions ---------------------------------------------------------------------------------

    def _get(self, session_id: str) -> SessionState | None:
        state = self.sessions.get(session_id)
        if state is None:
            row = self.store.get_session(session_id)
            if row is None:
                return None
            state = SessionState(row.id, row.workspace, row.active_model, parent_session_id=row.parent_session_id,
                                 is_worker=row.is_worker)
            state.messages = self.store.load_messages(session_id)
            state.file_extensions = extract_file_extensions(state.messages)
            self.sessions[session_id] = state
        return state

    def _create(self, session_id: str | None, workspace: str | None) -> SessionState:
        sid = session_id or new_session_id()
        ws = os.path.abspath(os.path.expanduser(workspace)) if workspace else None
        self.store.create_session(sid, ws)
        state = self.sessions[sid] = SessionState(sid, ws)
        return state

    def _info(self, s: SessionState) -> SessionInfo:
        return SessionInfo(s.id, s.workspace, s.active_model, s.pending_model, s.turn.turn_id if s.turn else None,
                           self.store.turn_count(s.id), parent_session_id=s.parent_session_id)

    async def on_open(self, env):
        msg: OpenSession = env.body
        state = self._get(msg.session_id) if msg.session_id else None
        if denied := self._denied(env, state):
            return denied
        if state is None:
            state = self._claim(env, self._create(msg.session_id, msg.workspace))
        return self._info(state)

    async def on_list(self, env):
        principal = principal_of(env.sender)
        rows = self.store.list_sessions(env.body.include_workers) if principal in (None, DAEMON_OWNER) else []
        listed = [SessionInfo(r.id, r.workspace, r.active_model, parent_session_id=r.parent_session_id) for r in rows
                  if self._visible(principal, self.sessions.get(r.id))]
        if principal not in (None, DAEMON_OWNER):  # their sessions live only in memory (never the daemon user's)
            listed += [self._info(s) for s in self.sessions.values() if s.owner == principal]
        return SessionListing(tuple(listed))

    async def on_history(self, env):
        state = self._get(env.body.session_id)
        if state is None:
            return Failure("unknown_session", f"no session {env.body.session_id!r}")
        if denied := self._denied(env, state):
            return denied
        return History(state.id, tuple(state.messages))

    # --- /model -------------------------------------------------------------------------------------

    async def on_set_model(self, env):
        msg: SetModel = env.body
        if denied := self._denied_or_claim(env, msg.session_id):
            return denied
        model = self.resolve_model(msg.model)
        if model is None:
            return Failure("unknown_model", f"unknown model or alias {msg.model!r}")
        return await self._swap(msg.session_id, model)

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
        state = self._get(env.body.session_id)
        if state is None:
            return Failure("unknown_session", f"no session {env.body.session_id!r}")
        if denied := self._denied(env, state):
            return denied
        return self._model_state(state)

    def _model_state(self, state: SessionState, banner: str | None = None) -> ModelState:
        route = self.store.last_turn_route(state.id)
        last = converter.structure(route, ev.RouteDecided) if route else None
        return ModelState(state.id, state.active_model, state.pending_model, state.pending_clear, banner, last)

    def _apply_pending_swap(self, state: SessionState) -> None:
        if state.pending_model is not None or state.pending_clear:
            state.active_model = state.pending_model
            state.pending_model, state.pending_clear = None, False
            self.store.set_active_model(state.id, state.active_model)

    # --- turns --------------------------------------------------------------------------------------

    async def on_start_turn(self, env):
        msg: StartTurn = env.body
        if not self.accepting:
            return Failure("shutting_down", "the daemon is shutting down and accepts no new turns")
        if denied := self._denied_or_claim(env, msg.session_id, msg.workspace):
            return denied
        state = self._get(msg.session_id) or self._create(msg.session_id, msg.workspace)
        if state.turn is not None:
            return Failure("turn_in_progress",
                           f"session {state.id} already has turn {state.turn.turn_id} in progress",
                           {"turn_id": state.turn.turn_id})
        turn = state.turn = RunningTurn(new_turn_id(), env.sender)
        self._running.add(turn)
        self.turns_idle = trio.Event() if self.turns_idle.is_set() else self.turns_idle
        assert self._nursery is not None
        self._nursery.start_soon(self._run_turn, state, turn, msg)
        return TurnAccepted(state.id, turn.turn_id)

    async def _run_turn(self, state: SessionState, turn: RunningTurn, msg: StartTurn) -> None:
        try:
            await self._turn_body(state, turn, msg)
        except Exception as exc:  # never leave a client waiting without a terminal event
            self.log.error("turn crashed", session_id=state.id, turn_id=turn.turn_id, error=repr(exc))
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, "internal_error", repr(exc)))
        finally:
            if state.turn is turn:
                state.turn = None
            self._running.discard(turn)
            if not self._running:
                self.turns_idle.set()

    async def _turn_body(self, state: SessionState, turn: RunningTurn, msg: StartTurn) -> None:
        self._apply_pending_swap(state)
        user_blocks = (TextBlock(msg.text), *msg.images)
        decide = DecideRoute(
            state.id, turn.turn_id, msg.text, has_images=bool(msg.images), has_tool_definitions=True,
            has_tool_calls_in_history=any(m.tool_uses() for m in state.messages if m.role is Role.ASSISTANT),
            estimated_input_tokens=estimate_input_tokens(None, msg.tools, [*state.messages, Message(Role.USER, user_blocks)]),
            workspace=state.workspace, sticky_model=state.active_model,
            file_extensions=tuple(sorted(state.file_extensions)), is_worker=state.is_worker,
        )
        try:
            decision: RouteDecision = await self.request(self.router, decide, timeout=30)
        except (RemoteError, RequestTimeout) as exc:
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, "routing_error", str(exc)))
            return
        self.store.start_turn(turn.turn_id, state.id, decision.route.chosen_model, converter.unstructure(decision.route))
        turn.recorded = True
        await self._emit(state, turn, decision.route, persist=False)
        for banner in decision.banners:
            await self._emit(state, turn, ev.Banner(banner, turn.turn_id, "routing"))
        if decision.error_code or decision.route.chosen_model is None:
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, decision.error_code or "no_model_available",
                                                          decision.error or "No model available for this turn."))
            return
        model = turn.model = decision.route.chosen_model
        user = Message(Role.USER, (TextBlock(decision.text), *msg.images), id=f"{turn.turn_id}:u")
        state.messages.append(user)
        self.store.append_messages(state.id, turn.turn_id, [user])
        await self._emit(state, turn, ev.TurnStarted(state.id, turn.turn_id, model))
        if turn.stop_requested:
            await self._finish(state, turn, ev.TurnCancelled(state.id, turn.turn_id, turn.stop_requested))
            return
        run = RunTurn(state.id, turn.turn_id, model, tuple(state.messages), state.workspace, tuple(msg.tools),
                      can_delegate=decision.can_delegate, is_worker=state.is_worker,
                      parent_session_id=state.parent_session_id)
        try:
            await self.request(self.planner, run, timeout=30)
        except (RemoteError, RequestTimeout) as exc:
            await self._finish(state, turn, ev.TurnFailed(state.id, turn.turn_id, "planner_error", str(exc), model))
            return
        await turn.done.wait()
        outcome = turn.outcome
        assert outcome is not None
        new = [m for m in outcome.messages]
        state.messages.extend(new)
        state.file_extensions |= extract_file_extensions(new)
        self.store.append_messages(state.id, turn.turn_id, new)
        if outcome.status == "completed":
            terminal = ev.TurnCompleted(state.id, turn.turn_id, model, outcome.usage)
        elif outcome.status == "cancelled":
            terminal = ev.TurnCancelled(state.id, turn.turn_id, outcome.error or "cancelled_by_user", outcome.usage)
        else:
            terminal = ev.TurnFailed(state.id, turn.turn_id, outcome.error or "turn_failed", outcome.message or "",
                                     model, outcome.partial_text, outcome.usage)
        await self._finish(state, turn, terminal)

    async def _finish(self, state: SessionState, turn: RunningTurn, terminal) -> None:
        status = {ev.TurnCompleted: "completed", ev.TurnCancelled: "cancelled"}.get(type(terminal), "failed")
        usage = converter.unstructure(getattr(terminal, "usage", Usage()))
        if not turn.recorded:  # failed before routing finished
            self.store.start_turn(turn.turn_id, state.id, turn.model, None)
            turn.recorded = True
        self.store.finish_turn(turn.turn_id, status, usage, getattr(terminal, "message", None))
        await self._emit(state, turn, terminal)
        if state.turn is turn:
            state.turn = None

    async def _emit(self, state: SessionState, turn: RunningTurn, event, *, persist: bool = True) -> None:
        if persist and event.TYPE in PERSISTED_EVENT_TYPES:
            self.store.record_event(state.id, turn.turn_id, event.TYPE, event_to_json_obj(event))
        if turn.client:
            await self.system.tell(turn.client, EventNotice(state.id, event), sender=self.system.address(self.name))

    async def on_progress(self, env):
        msg: TurnProgress = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or state.turn.turn_id != msg.turn_id:
            return None
        await self._emit(state, state.turn, msg.event)
        return None

    async def on_outcome(self, env):
        msg: TurnOutcome = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or state.turn.turn_id != msg.turn_id:
            return None
        state.turn.outcome = msg
        state.turn.done.set()
        return None

    async def on_tool_result(self, env):
        msg: SubmitToolResult = env.body
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

    async def on_cancel(self, env):
        msg: CancelTurn = env.body
        state = self.sessions.get(msg.session_id)
        if state is None or state.turn is None or (msg.turn_id and state.turn.turn_id != msg.turn_id):
            return Failure("no_turn_in_progress", f"session {msg.session_id} has no turn in progress")
        if denied := self._denied(env, state):
            return denied
        turn = state.turn
        assert self._nursery is not None
        self._nursery.start_soon(self._stop, turn, msg.reason)
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
                turn.outcome = TurnOutcome("", turn.turn_id, "cancelled", error=reason)
                turn.done.set()

    async def cancel_all(self, reason: str) -> None:
        """Daemon shutdown: cancel every running turn and wait (bounded) until each has unwound."""
        self.accepting = False
        running = [s.turn for s in self.sessions.values() if s.turn is not None]
        async with trio.open_nursery() as nursery:
            for turn in running:
                nursery.start_soon(self._stop, turn, reason)
        with trio.move_on_after(STOP_GRACE_S):
            await self.turns_idle.wait()

    def running_turns(self) -> int:
        return len(self._running)

    # --- ownership (docs/security.md) ------------------------------------------------------------------

    def _denied(self, env, state: SessionState | None) -> Failure | None:
        """A client acts only on sessions of its own principal; the daemon's actors on any."""
        principal = principal_of(env.sender)
        if principal is None or state is None or (state.owner or DAEMON_OWNER) == principal:
            return None
        return Failure("forbidden_session", f"session {state.id} belongs to another user or connection")

    def _denied_or_claim(self, env, session_id: str, workspace: str | None = None) -> Failure | None:
        """As ``_denied``; a session that does not exist yet is created now, owned by the asker."""
        state = self._get(session_id)
        if state is None:
            self._claim(env, self._create(session_id, workspace))
            return None
        return self._denied(env, state)

    def _claim(self, env, state: SessionState) -> SessionState:
        principal = principal_of(env.sender)
        state.owner = None if principal == DAEMON_OWNER else principal
        return state

    @staticmethod
    def _visible(principal: str | None, state: SessionState | None) -> bool:
        return principal is None or state is None or (state.owner or DAEMON_OWNER) == principal
