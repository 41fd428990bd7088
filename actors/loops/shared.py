"""The loop actor on a shared database (several daemons on one PostgreSQL): leases, takeover, and
``loop stop|resume|show`` for a loop another daemon runs (docs/loops.md, "Loops on a shared database").

- A daemon drives a loop only while it holds the loop's lease (kind ``loop``); the daemon's lease
  keeper renews it with the session leases, so a loop and its session lapse together.
- Every ``ttl / 3`` (``scan``) the daemon adopts a ``loop stop`` another daemon wrote into a loop
  it drives, and takes over running loops whose lease is free: the tick their dead owner left
  ``running`` is closed ``interrupted`` and the loop goes on at its next tick; ticks, strikes and
  spend are in the database. Its session moves with it: the session actor takes the session's
  lease at the first turn (and closes the dead owner's turn as interrupted).
- ``loop stop`` on a daemon that does not drive the loop writes ``stopped`` into the row: the
  owner notices at its next scan or tick boundary and interrupts the tick in progress. ``loop
  resume`` there takes the loop over when no live daemon holds it, and otherwise answers one line
  naming the daemon that does.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from actors.runtime import lease
from actors.runtime.lease import LeaseKeeper
from actors.runtime.store import StorageError
from protocol.messages import Failure

from .driver import STATE_RUNNING, STATE_STOPPED, STOPPED
from .fleet import LOOP_LEASE, SESSION_LEASE, FleetView, decide, scan_interval
from .runner import LoopState
from .store import LoopStore


class LoopHost(Protocol):
    """What this needs of the loop actor (actor.py), without importing it."""

    db: LoopStore
    loops: dict[str, LoopState]
    _scopes: dict[str, trio.CancelScope]
    log: Any

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...

    async def _drive(self, loop: LoopState) -> None: ...


class SharedLoops:
    def __init__(self, actor: LoopHost, leases: LeaseKeeper, clock: Callable[[], float] = time.time):
        self.actor = actor
        self.leases = leases
        self.clock = clock
        self.lost: set[str] = set()        # loops whose lease another daemon took while we drove them
        self.parked: set[str] = set()      # loops whose drive failed here: they wait for `loop resume`
        leases.on_lost.append(self._lost)

    @property
    def db(self) -> LoopStore:
        return self.actor.db

    # --- ownership ------------------------------------------------------------------------------------

    def holder(self, loop_id: str) -> str | None:
        return lease.holder(self.leases.store, LOOP_LEASE, loop_id, self.clock())

    def mine(self, loop: LoopState) -> bool:
        """False once another daemon took the loop from us (we stalled past the ttl): write nothing."""
        return loop.id not in self.lost

    def claim_new(self, loop_id: str) -> None:
        self.leases.acquire(LOOP_LEASE, loop_id)

    def drive_started(self, loop: LoopState) -> None:
        self.lost.discard(loop.id)
        self.parked.discard(loop.id)

    def drive_ended(self, loop: LoopState, *, failed: bool) -> None:
        """A loop that stopped or finished here is nobody's: its lease and its session's go at once,
        so any daemon may resume it. A drive that failed keeps them (it waits for `loop resume`)."""
        if failed:
            self.parked.add(loop.id)
            return
        if loop.id in self.lost or loop.state == STATE_RUNNING:   # lost, or cancelled by a shutdown
            return
        self.leases.release(LOOP_LEASE, loop.id)
        self.leases.release(SESSION_LEASE, loop.session_id)

    def _lost(self, kind: str, id_: str) -> None:
        if kind != LOOP_LEASE or id_ not in self.actor._scopes:
            return
        self.lost.add(id_)
        self.actor.log.warning("loop taken by another daemon; no longer driven here", loop_id=id_)
        self.actor._scopes[id_].cancel()

    def adopt_stop(self, loop: LoopState) -> bool:
        """At a tick boundary: a `loop stop` another daemon wrote into the row stops the loop here."""
        if loop.state != STATE_RUNNING or self.db.state_of(loop.id) != STATE_STOPPED:
            return False
        loop.state, loop.stop_reason = STATE_STOPPED, STOPPED
        return True

    # --- the periodic scan ------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                self.scan()
            except StorageError as exc:   # the server is away: the next scan tries again
                self.actor.log.warning("loop scan failed", error=str(exc))
            await trio.sleep(scan_interval(self.leases.ttl))

    def view(self) -> FleetView:
        store, now = self.leases.store, self.clock()
        running = self.db.running_sessions()
        driving = frozenset(self.actor._scopes) | frozenset(self.parked)
        loop_holders: dict[str, str] = {}
        session_holders: dict[str, str] = {}
        for loop_id, session_id in running.items():
            if loop_id in driving:
                continue
            if (who := lease.holder(store, LOOP_LEASE, loop_id, now)) is not None:
                loop_holders[loop_id] = who
            if (who := lease.holder(store, SESSION_LEASE, session_id, now)) is not None:
                session_holders[session_id] = who
        return FleetView(running, driving, loop_holders, session_holders, self.leases.owner)

    def scan(self) -> None:
        decision = decide(self.view())
        for loop_id in decision.stop:
            loop = self.actor.loops.get(loop_id)
            scope = self.actor._scopes.get(loop_id)
            if loop is not None and scope is not None and self.adopt_stop(loop):
                scope.cancel()   # the tick in progress is interrupted; the stop is published
        for loop_id in decision.take:
            self.take_over(loop_id)

    def take_over(self, loop_id: str) -> LoopState | None:
        claim = self.leases.acquire(LOOP_LEASE, loop_id)
        if not claim.ok:
            return None
        closed = self.db.close_interrupted_ticks(loop_id)   # only the lease holder writes a running tick
        loop = self.db.load(loop_id)
        if loop is None or loop.state != STATE_RUNNING:
            self.leases.release(LOOP_LEASE, loop_id)
            return None
        self.actor.loops[loop_id] = loop
        self.actor.log.info("loop taken over", loop_id=loop_id, previous=claim.previous, ticks_interrupted=closed)
        self.actor.spawn(self.actor._drive, loop)
        return loop

    # --- commands for loops driven elsewhere (or nowhere) ---------------------------------------------

    def find(self, loop_id: str) -> LoopState | None:
        if loop_id in self.actor._scopes:
            return self.actor.loops.get(loop_id)
        return self.db.load(loop_id)

    def listing(self, *, running_only: bool) -> list[LoopState]:
        """`status` (running_only): the loops this daemon drives; `loop list`: every loop in the database."""
        if running_only:
            return [self.actor.loops[i] for i in self.actor._scopes if i in self.actor.loops]
        return [self.actor.loops[lp.id] if lp.id in self.actor._scopes else lp for lp in self.db.load_all()]

    def stop(self, loop: LoopState) -> tuple[LoopState, bool]:
        """Stop a loop this daemon does not drive: through its row. Returns the loop as it is now and
        whether it stopped here and then (no live daemon drove it)."""
        if loop.state != STATE_RUNNING:
            return loop, False
        owned = self.holder(loop.id) is None and self.leases.acquire(LOOP_LEASE, loop.id).ok
        try:
            if owned:
                self.db.close_interrupted_ticks(loop.id)
            loop.state, loop.stop_reason = STATE_STOPPED, STOPPED
            self.db.save_loop(loop)
        finally:
            if owned:
                self.leases.release(LOOP_LEASE, loop.id)
        return (self.db.load(loop.id) or loop), owned

    def resume(self, loop_id: str, session_id: str, *, clear_strikes: bool) -> LoopState | Failure:
        """Resume a loop this daemon does not drive: take it over unless a live daemon holds it (or
        still serves its session: the ticks here would fail)."""
        session_holder = lease.holder(self.leases.store, SESSION_LEASE, session_id, self.clock())
        claim = self.leases.acquire(LOOP_LEASE, loop_id) if session_holder in (None, self.leases.owner) else None
        if claim is None or not claim.ok:
            owner = claim.owner if claim is not None else session_holder
            return Failure("loop_elsewhere",
                           f"loop {loop_id} is run by another daemon ({owner}); resume it there, or here once "
                           f"that daemon stops it or dies (its lease lapses within {self.leases.ttl:g} s)")
        self.db.close_interrupted_ticks(loop_id)
        loop = self.db.load(loop_id)
        if loop is None:
            self.leases.release(LOOP_LEASE, loop_id)
            return Failure("unknown_loop", f"no loop {loop_id!r}")
        if clear_strikes:
            loop.strikes = {}
        loop.state, loop.stop_reason = STATE_RUNNING, None
        self.db.save_loop(loop)
        self.actor.loops[loop_id] = loop
        self.actor.spawn(self.actor._drive, loop)
        return loop
