"""API keys of the gateway: ``Authorization: Bearer KEY`` or ``x-api-key: KEY``, compared in constant time."""
from __future__ import annotations

import hmac
from collections.abc import Iterable


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
    return None


def authorized(headers: Iterable[tuple[bytes, bytes]], keys: tuple[bytes, ...]) -> bool:
    """True when no keys are configured (loopback only) or a presented key matches one of them."""
    if not keys:
        return True
    given = presented_key(headers)
    if given is None:
        return False
    ok = False
    for key in keys:   # every key is compared, so the time does not say which one nearly matched
        ok |= hmac.compare_digest(given, key)
    return ok
