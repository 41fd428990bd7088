"""The routing-time snapshot of a turn (spec §5.3 "predicate snapshot points").

Everything a predicate or a validation gate reads is captured here once, at turn start, so the
chain is a pure function of (TurnContext, policy, registry, availability, pattern input).
"""
from __future__ import annotations

import functools
import re
from datetime import datetime, UTC
from decimal import Decimal
from typing import Any
from collections.abc import Iterable, Sequence

import attrs
from attrs import frozen

from actors.planner.tokens import estimate_input_tokens
from protocol.canonical import ImageBlock, Message, Role, ToolDefinition, ToolResultBlock, ToolUseBlock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@frozen
class TurnContext:
    session_id: str = ""
    turn_id: str = ""
    message_text: str = ""                  # the new USER message, @override token already stripped
    has_images: bool = False
    has_tool_calls_in_history: bool = False
    estimated_input_tokens: int = 0
    has_tool_definitions: bool = False
    has_system_prompt: bool = False
    requires_structured_output: bool = False
    workspace: str | None = None            # absolute path
    sticky_model: str | None = None         # set via /model; id or alias
    file_extensions: frozenset[str] = frozenset()   # lowercase, with the dot: ".sql"
    matched_skills: frozenset[str] = frozenset()    # SkillIndex.match(message_text)
    cost_today_usd: Decimal = Decimal(0)
    now_local: datetime = _EPOCH            # wall clock in the user's timezone
    delegate_tier: str | None = None        # set only while routing a delegated worker
    is_worker: bool = False
    role: str | None = None                 # dispatch by role (roles.yaml): the role step decides
    role_tier: str | None = None            # its complexity tier (None: the role's top-level row)
    high_risk: bool = False                 # unresolved high risk: a reviewer role goes to LARGE
    delegated_by: str | None = None         # the delegating model: the worker's tier floor

    @functools.cached_property
    def message_folded(self) -> str:
        """Casefolded message, computed on first use and shared by every substring predicate."""
        return self.message_text.casefold()


# A path-ish token: optional dirs, a stem, then an extension starting with a letter. Requiring the
# letter keeps version numbers ("1.2") and decimals out of the extension set.
_PATHISH = re.compile(
    r"(?:^|[\s\"'(=:,\[])"                                   # start, or after a delimiter
    r"((?:[\w.~-]*/)*[\w~-][\w.-]*?\.([A-Za-z][A-Za-z0-9]{0,7}))"  # dirs/name.ext (group 2: ext)
    r"(?=$|[\s\"'),:;\]])"                                   # end, or before a delimiter
)


def _extensions_in(text: str, out: set[str]) -> None:
    for match in _PATHISH.finditer(text):
        out.add("." + match.group(2).lower())


def _walk_strings(value: object, out: set[str]) -> None:
    if isinstance(value, str):
        _extensions_in(value, out)
    elif isinstance(value, dict):
        for v in value.values():
            _walk_strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk_strings(v, out)


def extract_file_extensions(history: Iterable[Message]) -> frozenset[str]:
    """Extensions of file paths in tool inputs and tool results (spec §5.3; user text is not scanned).

    Heuristic: a token that looks like ``dir/name.ext`` or ``name.ext`` where ``ext`` starts with a
    letter and is at most 8 characters. Tool results are scanned the same way, so a directory
    listing in a result counts as "touched" — that is the spec's intent (paths the agent has seen
    through tools), and noise only ever adds extensions.
    """
    out: set[str] = set()
    for message in history:
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                _walk_strings(block.input, out)
            elif isinstance(block, ToolResultBlock):
                _extensions_in(block.content, out)
    return frozenset(out)


def build_turn_context(
    *,
    session_id: str,
    turn_id: str,
    message_text: str,
    user_message: Message,
    history: Sequence[Message] = (),
    system: str | None = None,
    tools: Sequence[ToolDefinition] = (),
    output_schema: dict | None = None,
    workspace: str | None = None,
    sticky_model: str | None = None,
    matched_skills: frozenset[str] = frozenset(),
    cost_today_usd: Decimal = Decimal(0),
    now_local: datetime | None = None,
    delegate_tier: str | None = None,
    is_worker: bool = False,
    file_extensions: frozenset[str] | None = None,
) -> TurnContext:
    """Derive the snapshot from the session state the caller already has.

    ``message_text`` is the override-stripped text (``Override.body``); ``user_message`` is the new
    USER message as it will be sent; ``history`` excludes it. ``file_extensions`` may be passed
    when the caller maintains them incrementally; otherwise they are extracted from ``history``.
    """
    has_tool_calls = any(
        m.role is Role.ASSISTANT and any(isinstance(b, ToolUseBlock) for b in m.content) for m in history
    )
    return TurnContext(
        session_id=session_id,
        turn_id=turn_id,
        message_text=message_text,
        has_images=any(isinstance(b, ImageBlock) for b in user_message.content),
        has_tool_calls_in_history=has_tool_calls,
        estimated_input_tokens=estimate_input_tokens(system, tools, (*history, user_message)),
        has_tool_definitions=bool(tools),
        has_system_prompt=bool(system),
        requires_structured_output=output_schema is not None,
        workspace=workspace,
        sticky_model=sticky_model,
        file_extensions=extract_file_extensions(history) if file_extensions is None else file_extensions,
        matched_skills=matched_skills,
        cost_today_usd=cost_today_usd,
        now_local=now_local if now_local is not None else datetime.now().astimezone(),
        delegate_tier=delegate_tier,
        is_worker=is_worker,
    )


def context_from_request(
    request: object,
    *,
    message_text: str,
    matched_skills: frozenset[str] = frozenset(),
    cost_today_usd: Decimal = Decimal(0),
    now_local: datetime | None = None,
) -> TurnContext:
    """Build the snapshot from a ``protocol.messages.DecideRoute``-shaped request (read by attribute
    name). The router adds what only it knows: the override-stripped text, the skill matches, the
    ledger's cost since UTC midnight and the local wall clock."""
    def get(name: str, default: Any = None) -> Any:   # read by name: any DecideRoute-shaped object
        return getattr(request, name, default)

    return TurnContext(
        session_id=get("session_id", ""),
        turn_id=get("turn_id", ""),
        message_text=message_text,
        has_images=bool(get("has_images", False)),
        has_tool_calls_in_history=bool(get("has_tool_calls_in_history", False)),
        estimated_input_tokens=int(get("estimated_input_tokens", 0) or 0),
        has_tool_definitions=bool(get("has_tool_definitions", False)),
        has_system_prompt=bool(get("has_system_prompt", False)),
        requires_structured_output=bool(get("requires_structured_output", False)),
        workspace=get("workspace"),
        sticky_model=get("sticky_model"),
        file_extensions=frozenset(e.lower() for e in (get("file_extensions") or ())),
        matched_skills=matched_skills,
        cost_today_usd=cost_today_usd,
        now_local=now_local if now_local is not None else datetime.now().astimezone(),
        delegate_tier=get("delegate_tier"),
        is_worker=bool(get("is_worker", False)),
    )


def evolve(ctx: TurnContext, **changes: Any) -> TurnContext:   # attrs.evolve checks the field names
    return attrs.evolve(ctx, **changes)
