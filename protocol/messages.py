"""The closed message vocabulary between clients and actors.

Commands are imperative, replies are nouns, events (``protocol.events``) are past-tense facts and
every failure is a ``Failure``. Each class is registered under an explicit wire tag that never
changes when a class is renamed.
"""
from __future__ import annotations

import enum
from typing import Any, TypeVar

import attrs
from attrs import frozen

from .canonical import ImageBlock, Message, ToolDefinition, Usage
from .events import Event, RouteDecided

TAGS: dict[str, type] = {}
TAG_OF: dict[type, str] = {}

T = TypeVar("T")


def message(tag: str):
    """Register a message class under a stable wire tag."""

    def register(cls: type[T]) -> type[T]:
        if tag in TAGS:
            raise ValueError(f"duplicate wire tag {tag!r}")
        TAGS[tag] = cls
        TAG_OF[cls] = tag
        return cls

    return register


# --- generic replies -------------------------------------------------------------------------


@message("failure")
@frozen
class Failure:
    """Errors as data: ``code`` is stable and machine-readable, ``message`` is for humans."""

    code: str
    message: str
    details: dict = attrs.field(factory=dict)


@message("ack")
@frozen
class Ack:
    ok: bool = True
    detail: str = ""


@message("ping")
@frozen
class Ping:
    payload: bytes = b""


@message("pong")
@frozen
class Pong:
    payload: bytes = b""


# --- sessions and turns ----------------------------------------------------------------------


@message("session.open")
@frozen
class OpenSession:
    session_id: str | None = None
    workspace: str | None = None


@message("session.info")
@frozen
class SessionInfo:
    session_id: str
    workspace: str | None
    active_model: str | None
    pending_model: str | None = None
    turn_in_progress: str | None = None
    turns: int = 0
    created_at: str = ""
    parent_session_id: str | None = None


@message("session.list")
@frozen
class ListSessions:
    include_workers: bool = False


@message("session.listing")
@frozen
class SessionListing:
    sessions: tuple[SessionInfo, ...] = ()


@message("turn.start")
@frozen
class StartTurn:
    session_id: str
    text: str
    images: tuple[ImageBlock, ...] = ()
    tools: tuple[ToolDefinition, ...] = ()
    workspace: str | None = None
    role: str | None = None              # dispatch by role (roles.yaml): the model comes from the role's row
    tier: str | None = None              # the role's complexity tier: TRIVIAL, SMALL, MEDIUM or LARGE
    effort: str | None = None                 # reasoning effort asked for; ignored safely if unsupported
    trace_notes: tuple[str, ...] = ()         # the caller's lines for this turn's route.decided (a review's pick)


@message("turn.accepted")
@frozen
class TurnAccepted:
    session_id: str
    turn_id: str


@message("turn.cancel")
@frozen
class CancelTurn:
    session_id: str
    turn_id: str | None = None
    reason: str = "cancelled_by_user"


@message("turn.event")
@frozen
class EventNotice:
    """One event of a running turn, pushed to the client that started it."""

    session_id: str
    event: Event


@message("tool.result")
@frozen
class SubmitToolResult:
    session_id: str
    turn_id: str
    tool_use_id: str
    content: str
    is_error: bool = False


@message("history.get")
@frozen
class GetHistory:
    session_id: str


@message("history")
@frozen
class History:
    session_id: str
    messages: tuple[Message, ...] = ()


# --- /model ------------------------------------------------------------------------------------


@message("model.set")
@frozen
class SetModel:
    session_id: str
    model: str


@message("model.clear")
@frozen
class ClearModel:
    session_id: str


@message("model.show")
@frozen
class ShowModel:
    session_id: str


@message("model.state")
@frozen
class ModelState:
    session_id: str
    active_model: str | None
    pending_model: str | None = None
    pending_clear: bool = False
    banner: str | None = None
    last_route: RouteDecided | None = None


# --- introspection -------------------------------------------------------------------------------


@message("status.get")
@frozen
class GetStatus:
    pass


@message("status")
@frozen
class StatusReport:
    version: str
    pid: int
    uptime_s: float
    endpoint: str
    accepting_turns: bool
    sessions_open: int
    turns_running: int
    actors: dict = attrs.field(factory=dict)
    availability: tuple[dict, ...] = ()
    loops: tuple[dict, ...] = ()           # running loops (DESIGN §4.10): id, current tick, last verdicts, spend
    # Connected remote workers (§4.11): id, public_key, pool, host, pid, heartbeat_age_s, running.
    workers: tuple[dict, ...] = ()


