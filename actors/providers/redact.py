"""Keep API keys out of provider error text before it is logged, stored or shown.

Some servers (proxies, compatible servers, misconfigured gateways) echo the request's key in an
error body. Every configured key — the value of each provider's ``api_key_env`` in the daemon's
environment, plus the vendors' default variables — is replaced wherever it appears.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from actors.config.registry import DEFAULT_KEY_ENV, ModelRegistry

REDACTED = "[redacted]"
# Shorter values are not treated as secrets: replacing "1" or "abc" would garble every message.
_MIN_SECRET_LEN = 8


def configured_keys(registry: ModelRegistry | None, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    source = os.environ if env is None else env
    names = set(DEFAULT_KEY_ENV.values())
    if registry is not None:
        names |= {p.api_key_env for p in registry.providers.values() if p.api_key_env}
    values = {source.get(name) or "" for name in names}
    # Longest first, so a key that contains another is replaced whole.
    return tuple(sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
