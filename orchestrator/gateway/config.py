"""``http:`` in daemon.yaml and ``serve --http [HOST:]PORT``: where the gateway listens, which keys it takes."""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

import attrs

DEFAULT_HOST = "127.0.0.1"
KNOWN_KEYS = ("listen", "api_keys_env")


class HttpRefused(ValueError):
    """The gateway must not listen as configured (a non-loopback host without API keys)."""


@attrs.frozen
class HttpSettings:
    host: str = DEFAULT_HOST
    port: int = 0
    api_keys_env: tuple[str, ...] = ()

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: Any) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port); ValueError says what is wrong."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"expected [HOST:]PORT, got {_kind(text)}")
    value = str(text).strip()
    host, port_text = DEFAULT_HOST, value
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"expected [IPv6]:PORT, got {value!r}")
        host, port_text = inner, rest[1:]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
    if not host:
        raise ValueError(f"no host before ':' in {value!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port number 0-65535, got {port_text!r}")
    return host, int(port_text)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_http(data: Any, key_line: Any) -> tuple[HttpSettings | None, list[tuple[int, str, str]]]:
    """The ``http:`` mapping → settings, or every problem as (line, key path, message).

    ``key_line(key)`` gives the line of a key inside ``data`` (positions are the caller's business)."""
    problems: list[tuple[int, str, str]] = []
    if not isinstance(data, Mapping):
        return None, [(key_line(None), "http", "expected a mapping with listen (and api_keys_env)")]
    host, port, keys = DEFAULT_HOST, 0, ()
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append((key_line(key), f"http.{key}", f"unknown setting (known: {', '.join(KNOWN_KEYS)})"))
    if "listen" not in data:
        problems.append((key_line(None), "http.listen", "missing: the gateway needs [HOST:]PORT"))
    else:
        try:
            host, port = parse_listen(data["listen"])
        except ValueError as exc:
            problems.append((key_line("listen"), "http.listen", str(exc)))
    raw_keys = data.get("api_keys_env", [])
    if raw_keys is None:
        raw_keys = []
    if isinstance(raw_keys, str):
        raw_keys = [raw_keys]
    if not isinstance(raw_keys, list) or not all(isinstance(k, str) and k for k in raw_keys):
        problems.append((key_line("api_keys_env"), "http.api_keys_env",
                         "expected a list of environment variable names"))
    else:
        keys = tuple(raw_keys)
        if "listen" in data and not keys and not problems and not is_loopback(host):
            # the same rule as refusal(), caught by `orchestrator check` rather than at start-up
            problems.append((key_line("listen"), "http.listen",
                             f"{host} is not loopback and http.api_keys_env names no environment variable: "
                             "the daemon would refuse to serve (name one, or listen on 127.0.0.1)"))
    if problems:
        return None, problems
    return HttpSettings(host, port, keys), []


def api_keys(http: HttpSettings, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys the gateway accepts: the values of the named variables that are set and non-empty."""
    source = os.environ if env is None else env
    return tuple(v for name in http.api_keys_env if (v := source.get(name, "").strip()))


def refusal(http: HttpSettings, env: Mapping[str, str] | None = None) -> str | None:
    """Why the gateway must not listen as configured (one line), or None."""
    if is_loopback(http.host) or api_keys(http, env):
        return None
    named = ", ".join(http.api_keys_env)
    why = (f"none of {named} holds a key" if named else "http.api_keys_env names no environment variable")
    return (f"refusing to serve HTTP on non-loopback {http.listen}: {why}. Set an API key "
            "(daemon.yaml http: {api_keys_env: [VAR]} and export VAR) or listen on 127.0.0.1")
