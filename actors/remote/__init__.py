"""Remote workers (docs/remote-workers.md): tool calls of a workspace turn run in an
``orchestrator worker`` process on another host, over a CURVE-authenticated ZeroMQ socket.

- ``keys``: CURVE key files (0600 in a 0700 folder), public keys for allow-lists.
- ``fleet``: sans-IO heartbeat liveness and the choice of a worker in a pool.
- ``zap``: the ZAP handler that admits only allow-listed client keys.
- ``hub``: the daemon's side (one ROUTER, one owning task), a ``RemoteTools`` for the tool box.
- ``worker``: the worker process's side.
"""
