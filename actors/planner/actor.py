"""The planner actor: runs a turn's tool loop on the turn's locked model.

LLM call → stream ``text.delta`` → dispatch tool calls → next call … until the model ends its
turn. Each turn runs in its own cancel scope; ``StopTurn`` cancels it and is acknowledged only
after the provider stream is closed and tool processes are gone, so the session's turn lock is
released only when nothing of the turn still runs.
"""
from __future__ import annotations

import json
import math
import time
from contextlib import aclosing
from collections.abc import Callable

import attrs
import trio

from protocol import events as ev
from protocol.canonical import Message, Role, StopReason, TextBlock, ToolResultBlock, ToolUseBlock, Usage
from protocol.codec import Envelope
from protocol.messages import (
    Ack, CallOutcome, Failure, GetAvailability, RecordUsage, RunTurn, StopTurn, SubmitToolResult, TurnOutcome,
    TurnAlive, TurnProgress, TurnStatus,
)

from actors.runtime.kernel import Actor
from actors.providers.base import (
    Completed, ErrorClass, LLMRequest, ProviderError, TextChunk, ThinkingChunk, ToolUseChunk,
)
from actors.providers.toolinput import refusal
from actors.config.registry import ModelRegistry, ModelSpec
from actors.planner.support import AdapterPool, ToolBox, TurnTools, add_usage, price_call
from actors.planner.relay import DeltaRelay
from actors.planner.tokens import estimate_input_tokens, estimate_text_tokens

CLIENT_TOOL_TIMEOUT_S = 300.0
# Bounds the shielded send of a turn's outcome (also when this actor is going down).
OUTCOME_SEND_S = 5.0
ABANDON_SEND_S = 2.0   # the same while this actor goes down: shutdown must not wait long for it
RECORD_SEND_S = 2.0    # bounds the shielded send of a ledger row (also from a cancelled call)
MAX_TOOL_ROUNDS = 50

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful software engineering assistant running inside orchestrator. "
    "Use the tools you are given when they help; keep answers concise."
)


@attrs.define
class ActiveTurn:
    run: RunTurn
    scope: trio.CancelScope
    done: trio.Event = attrs.field(factory=trio.Event)
    client_results: dict[str, trio.MemorySendChannel] = attrs.field(factory=dict)
    stop_reason: str | None = None
    delegated_usage: list[Usage] = attrs.field(factory=list)
    terminate_with: tuple[str, dict] | None = None   # a tool ended the session early (worker's _request_context)
    state: _LoopState | None = None
    tools: TurnTools | None = None    # fixed at turn start: grants, tool context, instruction files

    def history(self) -> list[Message]:
        return list(self.state.messages) if self.state is not None else list(self.run.messages)


