"""What a client may send, and the bounds every field of it must keep (the daemon's edge).

Two vocabularies: clients send *commands* from ``CLIENT_MESSAGES``, each to the actor that serves
it; everything else (turn outcomes, usage records, routing requests, …) travels only between the
daemon's own actors. A client command is then checked field by field — numbers finite and in
range, strings, lists and maps capped, nesting capped — before any actor sees it, so a well-formed
but hostile message can neither crash an actor nor make one spin.

A new client command must be added to ``CLIENT_MESSAGES``; until then the node refuses it.
"""
from __future__ import annotations

import math
import re
from typing import cast

import attrs

from .messages import (
    CancelTurn,
    ClearModel,
    GetCost,
    GetHistory,
    GetPatternStats,
    GetStatus,
    GetTrace,
    ListLoops,
    ListSessions,
    OpenSession,
    Ping,
    RateTurn,
    ReloadRules,
    ResetAvailability,
    ResumeLoop,
    RouteChoice,
    SetModel,
    ShowModel,
    ShowLoop,
    ShowRules,
    StartLoop,
    StartTurn,
    StopLoop,
    SubmitToolResult,
    WatchLoops,
)

# class → the actor names it may be sent to (None: any actor; those that do not serve it answer
# ``unsupported_message``).
CLIENT_MESSAGES: dict[type, frozenset[str] | None] = {
    Ping: None,
    GetStatus: frozenset({"control"}),
    GetTrace: frozenset({"control"}),
    OpenSession: frozenset({"session"}),
    ListSessions: frozenset({"session"}),
    StartTurn: frozenset({"session"}),
    CancelTurn: frozenset({"session"}),
    SubmitToolResult: frozenset({"session"}),
    GetHistory: frozenset({"session"}),
    SetModel: frozenset({"session"}),
    ClearModel: frozenset({"session"}),
    ShowModel: frozenset({"session"}),
    GetCost: frozenset({"cost"}),
    ShowRules: frozenset({"router"}),
    ReloadRules: frozenset({"router"}),
    RouteChoice: frozenset({"router"}),
    RateTurn: frozenset({"router"}),
    GetPatternStats: frozenset({"router"}),
    ResetAvailability: frozenset({"availability"}),
    StartLoop: frozenset({"loops"}),
    ListLoops: frozenset({"loops"}),
    ShowLoop: frozenset({"loops"}),
    StopLoop: frozenset({"loops"}),
    ResumeLoop: frozenset({"loops"}),
    WatchLoops: frozenset({"loops"}),
}

MAX_ID_CHARS = 256            # ids, model names, scopes, reasons: anything used as a key
MAX_PATH_CHARS = 4096
MAX_LONG_CHARS = 8 * 1024 * 1024   # a turn's text, a tool result, an inline image
MAX_STRING_CHARS = 64 * 1024       # any other string, also inside maps
MAX_BYTES = 64 * 1024
MAX_ITEMS = 1000              # elements of a list, keys of a map
MAX_DEPTH = 32                # nesting of lists and maps (a tool's input schema)
MAX_INT = 2 ** 53             # exact in a float, fits SQLite's INTEGER with room
MAX_FLOAT = 1e15

_ID_FIELDS = frozenset({"session_id", "turn_id", "tool_use_id", "model", "scope", "action", "reason",
                        "name", "media_type", "role", "tier", "effort"})
_ID_FIELDS |= frozenset({"loop_id", "mode", "workflow", "budget_usd"})   # the loop commands (§4.10)
_PATH_FIELDS = frozenset({"workspace", "url"})
_LONG_FIELDS = frozenset({"text", "content", "data", "description"})
# A turn's caller-supplied trace lines (StartTurn.trace_notes) are stored with its route: a few short lines.
MAX_NOTES = 16
MAX_NOTE_CHARS = 2000
_NOTE_FIELDS = frozenset({"trace_notes"})


# A session id names a row and may end up in a file name or a log line: letters, digits, '_', '.',
# '-', not starting with '.', so "../../etc" or a control character never passes the edge.
SESSION_ID_RULE = "1-128 characters of A-Z a-z 0-9 _ . - , not starting with '.'"
_SESSION_ID = re.compile(r"(?!\.)[A-Za-z0-9_.-]{1,128}")


def is_valid_session_id(value: str) -> bool:
    return _SESSION_ID.fullmatch(value) is not None


class OutOfBounds(ValueError):
    """A field of a message breaks its bounds; the message names the field."""


def forbidden_reason(body: object, actor: str) -> str | None:
    """Why a client may not send ``body`` to ``actor`` (None: it may)."""
    cls = type(body)
    if cls not in CLIENT_MESSAGES:
        return f"{cls.__name__} is not a client message"
    allowed = CLIENT_MESSAGES[cls]
    if allowed is not None and actor not in allowed:
        return f"{cls.__name__} goes to {'/'.join(sorted(allowed))}, not {actor!r}"
    return None


def check_bounds(body: object) -> None:
    """Raise OutOfBounds naming the first field that breaks its bounds."""
    _check(body, type(body).__name__, "", 0)


def _string_cap(field: str) -> int:
    if field in _ID_FIELDS:
        return MAX_ID_CHARS
    if field in _PATH_FIELDS:
        return MAX_PATH_CHARS
    if field in _LONG_FIELDS:
        return MAX_LONG_CHARS
    if field in _NOTE_FIELDS:
        return MAX_NOTE_CHARS
    return MAX_STRING_CHARS


def _check(value: object, path: str, field: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise OutOfBounds(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        cap = _string_cap(field)
        if len(value) > cap:
            raise OutOfBounds(f"{path}: string of {len(value)} characters exceeds {cap}")
        if field == "session_id" and not is_valid_session_id(value):
            raise OutOfBounds(f"{path}: invalid session id {value[:40]!r} (allowed: {SESSION_ID_RULE})")
        return
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise OutOfBounds(f"{path}: integer out of range (|n| ≤ 2**53)")
        return
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_FLOAT:
            raise OutOfBounds(f"{path}: number must be finite and at most {MAX_FLOAT:g}")
        return
    if isinstance(value, bytes):
        if len(value) > MAX_BYTES:
            raise OutOfBounds(f"{path}: {len(value)} bytes exceed {MAX_BYTES}")
        return
    if isinstance(value, (list, tuple)):
        cap = MAX_NOTES if field in _NOTE_FIELDS else MAX_ITEMS
        if len(value) > cap:
            raise OutOfBounds(f"{path}: {len(value)} items exceed {cap}")
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", field, depth + 1)
        return
    if isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            raise OutOfBounds(f"{path}: {len(value)} keys exceed {MAX_ITEMS}")
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > MAX_ID_CHARS:
                raise OutOfBounds(f"{path}: map keys must be strings of at most {MAX_ID_CHARS} characters")
            _check(item, f"{path}.{key}", "", depth + 1)
        return
    if attrs.has(type(value)):
        for a in attrs.fields(cast("type[attrs.AttrsInstance]", type(value))):
            _check(getattr(value, a.name), f"{path}.{a.name}", a.name, depth + (1 if field else 0))
        return
    raise OutOfBounds(f"{path}: unexpected {type(value).__name__}")
