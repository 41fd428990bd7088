"""When the next tick runs: ``--every 30s|10m|1h|0``.

Ticks never overlap (the runner starts one only after the last ended), and the interval counts
from the last tick's start. A due time in the past — a long tick, or a daemon that was down for
hours — means "now", once: missed ticks are not made up.
"""
from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_EVERY_S = 7 * 24 * 3600.0
MAX_BACKOFF_S = 300.0


def parse_duration(text: str) -> float:
    """``30s``, ``10m``, ``1h``, ``1h30m``, ``0`` (back to back) → seconds; ValueError otherwise."""
    text = text.strip().lower()
    if text in ("0", "0s"):
        return 0.0
    m = _DURATION.fullmatch(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 10m, 1h or 0")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = float(h * 3600 + mi * 60 + s)
    if seconds > MAX_EVERY_S:
        raise ValueError(f"invalid duration {text!r}: at most 7 days")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds <= 0:
        return "0"
    s = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def next_due(every_s: float, last_started: float | None, now: float) -> float:
    """When the next tick starts: ``every_s`` after the last one started, but never before ``now``
    (a past due time runs once, now)."""
    if last_started is None or not math.isfinite(last_started):
        return now
    return max(now, last_started + max(0.0, every_s))


def failure_backoff(consecutive_failures: int) -> float:
    """The least pause after ``consecutive_failures`` failed ticks in a row (1 s, 2 s, 4 s … 5 min):
    a loop whose every tick fails (a provider down, a workflow that does not exist) must not spin,
    even at ``--every 0``."""
    if consecutive_failures <= 0:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** (consecutive_failures - 1))
