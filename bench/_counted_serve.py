"""``python -m bench._counted_serve serve``: the daemon with event counters, for ``bench/hops_bench.py``.

Counts what a Ping or a turn costs in *events* rather than time (robust on a busy machine): trio
task steps, messages the actors handle, kernel deliveries, envelopes encoded/decoded, cattrs
(un)structure calls, SQLite statements, ZeroMQ messages sent and received. The counters are
wrapped around the real functions before the daemon's modules are imported; SIGUSR1 writes them
as JSON to ``$HOPS_COUNTS`` (the benchmark reads them before and after a batch of operations).
Nothing here is imported by the daemon itself.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

counts: Counter[str] = Counter()


def _wrap(owner: Any, name: str, key: str) -> None:
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1
        return original(*args, **kwargs)

    counted.__name__ = getattr(original, "__name__", name)
    setattr(owner, name, counted)


def _wrap_async(owner: Any, name: str, key: str) -> None:
    original = getattr(owner, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1
        return await original(*args, **kwargs)

    counted.__name__ = getattr(original, "__name__", name)
    setattr(owner, name, counted)


def install() -> None:
    import trio

    import protocol.codec as codec

    # Before anything imports them by name (node, client, session actor).
    _wrap(codec, "encode", "codec.encode")
    _wrap(codec, "decode", "codec.decode")
    import cattrs

    # Class level: the converters have slots. Counts direct calls (the codec's cached hooks bypass these).
    _wrap(cattrs.Converter, "structure", "cattrs.structure")
    _wrap(cattrs.Converter, "unstructure", "cattrs.unstructure")

    original_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = original_connect(*args, **kwargs)
        def trace(sql: str) -> None:
            counts["sqlite.statements"] += 1
            counts[f"sqlite[{' '.join(sql.split()[:3])[:40]}]"] += 1

        db.set_trace_callback(trace)
        return db

    sqlite3.connect = connect  # type: ignore[assignment]

    import protocol.transport as transport

    _wrap(transport.ZmqSocket, "send_nowait", "zmq.sent")
    _wrap_async(transport.ZmqSocket, "send", "zmq.sent")
    _wrap(transport.ZmqSocket, "_receive_one", "zmq.received")

    from actors.runtime import kernel

    original_handle = kernel.Actor._handle

    async def handle(self: Any, env: Any) -> None:
        counts["actor.messages"] += 1
        counts[f"actor.messages[{self.name}:{type(env.body).__name__}]"] += 1
        await original_handle(self, env)

    kernel.Actor._handle = handle  # type: ignore[method-assign]
    _wrap_async(kernel.ActorSystem, "deliver", "kernel.deliver")
    _wrap(kernel.ActorSystem, "try_deliver_local", "kernel.try_deliver_local")

    class Steps(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            counts["trio.task_steps"] += 1
            name = task.name.rpartition(".")[2]
            if name in ("_guarded", "_keep"):  # name the work these wrappers run
                frame = getattr(task.coro, "cr_frame", None)
                inner = frame.f_locals.get("what") or frame.f_locals.get("child") if frame is not None else None
                name = f"{name}:{getattr(inner, 'name', inner)}"
            counts[f"trio.steps[{name}]"] += 1

        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            counts["trio.tasks_spawned"] += 1

    original_run = trio.run

    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["instruments"] = [*kwargs.get("instruments", ()), Steps()]
        return original_run(*args, **kwargs)

    trio.run = run  # type: ignore[assignment]

    out = Path(os.environ["HOPS_COUNTS"])

    def dump(_signum: int, _frame: object) -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(counts)))
        tmp.replace(out)

    signal.signal(signal.SIGUSR1, dump)


if __name__ == "__main__":
    install()
    from orchestrator.signals import SignalLatch

    SignalLatch.install()
    from orchestrator.cli import main

    sys.argv[0] = "orchestrator"
    raise SystemExit(main())
