"""The cost actor: a ledger row per LLM call, roll-ups per model and role, and today's spend.

Roll-up logic is pure (``build_report``); the actor only moves rows between the wire and SQLite.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, Iterable

from protocol.messages import CostAmount, CostReport, GetCost, GetCostToday, RecordUsage

from actors.runtime.kernel import Actor
from actors.cost.pricing import decimal_str
from actors.runtime.store import CostRow, Store

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def utc_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def fmt_usd(d: Decimal) -> str:
    """Exact: totals must equal the sum of the per-call costs they are made of."""
    return decimal_str(d) if d else "0"


def build_report(rows: Iterable[CostRow], root_session: str | None = None) -> CostReport:
    by_model: dict[tuple[str, str], dict] = {}
    by_role = {"planner": Decimal(0), "worker": Decimal(0)}
    total = Decimal(0)
    unknown = 0
    workers: dict[str, dict] = {}
    planner_turns: set[str] = set()
    planner_models: set[str] = set()
    for r in rows:
        key = (r.model, r.role)
        entry = by_model.setdefault(key, {"model": r.model, "role": r.role, "calls": 0, "cost": Decimal(0),
                                          **{f: 0 for f in TOKEN_FIELDS}, "unknown_cost_calls": 0})
        entry["calls"] += 1
        for f in TOKEN_FIELDS:
            entry[f] += getattr(r, f)
        if r.cost_usd is None:
            unknown += 1
            entry["unknown_cost_calls"] += 1
        else:
            entry["cost"] += r.cost_usd
            by_role[r.role if r.role in by_role else "planner"] += r.cost_usd
            total += r.cost_usd
        if r.role == "worker":
            w = workers.setdefault(r.session_id, {"worker_session_id": r.session_id, "model": r.model,
                                                  "cost": Decimal(0), "turns": set(), "calls": 0, "unknown": 0})
            w["cost"] += r.cost_usd or 0
            w["unknown"] += r.cost_usd is None
            w["calls"] += 1
            if r.turn_id:
                w["turns"].add(r.turn_id)
        else:
            planner_models.add(r.model)
            if r.turn_id:
                planner_turns.add(r.turn_id)
    models = []
    for e in sorted(by_model.values(), key=lambda e: (-e["cost"], e["model"], e["role"])):
        cost = e.pop("cost")
        # Unknown is not free: a model none of whose calls has a price has no cost (null), not 0.
        known = e["calls"] > e["unknown_cost_calls"]
        models.append({**e, "cost_usd": fmt_usd(cost) if known else None})
    tree = {
        "session_id": root_session,
        "total_usd": fmt_usd(total),
        "planner": {"models": sorted(planner_models), "cost_usd": fmt_usd(by_role["planner"]), "turns": len(planner_turns)},
        "workers": {
            "cost_usd": fmt_usd(by_role["worker"]),
            "delegations": len(workers),
            "items": [{"worker_session_id": w["worker_session_id"], "model": w["model"],
                       "cost_usd": fmt_usd(w["cost"]) if w["calls"] > w["unknown"] else None,
                       "turns": len(w["turns"]), "calls": w["calls"], "unknown_cost_calls": w["unknown"]}
                      for w in workers.values()],
        },
    }
    return CostReport(fmt_usd(total), tuple(models), {k: fmt_usd(v) for k, v in by_role.items()}, tree, unknown)


class CostActor(Actor):
    name = "cost"

    def __init__(self, system, store: Store, *, clock: Callable[[], float] = time.time):
        super().__init__(system)
        self.store = store
        self.clock = clock

    def handlers(self):
        return {RecordUsage: self.on_record, GetCost: self.on_get, GetCostToday: self.on_today}

    async def on_record(self, env):
        m: RecordUsage = env.body
        u = m.usage
        self.store.record_cost(CostRow(m.session_id, m.parent_session_id, m.turn_id, m.model, m.role, u.input_tokens,
                                       u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,
                                       None if u.cost_usd is None else Decimal(u.cost_usd), m.at or self.clock()),
                               m.price)
        return None

    async def on_get(self, env):
        sid = env.body.session_id
        if sid:
            return build_report(self.store.cost_rows(session_id=sid), sid)
        return build_report(self.store.cost_rows(since=utc_midnight(self.clock())))

    async def on_today(self, env):
        return CostAmount(str(self.store.cost_since(utc_midnight(self.clock()))))
