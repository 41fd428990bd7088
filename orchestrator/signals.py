"""The stop-signal latch of ``orchestrator serve``, in a module that imports nothing heavy: it is
installed before trio, zmq and the daemon are imported, so a SIGTERM while they load is held."""
from __future__ import annotations

import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalLatch:
    """A Python-level handler for SIGTERM/SIGINT outside ``Daemon.run``: a signal that arrives
    while the process starts up is remembered (and starts the clean shutdown once the daemon
    listens); one that arrives after the daemon stopped is ignored instead of killing the process."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    @classmethod
    def install(cls) -> SignalLatch:
        latch = cls()
        for sig in STOP_SIGNALS:
            signal.signal(sig, latch)
        # A reload request while starting (the files are being read anyway) or after stopping
        # must not kill the process, which is SIGHUP's default.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return latch
