"""Which remote workers are alive, and which one gets the next tool call (sans-IO).

Both sides send a heartbeat every ``heartbeat_s``; a peer not heard from for ``MISSES`` intervals
is lost. Times are plain floats from whatever clock the caller uses (``trio.current_time`` in the
hub, so tests step it with ``autojump_clock``).
"""
from __future__ import annotations

import attrs

# Three missed heartbeats: one late packet under load is not a lost worker, a dead one is noticed
# within 3 × heartbeat_s.
MISSES = 3


def timeout_for(heartbeat_s: float) -> float:
    return heartbeat_s * MISSES


class Silence:
    """When one peer was last heard from."""

    def __init__(self, heartbeat_s: float, now: float) -> None:
        self.timeout = timeout_for(heartbeat_s)
        self.last_heard = now

    def heard(self, now: float) -> None:
        self.last_heard = max(self.last_heard, now)

    def lost(self, now: float) -> bool:
        return now - self.last_heard > self.timeout


@attrs.define
class Worker:
    worker_id: str
    pool: str
    host: str
    pid: int
    joined_at: float
    silence: Silence
    running: int = 0            # tool calls sent and not yet answered
    public_key: str = ""        # its CURVE public key (Z85), as the hub's ZAP handler admitted it

    def describe(self) -> str:
        return f"worker {self.worker_id} (pool {self.pool!r}, {self.host} pid {self.pid})"


class Fleet:
    """The live workers by id; ``choose`` picks the least busy live worker of a pool."""

    def __init__(self, heartbeat_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self.workers: dict[str, Worker] = {}

    @property
    def timeout(self) -> float:
        return timeout_for(self.heartbeat_s)

    def join(self, worker_id: str, pool: str, host: str, pid: int, now: float, public_key: str = "") -> Worker:
        worker = Worker(worker_id, pool, host, pid, now, Silence(self.heartbeat_s, now), public_key=public_key)
        self.workers[worker_id] = worker
        return worker

    def heard(self, worker_id: str, now: float) -> bool:
        """False: no such worker (it was declared lost, or never said hello)."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.silence.heard(now)
        return True

    def leave(self, worker_id: str) -> Worker | None:
        return self.workers.pop(worker_id, None)

    def sweep(self, now: float) -> list[Worker]:
        """Remove and return the workers silent for longer than the timeout."""
        lost = [w for w in self.workers.values() if w.silence.lost(now)]
        for worker in lost:
            del self.workers[worker.worker_id]
        return lost

    def choose(self, pool: str, now: float) -> Worker | None:
        """The live worker of ``pool`` with the fewest running calls (ties: the longest joined)."""
        live = [w for w in self.workers.values() if w.pool == pool and not w.silence.lost(now)]
        if not live:
            return None
        return min(live, key=lambda w: (w.running, w.joined_at))

    def describe_all(self, now: float) -> tuple[dict, ...]:
        """The connected workers as ``orchestrator status`` shows them (StatusReport.workers), by id."""
        return tuple(
            {"id": w.worker_id, "public_key": w.public_key, "pool": w.pool, "host": w.host, "pid": w.pid,
             "heartbeat_age_s": round(max(0.0, now - w.silence.last_heard), 1), "running": w.running}
            for w in sorted(self.workers.values(), key=lambda w: (len(w.worker_id), w.worker_id)))

    def pools(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.workers.values():
            counts[worker.pool] = counts.get(worker.pool, 0) + 1
        return counts
