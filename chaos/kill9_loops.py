"""Mid-loop kills for ``chaos/kill9.py`` (issue 19: "no loop state lost"; loops: docs/loops.md).

Three loops run in the daemon while the sessions stream turns: ``A`` back to back (``--every 0``,
so a kill mostly lands mid-tick), ``B`` every second (mostly between ticks) and ``C`` pilot/land
back to back (a kill may land between a tick's two turns). The fake provider answers a loop turn
with a PILOT_VERDICT / LAND_VERDICT line after a few chunks: mostly ``ADVANCED``, sometimes
``BLOCKED item-k`` (strikes), and ``NO_WORK`` once the run lets the loops finish.

Invariants, checked after every restart against the state database at the kill and against what
the watching client heard (``loop.tick_finished``):
- every tick on disk at the kill is still there with the same status and verdicts; one that was
  ``running`` reads ``interrupted`` (never ``completed``) — or is gone if it had no turn yet
  (docs/loops.md: "a tick cut short before its first turn was accepted did not happen");
- a tick the client heard finish is on disk with the status and verdicts it was told;
- strikes per item and spend never go down (spend against the last ``spend_usd`` heard too);
- no tick stays ``running``; every still-running loop runs a tick after the restart;
- at the end (the fake now says ``NO_WORK``) every loop stops: ``finished`` with ``no_work``, and no
  tick interrupted by a kill ever reads ``completed``.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from decimal import Decimal

import attrs
import trio

from chaos._harness import DaemonProcess, Report
from protocol.messages import ShowLoop, StartLoop
from tests.fakes import Answer, Tokens

MARK = "loop-chaos"
LOOPS = {   # name: (StartLoop, what a kill of it mostly hits)
    "A": StartLoop("prompt", f"{MARK} A: work the queue", every_s=0.0, max_ticks=10_000),
    "B": StartLoop("prompt", f"{MARK} B: check the queue", every_s=1.0, max_ticks=10_000),
    "C": StartLoop("pilot", f"{MARK} C pilot: pick an item", land=f"{MARK} C land: land it", every_s=0.0,
                   max_ticks=10_000),
}
FINISH_WITHIN_S = 60.0
RESUME_WITHIN_S = 30.0

Tick = tuple[str, str | None, str | None]   # status, pilot verdict, land verdict


def _last_user_text(body: dict) -> str:
    users = [m for m in body.get("messages") or () if isinstance(m, dict) and m.get("role") == "user"]
    return json.dumps(users[-1].get("content")) if users else ""


@attrs.define
class LoopChaos:
    rng: random.Random
    finishing: bool = False
    ids: dict[str, str] = attrs.field(factory=dict)               # name → loop id
    heard: dict[tuple[str, int], Tick] = attrs.field(factory=dict)  # (loop id, n) → what the client heard
    spend_heard: dict[str, Decimal] = attrs.field(factory=dict)
    interrupted: set[tuple[str, int]] = attrs.field(factory=set)  # ticks a kill cut (running at the kill)
    at_kill: dict[str, dict] = attrs.field(factory=dict)         # loop id → its rows at the last kill
    kill_points: Counter[str] = attrs.field(factory=Counter)
    tick_finished: trio.Event = attrs.field(factory=trio.Event)
    tick_started: trio.Event = attrs.field(factory=trio.Event)
    loop_turns: int = 0

    # --- the fake provider's side ------------------------------------------------------------------

    def answer(self, body: dict, usage: Tokens) -> Answer | None:
        """A loop turn's answer (None: not a loop turn)."""
        text = _last_user_text(body)
        if MARK not in text:
            return None
        self.loop_turns += 1
        kind = "LAND_VERDICT" if " land:" in text else "PILOT_VERDICT"
        if self.finishing:
            verdict = "NO_WORK"
        elif kind == "LAND_VERDICT":
            verdict = "LANDED item-1"
        else:
            roll = self.rng.random()
            verdict = (f"BLOCKED item-{self.rng.randint(1, 4)}" if roll < 0.25
                       else "DEFERRED_TO_LAND item-1" if roll < 0.4 and " C pilot" in text else "ADVANCED item-1")
        return Answer(text=("Worked on it.\n", *(f"step {i} " for i in range(6)), f"\n{kind}={verdict}\n"),
                      delay=0.05, usage=usage)

    # --- the client's side -------------------------------------------------------------------------

    async def start_loops(self, client) -> None:
        for name, start in LOOPS.items():
            self.ids[name] = (await client.request("loops", start)).loop["id"]

    async def watch(self, client, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Hear the loop events until cancelled (the kill)."""
        async with client.watch_loops() as events:
            task_status.started()
            async for e in events:
                if e["type"] == "loop.tick_started":
                    self.tick_started.set()
                elif e["type"] == "loop.tick_finished":
                    self.heard[(e["loop_id"], e["n"])] = (e["status"], e["pilot_verdict"], e["land_verdict"])
                    self.spend_heard[e["loop_id"]] = Decimal(e["spend_usd"])
                    self.tick_finished.set()

    def arm(self) -> None:
        self.tick_finished, self.tick_started = trio.Event(), trio.Event()

    # --- the state database, at the kill and after the restart -------------------------------------

    def _rows(self, daemon: DaemonProcess) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for loop_id, state, stop_reason, strikes in daemon.query("SELECT id, state, stop_reason, strikes FROM loops"):
            out[loop_id] = {"state": state, "stop_reason": stop_reason, "strikes": json.loads(strikes or "{}"),
                            "ticks": {}}
        for loop_id, n, status, pilot, land, turn_ids in daemon.query(
                "SELECT loop_id, n, status, pilot_verdict, land_verdict, turn_ids FROM loop_ticks"):
            out[loop_id]["ticks"][n] = (status, pilot, land, json.loads(turn_ids or "[]"))
        return out

    def record_kill(self, daemon: DaemonProcess) -> None:
        """Right after the SIGKILL: what was committed, and where the kill landed in each loop."""
        self.at_kill = self._rows(daemon)
        for name, loop_id in self.ids.items():
            ticks = self.at_kill.get(loop_id, {}).get("ticks", {})
            running = [n for n, t in ticks.items() if t[0] == "running"]
            self.interrupted.update((loop_id, n) for n in running if ticks[n][3])
            self.kill_points[f"{name}: mid-tick" if running else f"{name}: between ticks"] += 1

    async def check_restart(self, report: Report, daemon: DaemonProcess, client, kill_no: int,
                            spend_before: dict[str, Decimal]) -> None:
        after = self._rows(daemon)
        where = f"kill {kill_no}"
        for loop_id, was in self.at_kill.items():
            now = after.get(loop_id)
            if now is None:
                report.problem(f"{where}: loop {loop_id} is gone after the restart")
                continue
            for item, count in was["strikes"].items():
                if now["strikes"].get(item, 0) < count:
                    report.problem(f"{where}: loop {loop_id}: strikes for {item} went {count} → "
                                   f"{now['strikes'].get(item, 0)}")
            for n, (status, pilot, land, turn_ids) in was["ticks"].items():
                got = now["ticks"].get(n)
                if status == "running":
                    if not turn_ids:
                        # Cut before its first turn: it did not happen (docs/loops.md), and the
                        # resumed loop runs that number again.
                        continue
                    if got is None or got[0] != "interrupted":
                        report.problem(f"{where}: loop {loop_id} tick {n} was running at the kill (turns "
                                       f"{turn_ids}), reads {got[0] if got else 'nothing'!r} after the restart "
                                       "(want 'interrupted')")
                elif got is None or got[:3] != (status, pilot, land):
                    report.problem(f"{where}: loop {loop_id} tick {n} was {(status, pilot, land)} at the kill, "
                                   f"reads {got[:3] if got else None} after the restart")
        self._check_heard_and_interrupted(report, after, where)
        for loop_id, loop in after.items():
            running = [n for n, t in loop["ticks"].items() if t[0] == "running"]
            last_at_kill = self._last_at_kill(loop_id)
            if loop["state"] != "running":
                report.problem(f"{where}: loop {loop_id} is {loop['state']!r} ({loop['stop_reason']}) before "
                               "the run let it finish")
            elif running and min(running) <= last_at_kill:
                report.problem(f"{where}: loop {loop_id} ticks {running} still 'running' after the restart")
        await self._check_spend_and_resumed(report, client, where, spend_before)

    def _check_heard_and_interrupted(self, report: Report, rows: dict[str, dict], where: str) -> None:
        for (loop_id, n), told in self.heard.items():
            got = rows.get(loop_id, {}).get("ticks", {}).get(n)
            if got is None or got[:3] != told:
                report.problem(f"{where}: loop {loop_id} tick {n}: the client heard it finish {told}, on disk "
                               f"{got[:3] if got else None}")
                self.heard[(loop_id, n)] = got[:3] if got else ("gone", None, None)   # reported once
        for loop_id, n in self.interrupted:
            got = rows.get(loop_id, {}).get("ticks", {}).get(n)
            if got is not None and got[0] == "completed":
                report.problem(f"{where}: loop {loop_id} tick {n} was cut by a kill and reads 'completed'")

    def _last_at_kill(self, loop_id: str) -> int:
        """The last tick that happened before the kill (one cut before its first turn did not)."""
        ticks = self.at_kill.get(loop_id, {}).get("ticks", {})
        return max([n for n, t in ticks.items() if t[0] != "running" or t[3]] or [0])

    async def _check_spend_and_resumed(self, report: Report, client, where: str,
                                       spend_before: dict[str, Decimal]) -> None:
        for name, loop_id in self.ids.items():
            shown = (await client.request("loops", ShowLoop(loop_id))).loop
            spend = Decimal(shown["spend_usd"])
            floor = max(spend_before.get(loop_id, Decimal(0)), self.spend_heard.get(loop_id, Decimal(0)))
            if spend < floor:
                report.problem(f"{where}: loop {name} spend went {floor} → {spend} after the restart")
            last = self._last_at_kill(loop_id)
            with trio.move_on_after(RESUME_WITHIN_S) as waited:
                while (shown["current_tick"] or max([t["n"] for t in shown["ticks"]] or [0])) <= last:
                    await trio.sleep(0.05)
                    shown = (await client.request("loops", ShowLoop(loop_id))).loop
            if waited.cancelled_caught:
                report.problem(f"{where}: loop {name} ran no tick within {RESUME_WITHIN_S:g}s of the restart "
                               f"(last tick at the kill: {last})")

    async def spend_now(self, client) -> dict[str, Decimal]:
        return {loop_id: Decimal((await client.request("loops", ShowLoop(loop_id))).loop["spend_usd"])
                for loop_id in self.ids.values()}

    # --- the end -----------------------------------------------------------------------------------

    async def finish(self, report: Report, daemon: DaemonProcess, client) -> None:
        """Let the provider say NO_WORK: every loop must stop with that reason."""
        self.finishing = True
        shown: dict[str, dict] = {}
        with trio.move_on_after(FINISH_WITHIN_S):
            while True:
                shown = {name: (await client.request("loops", ShowLoop(loop_id))).loop
                         for name, loop_id in self.ids.items()}
                if all(s["state"] != "running" for s in shown.values()):
                    break
                await trio.sleep(0.1)
        for name, s in shown.items():
            if (s["state"], s["stop_reason"]) != ("finished", "no_work"):
                report.problem(f"loop {name} did not stop on NO_WORK within {FINISH_WITHIN_S:g}s: "
                               f"{s['state']} ({s['stop_reason']}), tick {s['current_tick']}")
        rows = self._rows(daemon)
        self._check_heard_and_interrupted(report, rows, "at the end")
        statuses = Counter(t[0] for loop in rows.values() for t in loop["ticks"].values())
        report.figures.update(
            loop_kill_points=dict(sorted(self.kill_points.items())),
            loop_ticks_on_disk=dict(statuses), loop_ticks_cut_by_a_kill=len(self.interrupted),
            loop_ticks_heard_finished=len(self.heard), loop_turns_answered=self.loop_turns,
            loop_strikes={name: rows[loop_id]["strikes"] for name, loop_id in self.ids.items()},
            loop_stop={name: f"{s['state']}/{s['stop_reason']}" for name, s in shown.items()})
