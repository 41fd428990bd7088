"""When ticks run: --every parsing, no overlap, and a missed tick after downtime runs once."""
from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from actors.loops.driver import COMPLETED, INTERRUPTED, PROMPT, LoopSpec
from actors.loops.runner import LoopState, StepResult, TickRecord, drive
from actors.loops.schedule import format_duration, next_due, parse_duration


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("10m", 600), ("1h", 3600), ("0", 0), ("1h30m", 5400)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1d", "-1m", "1.5h", "m", "8000h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips():
    assert [format_duration(parse_duration(t)) for t in ("30s", "10m", "1h", "0")] == ["30s", "10m", "1h", "0"]


def test_a_due_time_in_the_past_means_now_once():
    assert next_due(600, None, 1000.0) == 1000.0
    assert next_due(600, 1000.0, 1200.0) == 1600.0
    # the daemon was down for ten intervals: the next tick is now, and the one after is a full interval later
    assert next_due(600, 1000.0, 7000.0) == 7000.0
    assert next_due(600, 7000.0, 7001.0) == 7600.0


class ScriptedIO:
    """A TickIO whose turns take ``duration`` seconds and answer from ``answers``."""

    def __init__(self, answers: list[str], duration: float = 0.0):
        self.answers = answers
        self.duration = duration
        self.starts: list[float] = []
        self.running = 0
        self.overlaps = 0
        self.finished: list[TickRecord] = []
        self.dropped: list[int] = []

    async def run_turn(self, loop, tick, text):
        self.running += 1
        self.overlaps += self.running > 1
        self.starts.append(trio.current_time())
        tick.turn_ids.append(f"t{len(self.starts)}")     # accepted by the session: the tick has begun
        try:
            await trio.sleep(self.duration)
            return StepResult(COMPLETED, self.answers.pop(0), [f"t{len(self.starts)}"])
        finally:
            self.running -= 1

    async def run_workflow(self, loop, tick, name, text):
        raise AssertionError("not a workflow loop")

    def spend(self, loop):
        return Decimal(0)

    async def tick_started(self, loop, tick):
        pass

    async def tick_finished(self, loop, tick, judgement, outputs):
        self.finished.append(tick)

    async def tick_dropped(self, loop, tick):
        self.dropped.append(tick.n)

    async def loop_finished(self, loop):
        pass


async def test_ticks_start_every_interval_and_never_overlap(autojump_clock):
    io = ScriptedIO(["PILOT_VERDICT=ADVANCED"] * 3 + ["PILOT_VERDICT=NO_WORK"], duration=100)
    loop = LoopState("l_t", LoopSpec(PROMPT, "go", every_s=600), "s")
    t0 = trio.current_time()
    await drive(loop, io, trio.current_time)
    assert [s - t0 for s in io.starts] == [0, 600, 1200, 1800]
    assert io.overlaps == 0 and loop.stop_reason == "no_work"


async def test_a_tick_longer_than_the_interval_is_followed_at_once_not_overlapped(autojump_clock):
    io = ScriptedIO(["PILOT_VERDICT=ADVANCED"] * 2 + ["PILOT_VERDICT=NO_WORK"], duration=1500)
    loop = LoopState("l_t", LoopSpec(PROMPT, "go", every_s=600), "s")
    t0 = trio.current_time()
    await drive(loop, io, trio.current_time)
    assert [s - t0 for s in io.starts] == [0, 1500, 3000] and io.overlaps == 0


async def test_after_downtime_the_missed_tick_runs_once(autojump_clock):
    io = ScriptedIO(["PILOT_VERDICT=ADVANCED", "PILOT_VERDICT=NO_WORK"])
    loop = LoopState("l_t", LoopSpec(PROMPT, "go", every_s=600), "s")
    now = trio.current_time()
    # a restarted daemon: the last tick started ten intervals ago
    loop.ticks.append(TickRecord(1, COMPLETED, "ADVANCED", started_at=now - 6000, ended_at=now - 5990))
    await drive(loop, io, trio.current_time)
    assert [s - now for s in io.starts] == [0, 600]
    assert [t.n for t in io.finished] == [2, 3]


async def test_a_resumed_loop_at_its_tick_limit_stops_without_a_tick(autojump_clock):
    io = ScriptedIO([])
    loop = LoopState("l_t", LoopSpec(PROMPT, "go", max_ticks=1), "s", ticks=[TickRecord(1, INTERRUPTED)])
    await drive(loop, io, trio.current_time)
    assert io.starts == [] and loop.stop_reason == "max_ticks"


async def test_a_cancelled_tick_is_recorded_interrupted(autojump_clock):
    io = ScriptedIO(["PILOT_VERDICT=ADVANCED"], duration=100)
    loop = LoopState("l_t", LoopSpec(PROMPT, "go"), "s")
    with trio.move_on_after(50):
        await drive(loop, io, trio.current_time)
    assert [(t.n, t.status) for t in io.finished] == [(1, INTERRUPTED)]


async def test_failing_ticks_back_off_even_back_to_back(autojump_clock):
    class FailingIO(ScriptedIO):
        async def run_turn(self, loop, tick, text):
            self.starts.append(trio.current_time())
            return StepResult("failed", "", [], error="provider down")

    io = FailingIO([])
    loop = LoopState("l_t", LoopSpec(PROMPT, "go", every_s=0, max_ticks=5), "s")
    t0 = trio.current_time()
    await drive(loop, io, trio.current_time)
    assert [s - t0 for s in io.starts] == [0, 1, 3, 7, 15] and loop.stop_reason == "max_ticks"


async def test_a_tick_cancelled_before_its_turn_was_accepted_did_not_happen(autojump_clock):
    class NeverAccepted(ScriptedIO):
        async def run_turn(self, loop, tick, text):
            await trio.sleep_forever()

    io = NeverAccepted([])
    loop = LoopState("l_t", LoopSpec(PROMPT, "go"), "s")
    with trio.move_on_after(50):
        await drive(loop, io, trio.current_time)
    assert io.dropped == [1] and io.finished == [] and loop.ticks == []
