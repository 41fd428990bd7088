"""Where things live (DESIGN §4.2): config home, state dir, and the daemon's endpoint."""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from collections.abc import Mapping

import attrs


class EndpointRefused(ValueError):
    pass


@attrs.frozen
class Paths:
    home: Path
    state: Path
    endpoint: str
    # ORCHESTRATOR_STATE=postgresql://… (docs/postgresql.md): the database; ``state`` is then only
    # the local folder the default socket falls back to.
    database_url: str | None = None

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
    def database(self) -> Path | str:
        """A SQLite file in the state folder, or the PostgreSQL URL."""
        return self.database_url or self.state / "orchestrator.db"


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var)
    return Path(value) if value else Path.home() / fallback


def resolve_paths(env: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    home = (Path(env["ORCHESTRATOR_HOME"]) if env.get("ORCHESTRATOR_HOME")
            else _xdg(env, "XDG_CONFIG_HOME", ".config") / "orchestrator")
    raw_state = env.get("ORCHESTRATOR_STATE") or ""
    url = raw_state if raw_state.startswith(DATABASE_URL_SCHEMES) else None
    state = (Path(raw_state) if raw_state and url is None
             else _xdg(env, "XDG_STATE_HOME", ".local/state") / "orchestrator")
    endpoint = env.get("ORCHESTRATOR_ENDPOINT") or default_endpoint(env, state)
    return Paths(home.expanduser(), state.expanduser(), endpoint, url)


DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")


def default_endpoint(env: Mapping[str, str], state: Path) -> str:
    runtime = env.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / "orchestrator" if runtime and Path(runtime).is_dir() else state / "run"
    return f"ipc://{folder / 'daemon.sock'}"


ALLOW_TCP_VAR = "ORCHESTRATOR_ALLOW_TCP"
ENDPOINT_VAR = "ORCHESTRATOR_ENDPOINT"

# tcp://HOST:PORT and nothing else: no user-info, path, query, interface name or source address
# (ZeroMQ reads ``tcp://a;b`` as "from a to b" and ``tcp://eth0:1`` as an interface).
_TCP = re.compile(r"tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[0-9.]+|localhost):(?P<port>\*|[0-9]{1,5})")


def check_endpoint(endpoint: str, env: Mapping[str, str] | None = None, *, authenticated: bool = False) -> str:
    """Refuse what would expose the daemon (DESIGN §4.2, docs/security.md).

    ipc:// is the default and the safe choice: the socket's folder is 0700. tcp is accepted only
    as a literal loopback address with a port, and only with ``ORCHESTRATOR_ALLOW_TCP=1``: the
    daemon has no authenticated transport, so every local user could connect to it — unless
    ``authenticated`` (daemon.yaml ``curve:``): then any literal address, only allowed keys get in.
    """
    env = os.environ if env is None else env
    scheme = endpoint.split("://", 1)[0]
    if scheme == "ipc":
        path = endpoint[len("ipc://"):]
        if not path or "\0" in path:
            raise EndpointRefused(f"ipc endpoint needs a socket path: {endpoint!r}")
        if len(path.encode()) > 100:
            raise EndpointRefused(f"ipc socket path is too long for the OS ({len(path)} bytes): {path}")
        return endpoint
    if scheme == "tcp":
        match = _TCP.fullmatch(endpoint)
        if match is None:
            raise EndpointRefused(f"refusing tcp endpoint {endpoint!r}: write it as tcp://127.0.0.1:PORT "
                                  "(a literal loopback address and a port, nothing else)")
        host, port = match["host"], match["port"]
        if port != "*" and not 0 < int(port) < 65536:
            raise EndpointRefused(f"refusing tcp endpoint {endpoint!r}: port {port} is out of range")
        if authenticated:
            return endpoint   # daemon.yaml curve: only allow-listed client keys get in (docs/remote-workers.md)
        if not _is_loopback(host):
            raise EndpointRefused(
                f"refusing non-loopback tcp endpoint {endpoint}: the daemon has no authenticated transport; "
                "use ipc:// or tcp://127.0.0.1:PORT (or configure CURVE: daemon.yaml curve:, docs/remote-workers.md)")
        if env.get(ALLOW_TCP_VAR) != "1":
            raise EndpointRefused(
                f"refusing tcp endpoint {endpoint}: on tcp ANY local user can connect, read every session "
                f"and run turns; use ipc:// (private to you), or set {ALLOW_TCP_VAR}=1 to accept that")
        return endpoint
    raise EndpointRefused(_not_an_endpoint(endpoint))


def check_endpoint_syntax(env: Mapping[str, str]) -> None:
    """A client's check of ``ORCHESTRATOR_ENDPOINT``: a scheme ZeroMQ cannot connect to is a
    configuration error to fix, not a daemon that happens to be down."""
    value = env.get(ENDPOINT_VAR)
    if not value:
        return  # unset or empty: the default
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in ("ipc", "tcp"):
        raise EndpointRefused(_not_an_endpoint(value))


def _not_an_endpoint(value: str) -> str:
    # The default is always ipc://, so a scheme nobody supports came from the variable.
    return (f"{ENDPOINT_VAR}={value!r} is not an endpoint: use ipc://PATH or tcp://127.0.0.1:PORT "
            "(or unset it for the default)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def prepare_endpoint(endpoint: str) -> None:
    """Create the ipc socket's folder 0700 so no other user can connect."""
    if endpoint.startswith("ipc://"):
        folder = Path(endpoint[len("ipc://"):]).parent
        # The fallback folder is <state>/run: a state folder created here is private too.
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
