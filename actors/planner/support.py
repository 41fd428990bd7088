"""What the turn loop borrows: adapters per model, the tool box, usage arithmetic and pricing."""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import attrs
import structlog
import trio

from protocol.canonical import ToolDefinition, ToolUseBlock, Usage
from protocol.messages import RunTurn, TurnOutcome, TurnProgress

from actors.providers.base import Adapter, LLMRequest, ProviderError, StreamEvent
from actors.config.registry import DEFAULT_KEY_ENV, ModelRegistry, ModelSpec, ProviderSpec
from actors.tools import ToolContext, ToolOutcome
from actors.tools.instructions import with_instructions, workspace_instructions
from actors.tools.workspace import WorkspaceSettings, load_workspace_settings

log = structlog.get_logger("planner")


class NoRemoteWorkers(Exception):
    """A workspace names a worker pool, but this daemon serves no remote workers."""

    failure_code = "no_worker"


class AdapterPool:
    """One adapter per model, built on first use and rebuilt when the registry entry changes."""

    def __init__(self, registry: Callable[[], ModelRegistry], *, env: Mapping[str, str] | None = None, http=None,
                 demo_chunk_delay: float | None = None, max_attempts: int = 5, base_delay: float = 0.5):
        self.registry = registry
        self.env = env
        self.http = http
        self.demo_chunk_delay = demo_chunk_delay
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._cache: dict[str, tuple[ModelSpec, object, Adapter]] = {}

    async def preload(self) -> None:
        """Load the price table (~0.3 s of imports) in a thread at start, so the first priced
        call does not load it on the event loop."""
        from actors.cost.pricing import preload

        await trio.to_thread.run_sync(preload)

    def get(self, spec: ModelSpec) -> Adapter:
        provider = self.registry().providers[spec.provider]
        hit = self._cache.get(spec.id)
        if hit is not None and hit[0] == spec and hit[1] == provider:
            return hit[2]
        if provider.kind == "demo":
            from actors.providers.demo import DemoAdapter

            delay = self.demo_chunk_delay
            if delay is None and "chunk_delay" in provider.options:
                delay = float(provider.options["chunk_delay"])
            adapter: Adapter = DemoAdapter(spec.id, **({} if delay is None else {"chunk_delay": delay}))
        else:
            from actors.providers.factory import make_adapter

            adapter = make_adapter(provider, spec, http=self.http, env=self.env)
        self._cache[spec.id] = (spec, provider, adapter)
        return adapter

    def stream(self, adapter: Adapter, request: LLMRequest, on_attempt) -> AsyncGenerator[StreamEvent, None]:
        from actors.providers.retry import call_with_retries

        # Five attempts: one failed turn is enough evidence to mark its model unavailable (spec
        # §4.5 counts every attempt), so the user's next turn already routes around it. The retry
        # loop's own generator is returned: no further generator layer per streamed chunk.
        return call_with_retries(adapter, request, on_attempt=on_attempt, max_attempts=self.max_attempts,
                                 base_delay=self.base_delay, on_error=self._scrub)

    def _scrub(self, exc: ProviderError) -> None:
        """The one seam every provider failure passes before it is logged, stored or shown."""
        from actors.providers.redact import configured_keys, scrub

        exc.message = scrub(exc.message, configured_keys(self.registry(), self.env))
        exc.args = (exc.message,)

    async def aclose(self) -> None:
        for _, _, adapter in self._cache.values():
            await adapter.aclose()
        self._cache.clear()


def add_usage(a: Usage, b: Usage) -> Usage:
    """Sum two usages; an unknown cost on either side makes the sum unknown (never silently 0)."""
    cost = None if a.cost_usd is None or b.cost_usd is None else str(Decimal(a.cost_usd) + Decimal(b.cost_usd))
    return Usage(a.input_tokens + b.input_tokens, a.output_tokens + b.output_tokens,
                 a.cache_read_tokens + b.cache_read_tokens, a.cache_write_tokens + b.cache_write_tokens,
                 a.reasoning_tokens + b.reasoning_tokens, cost)


def price_call(spec: ModelSpec, usage: Usage, provider: ProviderSpec | None = None) -> tuple[Usage, dict[str, Any]]:
    """The call's usage with its Decimal cost filled in, plus the price that was used."""
    from actors.cost.pricing import price_usage

    priced = price_usage(spec, usage, provider=provider)
    return priced.usage, dict(priced.price)


@attrs.frozen
class TurnTools:
    """What one turn may use, fixed when the turn starts (a workspace.yaml edit applies next turn)."""

    context: ToolContext | None
    definitions: tuple[ToolDefinition, ...]
    instructions: str = ""              # the workspace's AGENTS.md / CLAUDE.md / MEMORY.md sections

    def system_prompt(self, base: str) -> str:
        return with_instructions(base, self.instructions)


def _key_names(registry: ModelRegistry | None) -> set[str]:
    names = set(DEFAULT_KEY_ENV.values())
    if registry is not None:
        names |= {p.api_key_env for p in registry.providers.values() if p.api_key_env}
    return names


class TurnView(Protocol):
    """What the tool box reads of a running turn (the planner's ActiveTurn)."""

    @property
    def run(self) -> RunTurn: ...

    @property
    def tools(self) -> TurnTools | None: ...


