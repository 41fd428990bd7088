"""The gateway actor: one stateless turn per HTTP request, run in-process through the actor kernel.

It does for a gateway request what the session actor does for a client's turn — ask the router,
record the turn and its ``route.decided`` (so ``trace`` and ``cost`` cover it), have the planner
run it — without a session's history or turn lock: the request carries its whole history, and
concurrent requests filed under one session run side by side. The planner sends the turn's
progress and outcome here (``RunTurn.reply_to``); each goes to the request's own channel.

A request that goes away (client disconnect) leaves ``open_turn`` early: the planner is told to
stop, which closes the provider stream; what the provider billed is already in the ledger.
"""
from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from actors.config.registry import TIERS, ModelRegistry
from actors.planner.tokens import estimate_input_tokens
from actors.runtime.kernel import Actor, RequestTimeout
from actors.runtime.store import StorageError, Store
from actors.session.state import new_turn_id
from protocol import events as ev
from protocol.codec import Envelope, converter
from protocol.errors import RemoteError
from protocol.messages import (
    DecideRoute, GetSessionStats, RouteDecision, RunTurn, SessionStats, StopTurn, TurnOutcome, TurnProgress, TurnStatus,
)

from .canonical import GatewayRequest, TurnResult, final_message
from .errors import GatewayError, turn_failure

DEFAULT_SESSION = "gateway"
ROUTE_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0     # a stopped turn's outcome (with what was billed) is awaited this long


@attrs.define
class GatewayTurn:
    """A running gateway turn, as the HTTP handler sees it: its route, and its events in order."""

    turn_id: str
    session_id: str
    model: str
    policy: str
    events: trio.MemoryReceiveChannel
    outcome: TurnOutcome | None = None
    headers: tuple[tuple[str, str], ...] = attrs.field(init=False)
    raw_headers: list[tuple[bytes, bytes]] = attrs.field(init=False)   # as the ASGI response sends them

    def __attrs_post_init__(self) -> None:
        self.headers = turn_headers(self.turn_id, self.model, self.policy)
        self.raw_headers = [(k.encode(), v.encode()) for k, v in self.headers]

    def result(self) -> TurnResult:
        """The finished turn as an answer, or the GatewayError its failure maps to."""
        out = self.outcome
        assert out is not None
        if out.status is TurnStatus.COMPLETED:
            return TurnResult(self.turn_id, self.model, self.policy, final_message(out.messages), out.usage)
        if out.status is TurnStatus.CANCELLED:
            raise GatewayError(503, f"the turn was cancelled ({out.error or 'cancelled'})", out.error, self.headers)
        raise attrs.evolve(turn_failure(out.error, out.message or ""), headers=self.headers)


def turn_headers(turn_id: str, model: str | None, policy: str | None) -> tuple[tuple[str, str], ...]:
    headers = [("x-orchestrator-turn-id", turn_id)]
    if model:
        headers.append(("x-orchestrator-model", model))
    if policy:
        headers.append(("x-orchestrator-policy", policy))
    return tuple(headers)


