"""Cost of a call: explicit models.yaml pricing first, then genai-prices, else unknown (None)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest

from actors.cost.pricing import cost_from_pricing, decimal_str, price_usage
from actors.config.registry import ModelSpec, Pricing, ProviderSpec
from protocol.canonical import Usage

ANTHROPIC = ProviderSpec("anthropic", "anthropic", api_key_env="ANTHROPIC_API_KEY")
OPENAI = ProviderSpec("openai", "openai", api_key_env="OPENAI_API_KEY")


def model(name: str, provider: str = "anthropic", pricing: Pricing | None = None) -> ModelSpec:
    return ModelSpec(id=f"{provider}:{name}", provider=provider, name=name, pricing=pricing)


def by_hand(price: dict, usage: Usage) -> Decimal:
    return (usage.input_tokens * Decimal(price["input_per_mtok"])
            + usage.cache_read_tokens * Decimal(price["cache_read_per_mtok"])
            + usage.cache_write_tokens * Decimal(price["cache_write_per_mtok"])
            + usage.output_tokens * Decimal(price["output_per_mtok"])) / Decimal(1_000_000)


def test_models_yaml_pricing_wins_and_prices_each_kind_of_token():
    pricing = Pricing(Decimal("3"), Decimal("15"), cache_read_per_mtok=Decimal("0.3"),
                      cache_write_per_mtok=Decimal("3.75"))
    priced = price_usage(model("claude-x", pricing=pricing), Usage(1_000_000, 100_000, 2_000_000, 400_000),
                         provider=ANTHROPIC)
    # 3 + 1.5 + 0.6 + 1.5
    assert priced.usage.cost_usd == "6.6"
    assert priced.price["source"] == "models.yaml"


def test_cache_prices_default_to_the_input_price():
    pricing = Pricing(Decimal("1"), Decimal("5"))
    assert cost_from_pricing(pricing, Usage(100, 0, 50, 50)) == Decimal("0.0002")


def test_reasoning_tokens_are_part_of_output_and_never_charged_twice():
    pricing = Pricing(Decimal("1"), Decimal("10"))
    plain = price_usage(model("o", "openai", pricing), Usage(0, 1000))
    with_reasoning = price_usage(model("o", "openai", pricing), Usage(0, 1000, reasoning_tokens=800))
    assert plain.usage.cost_usd == with_reasoning.usage.cost_usd == "0.01"


@pytest.mark.parametrize("name, provider", [("claude-haiku-4-5", ANTHROPIC), ("gpt-4o-mini", OPENAI)])
def test_genai_prices_supplies_list_prices_with_cached_input_priced_separately(name, provider):
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=50_000, cache_write_tokens=0)
    priced = price_usage(model(name, provider.kind), usage, provider=provider)
    assert priced.price["source"] == "genai-prices" and priced.price["provider"] == provider.kind
    assert Decimal(priced.price["cache_read_per_mtok"]) < Decimal(priced.price["input_per_mtok"])
    assert Decimal(priced.usage.cost_usd) == by_hand(priced.price, usage)


def test_anthropic_cache_writes_are_priced_at_the_cache_write_rate():
    usage = Usage(input_tokens=1_000, output_tokens=0, cache_write_tokens=10_000)
    priced = price_usage(model("claude-haiku-4-5"), usage, provider=ANTHROPIC)
    assert Decimal(priced.price["cache_write_per_mtok"]) > Decimal(priced.price["input_per_mtok"])
    assert Decimal(priced.usage.cost_usd) == by_hand(priced.price, usage)


@pytest.mark.parametrize("spec, provider", [
    (model("no-such-model-zz9", "openai"), OPENAI),
    (model("llama3", "local"), ProviderSpec("local", "openai_compatible", base_url="http://127.0.0.1:11434/v1")),
    (model("codex", "codex"), ProviderSpec("codex", "cli")),
])
def test_an_unknown_price_is_none_not_zero(spec, provider):
    priced = price_usage(spec, Usage(100, 100), provider=provider)
    assert priced.usage.cost_usd is None
    assert priced.price["source"] == "unknown"
    assert priced.usage.input_tokens == 100


def test_costs_are_plain_decimal_strings():
    assert decimal_str(Decimal("1E-7")) == "0.0000001"
    assert decimal_str(Decimal("2.500")) == "2.5"
    assert decimal_str(Decimal("0")) == "0"


def test_genai_prices_works_with_the_network_blocked():
    code = textwrap.dedent("""
        import socket
        def refuse(*a, **k):
            raise RuntimeError("network access attempted")
        socket.socket.connect = socket.socket.connect_ex = refuse
        socket.create_connection = socket.getaddrinfo = refuse
        from decimal import Decimal
        from actors.cost.pricing import preload, price_usage
        preload()
        from actors.config.registry import ModelSpec, ProviderSpec
        from protocol.canonical import Usage
        p = price_usage(ModelSpec(id="a:claude-haiku-4-5", provider="anthropic", name="claude-haiku-4-5"),
                        Usage(1000, 1000), provider=ProviderSpec("anthropic", "anthropic"))
        assert p.price["source"] == "genai-prices" and Decimal(p.usage.cost_usd) > 0, p
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
