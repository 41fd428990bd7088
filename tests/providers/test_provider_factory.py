"""make_adapter builds the right adapter per provider kind, wired to keys, base URLs and prices."""
from __future__ import annotations

import sys
from decimal import Decimal

import pytest

from actors.providers._http import ProviderHTTP
from actors.providers.anthropic import AnthropicAdapter
from actors.providers.base import LLMRequest
from actors.providers.cli import CliAdapter
from actors.providers.factory import make_adapter
from actors.providers.openai import OpenAIAdapter
from actors.config.registry import ModelSpec, Pricing, ProviderSpec
from protocol.canonical import AdapterCapabilities, Message, Role, TextBlock
from tests.fakes import Answer, Tokens, drain, open_fake_anthropic, open_fake_openai

REQUEST = LLMRequest(model="ignored-by-fake", messages=(Message(Role.USER, (TextBlock("hi"),)),))


def spec(provider: str, name: str, **kw) -> ModelSpec:
    return ModelSpec(id=f"{provider}:{name}", provider=provider, name=name, **kw)


async def test_defaults_point_at_the_vendor_apis():
    a = make_adapter(ProviderSpec("anthropic", "anthropic"), spec("anthropic", "claude"), env={})
    o = make_adapter(ProviderSpec("openai", "openai"), spec("openai", "gpt"), env={})
    assert isinstance(a, AnthropicAdapter) and a.base_url == "https://api.anthropic.com"
    assert isinstance(o, OpenAIAdapter) and o.base_url == "https://api.openai.com/v1"
    assert o.max_tokens_field == "max_completion_tokens"
    await a.aclose()
    await o.aclose()


async def test_anthropic_adapter_uses_the_key_from_env_and_prices_with_models_yaml():
    provider = ProviderSpec("anthropic", "anthropic", api_key_env="MY_KEY")
    model = spec("anthropic", "claude-haiku-4-5", pricing=Pricing(Decimal("1"), Decimal("5")))
    async with open_fake_anthropic(api_key="sekrit") as srv, ProviderHTTP() as http:
        provider = ProviderSpec("anthropic", "anthropic", base_url=srv.base_url, api_key_env="MY_KEY")
        adapter = make_adapter(provider, model, http=http, env={"MY_KEY": "sekrit"})
        srv.script(Answer(usage=Tokens(input=1000, output=200)))
        out = await drain(adapter.stream(REQUEST))
        await adapter.aclose()
        assert not http.is_closed  # a shared client belongs to the caller
    assert srv.violations == []
    assert out.completed.usage.cost_usd == "0.002"


async def test_openai_compatible_without_key_sends_no_auth_and_uses_max_tokens():
    async with open_fake_openai(api_key=None) as srv:
        provider = ProviderSpec("local", "openai_compatible", base_url=srv.base_url, api_key_env=None)
        adapter = make_adapter(provider, spec("local", "llama3"), env={})
        srv.script(Answer(text="hi from local"))
        out = await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert out.completed.message.text == "hi from local"
    assert "authorization" not in srv.requests[0].headers
    assert srv.requests[0].json["max_tokens"] == 4096
    assert out.completed.usage.cost_usd is None  # a local model has no list price


async def test_streaming_capability_selects_json_responses():
    caps = AdapterCapabilities(supports_streaming=False)
    async with open_fake_openai() as srv:
        provider = ProviderSpec("openai", "openai", base_url=srv.base_url, api_key_env="K")
        adapter = make_adapter(provider, spec("openai", "gpt-4o-mini", capabilities=caps), env={"K": "test-key"})
        srv.script(Answer(text="whole"))
        out = await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert "stream" not in srv.requests[0].json
    assert out.completed.message.text == "whole"
    assert out.completed.usage.cost_usd is not None  # gpt-4o-mini is in genai-prices


async def test_cli_models_get_their_command_and_timeout():
    model = spec("codex", "gpt-5", command=(sys.executable, "-c", "print('ok')"), timeout_s=12.0)
    adapter = make_adapter(ProviderSpec("codex", "cli"), model, env={})
    assert isinstance(adapter, CliAdapter) and adapter.timeout_s == 12.0
    out = await drain(adapter.stream(REQUEST))
    assert out.completed.message.text == "ok\n"


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError):
        make_adapter(ProviderSpec("codex", "cli"), spec("codex", "x"), env={})
    with pytest.raises(ValueError):
        make_adapter(ProviderSpec("p", "telepathy"), spec("p", "x"), env={})


def test_demo_kind_builds_the_demo_adapter():
    demo = pytest.importorskip("actors.providers.demo")
    adapter = make_adapter(ProviderSpec("demo", "demo"), spec("demo", "tiny"), env={})
    assert isinstance(adapter, demo.DemoAdapter)
