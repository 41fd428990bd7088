"""Who sent a client frame: addresses the node stamps from the transport, never from the frame.

A frame that arrives on the daemon's ROUTER from a client gets its ``sender`` rewritten to
``~<principal>.<routing id hex>/<name>``. The routing id is the one ZeroMQ assigned to the
connection, so replies go back to the connection that asked (whatever the frame claimed), and the
principal is what the OS said about the peer: ``u<uid>`` over ipc (SO_PEERCRED), ``k<key hex>`` for
a CURVE client (the public key the ZAP handler admitted), ``c`` (just this connection) where the
transport cannot tell. Internal senders never start with ``~``.
"""
from __future__ import annotations

CLIENT_MARK = "~"


def client_node(uid: int | None, routing_id: bytes, key: bytes | None = None) -> str:
    """The node part of a client's stamped address (``key``: the CURVE public key ZAP admitted)."""
    tag = f"u{uid}" if uid is not None else f"k{key.hex()}" if key else "c"
    return f"{CLIENT_MARK}{tag}.{routing_id.hex()}"


def routing_id_of(node: str) -> bytes | None:
    """The ZeroMQ routing id a stamped client node stands for (None: not a client address)."""
    if not node.startswith(CLIENT_MARK):
        return None
    _, _, hexid = node.partition(".")
    try:
        return bytes.fromhex(hexid)
    except ValueError:
        return None


def principal_of(sender: str) -> str | None:
    """``uid:N`` or ``conn:HEX`` for a client sender; None for the daemon's own actors."""
    node = connection_of(sender)
    if node is None:
        return None
    tag, _, hexid = node[1:].partition(".")
    if tag.startswith("u") and tag[1:].isdigit():
        return f"uid:{tag[1:]}"
    if tag.startswith("k") and len(tag) > 1:   # a CURVE client: its key, across its connections
        return f"key:{tag[1:]}"
    return f"conn:{hexid}"


def connection_of(sender: str) -> str | None:
    """The stamped node part (one per client connection), or None for internal senders."""
    node, sep, _ = sender.rpartition("/")
    if not sep or not node.startswith(CLIENT_MARK):
        return None
    return node


def uid_from_peer_address(peer: str | None) -> int | None:
    """ZeroMQ's ``Peer-Address`` of an ipc connection ends in ``:uid:gid:pid`` (SO_PEERCRED)."""
    if not peer:
        return None
    parts = peer.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return int(parts[1])
