"""The cost of one provider call, in Decimal USD.

Token meaning (the same for every adapter, so one formula fits all):
- ``input_tokens``: uncached input only. Anthropic reports it that way; the OpenAI adapter
  subtracts ``cached_tokens`` from ``prompt_tokens``.
- ``cache_read_tokens`` / ``cache_write_tokens``: the cached input, read or written.
- ``output_tokens``: all output, reasoning included; ``reasoning_tokens`` is only a breakdown and
  is never charged twice.

cost = (input·in + cache_read·cache_read_price + cache_write·cache_write_price + output·out) / 1e6

Prices come from the model's ``pricing`` in models.yaml when given, else from the ``genai-prices``
package's bundled snapshot. That lookup is offline: the package only fetches prices when an
``UpdatePrices`` updater is started, which this module never does. An unknown price gives
``cost_usd = None`` — unknown, not free.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from collections.abc import Mapping

from attrs import evolve, frozen

from actors.config.registry import ModelSpec, Pricing, ProviderSpec
from protocol.canonical import Usage

PER_TOKENS = Decimal(1_000_000)


@frozen
class PricedUsage:
    usage: Usage                      # ``cost_usd`` is a decimal string, or None when unknown
    price: Mapping[str, Any]          # the price used and where it came from ("source")


def decimal_str(value: Decimal) -> str:
    """Plain notation (never ``1E-7``), no trailing zeros."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@lru_cache(maxsize=256)
def _rates(pricing: Pricing) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(input, cache read, cache write, output) per token, as Decimals: once per models.yaml price."""
    cache_read = pricing.cache_read_per_mtok if pricing.cache_read_per_mtok is not None else pricing.input_per_mtok
    cache_write = pricing.cache_write_per_mtok if pricing.cache_write_per_mtok is not None else pricing.input_per_mtok
    return (Decimal(pricing.input_per_mtok), Decimal(cache_read), Decimal(cache_write),
            Decimal(pricing.output_per_mtok))


def cost_from_pricing(pricing: Pricing, usage: Usage) -> Decimal:
    input_rate, read_rate, write_rate, output_rate = _rates(pricing)
    total = (
        usage.input_tokens * input_rate
        + usage.cache_read_tokens * read_rate
        + usage.cache_write_tokens * write_rate
        + usage.output_tokens * output_rate
    )
    return total / PER_TOKENS


@lru_cache(maxsize=256)
def _yaml_price(pricing: Pricing) -> Mapping[str, Any]:
    """The price a ledger row names; read-only, since every call of a model shares it."""
    def s(value: Decimal | None, default: Decimal) -> str:
        return decimal_str(Decimal(value if value is not None else default))

    return MappingProxyType({
        "source": "models.yaml",
        "input_per_mtok": s(pricing.input_per_mtok, pricing.input_per_mtok),
        "output_per_mtok": s(pricing.output_per_mtok, pricing.output_per_mtok),
        "cache_read_per_mtok": s(pricing.cache_read_per_mtok, pricing.input_per_mtok),
        "cache_write_per_mtok": s(pricing.cache_write_per_mtok, pricing.input_per_mtok),
    })


@lru_cache(maxsize=1)
def _genai_prices() -> Any:
    # Imported on first use: importing it (pydantic + a large bundled table) takes ~0.3 s.
    import genai_prices

    return genai_prices


def preload() -> None:
    """Load the price table now (e.g. at daemon start, in a thread) rather than on the first call."""
    _genai_prices().data_snapshot.get_snapshot()


def _lookup_target(model: ModelSpec, provider: ProviderSpec | None) -> dict[str, str] | None:
    """How to name the provider to genai-prices, or None when a lookup would be a guess."""
    kind = provider.kind if provider is not None else model.provider
    if kind in ("anthropic", "openai"):
        return {"provider_id": kind}
    if kind == "openai_compatible" and provider is not None and provider.base_url:
        # Known hosted endpoints (Groq, Together, …) are recognised by URL; a local server is not.
        return {"provider_api_url": provider.base_url}
    return None  # cli agents and the demo: estimated tokens, no meaningful list price


def _price_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return decimal_str(value)
    return f"{decimal_str(value.base)} (tiered)"  # genai-prices TieredPrices


def _from_genai(model: ModelSpec, usage: Usage, target: dict[str, str], at: datetime | None) -> PricedUsage | None:
    gp = _genai_prices()
    theirs = gp.Usage(
        # genai-prices counts cached tokens inside input_tokens; ours are separate.
        input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
    )
    try:
        calc = gp.calc_price(theirs, model.name, genai_request_timestamp=at, **target)
    except (LookupError, ValueError):
        return None
    mp = calc.model_price
    price = {
        "source": "genai-prices",
        "version": gp.__version__,
        "provider": calc.provider.id,
        "model": calc.model.id,
        "input_per_mtok": _price_str(mp.input_mtok),
        "output_per_mtok": _price_str(mp.output_mtok),
        # Unpriced cache tokens are charged as plain input by genai-prices.
        "cache_read_per_mtok": _price_str(mp.input_mtok if mp.cache_read_mtok is None else mp.cache_read_mtok),
        "cache_write_per_mtok": _price_str(mp.input_mtok if mp.cache_write_mtok is None else mp.cache_write_mtok),
        "description": str(mp),
    }
    return PricedUsage(evolve(usage, cost_usd=decimal_str(calc.total_price)), price)


def price_usage(
    model: ModelSpec,
    usage: Usage,
    *,
    provider: ProviderSpec | None = None,
    at: datetime | None = None,
) -> PricedUsage:
    """Price one call's usage. ``at`` selects time-dependent prices (default: now)."""
    if model.pricing is not None:
        cost = cost_from_pricing(model.pricing, usage)
        return PricedUsage(evolve(usage, cost_usd=decimal_str(cost)), _yaml_price(model.pricing))
    target = _lookup_target(model, provider)
    if target is not None:
        priced = _from_genai(model, usage, target, at)
        if priced is not None:
            return priced
        reason = f"no price for {model.name!r} in genai-prices"
    else:
        reason = "no pricing in models.yaml and no price source for this provider kind"
    return PricedUsage(evolve(usage, cost_usd=None), {"source": "unknown", "reason": reason})
