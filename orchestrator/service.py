"""``orchestrator service install|uninstall``: the systemd unit, written for this installation.

The unit's ExecStart is the absolute path of the running installation (a pipx / ``pip --user``
script is not on the user manager's PATH), keys come from an ``EnvironmentFile`` created 0600,
and the config is checked before anything is installed (a unit without a valid models.yaml
would only restart in a loop). ``systemctl`` is called only with ``--now``.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from collections.abc import Mapping

from attrs import frozen

from . import __version__
from .check import KEYS_FILE, check_home
from .paths import Paths

UNIT_NAME = "orchestrator.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


class ServiceError(Exception):
    pass


@frozen
class UnitPlan:
    scope: str              # "user" | "system"
    path: Path
    text: str
    keys_file: Path
    exec_start: str


def unit_dir(scope: str, env: Mapping[str, str], override: str | None = None) -> Path:
    """Where systemd looks for units of this scope; tests (and packagers) may redirect it."""
    chosen = override or env.get("ORCHESTRATOR_UNIT_DIR")
    if chosen:
        return Path(chosen)
    if scope == "system":
        return SYSTEM_UNIT_DIR
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def installed_units(env: Mapping[str, str]) -> list[Path]:
    found = []
    for scope in ("user", "system"):
        path = unit_dir(scope, env) / UNIT_NAME
        if path.exists() and path not in found:
            found.append(path)
    return found


def exec_command() -> list[str]:
    """How to start this very installation, with absolute paths (no PATH lookup at boot)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "orchestrator" and script.exists() and os.access(script, os.X_OK):
        return [os.path.abspath(script)]
    # Not started through the console script (``python -m orchestrator``): the interpreter of this
    # environment — not resolved through symlinks, which would leave the virtualenv.
    return [os.path.abspath(sys.executable), "-m", "orchestrator"]


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "/._-+:@%" for c in arg) else '"' + arg.replace('"', '\\"') + '"'


_PRIVATE_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))    # what PrivateTmp= replaces for the service


def _unit_env(paths: Paths, env: Mapping[str, str]) -> dict[str, str]:
    """The ORCHESTRATOR_* variables the unit sets: the home always, state and endpoint if set here."""
    out = {"ORCHESTRATOR_HOME": str(paths.home)}
    for var in ("ORCHESTRATOR_STATE", "ORCHESTRATOR_ENDPOINT"):
        if env.get(var):
            out[var] = env[var]
    return out


def tmp_paths(paths: Paths, env: Mapping[str, str]) -> dict[str, str]:
    """The unit's ORCHESTRATOR_* paths under /tmp or /var/tmp. With PrivateTmp= the service would
    see its own empty /tmp there: no config, and a socket no client can reach."""
    found = {}
    for var, value in _unit_env(paths, env).items():
        path = value
        if var == "ORCHESTRATOR_ENDPOINT":
            if not value.startswith("ipc://"):
                continue
            path = value[len("ipc://"):]
        resolved = Path(os.path.abspath(os.path.expanduser(path)))
        if any(resolved == d or d in resolved.parents for d in _PRIVATE_TMP_DIRS):
            found[var] = value      # as configured: the endpoint keeps its ipc:// prefix
    return found


def render_unit(scope: str, command: list[str], keys_file: Path, paths: Paths, env: Mapping[str, str],
                user: str | None = None, key_vars: list[str] | None = None) -> str:
    exec_start = " ".join(_quote(a) for a in [*command, "serve"])
    environment = [f"Environment={_quote(var + '=' + value)}" for var, value in _unit_env(paths, env).items()]
    keys_hint = ", ".join(f"{v}=…" for v in key_vars) if key_vars else "none needed by models.yaml now"
    under_tmp = tmp_paths(paths, env)
    private_tmp = (["PrivateTmp=yes"] if not under_tmp else
                   [f"# No PrivateTmp: {', '.join(under_tmp)} under /tmp must be the one clients see."])
    lines = [
        f"# Written by `orchestrator service install` (orchestrator {__version__}).",
        "# After an upgrade or a move of the installation run it again; remove with `orchestrator service uninstall`.",
        "[Unit]",
        "Description=orchestrator — multi-model LLM routing daemon",
        f"Documentation=file://{paths.home}/",
    ]
    if scope == "system":
        # Only the system manager has a network-online target; in a user unit it does nothing.
        lines += ["After=network-online.target", "Wants=network-online.target"]
    lines += [
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2",
        "WatchdogSec=30",
        "TimeoutStopSec=30",
        *environment,
        f"# Provider keys ({keys_hint}), one per line; mode 0600.",
        f"EnvironmentFile={_quote(str(keys_file))}",
    ]
    if scope == "system" and user:
        lines.append(f"User={user}")
    lines += [
        "",
        "# Hardening. The home directory stays writable on purpose: the file tools edit the workspaces",
        "# (your projects) the sessions run in.",
        "NoNewPrivileges=yes",
        *private_tmp,
        "ProtectSystem=full",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "UMask=0077",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if scope == 'system' else 'default.target'}",
        "",
    ]
    return "\n".join(lines)


