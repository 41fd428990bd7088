"""Ledger rows for the calls delegate_code makes on a turn's behalf (the agent, the reviewer)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
import trio

from protocol.canonical import Usage
from protocol.messages import RecordUsage, RunTurn

from actors.config.registry import ModelRegistry, ModelSpec

if TYPE_CHECKING:
    from actors.planner.actor import PlannerActor

log = structlog.get_logger("delegate")

LEDGER_BOUND_S = 5.0


async def record_usage(planner: PlannerActor, run: RunTurn, spec: ModelSpec, usage: Usage,
                       registry: ModelRegistry) -> Usage:
    """A ledger row (role ``worker``) for a call made on the turn's behalf; returns the priced usage.
    Shielded and bounded: a call being cancelled is still billed."""
    from actors.planner.support import price_call

    priced, price = price_call(spec, usage, registry.providers.get(spec.provider))
    record = RecordUsage(run.session_id, run.turn_id, spec.id, "worker", priced, run.parent_session_id, price,
                         planner.clock())
    with trio.CancelScope(shield=True), trio.move_on_after(LEDGER_BOUND_S):
        try:
            await planner.system.tell_patiently(planner.cost, record, stall_s=LEDGER_BOUND_S / 2)
        except Exception as exc:
            log.error("ledger row not delivered", turn_id=run.turn_id, model=spec.id, error=repr(exc))
    return priced
