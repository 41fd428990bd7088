"""Daemon settings (``daemon.yaml`` in the config home) and per-workspace settings.

Both are optional files; errors name the file, line and key like every config error here.
"""
from __future__ import annotations

from pathlib import Path

import attrs
from ruamel.yaml.error import YAMLError

from actors.config.yamlload import YAMLLimitError, load_yaml, read_capped_text
# Per-workspace settings live with the tools that obey them; the old name stays importable here.
from actors.tools.workspace import workspace_settings  # noqa: F401


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


_FIELDS = {f.name: f.type for f in attrs.fields(DaemonSettings)}


def _load_yaml(path: Path):
    try:
        return load_yaml(read_capped_text(path))   # size and alias bounds, as for every config file
    except YAMLLimitError as exc:
        raise SettingsError(f"{path.name}:{exc}") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise SettingsError(f"{path.name}:{line}: {getattr(exc, 'problem', None) or exc}") from None


def load_settings(path: Path) -> DaemonSettings:
    if not path.exists():
        return DaemonSettings()
    data = _load_yaml(path) or {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path.name}:1: the file must be a mapping of settings")
    errors, values = [], {}
    for key, value in data.items():
        line = data.lc.key(key)[0] + 1 if hasattr(data, "lc") else 0
        if key not in _FIELDS:
            errors.append(f"{path.name}:{line}: {key}: unknown setting (known: {', '.join(_FIELDS)})")
            continue
        default = getattr(DaemonSettings(), key)
        try:
            values[key] = type(default)(value)
        except (TypeError, ValueError):
            errors.append(f"{path.name}:{line}: {key}: expected {type(default).__name__}, got {value!r}")
    if errors:
        raise SettingsError("\n".join(errors))
    return DaemonSettings(**values)


