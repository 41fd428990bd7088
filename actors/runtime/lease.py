"""Who owns a session (or a loop) when several daemons share one database: a lease row.

A lease is ``(kind, id) → owner, expires_at`` in the ``leases`` table. ``acquire`` takes a free or
expired lease (or renews one we hold) in ONE conditional upsert, so two daemons racing for it
cannot both win; the keeper's heartbeat pushes the expiry of every lease it holds forward each
``ttl / 3``; a daemon that dies (``kill -9``) stops renewing and its leases expire after ``ttl``,
when any other daemon may take them. A lease row is used rather than an advisory lock because it
survives the connection (a reconnect must not hand sessions away), shows who holds what, and works
the same on SQLite.

Expiry compares wall-clock times written by different hosts: their clocks must agree to well
within ``ttl`` (NTP does that).
"""
from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable

import attrs
import structlog
import trio

from .store import Store
from .store_backend import StorageError

log = structlog.get_logger("lease")

DEFAULT_TTL_S = 30.0
TTL_ENV = "ORCHESTRATOR_LEASE_TTL_S"


def daemon_identity() -> str:
    """Unique per daemon run, readable for a person: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def lease_ttl(env: dict[str, str] | None = None) -> float:
    raw = (os.environ if env is None else env).get(TTL_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TTL_S
    return value if 0.2 <= value <= 3600 else DEFAULT_TTL_S


@attrs.frozen
class Claim:
    """The outcome of ``acquire``: ``ok`` when we hold the lease now; ``previous`` is the owner it
    was taken from (a takeover: that daemon's unfinished work on it is ours to close)."""
    ok: bool
    owner: str
    expires_at: float
    previous: str | None = None


_ACQUIRE = (
    "INSERT INTO leases (kind, id, owner, expires_at) VALUES (?,?,?,?) "
    "ON CONFLICT (kind, id) DO UPDATE SET owner=excluded.owner, expires_at=excluded.expires_at "
    "WHERE leases.owner=excluded.owner OR leases.expires_at<?"
)


def acquire(store: Store, kind: str, id_: str, owner: str, ttl: float, now: float) -> Claim:
    """Take (or renew) the lease on ``(kind, id_)`` for ``owner`` unless another live owner holds it."""
    before = store._query("SELECT owner, expires_at FROM leases WHERE kind=? AND id=?", (kind, id_))
    store._write(_ACQUIRE, (kind, id_, owner, now + ttl, now), None)
    after = store._query("SELECT owner, expires_at FROM leases WHERE kind=? AND id=?", (kind, id_))
    holder, expires = (after[0][0], float(after[0][1])) if after else ("", 0.0)
    if holder != owner:
        return Claim(False, holder, expires)
    previous = before[0][0] if before and before[0][0] != owner else None
    return Claim(True, owner, expires, previous)


def holder(store: Store, kind: str, id_: str, now: float) -> str | None:
    """Who holds a live lease on ``(kind, id_)``; None when nobody does."""
    rows = store._query("SELECT owner FROM leases WHERE kind=? AND id=? AND expires_at>=?", (kind, id_, now))
    return rows[0][0] if rows else None


def release(store: Store, kind: str, id_: str, owner: str) -> None:
    store._write("DELETE FROM leases WHERE kind=? AND id=? AND owner=?", (kind, id_, owner), None)


def renew(store: Store, owner: str, ttl: float, now: float) -> set[tuple[str, str]]:
    """Push the expiry of every lease ``owner`` still holds; returns those it holds."""
    store._write("UPDATE leases SET expires_at=? WHERE owner=?", (now + ttl, owner), None)
    return {(k, i) for k, i in store._query("SELECT kind, id FROM leases WHERE owner=?", (owner,))}


class LeaseKeeper:
    """One daemon's leases: acquire, release, and the heartbeat that keeps them (``run``).

    ``on_lost(kind, id)`` is called when a lease we thought we held is gone (this daemon stalled
    longer than the ttl and another took it): the caller stops treating it as its own.
    """

    def __init__(self, store: Store, *, owner: str | None = None, ttl: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.owner = owner or daemon_identity()
        self.ttl = ttl
        self.clock = clock
        self.held: set[tuple[str, str]] = set()
        self.on_lost: list[Callable[[str, str], None]] = []

    def acquire(self, kind: str, id_: str) -> Claim:
        claim = acquire(self.store, kind, id_, self.owner, self.ttl, self.clock())
        if claim.ok:
            self.held.add((kind, id_))
        return claim

    def holds(self, kind: str, id_: str) -> bool:
        return (kind, id_) in self.held

    def release(self, kind: str, id_: str) -> None:
        self.held.discard((kind, id_))
        try:
            release(self.store, kind, id_, self.owner)
        except StorageError as exc:   # not renewed any more, it lapses within the ttl by itself
            log.warning("lease not released", kind=kind, id=id_, error=str(exc))

    def release_all(self) -> None:
        self.held.clear()
        self.store._write("DELETE FROM leases WHERE owner=?", (self.owner,), None)

    def heartbeat(self) -> None:
        still = renew(self.store, self.owner, self.ttl, self.clock())
        for kind, id_ in sorted(self.held - still):
            self.held.discard((kind, id_))
            log.warning("lease lost to another daemon", kind=kind, id=id_)
            for callback in self.on_lost:
                callback(kind, id_)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.ttl / 3)
            try:
                self.heartbeat()
            except StorageError as exc:   # the server is away: try again next beat, leases may lapse
                log.warning("lease heartbeat failed", error=str(exc))


class SessionElsewhere(Exception):
    """Another live daemon serves this session (its lease is held)."""

    failure_code = "session_elsewhere"


def serve_session(leases: LeaseKeeper, store: Store, session_id: str) -> bool:
    """Hold ``session_id``'s lease before serving it. True when it was just taken: what this daemon
    remembers of the session may be stale (another daemon served it), and a dead owner's turns
    still marked running are closed as interrupted. ``SessionElsewhere`` while a live daemon has it."""
    if leases.holds("session", session_id):
        return False
    claim = leases.acquire("session", session_id)
    if not claim.ok:
        raise SessionElsewhere(
            f"session {session_id} is being served by another daemon ({claim.owner}); use that daemon, "
            f"or retry once it stops (its lease lapses within {leases.ttl:g} s of its death)")
    store.forget_cached(session_id)
    if claim.previous is not None:
        for turn_id in store.running_turns(session_id):
            store.finish_turn(turn_id, "interrupted", error="the daemon running this turn stopped (lease expired)")
        log.info("session taken over", session_id=session_id, previous=claim.previous)
    return True
