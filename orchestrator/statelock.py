"""One daemon per state folder: an exclusive ``flock`` on ``<state>/daemon.lock`` for the daemon's
lifetime. Two daemons on one database (different endpoints) would interleave turns and sessions.

The kernel drops a flock when its holder dies, so a lock file left by a killed daemon never
blocks the next one; the file is kept (not unlinked) so there is no window where two daemons
hold locks on two different files of the same name.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "daemon.lock"


class StateLocked(Exception):
    """Another live daemon holds the state folder."""


class StateLock:
    def __init__(self, state: Path):
        self.path = state / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, endpoint: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").split()
            os.close(fd)
            who = f"pid {holder[0]}, endpoint {holder[1]}" if len(holder) >= 2 else "pid unknown"
            raise StateLocked(
                f"another daemon ({who}) is already using the state folder {self.path.parent} "
                "(ORCHESTRATOR_STATE); stop it first, or give a second daemon its own ORCHESTRATOR_STATE"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.fchmod(fd, 0o600)
        self._fd = fd
        self.record(endpoint)

    def record(self, endpoint: str) -> None:
        """Who holds the lock, for the refusal a second daemon prints."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()} {endpoint}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)    # closing drops the flock
