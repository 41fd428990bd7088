"""Slow clients: never silent truncation, never a lost terminal event (DESIGN §4.4).

ZeroMQ queues up to the high-water mark per client and then, on a ROUTER, drops. Instead the
daemon's ROUTER *parks* messages for a client whose pipe is full (see ``ParkPolicy``) and this
policy decides what waits: streamed deltas of a congested turn are dropped and counted, every
other event and reply waits in order (up to ``PARK_LIMIT``), and the terminal event always waits —
preceded by one ``stream.overflow`` event saying how many events the client missed. Once a turn
lost deltas, its later deltas are dropped too (a hole in the middle of an answer would read as the
answer), so the client sees: what fitted, ``stream.overflow``, the terminal event.
"""
from __future__ import annotations

from collections import OrderedDict

from protocol import events as ev
from protocol.codec import Envelope, decode, encode, new_id
from protocol.errors import FrameError
from protocol.messages import EventNotice

# Messages other than deltas that may wait for one client that is not reading.
PARK_LIMIT = 1000
# Past this many waiting messages even terminal events are dropped: a client that starts turns
# and never reads a reply must not make the daemon hold its terminal events without end.
PARK_HARD_LIMIT = 10 * PARK_LIMIT
# Turns with lost deltas remembered at once (a client that vanished mid-turn leaves one entry).
LOSSY_LIMIT = 4096

_DELTAS = (ev.TextDelta, ev.ThinkingDelta)

Frames = list[bytes]


class ClientStreams:
    def __init__(self) -> None:
        self._lossy: OrderedDict[tuple[bytes, str], int] = OrderedDict()  # (client, turn) → missed
        self.dropped = 0          # messages dropped for congested clients, all kinds
        self.overflows = 0        # stream.overflow events emitted

    @property
    def congested_turns(self) -> int:
        return len(self._lossy)

    # --- ParkPolicy --------------------------------------------------------------------------------

    def park(self, frames: Frames, waiting: int) -> list[Frames]:
        rid, payload = frames[0], frames[-1]
        try:
            env = decode(payload)
        except FrameError:
            return [frames]
        kept = self.admit(rid, env, congested=True, waiting=waiting)
        return [frames if e is env else [rid, encode(e)] for e in kept]

    def gone(self, routing_id: bytes) -> None:
        for key in [k for k in self._lossy if k[0] == routing_id]:
            del self._lossy[key]

    # --- the node's direct sends -------------------------------------------------------------------

    def needs_admit(self, env: Envelope) -> bool:
        """Cheap pre-check for the hot path: only events of turns that lost something are touched."""
        return bool(self._lossy) and isinstance(env.body, EventNotice)

    def admit(self, rid: bytes, env: Envelope, *, congested: bool = False, waiting: int = 0) -> list[Envelope]:
        """What to send of ``env`` (in order) for client ``rid``."""
        body = env.body
        if congested and waiting >= PARK_HARD_LIMIT:
            self.dropped += 1
            return []
        if not isinstance(body, EventNotice):
            if congested and waiting >= PARK_LIMIT:
                self.dropped += 1
                return []
            return [env]
        event = body.event
        turn_id = getattr(event, "turn_id", None)
        key = (rid, turn_id) if isinstance(turn_id, str) else None
        if isinstance(event, ev.TERMINAL_EVENT_TYPES):
            missed = self._lossy.pop(key, 0) if key is not None else 0
            if not missed or not isinstance(turn_id, str):
                return [env]
            self.overflows += 1
            notice = ev.StreamOverflow(body.session_id, turn_id, missed,
                                       f"this client read too slowly: {missed} events of turn {turn_id} "
                                       "were not delivered; the full answer is in the session's history")
            return [Envelope(EventNotice(body.session_id, notice), env.recipient, env.sender, new_id()), env]
        lossy = key is not None and key in self._lossy
        if isinstance(event, _DELTAS) and (congested or lossy) or congested and waiting >= PARK_LIMIT:
            self.dropped += 1
            if key is not None:
                self._lossy[key] = self._lossy.get(key, 0) + 1
                self._lossy.move_to_end(key)
                while len(self._lossy) > LOSSY_LIMIT:
                    self._lossy.popitem(last=False)
            return []
        return [env]
