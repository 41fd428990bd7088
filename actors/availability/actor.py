"""The availability actor: a thin loop around the sans-IO tracker in ``availability_state``."""
from __future__ import annotations

import time
from typing import Callable

from protocol.messages import Ack, AvailabilityView, CallOutcome, GetAvailability, ResetAvailability

from actors.availability.state import AvailabilityTracker
from actors.runtime.kernel import Actor


class AvailabilityActor(Actor):
    name = "availability"

    def __init__(self, system, *, clock: Callable[[], float] = time.monotonic, on_change=None):
        super().__init__(system)
        self.tracker = AvailabilityTracker()
        self.clock = clock
        self.on_change = on_change   # async fn(list of transition events)

    def handlers(self):
        return {CallOutcome: self.on_outcome, GetAvailability: self.on_get, ResetAvailability: self.on_reset}

    async def on_outcome(self, env):
        m: CallOutcome = env.body
        changes = self.tracker.record(m.provider, m.model, m.ok, m.error_class, self.clock())
        if changes and self.on_change:
            await self.on_change(changes)
        return None

    async def on_get(self, env):
        return AvailabilityView(self.tracker.unavailable(self.clock()))

    async def on_reset(self, env):
        changes = self.tracker.reset(env.body.scope, self.clock())
        if changes and self.on_change:
            await self.on_change(changes)
        return Ack(detail=f"{len(changes)} scope(s) recovered")
