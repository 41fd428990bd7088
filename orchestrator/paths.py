"""Where things live (DESIGN §4.2): config home, state dir, and the daemon's endpoint."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

import attrs


class EndpointRefused(ValueError):
    pass


@attrs.frozen
class Paths:
    home: Path
    state: Path
    endpoint: str

    @property
    def models_file(self) -> Path:
        return self.home / "models.yaml"

    @property
    def routing_file(self) -> Path:
        return self.home / "routing.yaml"

    @property
    def daemon_file(self) -> Path:
        return self.home / "daemon.yaml"

    @property
    def database(self) -> Path:
        return self.state / "orchestrator.db"


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var)
    return Path(value) if value else Path.home() / fallback


def resolve_paths(env: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    home = Path(env["ORCHESTRATOR_HOME"]) if env.get("ORCHESTRATOR_HOME") else _xdg(env, "XDG_CONFIG_HOME", ".config") / "orchestrator"
    state = Path(env["ORCHESTRATOR_STATE"]) if env.get("ORCHESTRATOR_STATE") else _xdg(env, "XDG_STATE_HOME", ".local/state") / "orchestrator"
    endpoint = env.get("ORCHESTRATOR_ENDPOINT") or default_endpoint(env, state)
    return Paths(home.expanduser(), state.expanduser(), endpoint)


def default_endpoint(env: Mapping[str, str], state: Path) -> str:
    runtime = env.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / "orchestrator" if runtime and Path(runtime).is_dir() else state / "run"
    return f"ipc://{folder / 'daemon.sock'}"


def check_endpoint(endpoint: str) -> str:
    """Refuse what would expose the daemon: tcp is accepted only on loopback."""
    scheme = endpoint.split("://", 1)[0]
    if scheme == "ipc":
        path = endpoint[len("ipc://"):]
        if len(path.encode()) > 100:
            raise EndpointRefused(f"ipc socket path is too long for the OS ({len(path)} bytes): {path}")
        return endpoint
    if scheme == "tcp":
        host = urlsplit(endpoint).hostname or ""
        if host == "localhost":
            return endpoint
        try:
            if ipaddress.ip_address(host).is_loopback:
                return endpoint
        except ValueError:
            pass
        raise EndpointRefused(
            f"refusing non-loopback tcp endpoint {endpoint}: the daemon has no authenticated transport; "
            "use ipc:// or tcp://127.0.0.1:PORT")
    raise EndpointRefused(f"unsupported endpoint {endpoint!r}: use ipc://PATH or tcp://127.0.0.1:PORT")


def prepare_endpoint(endpoint: str) -> None:
    """Create the ipc socket's folder 0700 so no other user can connect."""
    if endpoint.startswith("ipc://"):
        folder = Path(endpoint[len("ipc://"):]).parent
        # The fallback folder is <state>/run: a state folder created here is private too.
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
