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
from collections import OrderedDict, deque
from itertools import islice

import attrs
import trio

from protocol import events as ev
from protocol.canonical import ContentBlock, Message, Role, TextBlock, Usage
from protocol.codec import Envelope, converter, event_to_json_obj
from protocol.errors import RemoteError
from protocol.identity import connection_of, principal_of
from protocol.messages import (
    Ack, CancelTurn, ClearModel, DecideRoute, DrainTurns, EventNotice, Failure, GetHistory, GetSessionStats, History,
    ListSessions, ModelResolved, ModelState, OpenSession, ResolveModel, RouteDecision, RunTurn, SessionInfo,
    SessionListing, SessionStats, SetModel, ShowModel, StartTurn, StopTurn, SubmitToolResult, TurnAccepted,
    TurnAlive, TurnOutcome, TurnProgress, TurnStatus,
)

from actors.runtime.kernel import Actor, RequestTimeout
from actors.runtime.lease import LeaseKeeper, serve_session
from actors.router.context import extract_file_extensions
from actors.runtime.store import Batch, StorageError, Store
from actors.planner.tokens import estimate_input_tokens
from actors.planner.support import add_usage
from actors.session.fallback import (
    exhausted_message, failed_before_first_byte, fallback_banner, fallback_failed_message, reason_of,
)
from actors.tools.workspace import load_workspace_settings
from actors.session.state import (
    DAEMON_OWNER, RunningTurn, SessionState, answer_text, new_session_id, new_turn_id, owns, swap_banner,
)

STOP_GRACE_S = 5.0
# Bounds the shielded cleanup of a turn whose actor is going down (StopTurn, terminal event).
ABANDON_S = 2.0
# Idle sessions kept in memory; older ones are evicted and reload from the store on demand.
MAX_CACHED_SESSIONS = 256
# While a turn runs, the planner is asked this often whether it still has it.
TURN_LIVENESS_S = 30.0
PLANNER_LOST_MESSAGE = ("the planner no longer runs this turn and its result never arrived; the turn was ended. "
                        "Send your message again.")
ACTOR_FAILED_MESSAGE = ("the session actor failed during this turn; the turn was stopped. "
                        "Your session and its history are kept: send your message again.")
Terminal = ev.TurnCompleted | ev.TurnFailed | ev.TurnCancelled
PERSISTED_EVENT_TYPES = frozenset(
    t.TYPE for t in ev.EVENT_TYPES if t not in (ev.TextDelta, ev.ThinkingDelta)
)


class SessionActor(Actor):
    name = "session"

    def __init__(self, system, store: Store, *, router: str = "router", planner: str = "planner",
                 max_cached: int = MAX_CACHED_SESSIONS, leases: LeaseKeeper | None = None):
        super().__init__(system)
        self.store = store
        self.leases = leases   # several daemons on one database: serve a session only under its lease
        self.router = router
        self.planner = planner
        # Least recently used first; sessions with a running turn are never evicted.
        self.sessions: OrderedDict[str, SessionState] = OrderedDict()
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
            self.sessions.move_to_end(session_id)
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

    def _remember(self, state: SessionState) -> None:
        self.sessions[state.id] = state
        self._evict_idle(keep=state.id)

    # What idle sessions' histories may hold in memory together (estimated: 4 bytes a token of
    # text plus each message's objects), besides ``max_cached``: a count alone bounds nothing
    # once histories grow long. A session shed here reloads from the store on its next turn.
    max_idle_history_bytes = 16 * 1024 * 1024

    def _evict_idle(self, keep: str | None = None) -> None:
        """Drop the least recently used idle sessions beyond ``max_cached`` or beyond
        ``max_idle_history_bytes`` of history: all they hold is in the store (a queued /model swap
        is applied on the way out, as the next turn would)."""
        excess = len(self.sessions) - self.max_cached
        idle = [sid for sid, s in self.sessions.items() if s.turn is None and sid != keep]
        # history_facts is O(new messages) per session: the tally its next turn needs anyway.
        held = [4 * self.sessions[sid].history_facts()[0] + 400 * len(self.sessions[sid].messages) for sid in idle]
        over, n = sum(held) - self.max_idle_history_bytes, 0
        while n < len(idle) and (n < excess or over > 0):
            over, n = over - held[n], n + 1
        for sid in list(islice(idle, n)):
            state = self.sessions.pop(sid)
            if state.pending_model is not None or state.pending_clear:
                try:
                    self._apply_pending_swap(state)
                except StorageError as exc:
                    self.log.error("queued /model swap not saved", session_id=sid, error=str(exc))
            if self.leases is not None:   # in no daemon's memory now: any daemon may serve it
                self.leases.release("session", sid)

    async def on_stats(self, env) -> SessionStats:
        return SessionStats(self.accepting, len(self.sessions), len(self._running))

    def _info(self, s: SessionState) -> SessionInfo:
        return SessionInfo(s.id, s.workspace, s.active_model, s.pending_model, s.turn.turn_id if s.turn else None,
                           self.store.turn_count(s.id), parent_session_id=s.parent_session_id)

    async def on_open(self, env: Envelope[OpenSession]):
        msg = env.body
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
                  if owns(principal, self.sessions.get(r.id))]
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

    async def on_start_turn(self, env: Envelope[StartTurn]):
        msg = env.body
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
            if state.turn is turn:
                state.turn = None
            self._running.discard(turn)
            if not self._running:
                self.turns_idle.set()
            self._evict_idle()

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
        usage = converter.unstructure(getattr(terminal, "usage", Usage()))
        end = batch if batch is not None else self.store.batch()
        committed = False
        try:
            if not turn.recorded:  # failed before routing finished
                self.store.start_turn(turn.turn_id, state.id, turn.model, None, into=end)
            self.store.finish_turn(turn.turn_id, status.value, usage, getattr(terminal, "message", None), into=end)
            if terminal.TYPE in PERSISTED_EVENT_TYPES:
                self.store.record_event(state.id, turn.turn_id, terminal.TYPE, event_to_json_obj(terminal), into=end)
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
        if state.turn is turn:
            state.turn = None

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

    def _denied(self, env, state: SessionState | None) -> Failure | None:
        if state is None or owns(principal_of(env.sender), state):
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
