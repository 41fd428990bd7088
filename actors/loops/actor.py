"""The loop actor: owns the daemon's loops (DESIGN §4.10).

Each running loop is one task in this actor's nursery (``runner.drive``); its ticks are turns in
the loop's own session, started by message (``turns.InProcessTurns``), so a tick is an ordinary
turn: routed, recorded, billed and cancellable. A tick that fails is data (a failed tick, a
strike); it never touches another loop or another session. State is written through
``LoopStore`` at every tick boundary, so a restarted daemon resumes every running loop (the tick
a crash cut short is recorded ``interrupted``). Subscribed connections (``WatchLoops``) get
``loop.tick_started``, ``loop.tick_finished`` and ``loop.stopped`` as ``LoopNotice``.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import trio

from actors.runtime.kernel import Actor, RequestTimeout
from actors.runtime.lease import LeaseKeeper
from actors.runtime.store import StorageError, Store
from actors.session.state import DAEMON_OWNER
from protocol import events as ev
from protocol.codec import Envelope
from protocol.errors import RemoteError
from protocol.identity import principal_of
from protocol.messages import (
    Ack, EventNotice, Failure, ListLoops, LoopInfo, LoopListing, LoopNotice, OpenSession, RateTurn, ResumeLoop,
    ShowLoop, StartLoop, StopLoop, WatchLoops,
)

from .driver import (
    COMPLETED, FAILED, INTERRUPTED, MODES, PILOT, PROMPT, STATE_FINISHED, STATE_RUNNING, STATE_STOPPED, STOPPED,
    WORKFLOW, Judgement, LoopSpec, outcome_score, struck,
)
from .runner import LoopState, ShuttingDown, StepResult, TickRecord, drive
from .schedule import MAX_EVERY_S, format_duration
from .shared import SharedLoops
from .store import LoopStore
from .turns import InProcessTurns, cancel_turn
from .verdicts import parse_verdicts

# A workflow tick: (turns, workflow name, input text, workspace) → the workflow's output; raises
# with a one-line message when the run fails. The daemon provides it (orchestrator/loops_daemon.py).
WorkflowHook = Callable[[InProcessTurns, str, str, str | None], Awaitable[str]]
MAX_WATCHERS = 256
MAX_SHOWN_TICKS = 200


class LoopActor(Actor):
    name = "loops"

    def __init__(self, system, store: Store, *, session: str = "session", router: str = "router",
                 workflow: WorkflowHook | None = None, clock: Callable[[], float] = time.time,
                 leases: LeaseKeeper | None = None):
        super().__init__(system)
        self.db = LoopStore(store)
        self.session = session
        self.router = router
        self.workflow = workflow
        self.clock = clock
        self.loops: dict[str, LoopState] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._turns: dict[str, InProcessTurns] = {}        # per running loop: its turns' event routing
        self._watchers: dict[str, str | None] = {}          # subscriber address → loop id (None: all)
        self._reported: dict[str, Decimal] = {}             # loop id → cost the current tick's turns reported
        # A shared database (several daemons): loops under leases (shared.py); None on SQLite.
        self.shared = SharedLoops(self, leases) if leases is not None else None

    def handlers(self):
        commands = {StartLoop: self.on_start, ListLoops: self.on_list, ShowLoop: self.on_show, StopLoop: self.on_stop,
                    ResumeLoop: self.on_resume, WatchLoops: self.on_watch}
        return {**{cls: _daemon_user_only(fn) for cls, fn in commands.items()}, EventNotice: self.on_event}

    async def setup(self, nursery: trio.Nursery) -> None:
        if self.shared is not None:   # another daemon may be driving any of them: take only free ones
            self.spawn(self.shared.run)
            return
        closed = self.db.close_interrupted_ticks()
        for loop in self.db.load_all():
            self.loops[loop.id] = loop
        running = [lp for lp in self.loops.values() if lp.state == STATE_RUNNING]
        if closed or running:
            self.log.info("loops resumed", running=len(running), ticks_interrupted=closed)
        for loop in running:
            self.spawn(self._drive, loop)

    # --- commands -----------------------------------------------------------------------------------

    async def on_start(self, env: Envelope[StartLoop]):
        spec_or_error = self._spec(env.body)
        if isinstance(spec_or_error, Failure):
            return spec_or_error
        spec = spec_or_error
        self.spawn(self._start, env, spec)     # opening the session is a round trip: keep answering
        return None

    async def _start(self, env: Envelope, spec: LoopSpec) -> None:
        try:
            info = await self.system.request(self.session, OpenSession(None, spec.workspace), timeout=30,
                                             sender_name=self.name)
        except (RemoteError, RequestTimeout) as exc:
            await self._reply(env, Failure("loop_not_started", f"the loop's session could not be opened: {exc}"))
            return
        loop = LoopState("l_" + os.urandom(6).hex(), spec, info.session_id, created_at=self.clock())
        if self.shared is not None:    # held before its row says running: no other daemon takes it
            self.shared.claim_new(loop.id)
        self.db.save_loop(loop)
        self.loops[loop.id] = loop
        self.spawn(self._drive, loop)
        await self._reply(env, LoopInfo(self.view(loop)))

    async def on_list(self, env: Envelope[ListLoops]):
        if self.shared is not None:
            loops = self.shared.listing(running_only=env.body.running_only)
        else:
            loops = [lp for lp in self.loops.values() if not env.body.running_only or lp.state == STATE_RUNNING]
        return LoopListing(tuple(self.view(lp, ticks=False) for lp in loops))

    def _find(self, loop_id: str) -> LoopState | None:
        """A loop this daemon drives (memory), or on a shared database any loop (its row)."""
        return self.shared.find(loop_id) if self.shared is not None else self.loops.get(loop_id)

    async def on_show(self, env: Envelope[ShowLoop]):
        loop = self._find(env.body.loop_id)
        return _unknown(env.body.loop_id) if loop is None else LoopInfo(self.view(loop))

    async def on_stop(self, env: Envelope[StopLoop]):
        loop = self._find(env.body.loop_id)
        if loop is None:
            return _unknown(env.body.loop_id)
        if self.shared is not None and loop.id not in self._scopes:   # driven elsewhere, or nowhere
            loop, here = self.shared.stop(loop)
            if here:
                await self._publish(loop, "loop.stopped", state=loop.state, stop_reason=loop.stop_reason)
            return LoopInfo(self.view(loop))
        if loop.state == STATE_RUNNING:
            loop.state, loop.stop_reason = STATE_STOPPED, STOPPED
            self.db.save_loop(loop)
            scope = self._scopes.get(loop.id)
            if scope is not None:
                scope.cancel()         # the tick in progress cancels its turn and is recorded interrupted
            else:
                await self._publish(loop, "loop.stopped", state=loop.state, stop_reason=loop.stop_reason)
        return LoopInfo(self.view(loop))

    async def on_resume(self, env: Envelope[ResumeLoop]):
        loop = self._find(env.body.loop_id)
        if loop is None:
            return _unknown(env.body.loop_id)
        if self.shared is not None and loop.id not in self._scopes:
            resumed = self.shared.resume(loop.id, loop.session_id, clear_strikes=env.body.clear_strikes)
            return resumed if isinstance(resumed, Failure) else LoopInfo(self.view(resumed))
        if env.body.clear_strikes:
            loop.strikes = {}
        if loop.id not in self._scopes:     # stopped, finished, or a drive that failed (see _drive)
            loop.state, loop.stop_reason = STATE_RUNNING, None
            self.db.save_loop(loop)
            self.spawn(self._drive, loop)
        else:
            self.db.save_loop(loop)
        return LoopInfo(self.view(loop))

    async def on_watch(self, env: Envelope[WatchLoops]):
        if env.body.loop_id is not None and self._find(env.body.loop_id) is None:
            return _unknown(env.body.loop_id)
        if env.sender:
            if len(self._watchers) >= MAX_WATCHERS:   # the oldest subscription goes first
                self._watchers.pop(next(iter(self._watchers)))
            self._watchers[env.sender] = env.body.loop_id
        return Ack(detail="watching")

    async def on_event(self, env: Envelope[EventNotice]):
        for turns in self._turns.values():
            if turns.deliver(env.body):
                break
        return None

    def _spec(self, m: StartLoop) -> LoopSpec | Failure:
        if m.mode not in MODES:
            return Failure("invalid_loop", f"mode must be one of {', '.join(MODES)}")
        if m.mode in (PROMPT, PILOT) and not m.text.strip():
            return Failure("invalid_loop", f"--{m.mode} is empty")
        if m.mode == PILOT and m.land is not None and not m.land.strip():
            return Failure("invalid_loop", "--land is empty")
        if m.mode == WORKFLOW and (not m.workflow or self.workflow is None):
            return Failure("invalid_loop", "a workflow loop needs --workflow NAME and a daemon that runs workflows")
        if not 0 <= m.every_s <= MAX_EVERY_S:
            return Failure("invalid_loop", "--every must be between 0 and 7 days")
        if m.max_ticks is not None and m.max_ticks < 1:
            return Failure("invalid_loop", "--max-ticks must be at least 1")
        if m.budget_usd is not None:
            try:
                budget = Decimal(m.budget_usd)
            except (InvalidOperation, ValueError):
                return Failure("invalid_loop", f"--budget-usd {m.budget_usd!r} is not a number")
            if not budget.is_finite() or budget < 0:
                return Failure("invalid_loop", "--budget-usd must be a number ≥ 0")
        workspace = os.path.abspath(os.path.expanduser(m.workspace)) if m.workspace else None
        return LoopSpec.from_start(m, workspace)

    # --- running loops --------------------------------------------------------------------------------

    async def _drive(self, loop: LoopState) -> None:
        failed = False
        if self.shared is not None:
            self.shared.drive_started(loop)
        with trio.CancelScope() as scope:
            self._scopes[loop.id] = scope
            self._turns[loop.id] = InProcessTurns(self.system, self.name, session=self.session)
            try:
                await drive(loop, _TickIO(self), self.clock)
            except Exception as exc:   # e.g. the database failed: this loop waits for `loop resume`
                failed = True
                self.log.error("loop stopped driving; `loop resume` restarts it", loop_id=loop.id, error=str(exc))
                self.faults += 1
                self.last_fault = f"loop {loop.id}: {exc}"
            finally:
                self._scopes.pop(loop.id, None)
                self._turns.pop(loop.id, None)
                if self.shared is not None:
                    with contextlib.suppress(StorageError):
                        self.shared.drive_ended(loop, failed=failed)
        if self.shared is not None and not self.shared.mine(loop):
            return
        if scope.cancelled_caught and loop.state == STATE_STOPPED:     # `loop stop`
            await self._publish(loop, "loop.stopped", state=loop.state, stop_reason=loop.stop_reason)

    def view(self, loop: LoopState, *, ticks: bool = True) -> dict[str, Any]:
        """`loop show --json` (DESIGN §4.10), plus a few fields for people: the current tick, the
        last verdicts, the schedule."""
        done = [t for t in loop.ticks if t.status != "running"]
        current = loop.current
        last = done[-1] if done else None
        out: dict[str, Any] = {
            "id": loop.id, "state": loop.state, "stop_reason": loop.stop_reason, "spend_usd": str(loop.spend_usd),
            "ticks": [_tick_view(t) for t in done[-MAX_SHOWN_TICKS:]] if ticks else [],
            "strikes": dict(loop.strikes),
            "current_tick": current.n if current else None, "ticks_run": len(done),
            "last_pilot_verdict": last.pilot_verdict if last else None,
            "last_land_verdict": last.land_verdict if last else None,
            "struck": struck(loop.strikes), "session_id": loop.session_id, "mode": loop.spec.mode,
            "every": format_duration(loop.spec.every_s), "max_ticks": loop.spec.max_ticks,
            "budget_usd": loop.spec.budget_usd, "workspace": loop.spec.workspace,
        }
        if loop.spec.land:      # `loop show` names a pilot/land loop by it
            out["land"] = loop.spec.land
        if loop.spec.workflow:
            out["workflow"] = loop.spec.workflow
        if self.shared is not None:   # several daemons: which one drives it (None: none does now)
            out["daemon"] = self.shared.leases.owner if loop.id in self._scopes else self.shared.holder(loop.id)
        return out

    async def _publish(self, loop: LoopState, type_: str, **fields: Any) -> None:
        event = {"type": type_, "loop_id": loop.id, **fields}
        for address, wanted in list(self._watchers.items()):
            if wanted not in (None, loop.id):
                continue
            try:
                with trio.move_on_after(1.0):
                    await self.system.tell(address, LoopNotice(event), sender=self.system.address(self.name))
            except Exception as exc:   # the subscriber is gone: forget it
                self.log.debug("loop watcher dropped", address=address, error=repr(exc))
                self._watchers.pop(address, None)

    def _signal(self, loop: LoopState, turn_id: str, score: float | None) -> None:
        """A verdict as a pattern-store outcome (the router stores it when it has a store)."""
        if score is None:
            return
        self.spawn(self.tell, self.router, RateTurn(turn_id, score))


def _daemon_user_only(handler: Callable[[Envelope], Awaitable[Any]]) -> Callable[[Envelope], Awaitable[Any]]:
    """Loops run as the daemon's user, in workspaces of its choosing: only that user (or the daemon
    itself) may start, see or steer them (docs/security.md)."""
    async def guarded(env: Envelope) -> Any:
        principal = principal_of(env.sender)
        if principal not in (None, DAEMON_OWNER):
            return Failure("forbidden_loop", "loops belong to the daemon's user; this connection is another user's")
        return await handler(env)
    return guarded


def _unknown(loop_id: str) -> Failure:
    return Failure("unknown_loop", f"no loop {loop_id!r}")


def _tick_view(t: TickRecord) -> dict[str, Any]:
    return {"n": t.n, "status": t.status, "pilot_verdict": t.pilot_verdict, "land_verdict": t.land_verdict,
            "cost_usd": t.cost_usd, "turn_ids": list(t.turn_ids), **({"error": t.error} if t.error else {})}


class _TickIO:
    """The runner's view of the daemon, for one loop actor."""

    def __init__(self, actor: LoopActor):
        self.actor = actor

    async def run_turn(self, loop: LoopState, tick: TickRecord, text: str) -> StepResult:
        turns = self.actor._turns[loop.id]
        parts: list[str] = []
        turn_id, model = "", None

        def started(tid: str) -> None:
            nonlocal turn_id
            turn_id = tid
            tick.turn_ids.append(tid)
            if self._mine(loop):
                self.actor.db.save_tick(loop.id, tick)   # a crash from here on leaves the turn's cost counted

        turns.on_turn = started
        try:
            async with turns.turn(loop.session_id, text, workspace=loop.spec.workspace) as turn:
                try:
                    async for event in turn:
                        if isinstance(event, ev.TextDelta):
                            parts.append(event.text)
                        elif isinstance(event, ev.TurnStarted):
                            model = event.model
                except trio.Cancelled:
                    await cancel_turn(turn)
                    raise
                terminal = turn.terminal
        except RemoteError as exc:
            if exc.code == "shutting_down":
                raise ShuttingDown(exc.message) from None
            return StepResult(FAILED, error=f"{exc.code}: {exc.message}")
        except RequestTimeout as exc:
            return StepResult(FAILED, error=f"session: {exc}")
        self._count(loop, terminal)
        if isinstance(terminal, ev.TurnCompleted):
            return StepResult(COMPLETED, "".join(parts), [turn_id], terminal.model or model)
        if isinstance(terminal, ev.TurnCancelled):
            return StepResult(INTERRUPTED, "".join(parts), [turn_id], model, error=terminal.reason)
        message = (getattr(terminal, "message", "") or "").splitlines()
        error = f"{getattr(terminal, 'error', 'turn_failed')}: {message[0] if message else ''}"
        return StepResult(FAILED, "".join(parts), [turn_id], model, error=error)

    def _count(self, loop: LoopState, terminal: object) -> None:
        usage = getattr(terminal, "usage", None)
        cost = getattr(usage, "cost_usd", None)
        if cost is not None:
            try:
                self.actor._reported[loop.id] = self.actor._reported.get(loop.id, Decimal(0)) + Decimal(cost)
            except (InvalidOperation, ValueError):
                pass

    async def run_workflow(self, loop: LoopState, tick: TickRecord, name: str, text: str) -> StepResult:
        hook = self.actor.workflow
        assert hook is not None
        turns = InProcessTurns(self.actor.system, self.actor.name, session=self.actor.session)

        def started(tid: str) -> None:
            tick.turn_ids.append(tid)
            if self._mine(loop):
                self.actor.db.save_tick(loop.id, tick)

        turns.on_turn = started
        self.actor._turns[loop.id] = turns
        try:
            output = await hook(turns, name, text, loop.spec.workspace)
        except (trio.Cancelled, ShuttingDown):
            raise
        except Exception as exc:   # the workflow failed: a failed tick, said in one line
            return StepResult(FAILED, error=str(exc).splitlines()[0] if str(exc) else repr(exc))
        return StepResult(COMPLETED, output, list(tick.turn_ids))

    def spend(self, loop: LoopState) -> Decimal:
        ledger = self.actor.db.spend(loop)
        current = loop.ticks[-1] if loop.ticks else None
        reported = self.actor._reported.get(loop.id, Decimal(0))
        if current is not None and reported:
            # The ledger row of a turn that just ended may still be on its way to the cost actor:
            # never count the tick as cheaper than its turns said.
            ledger += max(Decimal(0), reported - self.actor.db.tick_cost(current))
        return ledger

    def _mine(self, loop: LoopState) -> bool:
        shared = self.actor.shared
        return shared is None or shared.mine(loop)

    async def tick_started(self, loop: LoopState, tick: TickRecord) -> None:
        self.actor._reported.pop(loop.id, None)
        shared = self.actor.shared
        if shared is not None and shared.adopt_stop(loop):   # stopped by another daemon: no new tick
            self.actor._scopes[loop.id].cancel()
            return
        self.actor.db.save_tick(loop.id, tick)
        await self.actor._publish(loop, "loop.tick_started", n=tick.n)

    async def tick_finished(self, loop: LoopState, tick: TickRecord, judgement: Judgement | None,
                            outputs: list[StepResult]) -> None:
        ledger = self.actor.db.tick_cost(tick)
        tick.cost_usd = str(max(ledger, self.actor._reported.get(loop.id, Decimal(0))))
        tick.error = next((s.error for s in outputs if s.error), None)
        shared = self.actor.shared
        if not self._mine(loop):   # another daemon drives it now: its row is that daemon's to write
            return
        try:
            self.actor.db.save_tick(loop.id, tick)
            self.actor.db.save_loop(loop, unless_stopped=shared is not None)
            if shared is not None and shared.adopt_stop(loop):   # stopped by another daemon meanwhile
                self.actor.db.save_loop(loop)
        except StorageError as exc:
            self.actor.log.error("loop tick not saved", loop_id=loop.id, n=tick.n, error=str(exc))
        if judgement is not None:
            self._signals(loop, outputs, judgement)
        await self.actor._publish(
            loop, "loop.tick_finished", n=tick.n, status=tick.status, pilot_verdict=tick.pilot_verdict,
            land_verdict=tick.land_verdict, cost_usd=tick.cost_usd, spend_usd=str(loop.spend_usd),
            struck=list(judgement.struck_now) if judgement else [])

    def _signals(self, loop: LoopState, outputs: list[StepResult], judgement: Judgement) -> None:
        for step in outputs:
            if not step.turn_ids or step.status != COMPLETED:   # a provider failure says nothing of the answer
                continue
            said = parse_verdicts(step.output)
            verdict = said.land if (loop.spec.mode == PILOT and step is not outputs[0]) else (said.pilot or said.land)
            silent = verdict is None or bool(said.malformed)
            self.actor._signal(loop, step.turn_ids[-1], outcome_score(verdict, no_verdict=silent))

    async def tick_dropped(self, loop: LoopState, tick: TickRecord) -> None:
        if self._mine(loop):
            self.actor.db.drop_tick(loop.id, tick.n)

    async def loop_finished(self, loop: LoopState) -> None:
        if loop.state == STATE_RUNNING or not self._mine(loop):
            return
        self.actor.db.save_loop(loop)
        if loop.state == STATE_FINISHED:
            self.actor.log.info("loop finished", loop_id=loop.id, stop_reason=loop.stop_reason)
        await self.actor._publish(loop, "loop.stopped", state=loop.state, stop_reason=loop.stop_reason)