# The host (the planner actor) and the turn type are parameters, so this module never needs the
# planner's own classes: the planner imports this module, never the other way round.
HostT = TypeVar("HostT")
TurnT = TypeVar("TurnT", bound=TurnView)
HostT_contra = TypeVar("HostT_contra", contravariant=True)
TurnT_contra = TypeVar("TurnT_contra", bound=TurnView, contravariant=True)

ToolHandler = Callable[[HostT, TurnT, ToolUseBlock], Awaitable[tuple[str, bool]]]


class ExtraTools(Protocol[HostT_contra, TurnT_contra]):
    """Tools plugged into the tool box beside the built-in ones (the worker's Delegator)."""

    def definitions(self, run: RunTurn, spec: ModelSpec) -> tuple[ToolDefinition, ...]: ...

    def handlers(self) -> Mapping[str, ToolHandler[HostT_contra, TurnT_contra]]: ...

    def on_worker_message(self, msg: TurnProgress | TurnOutcome) -> bool: ...


class RemoteTools(Protocol):
    """Runs a built-in tool call on a remote worker of ``ctx.worker_pool`` (actors.remote.hub)."""

    async def dispatch(self, ctx: ToolContext, name: str, input: dict, *,
                       allowed: set[str] | frozenset[str] | None = None) -> ToolOutcome: ...


class WorkspaceTools(Protocol[HostT_contra, TurnT_contra]):
    """Tools that the workspace's settings enable (delegate_code); offered per turn from its snapshot."""

    async def offered(self, run: RunTurn, spec: ModelSpec,
                      settings: WorkspaceSettings) -> tuple[ToolDefinition, ...]: ...

    def handlers(self) -> Mapping[str, ToolHandler[HostT_contra, TurnT_contra]]: ...


@attrs.define
class ToolBox(Generic[HostT, TurnT]):
    """Which tools a turn offers, and where a call goes."""

    workspace_settings: Callable[[str | None], WorkspaceSettings] = load_workspace_settings
    delegator: ExtraTools[HostT, TurnT] | None = None   # delegate / _request_context
    env: Mapping[str, str] | None = None  # the daemon's environment (None: os.environ) for run_command's base
    remote: RemoteTools | None = None     # workspace.yaml worker_pool: the calls run on a remote worker
    workspace_tools: WorkspaceTools[HostT, TurnT] | None = None   # delegate_code (actors/delegate)

    @property
    def extra(self) -> Mapping[str, ToolHandler[HostT, TurnT]]:
        handlers = dict(self.delegator.handlers()) if self.delegator is not None else {}
        if self.workspace_tools is not None:
            handlers.update(self.workspace_tools.handlers())
        return handlers

    def extra_defs(self, run: RunTurn, spec: ModelSpec) -> tuple[ToolDefinition, ...]:
        return self.delegator.definitions(run, spec) if self.delegator is not None else ()

    def on_worker_message(self, msg: TurnProgress | TurnOutcome) -> None:
        if self.delegator is not None:
            self.delegator.on_worker_message(msg)

    def _read_workspace(self, workspace: str | None) -> tuple[WorkspaceSettings, str]:
        return self.workspace_settings(workspace), workspace_instructions(workspace)

    async def prepare(self, run: RunTurn, spec: ModelSpec, registry: ModelRegistry | None = None) -> TurnTools:
        """The turn's snapshot: settings, tool context and definitions, instruction files.

        Read once, in a thread; the turn keeps it however the files change meanwhile, so nothing
        the model writes during the turn can widen what the turn may do.
        """
        from actors.tools import builtin_tool_definitions

        settings, instructions = WorkspaceSettings(), ""
        if run.workspace:
            settings, instructions = await trio.to_thread.run_sync(self._read_workspace, run.workspace)
        for error in settings.errors:
            log.warning("workspace settings ignored", workspace=run.workspace, error=error)
        context = None
        defs: list[ToolDefinition] = []
        if run.workspace:
            source = os.environ if self.env is None else self.env
            context = ToolContext(workspace=Path(run.workspace), run_command_allowed=settings.run_command,
                                  is_worker=run.is_worker,
                                  command_env=settings.command_env(source, secret_names=_key_names(registry)),
                                  worker_pool=settings.worker_pool)
            allowed = set(run.allowed_tools) if run.allowed_tools is not None else None
            defs.extend(builtin_tool_definitions(context, allowed))
        defs.extend(self.extra_defs(run, spec))
        if self.workspace_tools is not None and run.workspace:
            defs.extend(await self.workspace_tools.offered(run, spec, settings))
        defs.extend(run.client_tools)
        return TurnTools(context, tuple(defs), instructions)

    async def dispatch(self, planner: HostT, turn: TurnT, use: ToolUseBlock) -> tuple[str, bool]:
        handler = self.extra.get(use.name)
        if handler is not None:
            return await handler(planner, turn, use)
        run = turn.run
        context = turn.tools.context if turn.tools is not None else None
        if context is None:
            return f"unknown tool: {use.name}", True
        from actors.tools import dispatch

        allowed = set(run.allowed_tools) if run.allowed_tools is not None else None
        if context.worker_pool is not None:
            if self.remote is None:
                raise NoRemoteWorkers(f"the workspace names worker pool {context.worker_pool!r} but daemon.yaml "
                                      f"configures no workers: section; tool {use.name} was not run")
            out = await self.remote.dispatch(context, use.name, dict(use.input), allowed=allowed)
            return out.content, out.is_error
        out = await dispatch(context, use.name, dict(use.input), allowed=allowed)
        return out.content, out.is_error
