"""The model registry (models.yaml, DESIGN §4.2) as frozen data.

Parsing and validation of the file live in ``actors.config.files``; this module is only the shape
every actor shares.
"""
from __future__ import annotations

import os
from decimal import Decimal
from collections.abc import Mapping

import attrs
from attrs import frozen

from protocol.canonical import AdapterCapabilities

PROVIDER_KINDS = ("anthropic", "openai", "openai_compatible", "cli", "demo")
DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
TIERS = ("fast", "balanced", "deep")
# Reasoning efforts a model may declare (models.yaml ``efforts``), least to most. OpenAI's
# ``reasoning_effort`` takes them as they are; Anthropic's extended thinking maps each to a budget.
EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


@frozen
class Pricing:
    """USD per million tokens. Cache prices default to the input price when not given."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None


@frozen
class ProviderSpec:
    name: str
    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 600.0
    options: Mapping = attrs.field(factory=dict)

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        if not self.api_key_env:
            return None
        return (os.environ if env is None else env).get(self.api_key_env) or None

    def is_configured(self, env: Mapping[str, str] | None = None) -> bool:
        """A provider that names a key env var is configured only when that variable is set."""
        return self.api_key_env is None or self.api_key(env) is not None


@frozen
class ModelSpec:
    id: str                      # "provider:model"
    provider: str
    name: str                    # the provider's own model name
    tier: str | None = None
    can_delegate: bool = False
    aliases: tuple[str, ...] = ()
    capabilities: AdapterCapabilities = AdapterCapabilities()
    pricing: Pricing | None = None
    command: tuple[str, ...] | None = None   # cli kind: argv template, prompt on stdin
    timeout_s: float | None = None
    max_output_tokens: int = 4096
    options: Mapping = attrs.field(factory=dict)
    family: str | None = None                # None: the provider's kind (cross-family review)
    efforts: tuple[str, ...] = ()            # the reasoning efforts the model accepts; () none


def effective_effort(requested: str | None, spec: ModelSpec | None) -> tuple[str | None, str | None]:
    """(the effort a turn runs with, a warning when the requested one was dropped).

    An effort is advisory (controlflow's ``reasoning_effort_hint`` semantics): one the model does
    not declare, or a word that is no effort at all, is ignored safely, never an error."""
    if requested is None:
        return None, None
    model = spec.id if spec is not None else "the chosen model"
    if requested not in EFFORTS:
        return None, f"effort {requested!r} ignored: not an effort (expected one of: {', '.join(EFFORTS)})"
    if spec is None or requested not in spec.efforts:
        accepts = ", ".join(spec.efforts) if spec is not None and spec.efforts else "no effort setting"
        return None, f"effort {requested!r} ignored: {model} accepts {accepts} (models.yaml efforts)"
    return requested, None


@frozen
class ModelRegistry:
    providers: Mapping[str, ProviderSpec] = attrs.field(factory=dict)
    models: Mapping[str, ModelSpec] = attrs.field(factory=dict)

    def resolve(self, name: str) -> ModelSpec | None:
        """A model by id or alias."""
        spec = self.models.get(name)
        if spec is not None:
            return spec
        for m in self.models.values():
            if name in m.aliases:
                return m
        return None

    def alias_table(self) -> dict[str, str]:
        return {a: m.id for m in self.models.values() for a in m.aliases}

    def provider_of(self, model_id: str) -> ProviderSpec | None:
        spec = self.models.get(model_id)
        return self.providers.get(spec.provider) if spec else None

    def is_configured(self, model_id: str, env: Mapping[str, str] | None = None) -> bool:
        prov = self.provider_of(model_id)
        return prov is not None and prov.is_configured(env)

    def family_of(self, model_id: str) -> str | None:
        """The model's family: its declared ``family``, else its provider's kind."""
        spec = self.models.get(model_id)
        if spec is None:
            return None
        if spec.family:
            return spec.family
        provider = self.providers.get(spec.provider)
        return provider.kind if provider is not None else spec.provider

    def models_of_tier(self, tier: str) -> tuple[ModelSpec, ...]:
        return tuple(m for m in self.models.values() if m.tier == tier)
