"""Out-of-process ZMQ ROUTER echo peer for the transport tests and bench.

    python tests/transport_peer.py ENDPOINT [--bind]

Connects (or binds) a synchronous pyzmq ROUTER to ENDPOINT and echoes every
multipart message back to its sender. Prints ``ready <endpoint>`` once the
socket is set up. Exits when stdin reaches EOF, so it can never outlive the
process that started it.
"""
from __future__ import annotations

import sys
import threading

import zmq


def main(argv: list[str]) -> int:
    endpoint = argv[0]
    bind = "--bind" in argv[1:]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if bind:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)
    print("ready", sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)

    # EOF on stdin terminates the context from a helper thread, which ends
    # the blocking proxy with ContextTerminated.
    threading.Thread(target=_term_on_eof, args=(ctx,), daemon=True).start()
    try:
        # A ROUTER proxied to itself routes each message back to the peer it
        # came from: an echo server that runs in C, so on a small machine the
        # peer does not steal CPU from the side being measured.
        zmq.proxy(sock, sock)
    except zmq.ContextTerminated:
        return 0
    finally:
        sock.close(linger=0)
    return 1


def _term_on_eof(ctx: zmq.Context) -> None:
    while sys.stdin.buffer.read1(4096):
        pass
    ctx.term()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
