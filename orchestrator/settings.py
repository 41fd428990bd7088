"""Daemon settings (``daemon.yaml`` in the config home) and per-workspace settings.

Both are optional files; errors name the file, line and key like every config error here.
``daemon.yaml`` is validated strictly: a value of the wrong type or range is an error, never
silently coerced (``2.9`` is not an integer, ``-1`` is not a grace period).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
from collections.abc import Callable

import attrs

from actors.config.yamlload import read_capped_text
from actors.review.config import section_problem
from actors.router.yamlpos import Problems, describe, key_line, parse_yaml, plain
from actors.remote.config import CurveConfig, WorkersConfig, parse_curve, parse_workers
from .gateway.config import HttpSettings, parse_http
# Per-workspace settings live with the tools that obey them; the old name stays importable here.
from actors.tools.workspace import workspace_settings  # noqa: F401

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ValueError):
    pass


@attrs.frozen
class DaemonSettings:
    shutdown_grace_s: float = 10.0
    max_restarts: int = 5
    restart_window_s: float = 30.0
    log_level: str = "info"
    retry_max_attempts: int = 5          # per LLM call, for transient errors (spec §4.5 counts each)
    retry_base_delay_s: float = 0.5      # exponential backoff 0.5, 1, 2, 4 s (+ jitter), capped at 8 s
    review: str | None = None            # review: {backend: SPEC} — the config layer of the review spec (§4.8)
    http: HttpSettings | None = None     # the HTTP gateway (docs/gateway.md); None: not served
    workers: WorkersConfig | None = None  # remote workers (docs/remote-workers.md); None: none served
    curve: CurveConfig | None = None      # CURVE on the client endpoint: tcp beyond loopback (same doc)


def _number(minimum: float, *, inclusive: bool) -> Callable[[Any], tuple[Any, str | None]]:
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def check(value: Any) -> tuple[Any, str | None]:
        ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
              and (value >= minimum if inclusive else value > minimum))
        return (float(value), None) if ok else (None, f"expected a number of seconds {bound}, got {describe(value)}")
    return check


def _integer(minimum: int) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        ok = not isinstance(value, bool) and isinstance(value, int) and value >= minimum
        return (int(value), None) if ok else (None, f"expected a whole number >= {minimum}, got {describe(value)}")
    return check


def _level(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str) and value.lower() in LOG_LEVELS:
        return value.lower(), None
    return None, f"expected one of {', '.join(LOG_LEVELS)}, got {describe(value)}"


def _review(value: Any) -> tuple[Any, str | None]:
    problem = section_problem(value)
    return (None, problem) if problem is not None else (value.get("backend"), None)


_CHECKS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "shutdown_grace_s": _number(0, inclusive=True),
    "max_restarts": _integer(0),
    "restart_window_s": _number(0, inclusive=False),
    "log_level": _level,
    "retry_max_attempts": _integer(1),
    "retry_base_delay_s": _number(0, inclusive=True),
    "review": _review,
}


def parse_settings_text(text: str, filename: str = "daemon.yaml") -> tuple[DaemonSettings | None, list[str]]:
    """Every problem of ``daemon.yaml`` in one pass, as ``file:line: key: problem``."""
    problems = Problems(os.path.basename(filename))
    data, ok = parse_yaml(text, problems)
    if not ok:
        return None, problems.sorted()
    if data is None:
        return DaemonSettings(), []
    if not isinstance(data, dict):
        problems.add(1, "", f"expected a mapping of settings, got {describe(data)}")
        return None, problems.sorted()
    values: dict[str, Any] = {}
    for key, raw in data.items():
        line = key_line(data, key, 1)
        if key == "http":
            raw_http = data[key]
            http, http_problems = parse_http(raw_http, lambda k, r=raw_http, at=line: at if k is None
                                             else key_line(r, k, at))
            for where, path, what in http_problems:
                problems.add(where, path, what)
            values["http"] = http
            continue
        if key in ("workers", "curve"):
            raw_section = data[key]

            def section_line(k: Any, r: Any = raw_section, at: int = line) -> int:
                return at if k is None else key_line(r, k, at)
            parse = parse_workers if key == "workers" else parse_curve
            section, section_problems = parse(raw_section, section_line)
            for where, path, what in section_problems:
                problems.add(where, path, what)
            values[key] = section
            continue
        check = _CHECKS.get(key)
        if check is None:
            known = ", ".join((*_CHECKS, "http", "workers", "curve"))
            problems.add(line, str(key), f"unknown setting (known: {known})")
            continue
        value, problem = check(plain(raw))
        if problem is not None:
            problems.add(line, str(key), problem)
        else:
            values[key] = value
    if problems:
        return None, problems.sorted()
    return DaemonSettings(**values), []


def load_settings(path: Path) -> DaemonSettings:
    """``daemon.yaml`` or the defaults when it does not exist; SettingsError lists every problem."""
    try:
        text = read_capped_text(path)     # size bounds, as for every config file
    except FileNotFoundError:
        return DaemonSettings()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path.name}:1: cannot read file: {exc}") from None
    settings, errors = parse_settings_text(text, path.name)
    if settings is None:
        raise SettingsError("\n".join(errors))
    return settings