class PlannerActor(Actor):
    """Also serves as the worker actor (``name='worker'``): a worker is a session run by it."""

    name = "planner"
    role = "planner"

    def __init__(self, system, *, registry: Callable[[], ModelRegistry], adapters: AdapterPool,
                 tools: ToolBox[PlannerActor, ActiveTurn],
                 session: str = "session", cost: str = "cost", availability: str = "availability",
                 name: str | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(system)
        if name:
            self.name = name
            self.role = "worker" if name == "worker" else "planner"
            self.log = self.log.bind(actor=name)
        self.registry = registry
        self.adapters = adapters
        self.tools = tools
        self.session = session
        self.cost = cost
        self.availability = availability
        self.clock = clock
        self.turns: dict[str, ActiveTurn] = {}

    def handlers(self):
        return {RunTurn: self.on_run, StopTurn: self.on_stop, SubmitToolResult: self.on_tool_result,
                TurnProgress: self.on_worker_message, TurnOutcome: self.on_worker_message, TurnAlive: self.on_alive}

    async def on_alive(self, env) -> Ack:
        return Ack(ok=env.body.turn_id in self.turns)

    async def on_worker_message(self, env):
        """Progress and outcomes of the worker turns this planner's delegations started."""
        self.tools.on_worker_message(env.body)
        return None

    async def setup(self, nursery: trio.Nursery) -> None:
        await self.adapters.preload()

    async def on_run(self, env: Envelope[RunTurn]):
        run = env.body
        spec = self.registry().models.get(run.model)
        if spec is None:
            return Failure("unknown_model", f"model {run.model!r} is not registered")
        turn = self.turns[run.turn_id] = ActiveTurn(run, trio.CancelScope())
        self.spawn(self._drive, turn, spec, env.sender)
        return Ack(detail=run.turn_id)

    async def on_stop(self, env: Envelope[StopTurn]):
        msg = env.body
        turn = self.turns.get(msg.turn_id)
        if turn is None:
            return Ack(detail="not running")
        turn.stop_reason = msg.reason
        turn.scope.cancel()
        # Acknowledge once unwound, from a task of its own: unwinding may need this mailbox (the
        # outcomes of this turn's workers arrive here), so the loop must keep running meanwhile.
        self.spawn(self._ack_when_done, env, turn)
        return None

    async def _ack_when_done(self, env, turn: ActiveTurn) -> None:
        with trio.move_on_after(30):  # the requester's own timeout is shorter; this only bounds the task
            await turn.done.wait()
            await self._reply(env, Ack(detail="stopped"))

    async def on_tool_result(self, env: Envelope[SubmitToolResult]):
        msg = env.body
        turn = self.turns.get(msg.turn_id)
        chan = turn.client_results.get(msg.tool_use_id) if turn else None
        if chan is None:
            return Failure("no_such_tool_call", f"no pending client tool call {msg.tool_use_id}")
        try:
            chan.send_nowait(msg)
        except trio.WouldBlock:  # the call already has its result: one answer per call
            return Failure("duplicate_tool_result", f"tool call {msg.tool_use_id} already has a result")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return Failure("no_such_tool_call", f"tool call {msg.tool_use_id} is no longer waiting")
        return Ack()

    # --- the loop -----------------------------------------------------------------------------------

    async def _drive(self, turn: ActiveTurn, spec: ModelSpec, reply_to: str) -> None:
        run = turn.run
        state = turn.state = _LoopState(list(run.messages), model=spec.id)
        outcome: TurnOutcome
        try:
            with turn.scope:
                await self._loop(turn, spec, state)
            if turn.scope.cancelled_caught:
                state.close_dangling_tool_uses("cancelled by user")
                outcome = TurnOutcome(run.session_id, run.turn_id, TurnStatus.CANCELLED, tuple(state.new), state.usage,
                                      error=turn.stop_reason or "cancelled_by_user")
            elif turn.terminate_with is not None:
                kind, payload = turn.terminate_with
                outcome = TurnOutcome(run.session_id, run.turn_id, TurnStatus.COMPLETED, tuple(state.new), state.usage,
                                      error=kind, message=json.dumps(payload))
            else:
                outcome = TurnOutcome(run.session_id, run.turn_id, TurnStatus.COMPLETED, tuple(state.new), state.usage)
        except ProviderError as exc:
            self._turn_log(run).warning("provider call failed", error_class=exc.error_class, error=exc.message)
            partial = state.keep_partial()
            outcome = TurnOutcome(run.session_id, run.turn_id, TurnStatus.FAILED, tuple(state.new), state.usage,
                                  error=f"provider_{exc.error_class.value}",
                                  message=await self._failure_message(spec, exc), partial_text=partial or None)
        except Exception as exc:
            coded = _coded_failure(exc)   # an error that names its own code (a lost remote worker)
            if coded is None:
                self._turn_log(run).exception("turn loop crashed")
            else:
                self._turn_log(run).warning("turn failed", error=coded[0], message=coded[1])
            state.keep_partial()
            state.close_dangling_tool_uses("turn failed")
            error, message = coded or ("internal_error", repr(exc))
            outcome = TurnOutcome(run.session_id, run.turn_id, TurnStatus.FAILED, tuple(state.new), state.usage,
                                  error=error, message=message)
        except BaseException:
            # Cancelled from outside the turn's own scope: this actor is going down (a crash outside
            # the handlers, or the daemon stopping). The session must still hear how the turn ended,
            # or it would hold the session's turn lock forever.
            state.keep_partial()
            state.close_dangling_tool_uses("turn failed")
            outcome = TurnOutcome(run.session_id, run.turn_id, TurnStatus.FAILED, tuple(state.new), state.usage,
                                  error="internal_error",
                                  message=f"the {self.name} actor stopped during this turn; the turn was not finished")
            await self._send_outcome(turn, outcome, within=ABANDON_SEND_S, going_down=True)
            raise
        finally:
            self.turns.pop(run.turn_id, None)
        await self._send_outcome(turn, outcome)

    def _turn_log(self, run: RunTurn):  # bound only when something is logged: not per turn
        return self.log.bind(session_id=run.session_id, turn_id=run.turn_id, model=run.model)

    async def _send_outcome(self, turn: ActiveTurn, outcome: TurnOutcome, *, within: float = OUTCOME_SEND_S,
                            going_down: bool = False) -> None:
        run = turn.run
        for extra in turn.delegated_usage:  # the parent's turn cost includes its workers (spec §6.7)
            outcome = attrs.evolve(outcome, usage=add_usage(outcome.usage, extra))
        # Shielded: the session must hear how the turn ended. It waits while the session actor
        # works through a full mailbox (load is slow, not lost); ``within`` bounds a stall, and
        # while this actor goes down it bounds the whole send (shutdown must not wait long).
        with trio.CancelScope(shield=True), trio.move_on_after(within if going_down else math.inf):
            try:
                # No hand-over: this task ends next, which is the session's turn to run anyway.
                delivered = await self.system.tell_patiently(run.reply_to or self.session, outcome,
                                                             sender=self.system.address(self.name), stall_s=within,
                                                             hand_over=False)
            except Exception as exc:
                delivered = False
                self.log.error("turn outcome not delivered", turn_id=run.turn_id, error=repr(exc))
            else:
                if not delivered:
                    self.log.error("turn outcome not delivered: the session actor stopped taking messages",
                                   turn_id=run.turn_id)
        turn.done.set()

    async def _failure_message(self, spec: ModelSpec, exc: ProviderError) -> str:
        msg = f"{spec.id} failed: {exc.error_class.value}: {exc.message}"
        if exc.partial_text:
            msg += " (the partial answer was kept and marked incomplete)"
        scope = await self._unavailable_scope(spec)
        if scope == "provider":
            msg += f". The {spec.provider} provider is now marked unavailable; your next turn will route around it."
        elif scope == "model":
            msg += f". {spec.id} is now marked unavailable; your next turn will route around it."
        return msg

    async def _unavailable_scope(self, spec: ModelSpec) -> str | None:
        """Ask the availability actor (after our attempt reports, which it has already queued)."""
        try:  # bounded by the kernel: a stalled or stopped availability actor fails the request
            view = await self.request(self.availability, GetAvailability((spec.id,)), timeout=2)
        except Exception:  # the message is still useful without this detail
            return None
        if spec.provider in view.unavailable:
            return "provider"
        if spec.id in view.unavailable:
            return "model"
        return None

    async def _loop(self, turn: ActiveTurn, spec: ModelSpec, state: _LoopState) -> None:
        run = turn.run
        adapter = self.adapters.get(spec)
        turn.tools = await self.tools.prepare(run, spec, self.registry())
        tool_defs = turn.tools.definitions
        system = run.system if run.gateway else turn.tools.system_prompt(run.system or DEFAULT_SYSTEM_PROMPT)
        caps = spec.capabilities
        for _ in range(MAX_TOOL_ROUNDS):
            request = LLMRequest(
                model=spec.name, messages=tuple(state.messages), system=system if caps.supports_system_prompt else None,
                tools=tool_defs if caps.supports_tools else (), max_tokens=run.max_tokens or spec.max_output_tokens,
                output_schema=run.output_schema, supports_thinking=caps.supports_thinking,
                supports_images=caps.supports_images, workspace=run.workspace, effort=run.effort,
                tool_choice=run.tool_choice, parallel_tool_calls=run.parallel_tool_calls,
            )
            assistant = await self._one_call(turn, spec, adapter, request, state)
            state.append(assistant)
            uses = assistant.tool_uses()
            if run.gateway:  # the HTTP client runs its own tools: their calls end the turn
                return
            if not uses or assistant.stop_reason is not StopReason.TOOL_USE and not uses:
                return
            results = await self._dispatch_tools(turn, uses)
            state.append(Message(Role.TOOL, tuple(results), id=f"{run.turn_id}:r{len(state.new)}"))
            if turn.terminate_with is not None:
                return
        raise RuntimeError(f"turn exceeded {MAX_TOOL_ROUNDS} tool rounds")

    async def _one_call(self, turn: ActiveTurn, spec: ModelSpec, adapter, request: LLMRequest,
                        state: _LoopState) -> Message:
        """One provider call; it writes exactly one ledger row once the provider answered at all.

        A call that streamed anything and then failed or was cancelled was billed for what it
        consumed: when the provider did not report that, it is estimated (and marked so), never
        left out — the ledger, the daily limit and the turn's usage would read $0.
        """
        run = turn.run
        completed: Completed | None = None
        started = False           # the provider answered: from here on the call is billed
        streamed: list[str] = []  # everything that came back, for an output estimate
        state.partial = []

        async def on_attempt(ok: bool, error_class) -> None:
            outcome = CallOutcome(spec.provider, spec.id, ok, None if ok else str(error_class), self.clock())
            # No hand-over: the call goes on reading the answer; availability takes it when it runs.
            await self.system.tell(self.availability, outcome, hand_over=False)

        streams = getattr(adapter, "streaming", True)

        async def relay_send(delta: ev.TextDelta | ev.ThinkingDelta) -> None:
            # An answer in one piece is followed at once by the turn's outcome: the session takes
            # both in one go when this task ends, with no hand-over in between.
            await self._progress(run, delta, hand_over=streams)

        relay = DeltaRelay(run.turn_id, relay_send)

        async def consume() -> None:
            nonlocal started, completed
            async with aclosing(self.adapters.stream(adapter, request, on_attempt)) as stream:
                async for item in stream:
                    started = True
                    if isinstance(item, TextChunk):
                        state.partial.append(item.text)
                        streamed.append(item.text)
                        relay.add(ev.TextDelta, item.text)
                    elif isinstance(item, ThinkingChunk):
                        streamed.append(item.text)
                        relay.add(ev.ThinkingDelta, item.text)
                    elif isinstance(item, ToolUseChunk):
                        streamed.append(item.block.name + json.dumps(item.block.input, default=str))
                    elif isinstance(item, Completed):
                        completed = item

        try:
            failure: Exception | None = None
            if streams:
                # The relay forwards the deltas of each network read as one message (relay.py). Its
                # nursery closes before anything else of this turn is sent, so event order holds; a
                # provider error is raised after the deltas already read have gone out.
                try:
                    async with trio.open_nursery() as relaying:
                        relaying.start_soon(relay.run)
                        try:
                            await consume()
                        except Exception as exc:  # Cancelled is not held back: it cancels the relay too
                            failure = exc
                        finally:
                            relay.close()
                except BaseExceptionGroup as group:
                    # Only cancellations get here (the body holds its errors back, the relay raises
                    # none): pass one on as the plain Cancelled the cancel scopes and handlers expect.
                    raise group.exceptions[0] from None
            else:
                # An answer asked for in one piece arrives in one read: its deltas go out from this
                # task once it is read (before an error is raised, as above), with no relay task.
                try:
                    await consume()
                except Exception as exc:
                    failure = exc
                await relay.flush()
            if failure is not None:
                raise failure
        except ProviderError as exc:
            if exc.usage is not None:
                state.usage = add_usage(state.usage, await self._record(run, spec, exc.usage))
            elif started:
                await self._record_estimate(run, spec, request, streamed, state)
            raise
        except BaseException:
            # Cancelled (StopTurn, or this actor going down) while the call ran: what was streamed
            # is billed all the same. Recorded from the shielded, bounded send; the Cancelled goes on.
            if completed is not None:
                state.usage = add_usage(state.usage, await self._record(run, spec, completed.usage))
            elif started:
                await self._record_estimate(run, spec, request, streamed, state)
            raise
        if completed is None:
            if started:
                await self._record_estimate(run, spec, request, streamed, state)
            raise ProviderError(ErrorClass.SERVER_ERROR, "stream ended without a final message",
                                partial_text="".join(state.partial))
        state.partial = []
        priced = await self._record(run, spec, completed.usage)
        state.usage = add_usage(state.usage, priced)
        msg = completed.message
        return attrs.evolve(msg, id=msg.id or f"{run.turn_id}:a{len(state.new)}", model=spec.id)

    async def _record_estimate(self, run: RunTurn, spec: ModelSpec, request: LLMRequest, streamed: list[str],
                               state: _LoopState) -> None:
        """Record a call the provider reported no usage for: input from the request, output from
        what streamed back; the row's price says it is an estimate. The turn's usage includes it."""
        usage = Usage(estimate_input_tokens(request.system, request.tools, request.messages),
                      estimate_text_tokens("".join(streamed)))
        state.usage = add_usage(state.usage, await self._record(run, spec, usage, estimated=True))

    async def _record(self, run: RunTurn, spec: ModelSpec, usage: Usage, *, estimated: bool = False) -> Usage:
        priced, price = price_call(spec, usage, self.registry().providers.get(spec.provider))
        if estimated:
            price["estimated"] = True
        record = RecordUsage(run.session_id, run.turn_id, spec.id, self.role, priced, run.parent_session_id, price,
                             self.clock())
        # Shielded: a call that is being cancelled is still written to the ledger. Bounded by the
        # cost actor's progress, not by a fixed time a busy daemon could exceed.
        with trio.CancelScope(shield=True):
            try:
                if not await self.system.tell_patiently(self.cost, record, stall_s=RECORD_SEND_S, hand_over=False):
                    self.log.error("ledger row not delivered: the cost actor stopped taking messages",
                                   turn_id=run.turn_id, model=spec.id)
            except Exception as exc:
                self.log.error("ledger row not delivered", turn_id=run.turn_id, model=spec.id, error=repr(exc))
        return priced

    async def _progress(self, run: RunTurn, event, *, hand_over: bool = True) -> None:
        await self.system.tell(run.reply_to or self.session, TurnProgress(run.session_id, run.turn_id, event),
                               sender=self.system.address(self.name), hand_over=hand_over)

    emit = _progress

    async def _dispatch_tools(self, turn: ActiveTurn, uses: tuple[ToolUseBlock, ...]) -> list[ToolResultBlock]:
        """Run the calls of one response concurrently; results keep the order of the calls."""
        run = turn.run
        results: list[ToolResultBlock | None] = [None] * len(uses)
        client_names = {t.name for t in run.client_tools}

        async def one(i: int, use: ToolUseBlock) -> None:
            is_client = use.name in client_names
            await self._progress(run, ev.ToolCalled(run.turn_id, use.id, use.name, dict(use.input), is_client))
            if (reason := refusal(use.input)) is not None:
                content, is_error = reason, True
            elif is_client:
                content, is_error = await self._client_tool(turn, use)
            else:
                content, is_error = await self.tools.dispatch(self, turn, use)
            results[i] = ToolResultBlock(use.id, content, is_error)
            await self._progress(run, ev.ToolReturned(run.turn_id, use.id, use.name, content[:4000], is_error))

        async with trio.open_nursery() as nursery:
            for i, use in enumerate(uses):
                nursery.start_soon(one, i, use)
        return [r for r in results if r is not None]

    async def _client_tool(self, turn: ActiveTurn, use: ToolUseBlock) -> tuple[str, bool]:
        send, recv = trio.open_memory_channel[SubmitToolResult](1)
        turn.client_results[use.id] = send
        try:
            with trio.move_on_after(CLIENT_TOOL_TIMEOUT_S):
                result = await recv.receive()
                return result.content, result.is_error
            return f"client tool {use.name} timed out after {CLIENT_TOOL_TIMEOUT_S:g}s", True
        finally:
            turn.client_results.pop(use.id, None)


def _coded_failure(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) of the first error in ``exc`` (a tool nursery's group) that names its own
    ``failure_code``; None for anything else (a bug: internal_error)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _coded_failure(inner)) is not None:
                return found
        return None
    code = getattr(exc, "failure_code", None)
    return (code, str(exc)) if isinstance(code, str) else None


@attrs.define
class _LoopState:
    messages: list[Message]
    new: list[Message] = attrs.field(factory=list)
    usage: Usage = attrs.field(factory=lambda: Usage(cost_usd="0"))
    partial: list[str] = attrs.field(factory=list)
    model: str | None = None   # the turn's locked model: it produced every partial answer kept here

    def append(self, msg: Message) -> None:
        self.messages.append(msg)
        self.new.append(msg)

    def keep_partial(self) -> str:
        """Keep streamed-but-unfinished text in history, marked so nobody mistakes it for an answer."""
        text = "".join(self.partial)
        if text:
            self.append(Message(Role.ASSISTANT,
                                (TextBlock(text + "\n[incomplete: the provider call failed mid-answer]"),),
                                model=self.model, stop_reason=StopReason.ERROR))
            self.partial = []
        return text

    def close_dangling_tool_uses(self, why: str) -> None:
        """History stays valid for the next turn: every tool_use gets a result, synthetic if need be."""
        if self.partial:
            text = "".join(self.partial)
            self.append(Message(Role.ASSISTANT, (TextBlock(text),), model=self.model,
                                stop_reason=StopReason.CANCELLED))
            self.partial = []
        if not self.new:
            return
        last = self.new[-1]
        if last.role is Role.ASSISTANT and last.tool_uses():
            self.append(Message(Role.TOOL, tuple(ToolResultBlock(u.id, why, True) for u in last.tool_uses())))
