"""Shared fixtures-as-functions for the routing tests: the spec's model registry and small builders."""
from __future__ import annotations

from datetime import datetime, UTC
from decimal import Decimal

from actors.config.files import load_policy_text, load_registry_text
from actors.router.chain import RoutingEngine
from actors.router.context import TurnContext
from actors.router.pattern_scoring import Recommendation
from actors.router.validation import AVAILABLE, AvailabilityVerdict, model_unavailable, provider_unavailable
from protocol.routing import ModelOption

HAIKU = "anthropic:claude-haiku-4-5"
SONNET = "anthropic:claude-sonnet-4-6"
OPUS = "anthropic:claude-opus-4-7"
GPT5 = "openai:gpt-5"
GPT5_MINI = "openai:gpt-5-mini"

# The spec's registry (§9.1, §6.8). Haiku is text-only here, as in worked example §8 "long context".
MODELS_YAML = """\
providers:
  anthropic: {kind: anthropic}
  openai: {kind: openai}
models:
  anthropic:claude-haiku-4-5:
    tier: fast
    can_delegate: false
    aliases: [haiku, fast]
    capabilities: {max_context_tokens: 200000, supports_images: false}
    pricing: {input_per_mtok: 1.0, output_per_mtok: 5.0}
  anthropic:claude-sonnet-4-6:
    tier: balanced
    can_delegate: true
    aliases: [sonnet, balanced]
    capabilities: {max_context_tokens: 200000, supports_images: true}
  anthropic:claude-opus-4-7:
    tier: deep
    can_delegate: true
    aliases: [opus, deep]
    capabilities: {max_context_tokens: 200000, supports_images: true}
  openai:gpt-5:
    tier: balanced
    aliases: [gpt5]
    capabilities: {max_context_tokens: 400000, supports_images: true}
  openai:gpt-5-mini:
    tier: fast
    aliases: [gpt5-mini]
"""

BOTH_KEYS = {"ANTHROPIC_API_KEY": "test-a", "OPENAI_API_KEY": "test-o"}
ANTHROPIC_ONLY = {"ANTHROPIC_API_KEY": "test-a"}
NOON = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)


def registry(text: str = MODELS_YAML):
    reg, errors = load_registry_text(text, "models.yaml")
    assert reg is not None, errors
    return reg


def policy(text: str, reg=None, home: str = "/home/u"):
    pol, errors, _ = load_policy_text(text, "routing.yaml", reg or registry(), home=home)
    assert pol is not None, errors
    return pol


def engine(text: str, env=BOTH_KEYS, reg=None) -> RoutingEngine:
    reg = reg or registry()
    return RoutingEngine(policy(text, reg), reg, env)


def ctx(text: str = "hello", **kw) -> TurnContext:
    kw.setdefault("session_id", "sess_42")
    kw.setdefault("turn_id", "01HZ_xyz")
    kw.setdefault("now_local", NOON)
    kw.setdefault("cost_today_usd", Decimal("0"))
    return TurnContext(message_text=text, **kw)


def down(*scopes: str):
    """Availability stub: each scope is a provider name or a provider:model id."""
    def availability(model: str) -> AvailabilityVerdict:
        provider = model.partition(":")[0]
        if provider in scopes:
            return provider_unavailable(provider)
        if model in scopes:
            return model_unavailable(model)
        return AVAILABLE
    return availability


def recommending(model: str, confidence: float, samples: int, alternatives=()):
    rec = Recommendation(model=model, score=0.9, confidence=confidence, sample_size=samples,
                         alternatives=tuple(alternatives))
    calls = []

    def source(context, cfg):
        calls.append((context, cfg))
        return rec
    source.calls = calls
    return source


def steps(decision) -> list[tuple[str, str, str | None]]:
    """The chain as (policy, verdict, candidate) triples — the spec's §8 notation."""
    return [(e.policy.value, e.verdict.value, e.candidate_model) for e in decision.chain]


def option(model: str, score: float, n: int) -> ModelOption:
    return ModelOption(model=model, score=score, sample_size=n)


BASE = """\
schema_version: 1
global_default: sonnet
"""

# Property tests are about closure and determinism, not exhaustive search: bounded, no deadline
# (the first example pays regex compilation and imports).
from hypothesis import HealthCheck, settings  # noqa: E402

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
