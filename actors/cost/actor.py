"""The cost actor: a ledger row per LLM call, roll-ups per model and role, and today's spend.

Roll-up logic is pure (``build_report``); the actor only moves rows between the wire and SQLite.
"""
from __future__ import annotations

import math
import time
from datetime import datetime, UTC
from decimal import Decimal, InvalidOperation
from collections.abc import Callable, Iterable

from protocol.bounds import MAX_ID_CHARS, MAX_INT, OutOfBounds, check_bounds
from protocol.messages import CostAmount, CostReport, GetCost, GetCostToday, RecordUsage

from actors.runtime.kernel import Actor
from actors.cost.pricing import decimal_str
from actors.runtime.store import CostRow, Store

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


# One call costing more than this is not a price, it is a bug or an attack.
MAX_CALL_USD = Decimal(1_000_000)


def sane_record(m: RecordUsage, now: float) -> tuple[CostRow, dict, list[str]]:
    """The ledger row for ``m`` with every field in range, and what had to be fixed.

    A usage record comes from our own planner, but its numbers come from a provider: a NaN or
    text cost, a 2**64 token count or a pathological price map must never reach SQLite or the
    daily total (one NaN row would silently disable ``cost_today_exceeds_usd`` for the day).
    """
    problems: list[str] = []
    u = m.usage

    def count(name: str) -> int:
        value = getattr(u, name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT:
            return value
        problems.append(f"{name}={value!r:.40}")
        return 0

    def text(value: object, name: str) -> str:
        if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
            return value
        problems.append(f"{name} is not a short string")
        return str(value)[:MAX_ID_CHARS]

    cost: Decimal | None = None
    if u.cost_usd is not None:
        try:
            cost = Decimal(u.cost_usd) if isinstance(u.cost_usd, str) and len(u.cost_usd) <= 64 else None
        except (InvalidOperation, ValueError):
            cost = None
        if cost is None or not cost.is_finite() or not Decimal(0) <= cost <= MAX_CALL_USD:
            problems.append(f"cost_usd={u.cost_usd!r:.40} (recorded as unknown)")
            cost = None
    price = m.price if isinstance(m.price, dict) else {}
    try:
        check_bounds(price)
    except OutOfBounds as exc:
        problems.append(f"price: {exc}")
        price = {}
    at = m.at if isinstance(m.at, (int, float)) and math.isfinite(m.at) and 0 < m.at < 1e11 else now
    parent = m.parent_session_id if m.parent_session_id is None else text(m.parent_session_id, "parent_session_id")
    row = CostRow(text(m.session_id, "session_id"), parent, text(m.turn_id, "turn_id"), text(m.model, "model"),
                  text(m.role, "role"), count("input_tokens"), count("output_tokens"), count("cache_read_tokens"),
                  count("cache_write_tokens"), count("reasoning_tokens"), cost, at)
    return row, price, problems


def utc_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def fmt_usd(d: Decimal) -> str:
    """Exact: totals must equal the sum of the per-call costs they are made of."""
    return decimal_str(d) if d else "0"


def known_cost(cost: Decimal, calls: int, unknown_calls: int) -> str | None:
    """Unknown is not free: calls none of which has a price have no cost (null), not 0; with some
    priced calls it is their sum, and the unknown ones are counted beside it. No calls: 0."""
    return None if calls and unknown_calls == calls else fmt_usd(cost)


def build_report(rows: Iterable[CostRow], root_session: str | None = None) -> CostReport:
    by_model: dict[tuple[str, str], dict] = {}
    by_role = {"planner": Decimal(0), "worker": Decimal(0)}
    role_calls = {"planner": 0, "worker": 0}
    role_unknown = {"planner": 0, "worker": 0}
    total = Decimal(0)
    unknown = 0
    workers: dict[str, dict] = {}
    planner_turns: set[str] = set()
    planner_models: set[str] = set()
    for r in rows:
        key = (r.model, r.role)
        entry = by_model.setdefault(key, {"model": r.model, "role": r.role, "calls": 0, "cost": Decimal(0),
                                          **{f: 0 for f in TOKEN_FIELDS}, "unknown_cost_calls": 0})
        role = r.role if r.role in by_role else "planner"
        entry["calls"] += 1
        role_calls[role] += 1
        for f in TOKEN_FIELDS:
            entry[f] += getattr(r, f)
        if r.cost_usd is None:
            unknown += 1
            entry["unknown_cost_calls"] += 1
            role_unknown[role] += 1
        else:
            entry["cost"] += r.cost_usd
            by_role[role] += r.cost_usd
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
        models.append({**e, "cost_usd": known_cost(cost, e["calls"], e["unknown_cost_calls"])})

    def role_cost(role: str) -> str | None:
        return known_cost(by_role[role], role_calls[role], role_unknown[role])

    total_usd = known_cost(total, sum(role_calls.values()), unknown)
    tree = {
        "session_id": root_session,
        "total_usd": total_usd,
        "unknown_cost_calls": unknown,
        "planner": {"models": sorted(planner_models), "cost_usd": role_cost("planner"),
                    "unknown_cost_calls": role_unknown["planner"], "turns": len(planner_turns)},
        "workers": {
            "cost_usd": role_cost("worker"),
            "unknown_cost_calls": role_unknown["worker"],
            "delegations": len(workers),
            "items": [{"worker_session_id": w["worker_session_id"], "model": w["model"],
                       "cost_usd": known_cost(w["cost"], w["calls"], w["unknown"]),
                       "turns": len(w["turns"]), "calls": w["calls"], "unknown_cost_calls": w["unknown"]}
                      for w in workers.values()],
        },
    }
    return CostReport(total_usd, tuple(models), {role: role_cost(role) for role in by_role}, tree, unknown)


class CostActor(Actor):
    name = "cost"

    def __init__(self, system, store: Store, *, clock: Callable[[], float] = time.time):
        super().__init__(system)
        self.store = store
        self.clock = clock

    def handlers(self):
        return {RecordUsage: self.on_record, GetCost: self.on_get, GetCostToday: self.on_today}

    async def on_record(self, env):
        row, price, problems = sane_record(env.body, self.clock())
        if problems:
            self.log.warning("usage record out of range; fixed before recording", sender=env.sender,
                             problems=problems[:5])
        self.store.record_cost(row, price)
        return None

    async def on_get(self, env):
        sid = env.body.session_id
        if sid:
            return build_report(self.store.cost_rows(session_id=sid), sid)
        return build_report(self.store.cost_rows(since=utc_midnight(self.clock())))

    async def on_today(self, env):
        return CostAmount(str(self.store.cost_since(utc_midnight(self.clock()))))
