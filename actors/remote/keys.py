"""CURVE key files: ``orchestrator keys generate`` writes them, the hub and workers read them.

A key file holds one key pair in the layout of pyzmq's ``zmq.auth`` certificates (so its tools can
read ours), is created 0600 in a 0700 folder, and is never overwritten unless asked. Anything that
takes a *public* key takes either the 40-character Z85 text or the path of a key file (only its
public key is read).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

KEY_DIR = "keys"
DEFAULT_KEY_NAME = "curve.key"
_Z85_KEY = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
_LINE = re.compile(r'\s*(public|secret)-key\s*=\s*"([^"]*)"\s*$')
MAX_KEY_FILE_BYTES = 4096


class KeyFileError(ValueError):
    """A key or key file that cannot be used; the message says which and why."""


@attrs.frozen
class KeyPair:
    public: bytes            # Z85, 40 bytes
    secret: bytes | None     # Z85, 40 bytes; None for a public-only file


def default_key_file(state: Path) -> Path:
    return state / KEY_DIR / DEFAULT_KEY_NAME


def is_z85_key(text: str) -> bool:
    return _Z85_KEY.fullmatch(text) is not None


def render_key_file(pair: KeyPair) -> str:
    lines = ["#   ****  orchestrator CURVE key pair (orchestrator keys generate)  ****",
             "#   Keep this file secret: the secret key proves this host's identity.",
             "", "metadata", "curve", f'    public-key = "{pair.public.decode()}"']
    if pair.secret is not None:
        lines.append(f'    secret-key = "{pair.secret.decode()}"')
    return "\n".join(lines) + "\n"


def generate_key_pair() -> KeyPair:
    import zmq

    public, secret = zmq.curve_keypair()
    return KeyPair(public, secret)


def write_key_file(path: Path, pair: KeyPair, *, force: bool = False) -> None:
    """Create ``path`` (0600; its folder 0700 if we create it). An existing file is an error
    unless ``force``; then it is replaced by rename, never rewritten in place."""
    if path.is_dir():   # else: "already exists" (a folder cannot be replaced), or a temp file's name with --force
        raise KeyFileError(f"{path} is a folder: name a file, e.g. --out {path}/curve.key")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = render_key_file(pair).encode()
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{path} already exists; use --force to replace it "
                               "(every worker or daemon that trusts its public key must then be updated)") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_key_file(path: Path, *, need_secret: bool = False) -> KeyPair:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is not a key file (larger than {MAX_KEY_FILE_BYTES} bytes)")
    found: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        match = _LINE.match(line)
        if match:
            found[match[1]] = match[2]
    public = found.get("public")
    if public is None or not is_z85_key(public):
        raise KeyFileError(f"{path} is not a key file: no valid public-key line")
    secret = found.get("secret")
    if secret is not None and not is_z85_key(secret):
        raise KeyFileError(f"{path}: the secret-key line is not a 40-character Z85 key")
    if need_secret and secret is None:
        raise KeyFileError(f"{path} holds only a public key; this needs a key pair (orchestrator keys generate)")
    if need_secret and os.stat(path).st_mode & 0o077:
        raise KeyFileError(f"{path} is readable by other users; chmod 600 it (it holds a secret key)")
    return KeyPair(public.encode(), secret.encode() if secret is not None else None)


def public_key(entry: str, *, base: Path | None = None) -> bytes:
    """A Z85 public key, or the public key of the key file ``entry`` names (relative to ``base``)."""
    if is_z85_key(entry):
        return entry.encode()
    path = Path(entry).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return read_key_file(path).public


def load_server_keys(server_key: str | None, allow: tuple[str, ...], *, state: Path, home: Path,
                     section: str) -> tuple[KeyPair, list[bytes]]:
    """A CURVE server's key pair (default ``<state>/keys/curve.key``; relative paths are relative to
    the config home) and its allow-list as public keys; KeyFileError names the ``section``."""
    server_file = Path(server_key).expanduser() if server_key else default_key_file(state)
    if not server_file.is_absolute():
        server_file = home / server_file
    try:
        server = read_key_file(server_file, need_secret=True)
        allowed = [public_key(entry, base=home) for entry in allow]
    except KeyFileError as exc:
        hint = "" if server_file.exists() else " (create it with: orchestrator keys generate --out FILE)"
        raise KeyFileError(f"daemon.yaml {section}: {exc}{hint}") from None
    return server, allowed
