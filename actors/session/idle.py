"""The session actor's idle sessions: the ones that may leave memory, in which order, and what
their histories hold together. Plain data: no trio, no store."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from actors.session.state import SessionState


def held_bytes(state: SessionState) -> int:
    """What a session's history holds in memory, estimated: 4 bytes a token of text plus each
    message's objects. ``history_facts`` is O(new messages): the tally its next turn needs anyway."""
    return 4 * state.history_facts()[0] + 400 * len(state.messages)


class IdleSessions:
    """Sessions running no turn, least recently used first, each with its history's
    ``held_bytes`` and their running total (``bytes``): adding, dropping, touching and finding the
    coldest are O(1), however many sessions are cached. A history changes only while a turn runs,
    so a session's size is counted when it becomes idle."""

    def __init__(self) -> None:
        self._held: OrderedDict[str, int] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._held

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def add(self, state: SessionState) -> None:
        """``state`` runs no turn (any more): it joins at the recently used end."""
        self.drop(state.id)
        held = self._held[state.id] = held_bytes(state)
        self.bytes += held

    def drop(self, session_id: str) -> None:
        held = self._held.pop(session_id, None)
        if held is not None:
            self.bytes -= held

    def touch(self, session_id: str) -> None:
        if session_id in self._held:
            self._held.move_to_end(session_id)

    def coldest(self) -> str | None:
        return next(iter(self._held), None)
