"""Build the adapter for one registered model."""
from __future__ import annotations

from collections.abc import Mapping

from actors.cost.pricing import price_usage
from actors.config.registry import ModelSpec, ProviderSpec
from protocol.canonical import Usage

from actors.providers._http import ProviderHTTP
from actors.providers.anthropic import AnthropicAdapter
from actors.providers.base import Adapter
from actors.providers.cli import CliAdapter
from actors.providers.openai import OpenAIAdapter


def make_adapter(
    provider: ProviderSpec,
    model: ModelSpec,
    *,
    http: ProviderHTTP | None = None,
    env: Mapping[str, str] | None = None,
) -> Adapter:
    """``http`` is shared and stays open after ``aclose``; without it the adapter owns a client.

    ``env`` is where API keys are looked up (default ``os.environ``). ``model.timeout_s``, else
    ``provider.timeout_s``, bounds each network step (HTTP) or the whole run (cli).
    """

    def pricer(usage: Usage) -> Usage:
        return price_usage(model, usage, provider=provider).usage

    timeout_s = model.timeout_s or provider.timeout_s
    caps = model.capabilities
    http_options = dict(
        http=http, timeout_s=timeout_s, streaming=caps.supports_streaming,
        max_context_tokens=caps.max_context_tokens, pricer=pricer,
    )
    kind = provider.kind
    if kind == "anthropic":
        return AnthropicAdapter(api_key=provider.api_key(env), base_url=provider.base_url, **http_options)
    if kind in ("openai", "openai_compatible"):
        # Compatible servers (Ollama, llama.cpp, older vLLM) know only the older max_tokens name.
        default_field = "max_completion_tokens" if kind == "openai" else "max_tokens"
        return OpenAIAdapter(
            api_key=provider.api_key(env),
            base_url=provider.base_url,
            max_tokens_field=provider.options.get("max_tokens_field", default_field),
            **http_options,
        )
    if kind == "cli":
        command = model.command or provider.options.get("command")
        if not command:
            raise ValueError(f"cli model {model.id!r} has no command")
        return CliAdapter(command, model=model.name, timeout_s=timeout_s, pricer=pricer)
    if kind == "demo":
        from actors.providers.demo import DemoAdapter  # owned elsewhere; imported lazily so it stays optional

        return DemoAdapter(model.id)
    raise ValueError(f"unknown provider kind {kind!r} for model {model.id!r}")
