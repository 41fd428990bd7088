"""Candidate validation (spec §4.4): availability first, then capability gates in the spec's order.

Availability is an input: any callable ``availability(model_id)`` returning an object with
``available``, ``scope`` (``"model"`` / ``"provider"`` / None) and ``reason`` — the availability
actor's state machine (spec §4.5) plugs in here without this module knowing about it.
"""
from __future__ import annotations

from typing import Protocol
from collections.abc import Callable, Mapping

from attrs import frozen

from actors.config.registry import ModelRegistry
from protocol.routing import ValidationFailure

from actors.router.context import TurnContext


class AvailabilityLike(Protocol):
    # Read-only, so frozen records (AvailabilityVerdict) satisfy it.
    @property
    def available(self) -> bool: ...

    @property
    def scope(self) -> str | None: ...

    @property
    def reason(self) -> str: ...


@frozen
class AvailabilityVerdict:
    available: bool
    scope: str | None = None      # "model" | "provider" | None
    reason: str = ""


AVAILABLE = AvailabilityVerdict(True)
Availability = Callable[[str], AvailabilityLike]


def model_unavailable(model_id: str) -> AvailabilityVerdict:
    return AvailabilityVerdict(False, "model", f"{model_id} model-specific outage")


def provider_unavailable(provider: str) -> AvailabilityVerdict:
    return AvailabilityVerdict(False, "provider", f"all {provider} models temporarily unavailable")


@frozen
class Rejection:
    failure: ValidationFailure
    reason: str
    scope: str | None = None      # for provider_unavailable: "model" or "provider"


class _Gate:
    """Everything validation needs about one model, resolved once per registry load."""

    __slots__ = ("model", "provider", "configured", "unconfigured_reason", "images", "context", "tools",
                 "system", "structured")

    def __init__(self, model: str, provider: str, configured: bool, unconfigured_reason: str, caps) -> None:
        self.model = model
        self.provider = provider
        self.configured = configured
        self.unconfigured_reason = unconfigured_reason
        self.images = caps.supports_images
        self.context = caps.max_context_tokens
        self.tools = caps.supports_tools
        self.system = caps.supports_system_prompt
        self.structured = caps.supports_structured_output


class Validator:
    def __init__(self, registry: ModelRegistry, env: Mapping[str, str] | None = None):
        self.gates: dict[str, _Gate] = {}
        for spec in registry.models.values():
            prov = registry.providers.get(spec.provider)
            configured = prov is not None and prov.is_configured(env)
            if prov is None:
                why = f"{spec.id}: provider '{spec.provider}' is not declared"
            else:
                why = f"{spec.id}: provider {spec.provider} has no API key ({prov.api_key_env} is not set)"
            self.gates[spec.id] = _Gate(spec.id, spec.provider, configured, why, spec.capabilities)

    def provider_of(self, model: str) -> str:
        gate = self.gates.get(model)
        return gate.provider if gate is not None else model.partition(":")[0]

    def configured_providers(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for gate in self.gates.values():
            if gate.configured:
                seen.setdefault(gate.provider)
        return tuple(seen)

    def check(self, model: str, ctx: TurnContext, availability: Availability | None) -> Rejection | None:
        gate = self.gates.get(model)
        if gate is None:
            return Rejection(ValidationFailure.NOT_CONFIGURED, f"{model} is not in the model registry")
        if not gate.configured:
            return Rejection(ValidationFailure.NOT_CONFIGURED, gate.unconfigured_reason)
        if availability is not None:
            verdict = availability(model)
            if not verdict.available:
                scope = verdict.scope if verdict.scope in ("model", "provider") else "model"
                reason = verdict.reason or (
                    f"all {gate.provider} models temporarily unavailable" if scope == "provider"
                    else f"{model} model-specific outage"
                )
                return Rejection(ValidationFailure.PROVIDER_UNAVAILABLE, reason, scope)
        if ctx.has_images and not gate.images:
            return Rejection(ValidationFailure.NO_VISION_SUPPORT, f"{model} does not support images")
        if ctx.estimated_input_tokens > gate.context:
            return Rejection(
                ValidationFailure.EXCEEDS_CONTEXT_WINDOW,
                f"~{ctx.estimated_input_tokens} input tokens exceed {model}'s {gate.context}-token context window",
            )
        if ctx.has_tool_definitions and not gate.tools:
            return Rejection(ValidationFailure.NO_TOOL_SUPPORT, f"{model} does not support tools")
        if ctx.has_system_prompt and not gate.system:
            return Rejection(ValidationFailure.NO_SYSTEM_PROMPT_SUPPORT, f"{model} does not support a system prompt")
        if ctx.requires_structured_output and not gate.structured:
            return Rejection(ValidationFailure.NO_STRUCTURED_OUTPUT_SUPPORT,
                             f"{model} does not support structured output")
        return None


def availability_from_snapshot(unavailable: Mapping[str, Mapping]) -> Availability:
    """Adapt the availability actor's view (``{scope: {"reason": ...}}``, where a scope is a
    provider name or a ``provider:model`` id) into the callable the chain takes. Provider-wide
    state is checked first, as spec §4.5 orders it."""
    if not unavailable:
        return lambda model: AVAILABLE

    def availability(model: str) -> AvailabilityVerdict:
        provider = model.partition(":")[0]
        entry = unavailable.get(provider)
        if entry is not None:
            return AvailabilityVerdict(False, "provider", str(entry.get("reason") or "")
                                       or f"all {provider} models temporarily unavailable")
        entry = unavailable.get(model)
        if entry is not None:
            return AvailabilityVerdict(False, "model", str(entry.get("reason") or "")
                                       or f"{model} model-specific outage")
        return AVAILABLE

    return availability
