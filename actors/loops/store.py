"""Loops in the state database: the ``loops`` and ``loop_ticks`` tables (schema in
actors/runtime/store.py), read and written through the Store's own seams (``_write``/``_query``).

Portable SQL only (``?`` placeholders, ``INSERT … ON CONFLICT … DO UPDATE``, JSON as TEXT) so the
same statements serve the PostgreSQL backend. Spend is never stored: it is read from the cost
ledger (the rows of the ticks' turns), so a crash cannot lose or double it.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal, InvalidOperation

import attrs

from actors.runtime.store import Store

from .driver import INTERRUPTED, RUNNING, STATE_RUNNING, STATE_STOPPED, LoopSpec
from .runner import LoopState, TickRecord


class LoopStore:
    def __init__(self, store: Store):
        self.store = store

    # --- writes -------------------------------------------------------------------------------------

    def save_loop(self, loop: LoopState, *, unless_stopped: bool = False) -> None:
        """``unless_stopped``: the daemon driving a loop on a shared database never overwrites a
        ``loop stop`` another daemon wrote meanwhile (it adopts it instead: ``state_of``)."""
        now = time.time()
        guard = " WHERE loops.state<>?" if unless_stopped else ""
        self.store._write(
            "INSERT INTO loops (id, session_id, spec, state, stop_reason, strikes, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET state=excluded.state, "
            "stop_reason=excluded.stop_reason, strikes=excluded.strikes, updated_at=excluded.updated_at" + guard,
            (loop.id, loop.session_id, json.dumps(attrs.asdict(loop.spec)), loop.state, loop.stop_reason,
             json.dumps(loop.strikes, sort_keys=True), loop.created_at or now, now,
             *((STATE_STOPPED,) if unless_stopped else ())), None)

    def save_tick(self, loop_id: str, tick: TickRecord) -> None:
        self.store._write(
            "INSERT INTO loop_ticks (loop_id, n, status, pilot_verdict, land_verdict, cost_usd, turn_ids, error, "
            "started_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (loop_id, n) DO UPDATE SET "
            "status=excluded.status, pilot_verdict=excluded.pilot_verdict, land_verdict=excluded.land_verdict, "
            "cost_usd=excluded.cost_usd, turn_ids=excluded.turn_ids, error=excluded.error, "
            "ended_at=excluded.ended_at",
            (loop_id, tick.n, tick.status, tick.pilot_verdict, tick.land_verdict, tick.cost_usd,
             json.dumps(tick.turn_ids), tick.error, tick.started_at, tick.ended_at), None)

    def drop_tick(self, loop_id: str, n: int) -> None:
        self.store._write("DELETE FROM loop_ticks WHERE loop_id=? AND n=?", (loop_id, n), None)

    def close_interrupted_ticks(self, loop_id: str | None = None) -> int:
        """At start-up (or, on a shared database, when a dead daemon's loop is taken over: that loop
        only): ticks a crash left ``running`` were interrupted (never completed); one that had not
        started a turn yet did not happen."""
        where, args = ("status=?", (RUNNING,)) if loop_id is None else ("status=? AND loop_id=?", (RUNNING, loop_id))
        self.store._write(f"DELETE FROM loop_ticks WHERE {where} AND turn_ids=?", (*args, "[]"), None)
        rows = self.store._query(f"SELECT COUNT(*) FROM loop_ticks WHERE {where}", args)
        self.store._write(f"UPDATE loop_ticks SET status=?, ended_at=COALESCE(ended_at, started_at), "
                          f"error=COALESCE(error, ?) WHERE {where}",
                          (INTERRUPTED, "the daemon stopped during the tick", *args), None)
        return int(rows[0][0]) if rows else 0

    # --- reads ----------------------------------------------------------------------------------------

    def state_of(self, loop_id: str) -> str | None:
        rows = self.store._query("SELECT state FROM loops WHERE id=?", (loop_id,))
        return str(rows[0][0]) if rows else None

    def running_sessions(self) -> dict[str, str]:
        """Loop id → session id of every loop whose row says ``running`` (whichever daemon runs it)."""
        return {str(i): str(s) for i, s in self.store._query("SELECT id, session_id FROM loops WHERE state=?",
                                                              (STATE_RUNNING,))}

    def load(self, loop_id: str) -> LoopState | None:
        rows = self.store._query("SELECT id, session_id, spec, state, stop_reason, strikes, created_at "
                                 "FROM loops WHERE id=?", (loop_id,))
        return self._loop(rows[0]) if rows else None

    def load_all(self, *, running_only: bool = False) -> list[LoopState]:
        q = "SELECT id, session_id, spec, state, stop_reason, strikes, created_at FROM loops"
        args: tuple = ()
        if running_only:
            q, args = q + " WHERE state=?", (STATE_RUNNING,)
        return [self._loop(r) for r in self.store._query(q + " ORDER BY created_at, id", args)]

    def _loop(self, r: tuple) -> LoopState:
        spec = LoopSpec(**json.loads(r[2]))
        loop = LoopState(r[0], spec, r[1], r[3], r[4], {k: int(v) for k, v in json.loads(r[5] or "{}").items()},
                         created_at=r[6])
        loop.ticks = [TickRecord(t[0], t[1], t[2], t[3], t[4], list(json.loads(t[5] or "[]")), t[7], t[8], t[6])
                      for t in self.store._query(
                          "SELECT n, status, pilot_verdict, land_verdict, cost_usd, turn_ids, error, started_at, "
                          "ended_at FROM loop_ticks WHERE loop_id=? ORDER BY n", (loop.id,))]
        for tick in loop.ticks:
            if tick.cost_usd is None and tick.status != RUNNING:   # cut short by a crash: what the ledger has
                tick.cost_usd = str(self.tick_cost(tick))
        loop.spend_usd = self.spend(loop)
        return loop

    def turn_costs(self, turn_ids: list[str]) -> dict[str, Decimal]:
        """The cost ledger's total per turn (delegated workers' rows carry their parent turn's session,
        not its id: they are counted by ``spend`` through the loop's session)."""
        if not turn_ids:
            return {}
        marks = ",".join("?" * len(turn_ids))
        out: dict[str, Decimal] = {}
        for turn_id, cost in self.store._query(
                f"SELECT turn_id, cost_usd FROM costs WHERE turn_id IN ({marks}) AND cost_usd IS NOT NULL",
                tuple(turn_ids)):
            value = _decimal(cost)
            if value is not None:
                out[turn_id] = out.get(turn_id, Decimal(0)) + value
        return out

    def tick_cost(self, tick: TickRecord) -> Decimal:
        return sum(self.turn_costs(tick.turn_ids).values(), Decimal(0))

    def spend(self, loop: LoopState) -> Decimal:
        """Everything the loop's ticks cost: their turns' ledger rows, plus the rows of workers those
        turns delegated to (filed under the loop's session as parent)."""
        turn_ids = [t for tick in loop.ticks for t in tick.turn_ids]
        total = sum(self.turn_costs(turn_ids).values(), Decimal(0))
        for (cost,) in self.store._query(
                "SELECT cost_usd FROM costs WHERE parent_session_id=? AND cost_usd IS NOT NULL", (loop.session_id,)):
            value = _decimal(cost)
            if value is not None:
                total += value
        return total


def _decimal(text: object) -> Decimal | None:
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None