@message("trace.get")
@frozen
class GetTrace:
    turn_id: str


@message("trace")
@frozen
class TraceReply:
    route: RouteDecided
    fallback: tuple[RouteDecided, ...] = ()   # mid-turn fallback decisions, appended to the stored route


@message("cost.get")
@frozen
class GetCost:
    session_id: str | None = None


@message("cost")
@frozen
class CostReport:
    total_usd: str | None            # null when no call has a known price (never 0 for unknown)
    by_model: tuple[dict, ...] = ()
    by_role: dict = attrs.field(factory=dict)
    tree: dict = attrs.field(factory=dict)
    unknown_cost_calls: int = 0


@message("rules.show")
@frozen
class ShowRules:
    workspace: str | None = None


@message("rules.reload")
@frozen
class ReloadRules:
    pass


@message("rules.report")
@frozen
class RulesReport:
    ok: bool
    rules: tuple[dict, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    source: dict = attrs.field(factory=dict)
    not_configured: dict = attrs.field(factory=dict)   # model id → why it cannot be used
    changes: tuple[str, ...] | None = None             # rules reload: what it changed (None: not a reload)
    waiting_approval: tuple[dict, ...] = ()            # role dispatches whose configured models are all down


@message("availability.reset")
@frozen
class ResetAvailability:
    scope: str


# --- inside the daemon -----------------------------------------------------------------------------


@message("usage.record")
@frozen
class RecordUsage:
    """A ledger row for one LLM call, sent to the cost actor."""

    session_id: str
    turn_id: str
    model: str
    role: str
    usage: Usage
    parent_session_id: str | None = None
    price: dict = attrs.field(factory=dict)
    at: float = 0.0


@message("call.outcome")
@frozen
class CallOutcome:
    """One attempt of one LLM call, reported to the availability actor."""

    provider: str
    model: str
    ok: bool
    error_class: str | None = None
    at: float = 0.0


def tag_of(msg: Any) -> str:
    return TAG_OF[type(msg)]


@message("route.decide")
@frozen
class DecideRoute:
    """Ask the router for a turn's model (spec §4). Everything the predicates read is in here."""

    session_id: str
    turn_id: str
    text: str
    has_images: bool = False
    has_tool_definitions: bool = False
    has_system_prompt: bool = True
    requires_structured_output: bool = False
    has_tool_calls_in_history: bool = False
    estimated_input_tokens: int = 0
    workspace: str | None = None
    sticky_model: str | None = None
    file_extensions: tuple[str, ...] = ()
    delegate_tier: str | None = None
    is_worker: bool = False
    role: str | None = None              # dispatch by role: candidates are the role row's configured models only
    role_tier: str | None = None         # complexity tier of the role row (None: the top-level row)
    high_risk: bool = False              # an unresolved high risk: a reviewer role reviews at LARGE
    delegated_by: str | None = None      # the delegating model: a worker never runs above its cost tier
    effort: str | None = None        # requested; the router keeps it only when the chosen model declares it
    override_model: str | None = None   # the HTTP gateway's explicit model (a registry id): per_message_override
    failed_models: tuple[str, ...] = ()   # mid-turn fallback: models that failed this turn count as unavailable


@message("route.decision")
@frozen
class RouteDecision:
    route: RouteDecided
    text: str                        # the message with any @override token stripped
    banners: tuple[str, ...] = ()
    error_code: str | None = None    # set when the turn must not start
    error: str | None = None
    can_delegate: bool = False
    effort: str | None = None            # the role's reasoning_effort_hint, passed on as is


@message("turn.run")
@frozen
class RunTurn:
    """Session → planner/worker: run the tool loop of one turn on its locked model."""

    session_id: str
    turn_id: str
    model: str
    messages: tuple[Message, ...]
    workspace: str | None = None
    client_tools: tuple[ToolDefinition, ...] = ()
    can_delegate: bool = False
    is_worker: bool = False
    parent_session_id: str | None = None
    system: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    max_tokens: int | None = None
    output_schema: dict | None = None
    reply_to: str | None = None      # where progress and the outcome go (default: the session actor)
    effort: str | None = None        # reasoning effort, already checked against the model's efforts (router)
    # An HTTP gateway turn: the client owns the system prompt and the tools, so there is no default
    # prompt, and a tool call ends the turn (it goes back to the stateless HTTP client).
    gateway: bool = False
    # The client's tool choice (LLMRequest.tool_choice: auto | none | required | tool:<name>) and, when
    # it disallows parallel tool calls, parallel_tool_calls=False; gateway turns only.
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None


@message("turn.stop")
@frozen
class StopTurn:
    turn_id: str
    reason: str = "cancelled_by_user"


@message("turn.progress")
@frozen
class TurnProgress:
    session_id: str
    turn_id: str
    event: Event


@message("turn.outcome")
@frozen
class TurnOutcome:
    session_id: str
    turn_id: str
    status: TurnStatus
    messages: tuple[Message, ...] = ()
    usage: Usage = Usage()
    error: str | None = None
    message: str | None = None
    partial_text: str | None = None


@message("cost.today")
@frozen
class GetCostToday:
    pass


@message("cost.amount")
@frozen
class CostAmount:
    usd: str


@message("availability.get")
@frozen
class GetAvailability:
    models: tuple[str, ...] = ()


@message("availability.view")
@frozen
class AvailabilityView:
    """Unavailable scopes: {scope: {reason, since}} where scope is a provider or provider:model."""

    unavailable: dict = attrs.field(factory=dict)


@message("route.choice")
@frozen
class RouteChoice:
    """/route override|ignore: the user's answer to a surfaced pattern-store suggestion."""

    session_id: str
    action: str


@message("route.choice_result")
@frozen
class RouteChoiceResult:
    """The answer to RouteChoice. On ``override``: the suggested ``model`` and the turn's ``text``, which
    the client re-dispatches as a new turn with an ``@model`` override (one route.decided per turn)."""

    ok: bool
    detail: str
    model: str | None = None
    text: str = ""


@message("pattern.rate_turn")
@frozen
class RateTurn:
    """`orchestrator rate TURN_ID SCORE` / chat `/rate`: an explicit outcome for the pattern store.

    ``turn_id`` empty with a ``session_id``: the session's last turn. ``score`` in [0, 1].
    """

    turn_id: str
    score: float
    session_id: str | None = None


@message("pattern.rated")
@frozen
class TurnRated:
    turn_id: str
    model: str
    score: float
    outcomes: int          # outcomes in the store after this one


@message("pattern.get_stats")
@frozen
class GetPatternStats:
    pass


@message("pattern.stats")
@frozen
class PatternStats:
    """`orchestrator patterns stats`: outcomes, distinct texts, fingerprint, per-model figures."""

    stats: dict = attrs.field(factory=dict)


# --- robustness: actor status, typed turn statuses, boundaries as messages ------------------------


class TurnStatus(enum.StrEnum):
    """How a turn ended (a ``TurnOutcome``'s status and the turns table's final status)."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@message("actor.status.get")
@frozen
class GetActorStatus:
    """Every actor answers this (the kernel does): the control actor aggregates them for ``status``."""


@message("actor.status")
@frozen
class ActorStatus:
    name: str
    handled: int = 0
    faults: int = 0              # handler exceptions answered with a Failure (the actor carried on)
    dropped: int = 0             # unsolicited replies and failures, never answered
    last_fault: str | None = None


@message("session.stats.get")
@frozen
class GetSessionStats:
    pass


@message("session.stats")
@frozen
class SessionStats:
    accepting_turns: bool
    sessions_open: int           # sessions held in memory (idle ones are evicted and reload on demand)
    turns_running: int


@frozen
class AvailabilityTransition:
    kind: str                    # "unavailable" | "recovered"
    scope: str                   # a provider or provider:model
    reason: str
    at: float                    # wall-clock seconds


@message("availability.changed")
@frozen
class AvailabilityChanged:
    """Availability → router: scopes changed state (the router records and logs them)."""

    transitions: tuple[AvailabilityTransition, ...] = ()


@frozen
class UnavailableScope:
    scope: str
    kind: str                    # "provider" | "model"
    reason: str
    since: str                   # ISO 8601 UTC
    detail: str | None = None


@message("availability.scopes.get")
@frozen
class GetUnavailableScopes:
    pass


@message("availability.scopes")
@frozen
class UnavailableScopes:
    scopes: tuple[UnavailableScope, ...] = ()


@message("model.resolve")
@frozen
class ResolveModel:
    """Session → router: the registry id behind ``/model NAME`` (an id or an alias)."""

    name: str


@message("model.resolved")
@frozen
class ModelResolved:
    name: str
    model: str | None            # None: no such model or alias


@message("turn.alive")
@frozen
class TurnAlive:
    """Session → planner, while it waits long for a turn's outcome: is the turn still running?
    Answered with ``Ack(ok=...)``; a turn the planner lost is then ended instead of waited for."""

    turn_id: str


@message("turns.drain")
@frozen
class DrainTurns:
    """Daemon → session at shutdown: accept no new turn, give running ones ``grace_s`` to finish,
    then cancel the rest with ``reason``; answered with an ``Ack`` once they have unwound."""

    grace_s: float
    reason: str = "daemon_shutdown"


# --- remote workers (docs/remote-workers.md) ------------------------------------------------------
# These travel only between the daemon's worker hub and ``orchestrator worker`` processes, over the
# hub's own CURVE-authenticated ROUTER — never through the node's client socket, so they are not
# client messages (protocol.bounds) and a client can never send one.

@message("worker.hello")
@frozen
class WorkerHello:
    """Worker → hub, first thing after connecting (and again after losing the daemon)."""

    pool: str
    host: str
    pid: int
    version: str = ""


@message("worker.welcome")
@frozen
class WorkerWelcome:
    """Hub → worker: accepted; both sides heartbeat every ``heartbeat_s`` from now on."""

    worker_id: str
    heartbeat_s: float


@message("worker.heartbeat")
@frozen
class WorkerHeartbeat:
    pass


@message("worker.tool.run")
@frozen
class RunTool:
    """Hub → worker: run one built-in tool call of a workspace turn, as ``actors.tools.dispatch``
    would in the daemon. The worker builds run_command's environment from its own."""

    call_id: str
    workspace: str
    name: str
    input: dict = attrs.field(factory=dict)
    allowed_tools: tuple[str, ...] | None = None
    run_command_allowed: bool = False
    command_timeout_s: float = 120.0
    output_cap_bytes: int = 64 * 1024
    is_worker: bool = False
    turn_id: str = ""


@message("worker.tool.cancel")
@frozen
class CancelTool:
    """Hub → worker: the turn was cancelled; stop the call (its process group is killed)."""

    call_id: str


@message("worker.tool.done")
@frozen
class ToolDone:
    """Worker → hub: the call's outcome (``cancelled``: it was stopped by ``CancelTool``)."""

    call_id: str
    content: str
    is_error: bool = False
    cancelled: bool = False


# --- loops (DESIGN §4.10) ------------------------------------------------------------------------


@message("loop.start")
@frozen
class StartLoop:
    """`loop start`: ``mode`` is prompt | pilot | workflow; ``text`` the --prompt or --pilot text."""

    mode: str
    text: str = ""
    land: str | None = None
    workflow: str | None = None
    every_s: float = 0.0
    max_ticks: int | None = None
    budget_usd: str | None = None
    workspace: str | None = None


@message("loop.list")
@frozen
class ListLoops:
    running_only: bool = False


@message("loop.show")
@frozen
class ShowLoop:
    loop_id: str


@message("loop.stop")
@frozen
class StopLoop:
    loop_id: str


@message("loop.resume")
@frozen
class ResumeLoop:
    loop_id: str
    clear_strikes: bool = False


@message("loop.info")
@frozen
class LoopInfo:
    """One loop as `loop show --json` prints it (a JSON object)."""

    loop: dict


@message("loop.listing")
@frozen
class LoopListing:
    loops: tuple[dict, ...] = ()


@message("loop.watch")
@frozen
class WatchLoops:
    """Subscribe this connection to loop events (``loop_id`` None: every loop); answered with an Ack.
    The events then arrive as ``LoopNotice`` until the connection goes away."""

    loop_id: str | None = None


@message("loop.event")
@frozen
class LoopNotice:
    """A loop event pushed to subscribers: ``event`` has ``type`` (loop.tick_started,
    loop.tick_finished, loop.stopped), ``loop_id`` and the event's fields."""

    event: dict
