"""Turn events (DESIGN §4.4). Each class's ``TYPE`` is its stable ``type`` on the wire and in JSON."""
from __future__ import annotations

from typing import Any, ClassVar, Protocol, get_args

import attrs
from attrs import frozen

from .canonical import Usage
from .routing import PolicyEvaluation


@frozen
class RouteDecided:
    TYPE: ClassVar[str] = "route.decided"
    session_id: str
    turn_id: str
    timestamp: str
    chain: tuple[PolicyEvaluation, ...]
    winner_index: int
    chosen_model: str | None
    elapsed_ms: float
    error: str | None = None
    effort: str | None = None              # the reasoning effort the turn runs with
    warnings: tuple[str, ...] = ()          # e.g. an effort dropped as unsupported; a review's family note


@frozen
class TurnStarted:
    TYPE: ClassVar[str] = "turn.started"
    session_id: str
    turn_id: str
    model: str


@frozen
class TextDelta:
    TYPE: ClassVar[str] = "text.delta"
    turn_id: str
    text: str


@frozen
class ThinkingDelta:
    TYPE: ClassVar[str] = "thinking.delta"
    turn_id: str
    text: str


@frozen
class ToolCalled:
    TYPE: ClassVar[str] = "tool.called"
    turn_id: str
    tool_use_id: str
    name: str
    input: dict = attrs.field(factory=dict)
    client_tool: bool = False


@frozen
class ToolReturned:
    TYPE: ClassVar[str] = "tool.returned"
    turn_id: str
    tool_use_id: str
    name: str
    content: str
    is_error: bool = False


@frozen
class DelegateStarted:
    TYPE: ClassVar[str] = "delegate.started"
    turn_id: str
    tool_use_id: str
    worker_session_id: str
    tier: str
    model: str | None = None
    task: str = ""
    worker_turn_id: str | None = None


@frozen
class DelegateCompleted:
    TYPE: ClassVar[str] = "delegate.completed"
    turn_id: str
    tool_use_id: str
    worker_session_id: str
    model: str | None = None
    usage: Usage = Usage()


@frozen
class DelegateFailed:
    TYPE: ClassVar[str] = "delegate.failed"
    turn_id: str
    tool_use_id: str
    worker_session_id: str
    error: str
    output: Any = None
    usage: Usage = Usage()


@frozen
class Banner:
    TYPE: ClassVar[str] = "banner"
    text: str
    turn_id: str | None = None
    kind: str = "info"


@frozen
class TurnCompleted:
    TYPE: ClassVar[str] = "turn.completed"
    session_id: str
    turn_id: str
    model: str
    usage: Usage
    stop_reason: str = "end_turn"


@frozen
class TurnFailed:
    TYPE: ClassVar[str] = "turn.failed"
    session_id: str
    turn_id: str
    error: str
    message: str
    model: str | None = None
    partial_text: str | None = None
    usage: Usage = Usage()


@frozen
class TurnCancelled:
    TYPE: ClassVar[str] = "turn.cancelled"
    session_id: str
    turn_id: str
    reason: str = "cancelled_by_user"
    usage: Usage = Usage()


@frozen
class PolicyInvalid:
    """The routing/models file failed to load; the last-known-good version stays in use."""

    TYPE: ClassVar[str] = "routing.policy_invalid"
    errors: tuple[str, ...]
    file: str = ""


@frozen
class WaitingApproval:
    """Every configured model of a role's tier row failed validation: the dispatch waits for a
    human (an explicit model choice, or a recovery) instead of using an unconfigured substitute."""

    TYPE: ClassVar[str] = "role.waiting_approval"
    session_id: str
    turn_id: str
    role: str
    tier: str | None
    tried: tuple[str, ...] = ()        # "model (why)" for each configured candidate, in order
    at: str = ""                       # ISO 8601 UTC


@frozen
class ProviderUnavailable:
    TYPE: ClassVar[str] = "routing.provider_unavailable"
    scope: str
    reason: str = ""
    since: str = ""


@frozen
class ProviderRecovered:
    TYPE: ClassVar[str] = "routing.provider_recovered"
    scope: str
    reason: str = ""


@frozen
class RouteOverridden:
    TYPE: ClassVar[str] = "route.overridden"
    session_id: str
    turn_id: str
    from_model: str
    to_model: str


@frozen
class OverrideDismissed:
    TYPE: ClassVar[str] = "pattern.override_dismissed"
    session_id: str
    turn_id: str
    suggested_model: str


@frozen
class StreamOverflow:
    """The client read too slowly: ``missed_events`` events of this turn were not delivered to it.
    The terminal event still follows; the turn's full answer is in the session's history."""

    TYPE: ClassVar[str] = "stream.overflow"
    session_id: str
    turn_id: str
    missed_events: int
    message: str = ""


Event = (
    RouteDecided | TurnStarted | TextDelta | ThinkingDelta | ToolCalled | ToolReturned
    | DelegateStarted | DelegateCompleted | DelegateFailed | Banner
    | TurnCompleted | TurnFailed | TurnCancelled
    | PolicyInvalid | ProviderUnavailable | ProviderRecovered | RouteOverridden | OverrideDismissed
    | StreamOverflow
)
EVENT_TYPES: tuple[type[Event], ...] = get_args(Event)


class TypedEvent(Protocol):
    """Any event record with a wire ``type`` (the turn events above and the routing/provider ones)."""

    TYPE: ClassVar[str]
TERMINAL_EVENT_TYPES: tuple[type, ...] = (TurnCompleted, TurnFailed, TurnCancelled)
