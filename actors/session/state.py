"""What the session actor keeps per session and per running turn, and who owns a session.

Plain data and pure checks: no trio scheduling, no store, no sockets.
"""
from __future__ import annotations

import os
from collections import deque

import attrs
import trio

from protocol import events as ev
from protocol.canonical import Message, Role, TextBlock
from protocol.messages import TurnOutcome

from actors.planner.tokens import estimate_input_tokens


def new_turn_id() -> str:
    return "t_" + os.urandom(6).hex()


def new_session_id() -> str:
    return "s_" + os.urandom(6).hex()


def swap_banner(model: str | None) -> str:
    if model is None:
        return "Model swap pending: sticky model cleared. Applies to next turn."
    return f"Model swap pending: {model}. Applies to next turn."


@attrs.define(eq=False)
class RunningTurn:
    turn_id: str
    client: str
    model: str | None = None
    outcome: TurnOutcome | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    stop_requested: str | None = None
    recorded: bool = False           # the turns table has its row
    finished: bool = False           # the terminal event went out (there is exactly one)
    partial_text: str | None = None  # the answer as streamed, for a turn.failed after the stream
    # Progress that arrived while the turn's start was still being committed: it goes out, in
    # order, once the start is durable (so a client never sees tokens of a turn not on disk).
    held: deque[ev.Event] | None = None
    streamed: bool = False           # the planner sent progress for the current attempt (mid-turn fallback)


@attrs.define
class SessionState:
    id: str
    workspace: str | None
    active_model: str | None = None
    pending_model: str | None = None
    pending_clear: bool = False
    turn: RunningTurn | None = None
    messages: list[Message] = attrs.field(factory=list)
    file_extensions: frozenset[str] = frozenset()
    parent_session_id: str | None = None
    is_worker: bool = False
    owner: str | None = None         # principal that opened it (None: the daemon's user; docs/security.md)
    # What routing needs from the whole history, kept up to date per new message (a turn must
    # cost O(new messages), not O(history)): see ``history_facts``.
    _tallied: int = 0
    _history_tokens: int = 0
    _tool_calls_in_history: bool = False

    def history_facts(self) -> tuple[int, bool]:
        """(estimated input tokens of ``messages``, whether an assistant message used tools)."""
        msgs = self.messages
        if self._tallied > len(msgs):  # the history was replaced: count afresh
            self._tallied, self._history_tokens, self._tool_calls_in_history = 0, 0, False
        for m in msgs[self._tallied:]:
            self._history_tokens += estimate_input_tokens(None, (), (m,))
            if m.role is Role.ASSISTANT and not self._tool_calls_in_history and m.tool_uses():
                self._tool_calls_in_history = True
        self._tallied = len(msgs)
        return self._history_tokens, self._tool_calls_in_history


# Sessions from the database and those the daemon's actors open belong to the daemon's own user.
DAEMON_OWNER = f"uid:{os.getuid()}"


def owns(principal: str | None, state: SessionState | None) -> bool:
    """A client acts only on sessions of its own principal; the daemon's actors (no principal) on
    any; a session that does not exist yet is nobody's (docs/security.md)."""
    return principal is None or state is None or (state.owner or DAEMON_OWNER) == principal


def answer_text(messages: list[Message]) -> str:
    """The assistant text of a turn's new messages: what the client saw streamed."""
    return "".join(b.text for m in messages if m.role is Role.ASSISTANT for b in m.content if isinstance(b, TextBlock))
