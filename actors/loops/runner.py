"""One loop's life: wait for the tick's due time, run the tick (pilot, then land in the same tick
when pilot hands over; or the prompt; or the workflow), judge its verdicts, repeat until a stop.

The waiting, the tick sequence and the bookkeeping are here; everything that touches the daemon
(turns, the store, events) goes through ``TickIO``, so this runs under ``autojump_clock`` with a
scripted ``TickIO`` in the tests. Ticks of one loop never overlap: one task runs them in turn.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import attrs
import trio

from .driver import (
    BUDGET, COMPLETED, FAILED, INTERRUPTED, MAX_TICKS, PILOT, RUNNING, STATE_FINISHED, STATE_RUNNING, WORKFLOW,
    Judgement, LoopSpec, TickOutcome, budget_reached, judge, limit_reached, tick_prompt, wants_land,
)
from .schedule import failure_backoff, next_due
from .verdicts import Verdict, Verdicts, parse_verdicts


class ShuttingDown(Exception):
    """The daemon takes no new turns: the tick that was about to start does not happen."""


@attrs.define
class StepResult:
    """One turn (or workflow run) of a tick, as the tick needs it."""

    status: str                                  # completed | failed | interrupted
    output: str = ""
    turn_ids: list[str] = attrs.field(factory=list)
    model: str | None = None
    error: str | None = None


@attrs.define
class TickRecord:
    n: int
    status: str = RUNNING
    pilot_verdict: str | None = None
    land_verdict: str | None = None
    cost_usd: str | None = None
    turn_ids: list[str] = attrs.field(factory=list)
    started_at: float = 0.0
    ended_at: float | None = None
    error: str | None = None


@attrs.define
class LoopState:
    id: str
    spec: LoopSpec
    session_id: str
    state: str = STATE_RUNNING
    stop_reason: str | None = None
    strikes: dict[str, int] = attrs.field(factory=dict)
    ticks: list[TickRecord] = attrs.field(factory=list)
    spend_usd: Decimal = Decimal(0)
    created_at: float = 0.0

    @property
    def current(self) -> TickRecord | None:
        return self.ticks[-1] if self.ticks and self.ticks[-1].status == RUNNING else None

    @property
    def last_started(self) -> float | None:
        return self.ticks[-1].started_at if self.ticks else None

    @property
    def next_n(self) -> int:
        return self.ticks[-1].n + 1 if self.ticks else 1


class TickIO(Protocol):
    """The daemon side of a tick (the loop actor implements it)."""

    async def run_turn(self, loop: LoopState, tick: TickRecord, text: str) -> StepResult: ...

    async def run_workflow(self, loop: LoopState, tick: TickRecord, name: str, text: str) -> StepResult: ...

    def spend(self, loop: LoopState) -> Decimal: ...

    async def tick_started(self, loop: LoopState, tick: TickRecord) -> None: ...

    async def tick_finished(self, loop: LoopState, tick: TickRecord, judgement: Judgement | None,
                            outputs: list[StepResult]) -> None: ...

    async def tick_dropped(self, loop: LoopState, tick: TickRecord) -> None: ...

    async def loop_finished(self, loop: LoopState) -> None: ...


async def drive(loop: LoopState, io: TickIO, clock: Callable[[], float]) -> None:
    """Run ticks until the loop stops by a verdict or a limit (then ``loop_finished``). A user's stop
    or a shutdown cancels this: the tick in progress is recorded ``interrupted`` first."""
    while loop.state == STATE_RUNNING:
        reason = _limit_before_tick(loop)
        if reason is not None:
            loop.state, loop.stop_reason = STATE_FINISHED, reason
            break
        due = next_due(loop.spec.every_s, loop.last_started, clock())
        last = loop.ticks[-1] if loop.ticks else None
        if last is not None and last.status == FAILED and last.ended_at is not None:
            due = max(due, last.ended_at + failure_backoff(_failed_in_a_row(loop)))
        await trio.sleep(max(0.0, due - clock()))
        await run_tick(loop, io, clock)
    await io.loop_finished(loop)


def _failed_in_a_row(loop: LoopState) -> int:
    n = 0
    for tick in reversed(loop.ticks):
        if tick.status != FAILED:
            break
        n += 1
    return n


def _limit_before_tick(loop: LoopState) -> str | None:
    """A loop resumed at its budget or tick limit stops without running another tick."""
    if budget_reached(loop.spec, loop.spend_usd):
        return BUDGET
    if limit_reached(loop.spec, len(loop.ticks)):
        return MAX_TICKS
    return None


async def run_tick(loop: LoopState, io: TickIO, clock: Callable[[], float]) -> None:
    tick = TickRecord(loop.next_n, started_at=clock())
    loop.ticks.append(tick)
    await io.tick_started(loop, tick)
    steps: list[StepResult] = []
    try:
        outcome = await _tick_steps(loop, io, tick, steps)
    except ShuttingDown:
        loop.ticks.pop()
        with trio.CancelScope(shield=True):
            await io.tick_dropped(loop, tick)
        await trio.sleep_forever()    # the daemon is going down; this task is cancelled with it
        raise AssertionError("unreachable") from None
    except BaseException:
        # A stop, a shutdown or a crash of this task mid-tick: the tick is interrupted, never done.
        # One cut short before its first turn was accepted did not happen at all.
        if not tick.turn_ids:
            loop.ticks.pop()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await io.tick_dropped(loop, tick)
            raise
        tick.status, tick.ended_at = INTERRUPTED, clock()
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            loop.spend_usd = io.spend(loop)
            await io.tick_finished(loop, tick, None, steps)
        raise
    tick.status, tick.ended_at = outcome.status, clock()
    tick.pilot_verdict = str(outcome.pilot) if outcome.pilot else None
    tick.land_verdict = str(outcome.land) if outcome.land else None
    loop.spend_usd = io.spend(loop)
    judgement = judge(loop.spec, loop.strikes, outcome, ticks_done=len(loop.ticks), spend=loop.spend_usd)
    loop.strikes = judgement.strikes
    if judgement.stop_reason is not None:
        loop.state, loop.stop_reason = STATE_FINISHED, judgement.stop_reason
    await io.tick_finished(loop, tick, judgement, steps)


async def _tick_steps(loop: LoopState, io: TickIO, tick: TickRecord, steps: list[StepResult]) -> TickOutcome:
    spec = loop.spec
    text = tick_prompt(spec.text, loop.strikes, loop.id)
    if spec.mode == WORKFLOW:
        assert spec.workflow is not None
        first = await io.run_workflow(loop, tick, spec.workflow, text or f"Tick {tick.n} of loop {loop.id}.")
    else:
        first = await io.run_turn(loop, tick, text)
    steps.append(first)
    said = parse_verdicts(first.output)
    if spec.mode != PILOT:
        return _outcome(first.status, said.pilot, said.land, said, land_ran=False)
    pilot = said.pilot
    if first.status != COMPLETED or not wants_land(spec, pilot):
        return _outcome(first.status, pilot, None, said, land_ran=False)
    assert spec.land is not None
    second = await io.run_turn(loop, tick, tick_prompt(spec.land, loop.strikes, loop.id))
    steps.append(second)
    landed = parse_verdicts(second.output)
    status = second.status if second.status != COMPLETED else first.status
    return TickOutcome(status, pilot, landed.land, land_ran=True,
                       malformed="PILOT_VERDICT" in said.malformed or "LAND_VERDICT" in landed.malformed)


def _outcome(status: str, pilot: Verdict | None, land: Verdict | None, said: Verdicts, *,
             land_ran: bool) -> TickOutcome:
    if status == INTERRUPTED:
        return TickOutcome(INTERRUPTED)
    if status != COMPLETED:
        status = FAILED
    return TickOutcome(status, pilot, land, land_ran=land_ran, malformed=bool(said.malformed))
