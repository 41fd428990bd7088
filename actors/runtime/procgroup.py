"""Ending a command's whole process group: SIGTERM, a grace period, then SIGKILL.

Commands start with ``start_new_session=True``, so the leader's pid is also the group id and
everything the command spawned (unless it made its own session) gets the signal too.
"""
from __future__ import annotations

import os
import signal

import trio

TERM_GRACE_S = 0.5
_POLL_S = 0.02


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running.

    killpg(pgid, 0) also succeeds while only zombies remain (orphans wait for init to reap
    them, which can take seconds), so on Linux /proc is asked which members actually run.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


async def terminate_group(proc: trio.Process, grace_s: float = TERM_GRACE_S) -> None:
    """TERM the group, give it ``grace_s`` to exit, KILL what is left, then reap the leader.

    Callers bound and shield this; it only awaits the leader's exit and short sleeps.
    """
    pgid = proc.pid
    signal_group(pgid, signal.SIGTERM)
    with trio.move_on_after(grace_s) as grace:
        await proc.wait()
        # The group's other members are not our children: no event tells when they exit.
        while group_alive(pgid):  # noqa: ASYNC110
            await trio.sleep(_POLL_S)
    # Only after an expired grace: then the group (or the unreaped leader) still holds the id,
    # so it cannot have been reused by an unrelated process.
    if grace.cancelled_caught:
        signal_group(pgid, signal.SIGKILL)
    await proc.wait()
