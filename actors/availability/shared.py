"""Availability across a fleet (issue 19): each daemon writes the call outcomes it observes to the
shared database, and folds in what the others observed, so an outage one daemon met is routed
around by all of them.

``fold_remote`` is the sans-IO part: it replays other daemons' observations into the tracker
(``AvailabilityTracker.record``, the same state machine as local attempts) at the tracker's own
time, dropping those too old to matter. ``SharedObservations`` moves the rows.
"""
from __future__ import annotations

import attrs

from actors.availability.state import MODEL_FAILURE_WINDOW_S, AvailabilityTracker, Transition
from actors.runtime.store import Store

# Observations older than this when picked up cannot trip a window any more (the longest is 2 minutes).
MAX_AGE_S = MODEL_FAILURE_WINDOW_S
# How often a daemon reads the others' observations.
POLL_S = 1.0
# Rows older than this are deleted (by whichever daemon prunes): the table stays small.
KEEP_S = 3600.0


@attrs.frozen
class Observation:
    id: int
    daemon: str
    provider: str
    model: str
    ok: bool
    error_class: str | None
    at: float                # wall-clock seconds


def fold_remote(tracker: AvailabilityTracker, observations: list[Observation], now: float,
                wall_now: float) -> list[Transition]:
    """Record other daemons' observations as attempts seen ``now`` (tracker time); observations
    older than ``MAX_AGE_S`` by the wall clock are skipped."""
    changes: list[Transition] = []
    for o in observations:
        if wall_now - o.at <= MAX_AGE_S:
            changes += tracker.record(o.provider, o.model, o.ok, o.error_class, now)
    return changes


class SharedObservations:
    def __init__(self, store: Store, daemon: str):
        self.store = store
        self.daemon = daemon
        self.seen = 0          # the highest row id read (ours included)

    def start(self, wall_now: float) -> list[Observation]:
        """At start-up: the others' recent observations, and where to read on from."""
        rows = self._rows("at>=?", (wall_now - MAX_AGE_S,))
        last = self.store._query("SELECT COALESCE(MAX(id), 0) FROM availability_observations")
        self.seen = max([self.seen, int(last[0][0])] + [o.id for o in rows])
        return rows

    def record(self, provider: str, model: str, ok: bool, error_class: str | None, at: float) -> None:
        self.store._write("INSERT INTO availability_observations (daemon, provider, model, ok, error_class, at) "
                          "VALUES (?,?,?,?,?,?)", (self.daemon, provider, model, int(ok), error_class, at), None)

    def new(self) -> list[Observation]:
        """The others' observations since the last call."""
        rows = self._rows("id>?", (self.seen,))
        if rows:
            self.seen = max(o.id for o in rows)
        return rows

    def _rows(self, where: str, args: tuple[float | int, ...]) -> list[Observation]:
        return [Observation(int(r[0]), r[1], r[2], r[3], bool(r[4]), r[5], float(r[6])) for r in self.store._query(
            "SELECT id, daemon, provider, model, ok, error_class, at FROM availability_observations "
            f"WHERE {where} AND daemon<>? ORDER BY id", (*args, self.daemon))]

    def prune(self, wall_now: float) -> None:
        self.store._write("DELETE FROM availability_observations WHERE at<?", (wall_now - KEEP_S,), None)
