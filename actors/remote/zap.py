"""A minimal ZAP handler (ZeroMQ RFC 27): admit a CURVE client only if its public key is allowed.

It is a ROUTER on ``inproc://zeromq.zap.01`` of a zmq context of its own (one handler per context:
the worker hub and a CURVE client endpoint each have theirs, other contexts are untouched), owned
by one trio task like every socket here. The CURVE ROUTER sets ``ZAP_ENFORCE_DOMAIN``: should the
handler ever be missing, a connection is refused rather than waved through. The ``User-Id`` of an
admitted connection is the client's Z85 public key.
"""
from __future__ import annotations

import structlog
import trio
import zmq
from zmq.utils import z85

from protocol.transport import open_zmq_socket

log = structlog.get_logger("zap")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"orchestrator"


class ZapPolicy:
    """The allow-list, and what the handler decided (tests wait on ``refused_event``)."""

    def __init__(self, allowed: frozenset[bytes]) -> None:
        self.allowed = allowed   # Z85 public keys
        self.admitted = 0
        self.refused = 0
        self.refused_event = trio.Event()

    def decide(self, domain: bytes, mechanism: bytes, credentials: list[bytes]) -> tuple[bytes, bytes, bytes]:
        """(status code, status text, user id) for one request."""
        if domain != ZAP_DOMAIN or mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            return b"400", b"CURVE on the orchestrator domain only", b""
        key = z85.encode(credentials[0])
        if key not in self.allowed:
            return b"400", b"public key not allowed", b""
        return b"200", b"OK", key


async def run_zap_handler(ctx: zmq.Context, policy: ZapPolicy, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=ZAP_ENDPOINT) as sock:
        task_status.started()
        async for frames in sock:
            # [routing id, empty, version, request id, domain, address, identity, mechanism, *credentials]
            if len(frames) < 8 or frames[1] != b"":
                continue
            request_id = frames[3]
            status, text, user = policy.decide(frames[4], frames[7], list(frames[8:]))
            if status == b"200":
                policy.admitted += 1
            else:
                policy.refused += 1
                policy.refused_event.set()
                log.warning("connection refused", address=frames[5].decode(errors="replace"),
                            reason=text.decode())
            await sock.send([frames[0], b"", b"1.0", request_id, status, text, user, b""])


class CurveServer:
    """CURVE for a ROUTER: its key pair and the ZAP allow-list (the daemon's client endpoint on tcp).

    The node's own loopback DEALER (wire mode) connects with the server's key pair, so that key is
    always allowed."""

    def __init__(self, public: bytes, secret: bytes, allowed: frozenset[bytes]) -> None:
        self.public = public
        self.secret = secret
        self.policy = ZapPolicy(allowed | {public})

    def server_options(self) -> dict[int, int | bytes]:
        return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: self.public, zmq.CURVE_SECRETKEY: self.secret,
                zmq.ZAP_DOMAIN: ZAP_DOMAIN, zmq.ZAP_ENFORCE_DOMAIN: 1}

    def own_client_options(self) -> dict[int, int | bytes]:
        return {zmq.CURVE_SERVERKEY: self.public, zmq.CURVE_PUBLICKEY: self.public, zmq.CURVE_SECRETKEY: self.secret}


def curve_client_options(server_public: bytes, public: bytes, secret: bytes) -> dict[int, int | bytes]:
    return {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}
