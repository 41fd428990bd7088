"""The availability actor: a thin loop around the sans-IO tracker in ``availability_state``.

State changes are told to the router as an ``AvailabilityChanged`` message (it records and logs
them); nothing here awaits another actor, so a slow router never holds up the attempts reported.

The view itself (what is unavailable) is also *published* to the router whenever it changes
(``ActorSystem.publish``: the router keeps only the newest one, no queue, no task switch), before
the handler that changed it returns. So once this actor has handled every message delivered to
it (``ActorSystem.settled``), the published view includes every outcome reported so far, and the
router can route from it without asking (actors/router/actor.py, ``_availability_known``).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import trio

from protocol.codec import Envelope
from protocol.messages import (
    Ack, AvailabilityChanged, AvailabilityTransition, AvailabilityView, CallOutcome, GetAvailability,
    GetUnavailableScopes, ResetAvailability, UnavailableScope, UnavailableScopes,
)

from actors.availability.shared import POLL_S, SharedObservations, fold_remote
from actors.availability.state import AvailabilityTracker, Transition, iso_utc
from actors.runtime.kernel import Actor
from actors.runtime.store import StorageError


class AvailabilityActor(Actor):
    name = "availability"

    def __init__(self, system, *, clock: Callable[[], float] = time.monotonic, router: str | None = "router",
                 shared: SharedObservations | None = None):
        super().__init__(system)
        self.tracker = AvailabilityTracker()
        self.clock = clock
        self.router = router   # where transitions are told; None: nobody listens
        self.shared = shared   # a fleet on one database: what the other daemons observe (actors/availability/shared.py)

    def handlers(self):
        return {CallOutcome: self.on_outcome, GetAvailability: self.on_get, ResetAvailability: self.on_reset,
                GetUnavailableScopes: self.on_scopes}

    async def on_outcome(self, env: Envelope[CallOutcome]):
        m = env.body
        await self._publish(self.tracker.record(m.provider, m.model, m.ok, m.error_class, self.clock()))
        if self.shared is not None:
            try:
                self.shared.record(m.provider, m.model, m.ok, m.error_class, time.time())
            except StorageError as exc:   # the others miss one observation; this daemon keeps it
                self.log.warning("availability observation not shared", error=str(exc))
        return None

    async def setup(self, nursery: trio.Nursery) -> None:
        self._publish_view(self.tracker.unavailable(self.clock()))   # a restart starts from a fresh tracker
        if self.shared is not None:
            self.spawn(self._follow_fleet, self.shared)

    async def _follow_fleet(self, shared: SharedObservations) -> None:
        """Fold in what the other daemons observe, every ``POLL_S``."""
        first = True
        while True:
            try:
                rows = shared.start(time.time()) if first else shared.new()
                if first:
                    shared.prune(time.time())
                first = False
                await self._publish(fold_remote(self.tracker, rows, self.clock(), time.time()))
            except StorageError as exc:   # the database is away: try again on the next poll
                self.log.warning("could not read the fleet's availability observations", error=str(exc))
            await trio.sleep(POLL_S)

    async def on_get(self, env):
        unavailable = self.tracker.unavailable(self.clock())
        # Scopes also clear without a transition (AUTO_CLEAR_S without attempts): a router that
        # had to ask because its copy still named them gets the current view for the next turns.
        self._publish_view(unavailable)
        return AvailabilityView(unavailable)

    async def on_reset(self, env):
        changes = self.tracker.reset(env.body.scope, self.clock())
        await self._publish(changes)
        return Ack(detail=f"{len(changes)} scope(s) recovered")

    async def on_scopes(self, env) -> UnavailableScopes:
        now = self.clock()
        scopes = tuple(UnavailableScope(scope, info["scope"], info["reason"], iso_utc(self._wall(info["since"], now)),
                                        info.get("detail"))
                       for scope, info in self.tracker.unavailable(now).items())
        return UnavailableScopes(scopes)

    def _wall(self, at: float, now: float) -> float:
        """The tracker's clock (monotonic in production, stepped in tests) as wall-clock seconds."""
        return time.time() - (now - at)

    def _publish_view(self, unavailable: dict[str, dict]) -> None:
        if self.router is not None:
            self.system.publish(self.router, AvailabilityView(unavailable))

    async def _publish(self, changes: list[Transition]) -> None:
        if not changes or self.router is None:
            return
        now = self.clock()
        # Published before anything here can wait (the tell below may, on a full mailbox).
        self._publish_view(self.tracker.unavailable(now))
        await self.tell(self.router, AvailabilityChanged(tuple(
            AvailabilityTransition(t.kind, t.scope, t.reason, self._wall(t.at, now)) for t in changes)))
