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

    def models_of_tier(self, tier: str) -> tuple[ModelSpec, ...]:
        return tuple(m for m in self.models.values() if m.tier == tier)