def _key_vars(home: Path) -> list[str]:
    from actors.config.files import check_registry_text, read_text

    text = read_text(str(home / "models.yaml")) or ""
    registry = check_registry_text(text).registry
    return sorted({p.api_key_env for p in registry.providers.values() if p.api_key_env})


def ensure_keys_file(path: Path, key_vars: list[str]) -> bool:
    """Create the keys file 0600 (commented placeholders); tighten an existing one. True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# Provider keys for the orchestrator service (systemd EnvironmentFile): NAME=value per line.\n")
        if not key_vars:
            fh.write("# (no provider in models.yaml needs a key now; add NAME=value lines when one does)\n")
        for var in key_vars:
            fh.write(f"#{var}=\n")
    return True


def _systemctl(scope: str, *args: str) -> None:
    cmd = ["systemctl", *(["--user"] if scope == "user" else []), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"`{shlex.join(cmd)}` failed: {exc}") from None
    if done.returncode != 0:
        raise ServiceError(f"`{shlex.join(cmd)}` failed: {(done.stderr or done.stdout).strip()}")


def _commands(scope: str, *steps: str) -> list[str]:
    prefix = "systemctl --user" if scope == "user" else "sudo systemctl"
    return [f"{prefix} {s}" for s in steps]


def install(paths: Paths, *, scope: str, now: bool, unit_dir_override: str | None = None,
            env: Mapping[str, str] | None = None) -> list[str]:
    """Check the config, write the keys file and the unit; returns the lines to print."""
    env = os.environ if env is None else env
    report = check_home(paths.home, env=env, price_check=False)
    if report.errors:
        raise ServiceError("not installing: fix the config first (`orchestrator check`; "
                           "`orchestrator init` writes a starter home):\n" + "\n".join(report.errors))
    keys_file = paths.home / KEYS_FILE
    key_vars = _key_vars(paths.home)
    created = ensure_keys_file(keys_file, key_vars)
    user = env.get("SUDO_USER") or env.get("USER")
    text = render_unit(scope, exec_command(), keys_file, paths, env, user, key_vars)
    target = unit_dir(scope, env, unit_dir_override) / UNIT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    existed = target.exists()
    target.write_text(text, encoding="utf-8")
    keys_what = (f"put {' and '.join(f'{v}=…' for v in key_vars)} there" if key_vars
                 else "models.yaml names no key variable, nothing to add now")
    out = [f"{'Updated' if existed else 'Installed'} {target}",
           f"  ExecStart={text.split('ExecStart=', 1)[1].splitlines()[0]}",
           f"Keys: {keys_file} ({'created, ' if created else ''}mode 0600) — {keys_what}"]
    for var, value in tmp_paths(paths, env).items():
        out.append(f"warning: {var}={value} is under /tmp, so the unit runs without PrivateTmp= (clients "
                   "must see the same /tmp); /tmp is emptied at boot — a path under your home is safer")
    if now:
        _systemctl(scope, "daemon-reload")
        _systemctl(scope, "enable", "--now", "orchestrator")
        if existed:
            _systemctl(scope, "restart", "orchestrator")
        out.append("Started: orchestrator is running under systemd.")
    else:
        out.append("Start it:")
        out += ["  " + c for c in _commands(scope, "daemon-reload", "enable --now orchestrator")]
    if scope == "user":
        login = env.get("USER", "$USER")
        if not Path(f"/var/lib/systemd/linger/{login}").exists():
            out.append(f"To keep it running while you are logged out: loginctl enable-linger {login}")
    journal = "journalctl --user -u orchestrator -f" if scope == "user" else "journalctl -u orchestrator -f"
    out.append(f"Logs: {journal}")
    return out


def uninstall(*, scope: str, now: bool, unit_dir_override: str | None = None,
              env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    target = unit_dir(scope, env, unit_dir_override) / UNIT_NAME
    if not target.exists():
        raise ServiceError(f"no unit installed at {target}")
    if now:
        _systemctl(scope, "disable", "--now", "orchestrator")
    target.unlink()
    # What `systemctl disable` removes, so no dangling link is left when systemctl is not called.
    wanted_by = "multi-user.target" if scope == "system" else "default.target"
    link = target.parent / f"{wanted_by}.wants" / UNIT_NAME
    if link.is_symlink():
        link.unlink()
    out = [f"Removed {target} (your config, keys file and state are kept)"]
    if now:
        _systemctl(scope, "daemon-reload")
    else:
        out.append("Stop the running daemon and forget the unit:")
        out += ["  " + c for c in _commands(scope, "stop orchestrator", "daemon-reload")]
    return out
