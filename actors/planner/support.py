"""What the turn loop borrows: adapters per model, the tool box, usage arithmetic and pricing."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Mapping

import attrs

from protocol.canonical import ToolDefinition, ToolUseBlock, Usage

from actors.providers.base import Adapter, LLMRequest, StreamEvent
from actors.config.registry import ModelRegistry, ModelSpec

if TYPE_CHECKING:
    from actors.planner.actor import ActiveTurn, PlannerActor


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

    def stream(self, adapter: Adapter, request: LLMRequest, on_attempt) -> AsyncIterator[StreamEvent]:
        from actors.providers.retry import call_with_retries

        # Five attempts: one failed turn is enough evidence to mark its model unavailable (spec
        # §4.5 counts every attempt), so the user's next turn already routes around it.
        return call_with_retries(adapter, request, on_attempt=on_attempt, max_attempts=self.max_attempts,
                                 base_delay=self.base_delay)

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


def price_call(spec: ModelSpec, usage: Usage, provider=None) -> tuple[Usage, dict]:
    """The call's usage with its Decimal cost filled in, plus the price that was used."""
    from actors.cost.pricing import price_usage

    priced = price_usage(spec, usage, provider=provider)
    return priced.usage, priced.price


@attrs.define
class ToolBox:
    """Which tools a turn offers, and where a call goes."""

    workspace_settings: Callable[[str | None], dict] = lambda ws: {}
    delegator: object | None = None     # actors.worker.delegation.Delegator: delegate / _request_context

    @property
    def extra(self) -> dict:
        return self.delegator.handlers() if self.delegator is not None else {}

    def extra_defs(self, run, spec) -> tuple[ToolDefinition, ...]:
        return self.delegator.definitions(run, spec) if self.delegator is not None else ()

    def on_worker_message(self, msg) -> None:
        if self.delegator is not None:
            self.delegator.on_worker_message(msg)

    def context(self, run, *, is_worker: bool):
        from actors.tools import ToolContext

        settings = self.workspace_settings(run.workspace)
        workspace = Path(run.workspace) if run.workspace else None
        return ToolContext(workspace=workspace, run_command_allowed=bool(settings.get("run_command", False)),
                           is_worker=is_worker)

    def definitions(self, run, spec: ModelSpec) -> tuple[ToolDefinition, ...]:
        from actors.tools import builtin_tool_definitions

        defs: list[ToolDefinition] = []
        if run.workspace:
            allowed = set(run.allowed_tools) if run.allowed_tools is not None else None
            defs.extend(builtin_tool_definitions(self.context(run, is_worker=run.is_worker), allowed))
        defs.extend(self.extra_defs(run, spec))
        defs.extend(run.client_tools)
        return tuple(defs)

    async def dispatch(self, planner: "PlannerActor", turn: "ActiveTurn", use: ToolUseBlock) -> tuple[str, bool]:
        handler = self.extra.get(use.name)
        if handler is not None:
            return await handler(planner, turn, use)  # type: ignore[operator]
        run = turn.run
        if not run.workspace:
            return f"unknown tool: {use.name}", True
        from actors.tools import dispatch

        allowed = set(run.allowed_tools) if run.allowed_tools is not None else None
        out = await dispatch(self.context(run, is_worker=run.is_worker), use.name, dict(use.input), allowed=allowed)
        return out.content, out.is_error