class GatewayActor(Actor):
    name = "gateway"

    def __init__(self, system, store: Store, registry: Callable[[], ModelRegistry], *, router: str = "router",
                 planner: str = "planner"):
        super().__init__(system)
        self.store = store
        self.registry = registry
        self.router = router
        self.planner = planner
        self._turns: dict[str, trio.MemorySendChannel] = {}
        self._streaming: set[str] = set()   # the turns whose client reads text deltas as they come
        self._sessions: set[str] = set()
        self._idle = trio.Event()      # set while no turn runs (drain waits for it)
        self._idle.set()

    def handlers(self):
        return {TurnProgress: self.on_progress, TurnOutcome: self.on_progress, GetSessionStats: self.on_stats}

    async def on_stats(self, env: Envelope) -> SessionStats:
        """For ``orchestrator status``: the gateway's running turns (it holds no sessions)."""
        return SessionStats(accepting_turns=True, sessions_open=0, turns_running=self.running())

    async def on_progress(self, env: Envelope) -> None:
        msg = env.body
        if isinstance(msg, TurnProgress):
            # The HTTP side reads text deltas of a streamed request and the outcome, nothing else:
            # anything more would only wake the request's task to be thrown away.
            if not isinstance(msg.event, ev.TextDelta) or msg.turn_id not in self._streaming:
                return None
            item: object = msg.event
        else:
            item = msg
        chan = self._turns.get(msg.turn_id)
        if chan is not None:   # unbounded: a slow HTTP client never stalls the other turns' events
            chan.send_nowait(item)
        return None

    def running(self) -> int:
        return len(self._turns)

    # --- one turn ---------------------------------------------------------------------------------

    def resolve(self, name: str) -> tuple[str | None, str | None]:
        """A request's ``model`` → (explicit registry id, tier); both None for ``auto``. 404 otherwise."""
        if name == "auto":
            return None, None
        spec = self.registry().resolve(name)
        if spec is not None:
            return spec.id, None
        if name in TIERS:
            return None, name
        raise GatewayError(404, f"unknown model or alias {name!r}: use a registry id, an alias, "
                                f"{', '.join(TIERS)} or auto (GET /v1/models lists them)", "model_not_found")

    @asynccontextmanager
    async def open_turn(self, req: GatewayRequest, session_id: str | None = None) -> AsyncIterator[GatewayTurn]:
        explicit, tier = self.resolve(req.model)
        sid = session_id or DEFAULT_SESSION
        turn_id = new_turn_id()
        decision = await self._decide(req, sid, turn_id, explicit, tier)
        route = decision.route
        policy = route.chain[route.winner_index].policy.value if route.winner_index >= 0 else None
        model = route.chosen_model
        if model is None or decision.error_code:
            text = decision.error or "No model available for this turn."
            self._record_start(turn_id, sid, model, route, policy)
            self._finish(turn_id, TurnStatus.FAILED, None, text)
            raise attrs.evolve(turn_failure(decision.error_code or "no_model_available", text),
                               headers=turn_headers(turn_id, model, policy))
        send, recv = trio.open_memory_channel[object](math.inf)
        self._turns[turn_id] = send
        if req.stream:
            self._streaming.add(turn_id)
        if self._idle.is_set():
            self._idle = trio.Event()
        turn = GatewayTurn(turn_id, sid, model, policy or "", recv)
        try:
            run = RunTurn(sid, turn_id, model, req.messages, None, req.tools, system=req.system,
                          max_tokens=req.max_tokens, output_schema=req.output_schema,
                          reply_to=self.system.address(self.name), gateway=True,
                          tool_choice=req.tool_choice, parallel_tool_calls=req.parallel_tool_calls)
            try:
                await self.system.request(self.planner, run, timeout=ROUTE_TIMEOUT_S)
            except (RemoteError, RequestTimeout) as exc:
                self._record_start(turn_id, sid, model, route, policy)
                self._finish(turn_id, TurnStatus.FAILED, None, str(exc))
                raise GatewayError(500, f"the planner did not take the turn: {exc}", "planner_error",
                                   turn.headers) from None
            try:
                # Recorded once the provider call is under way: the database write overlaps the
                # provider's first token instead of delaying the call.
                self._record_start(turn_id, sid, model, route, policy)
                yield turn
            finally:
                if turn.outcome is None:   # the request went away first: stop the turn, keep what was billed
                    with trio.CancelScope(shield=True), trio.move_on_after(STOP_GRACE_S):
                        await self._stop(turn)
                out = turn.outcome
                if out is None:
                    self._finish(turn_id, TurnStatus.CANCELLED, None, "client_disconnected")
                else:
                    self._finish(turn_id, out.status, converter.unstructure(out.usage), out.message or out.error)
        finally:
            self._turns.pop(turn_id, None)
            self._streaming.discard(turn_id)
            if not self._turns:
                self._idle.set()

    async def drain(self, grace_s: float) -> None:
        """At shutdown: running turns get ``grace_s`` to finish; the rest are stopped (their clients get
        the API's error, in-stream or as a 503) while the planner is still there to stop them."""
        with trio.move_on_after(grace_s):
            await self._idle.wait()
        for turn_id in list(self._turns):
            await self.system.tell(self.planner, StopTurn(turn_id, "daemon_shutdown"))
        with trio.move_on_after(STOP_GRACE_S):
            await self._idle.wait()

    async def _decide(self, req: GatewayRequest, sid: str, turn_id: str, explicit: str | None,
                      tier: str | None) -> RouteDecision:
        decide = DecideRoute(
            sid, turn_id, req.routing_text, has_images=req.has_images, has_tool_definitions=bool(req.tools),
            has_system_prompt=req.system is not None, requires_structured_output=req.output_schema is not None,
            has_tool_calls_in_history=req.has_tool_calls_in_history,
            estimated_input_tokens=estimate_input_tokens(req.system, req.tools, req.messages),
            delegate_tier=tier, override_model=explicit)
        try:
            decision: RouteDecision = await self.system.request(self.router, decide, timeout=ROUTE_TIMEOUT_S)
        except (RemoteError, RequestTimeout) as exc:
            raise GatewayError(503, f"routing failed: {exc}", "routing_error", turn_headers(turn_id, None, None)) \
                from None
        return decision

    async def _stop(self, turn: GatewayTurn) -> None:
        try:
            await self.system.request(self.planner, StopTurn(turn.turn_id, "client_disconnected"),
                                      timeout=STOP_GRACE_S)
        except (RemoteError, RequestTimeout) as exc:
            self.log.warning("planner did not acknowledge stop", turn_id=turn.turn_id, error=str(exc))
        while turn.outcome is None:    # its outcome follows the acknowledgement
            item = await turn.events.receive()
            if isinstance(item, TurnOutcome):
                turn.outcome = item

    def _record_start(self, turn_id: str, sid: str, model: str | None, route: ev.RouteDecided,
                      policy: str | None) -> None:
        try:
            self._ensure_session(sid)
            self.store.start_turn(turn_id, sid, model, converter.unstructure(route))
        except StorageError as exc:
            raise GatewayError(500, f"the turn could not be recorded: {exc}", "storage_error",
                               turn_headers(turn_id, model, policy)) from None

    def _ensure_session(self, sid: str) -> None:
        if sid in self._sessions:
            return
        if self.store.get_session(sid) is None:
            self.store.create_session(sid, None)
        self._sessions.add(sid)

    def _finish(self, turn_id: str, status: TurnStatus, usage: dict | None, error: str | None) -> None:
        try:
            self.store.finish_turn(turn_id, status.value, usage, error)
        except StorageError as exc:
            self.log.error("turn end not saved", turn_id=turn_id, error=str(exc))


async def next_event(turn: GatewayTurn) -> ev.TextDelta | TurnOutcome | None:
    """The turn's next text delta or its outcome (None once the outcome was taken)."""
    if turn.outcome is not None:
        return None
    while True:
        item = await turn.events.receive()
        if isinstance(item, TurnOutcome):
            turn.outcome = item
            return item
        if isinstance(item, ev.TextDelta):
            return item


def next_event_nowait(turn: GatewayTurn) -> ev.TextDelta | TurnOutcome | None:
    """As ``next_event`` without waiting: None when nothing is queued (used to batch writes)."""
    while turn.outcome is None:
        try:
            item = turn.events.receive_nowait()
        except trio.WouldBlock:
            return None
        if isinstance(item, TurnOutcome):
            turn.outcome = item
            return item
        if isinstance(item, ev.TextDelta):
            return item
    return None
