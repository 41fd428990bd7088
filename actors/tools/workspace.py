"""``<workspace>/.orchestrator/workspace.yaml``: the workspace's own settings, as the user wrote them.

    tools:
      run_command: true          # offer run_command (default: false)
    env:                         # extra variables for run_command, literal values
      PYTHONDONTWRITEBYTECODE: "1"
    pass_env: [VIRTUAL_ENV]      # variables copied from the daemon's environment
    worker_pool: build           # run the tools on a remote worker of this pool (docs/remote-workers.md)

Rules (docs/workspace.md):
- The file is read when a turn starts and the turn keeps that snapshot: an edit applies from the
  next turn. The model's file tools cannot write ``.orchestrator/`` at all, so a grant can only
  come from the user (run_command, once granted, is arbitrary code and could; that is the grant).
- It is parsed once per change, keyed by (mtime_ns, size, inode), never on the event loop (callers
  run :func:`load_workspace_settings` in a thread); it is capped at ``MAX_SETTINGS_BYTES`` and
  loaded with the same alias bounds as every config file. A broken file grants nothing and says why.
- run_command's environment is minimal: PATH, HOME, LANG and LC_ALL from the daemon, then
  ``pass_env`` names, then ``env`` values — never a provider's API key variable.
"""
from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from collections.abc import Iterable, Mapping

import attrs
from attrs import frozen

from actors.config.yamlload import YAMLLimitError, load_yaml, read_capped_text
from actors.delegate.config import DelegateConfig, parse_delegate

SETTINGS_FILE = ".orchestrator/workspace.yaml"
MAX_SETTINGS_BYTES = 64 * 1024
BASE_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL")
_FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CACHE_MAX = 256
_POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# A worker_pool that does not parse still names *a* pool (one no worker can join), so the calls
# fail with no_worker instead of quietly running on the daemon's host.
_INVALID_POOL = "(invalid)"


@frozen
class WorkspaceSettings:
    run_command: bool = False
    env: Mapping[str, str] = attrs.field(factory=dict)
    pass_env: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()      # why (part of) the file was ignored; logged, never fatal
    # Opt-in: a transient provider failure before the turn's first streamed byte moves the turn to
    # the next validated candidate instead of failing it (docs/workflows.md, "Mid-turn fallback").
    mid_turn_fallback: bool = False
    worker_pool: str | None = None    # tools run on a remote worker of this pool (actors.remote)
    # Opt-in: delegation of implementation work to a command-line agent (docs/delegation.md).
    delegate: DelegateConfig | None = None

    def command_env(self, source: Mapping[str, str], *, secret_names: Iterable[str] = ()) -> dict[str, str]:
        """run_command's environment: the base variables, then pass_env, then env; never a key."""
        secrets = set(secret_names)
        env = base_command_env(source)
        for name in self.pass_env:
            if name in source and name not in secrets:
                env[name] = source[name]
        for name, value in self.env.items():
            if name not in secrets:
                env[name] = value
        return env


def base_command_env(source: Mapping[str, str]) -> dict[str, str]:
    env = {name: source[name] for name in BASE_ENV_NAMES if name in source}
    env.setdefault("PATH", _FALLBACK_PATH)
    return env


def parse_settings(text: str, filename: str = SETTINGS_FILE) -> WorkspaceSettings:
    """Settings from the file's text; every problem is reported and that part grants nothing."""
    from ruamel.yaml.error import YAMLError

    try:
        data = load_yaml(text, typ="safe", max_bytes=MAX_SETTINGS_BYTES)
    except YAMLLimitError as exc:
        return WorkspaceSettings(errors=(f"{filename}:{exc}",))
    except (YAMLError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return WorkspaceSettings(errors=(f"{filename}: invalid YAML: {first}",))
    if data is None:
        return WorkspaceSettings()
    if not isinstance(data, dict):
        return WorkspaceSettings(errors=(f"{filename}: expected a mapping of settings",))
    errors: list[str] = []
    tools = data.get("tools")
    run_command = isinstance(tools, dict) and tools.get("run_command") is True
    env: dict[str, str] = {}
    raw_env = data.get("env", {})
    if not isinstance(raw_env, dict):
        errors.append(f"{filename}: env: expected a mapping of NAME: value")
        raw_env = {}
    for name, value in raw_env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            errors.append(f"{filename}: env: {name!r} is not a variable name")
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            errors.append(f"{filename}: env.{name}: expected a string, got {type(value).__name__}")
        else:
            env[name] = str(value)
    raw_pass = data.get("pass_env", [])
    if not isinstance(raw_pass, list):
        errors.append(f"{filename}: pass_env: expected a list of variable names")
        raw_pass = []
    pass_env = []
    for name in raw_pass:
        if isinstance(name, str) and _ENV_NAME.match(name):
            pass_env.append(name)
        else:
            errors.append(f"{filename}: pass_env: {name!r} is not a variable name")
    fallback = data.get("mid_turn_fallback", False)
    if not isinstance(fallback, bool):
        errors.append(f"{filename}: mid_turn_fallback: expected true or false, got {type(fallback).__name__}")
        fallback = False
    pool = data.get("worker_pool")
    if pool is not None and not (isinstance(pool, str) and _POOL_NAME.fullmatch(pool)):
        # Never "run locally instead": a pool may exist to keep tools off the daemon's host.
        errors.append(f"{filename}: worker_pool: expected a pool name (letters, digits, _ . -), got {pool!r}; "
                      "the tools are offered to no remote worker and refused")
        pool = _INVALID_POOL
    delegate, delegate_errors = parse_delegate(data.get("delegate"), filename)
    errors.extend(delegate_errors)
    return WorkspaceSettings(run_command=run_command, env=env, pass_env=tuple(pass_env), errors=tuple(errors),
                             mid_turn_fallback=fallback, delegate=delegate, worker_pool=pool)


class SettingsCache:
    """Parsed workspace.yaml per workspace, re-parsed only when the file's stat changes."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[tuple, WorkspaceSettings]] = OrderedDict()
        self._lock = threading.Lock()   # loads run in trio's worker threads, several at once
        self.parses = 0

    def load(self, workspace: str | os.PathLike[str] | None) -> WorkspaceSettings:
        """Blocking (a stat, maybe a read): call it from a thread, not the event loop."""
        if not workspace:
            return WorkspaceSettings()
        with self._lock:
            return self._load(workspace)

    def _load(self, workspace: str | os.PathLike[str]) -> WorkspaceSettings:
        path = Path(workspace, SETTINGS_FILE)
        key = str(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._entries.pop(key, None)
            return WorkspaceSettings()
        except OSError as exc:
            return WorkspaceSettings(errors=(f"{SETTINGS_FILE}: cannot read: {exc.strerror or exc}",))
        signature = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == signature:
            self._entries.move_to_end(key)
            return hit[1]
        self.parses += 1
        try:
            settings = parse_settings(read_capped_text(path, MAX_SETTINGS_BYTES))
        except (OSError, UnicodeDecodeError) as exc:
            settings = WorkspaceSettings(errors=(f"{SETTINGS_FILE}: cannot read: {exc}",))
        self._entries[key] = (signature, settings)
        if len(self._entries) > _CACHE_MAX:
            self._entries.popitem(last=False)
        return settings


_shared = SettingsCache()


def load_workspace_settings(workspace: str | os.PathLike[str] | None) -> WorkspaceSettings:
    """The process-wide cached settings of ``workspace`` (blocking: call from a thread)."""
    return _shared.load(workspace)


workspace_settings = load_workspace_settings  # the name orchestrator.settings has always exported
