"""Loops on a shared database (PostgreSQL, several daemons): which loops this daemon should take
over, and which of the loops it drives were stopped by another daemon. Pure: the loop actor reads
the rows and the live leases, asks ``decide``, and acts (docs/loops.md, "Loops on a shared database").

A daemon runs a loop only while it holds the loop's lease (kind ``loop``). A loop whose row says
``running`` but whose lease nobody holds lost its daemon (``kill -9``, a host gone): any daemon may
take it. Its session must be free as well — a session lease still held by a live daemon means that
daemon may still be writing to it, so the takeover waits for the next scan.
"""
from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

LOOP_LEASE = "loop"
SESSION_LEASE = "session"


@frozen
class FleetView:
    """What one scan saw. ``running``: loop id → session id of every row in state ``running``;
    ``driving``: the loops this daemon drives; ``loop_holders`` / ``session_holders``: id → owner of
    every live lease among them; ``me``: this daemon's lease owner name."""

    running: Mapping[str, str]
    driving: frozenset[str]
    loop_holders: Mapping[str, str]
    session_holders: Mapping[str, str]
    me: str


@frozen
class FleetDecision:
    take: tuple[str, ...] = ()      # running loops nobody holds: take their lease and drive them
    stop: tuple[str, ...] = ()      # loops driven here whose row is no longer running: stopped elsewhere


def decide(view: FleetView) -> FleetDecision:
    take = tuple(
        loop_id for loop_id, session_id in sorted(view.running.items())
        if loop_id not in view.driving
        and view.loop_holders.get(loop_id) in (None, view.me)   # ours but not driven: the actor restarted
        and view.session_holders.get(session_id) in (None, view.me))
    stop = tuple(sorted(loop_id for loop_id in view.driving if loop_id not in view.running))
    return FleetDecision(take, stop)


def scan_interval(ttl: float) -> float:
    """A third of the lease ttl, like the keeper's heartbeat: a dead daemon's loops move within
    about ``ttl + ttl / 3`` of its last renewal."""
    return ttl / 3
