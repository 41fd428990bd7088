"""``workers:`` in daemon.yaml: where remote workers connect and which keys may.

    workers:
      listen: "tcp://0.0.0.0:7555"      # the hub's own CURVE ROUTER (never the client socket)
      server_key: keys/server.key       # the daemon's key pair (default: <state>/keys/curve.key)
      allow: ["<Z85 public key>", /etc/orchestrator/worker1.key]   # who may connect
      heartbeat_s: 5                    # both ways; 3 missed beats = lost
      pools: [default, build]           # the pools workers may join and workspaces may name
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from actors.remote.keys import is_z85_key
from actors.router.yamlpos import item_line

KNOWN_KEYS = ("listen", "server_key", "allow", "heartbeat_s", "pools")
DEFAULT_POOL = "default"
DEFAULT_HEARTBEAT_S = 5.0
_LISTEN = re.compile(r"tcp://(\*|[0-9.]+|\[[0-9A-Fa-f:.]+\]|localhost):([0-9]{1,5}|\*)")
_POOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@attrs.frozen
class WorkersConfig:
    listen: str
    allow: tuple[str, ...]                   # Z85 public keys or key-file paths, as written
    server_key: str | None = None            # a key-file path; None: the default under the state dir
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    pools: tuple[str, ...] = (DEFAULT_POOL,)


def is_pool_name(value: object) -> bool:
    return isinstance(value, str) and _POOL.fullmatch(value) is not None


def parse_workers(data: Any, key_line: Callable[[Any], int]) -> tuple[WorkersConfig | None, list[tuple[int, str, str]]]:
    """The ``workers:`` mapping → config, or every problem as (line, key path, message)."""
    problems: list[tuple[int, str, str]] = []
    if not isinstance(data, Mapping):
        return None, [(key_line(None), "workers", "expected a mapping with listen and allow")]
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append((key_line(key), f"workers.{key}", f"unknown setting (known: {', '.join(KNOWN_KEYS)})"))
    listen = data.get("listen")
    if listen is None:
        problems.append((key_line(None), "workers.listen", 'missing: where workers connect, e.g. "tcp://0.0.0.0:7555"'))
    elif not isinstance(listen, str) or not _LISTEN.fullmatch(listen) or (
            listen.rpartition(":")[2] != "*" and not 0 < int(listen.rpartition(":")[2]) < 65536):
        problems.append((key_line("listen"), "workers.listen",
                         f"expected tcp://ADDRESS:PORT (an IP address, * or localhost), got {listen!r}"))
    allow = _allow(data, key_line, "workers", problems)
    server_key = _server_key(data, key_line, "workers", problems)
    heartbeat = data.get("heartbeat_s", DEFAULT_HEARTBEAT_S)
    if (isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or not math.isfinite(heartbeat)
            or not 0.05 <= heartbeat <= 3600):
        problems.append((key_line("heartbeat_s"), "workers.heartbeat_s",
                         f"expected a number of seconds from 0.05 to 3600, got {heartbeat!r}"))
        heartbeat = DEFAULT_HEARTBEAT_S
    pools = data.get("pools", [DEFAULT_POOL])
    if isinstance(pools, Mapping):   # `pools: {build: {...}}`: the names are what counts today
        pools = list(pools)
    if not isinstance(pools, list) or not pools or not all(is_pool_name(p) for p in pools):
        problems.append((key_line("pools"), "workers.pools",
                         "expected a list of pool names (letters, digits, _ . -, at most 64 characters)"))
        pools = [DEFAULT_POOL]
    if problems:
        return None, problems
    return WorkersConfig(str(listen), allow, server_key, float(heartbeat), tuple(str(p) for p in pools)), []


def _allow(data: Mapping[str, Any], key_line: Callable[[Any], int], section: str,
           problems: list[tuple[int, str, str]]) -> tuple[str, ...]:
    raw_allow = data.get("allow")
    allow: list[str] = []
    if raw_allow is None:
        problems.append((key_line(None), f"{section}.allow",
                         "missing: the public keys (or key files) that may connect"))
    elif not isinstance(raw_allow, list) or not raw_allow:
        problems.append((key_line("allow"), f"{section}.allow",
                         "expected a non-empty list of public keys or key files"))
    else:
        for i, entry in enumerate(raw_allow):
            at = item_line(raw_allow, i, key_line("allow"))
            if not isinstance(entry, str) or not entry.strip():
                problems.append((at, f"{section}.allow[{i}]",
                                 "expected a 40-character Z85 public key or the path of a key file"))
            elif len(entry) == 40 and not is_z85_key(entry):
                problems.append((at, f"{section}.allow[{i}]", "not a valid Z85 public key"))
            else:
                allow.append(str(entry))
    return tuple(allow)


def _server_key(data: Mapping[str, Any], key_line: Callable[[Any], int], section: str,
                problems: list[tuple[int, str, str]]) -> str | None:
    server_key = data.get("server_key")
    if server_key is not None and (not isinstance(server_key, str) or not server_key.strip()):
        problems.append((key_line("server_key"), f"{section}.server_key", "expected the path of a key file"))
        return None
    return str(server_key) if server_key else None


@attrs.frozen
class CurveConfig:
    """``curve:`` in daemon.yaml: CURVE on the daemon's client endpoint, so ORCHESTRATOR_ENDPOINT may be
    a tcp address beyond loopback (clients set ORCHESTRATOR_CLIENT_KEY and ORCHESTRATOR_SERVER_KEY)."""

    allow: tuple[str, ...]
    server_key: str | None = None


def parse_curve(data: Any, key_line: Callable[[Any], int]) -> tuple[CurveConfig | None, list[tuple[int, str, str]]]:
    if not isinstance(data, Mapping):
        return None, [(key_line(None), "curve", "expected a mapping with allow (and server_key)")]
    problems: list[tuple[int, str, str]] = []
    for key in data:
        if key not in ("allow", "server_key"):
            problems.append((key_line(key), f"curve.{key}", "unknown setting (known: allow, server_key)"))
    allow = _allow(data, key_line, "curve", problems)
    server_key = _server_key(data, key_line, "curve", problems)
    if problems:
        return None, problems
    return CurveConfig(allow, server_key), []
