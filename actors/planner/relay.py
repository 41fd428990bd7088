"""Text deltas coalesced per network read: one progress message per run of chunks, not per chunk.

A provider stream hands over chunks in bursts: everything one network read brought is parsed and
yielded without a schedule point, and the next read is one. ``DeltaRelay`` collects the deltas
of a burst and a task of its own sends them on, merged, when it next runs — that is, when the
call's task reaches the next read (or blocks on the network). The first token still goes out at
once (the relay is idle and runs at the first schedule point); a fast stream costs one message
per read instead of one per chunk. Every byte is sent, in order: adjacent deltas of the same kind
are joined, a thinking delta between two text deltas keeps its place.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from protocol import events as ev

Delta = ev.TextDelta | ev.ThinkingDelta


class DeltaRelay:
    def __init__(self, turn_id: str, send: Callable[[Delta], Awaitable[None]]):
        self.turn_id = turn_id
        self._send = send
        self._runs: list[tuple[type[Delta], list[str]]] = []   # adjacent same-kind deltas merged
        self._wake = trio.Event()
        self._closed = False

    def add(self, kind: type[Delta], text: str) -> None:
        """Queue one delta (synchronous: no schedule point per chunk)."""
        runs = self._runs
        if runs and runs[-1][0] is kind:
            runs[-1][1].append(text)
        else:
            runs.append((kind, [text]))
        self._wake.set()

    def close(self) -> None:
        """No more deltas: ``run`` sends what is queued and returns."""
        self._closed = True
        self._wake.set()

    async def flush(self) -> None:
        """Send what is queued, merged, from the caller's task (an answer read in one piece needs
        no task of its own to forward it)."""
        while self._runs:
            runs, self._runs = self._runs, []
            for kind, texts in runs:
                await self._send(kind(self.turn_id, texts[0] if len(texts) == 1 else "".join(texts)))

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()
            if self._closed:
                return
