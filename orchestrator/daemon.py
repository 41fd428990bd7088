"""The daemon: wires the actors under a supervisor, binds the endpoint, handles signals.

SIGTERM/SIGINT stop new turns, let running ones finish within the grace period, cancel the rest
with a reason, and exit 0. SIGHUP re-reads the config files. systemd hears READY=1 only once
clients can be served, STOPPING=1 on shutdown, and WATCHDOG=1 while the loop is alive.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time

import attrs
import structlog
import trio
import zmq

from actors.availability.actor import AvailabilityActor
from actors.availability.state import iso_utc
from actors.cost.actor import CostActor
from actors.worker.delegation import Delegator
from actors.runtime.kernel import Actor, ActorSystem
from actors.runtime.node import Node
from actors.planner.actor import PlannerActor
from actors.config.registry import ModelRegistry
from actors.router.actor import RouterActor
from actors.session.actor import SessionActor
from actors.runtime.store import Store
from actors.runtime.supervisor import ChildSpec, Restart, Supervisor
from actors.planner.support import AdapterPool, ToolBox
from protocol import events as ev
from protocol.codec import converter
from protocol.messages import Failure, GetStatus, GetTrace, Ping, Pong, StatusReport, TraceReply

from . import __version__
from .paths import Paths, check_endpoint, prepare_endpoint
from .sdnotify import notify, watchdog_interval
from .settings import DaemonSettings, load_settings, workspace_settings

log = structlog.get_logger("daemon")


class ControlActor(Actor):
    """Daemon-level questions: liveness, status, traces."""

    name = "control"

    def __init__(self, system, daemon: "Daemon"):
        super().__init__(system)
        self.daemon = daemon

    def handlers(self):
        return {Ping: self.on_ping, GetStatus: self.on_status, GetTrace: self.on_trace}

    async def on_ping(self, env):
        return Pong(env.body.payload)

    async def on_status(self, env):
        return await self.daemon.status()

    async def on_trace(self, env):
        route = self.daemon.store.turn_route(env.body.turn_id)
        if route is None:
            return Failure("unknown_turn", f"no turn {env.body.turn_id!r} in the database")
        return TraceReply(converter.structure(route, ev.RouteDecided))


@attrs.define
class Daemon:
    paths: Paths
    settings: DaemonSettings = attrs.field(factory=DaemonSettings)
    wire_mode: bool = False
    env: dict | None = None
    demo_chunk_delay: float | None = None
    clock: object = time.time            # the availability windows' clock; tests step it
    started_at: float = attrs.field(factory=time.time)
    store: Store = attrs.field(init=False)
    system: ActorSystem = attrs.field(init=False)
    node: Node = attrs.field(init=False)
    supervisor: Supervisor | None = None
    session: SessionActor | None = None
    router: RouterActor | None = None
    availability: AvailabilityActor | None = None
    _stop: trio.Event = attrs.field(factory=trio.Event)
    stop_reason: str = ""

    def __attrs_post_init__(self) -> None:
        self.store = Store(self.paths.database)
        self.system = ActorSystem(wire_mode=self.wire_mode)
        self.node = Node(self.system, zmq.Context.instance())

    async def status(self) -> StatusReport:
        sup = self.supervisor
        actors = {name: {"status": st.status, "restarts": st.restarts, "last_error": st.last_error}
                  for name, st in (sup.state.items() if sup else [])}
        scopes = []
        if self.availability is not None:
            now = self.availability.clock()
            for scope, info in self.availability.tracker.unavailable(now).items():
                since = time.time() - (now - info["since"])
                scopes.append({**info, "scope": scope, "kind": info["scope"], "since": iso_utc(since)})
        session = self.session
        return StatusReport(__version__, os.getpid(), round(time.time() - self.started_at, 3), self.node.endpoint or "",
                            bool(session and session.accepting), len(session.sessions) if session else 0,
                            session.running_turns() if session else 0, actors, tuple(scopes))

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        endpoint = check_endpoint(self.paths.endpoint)
        prepare_endpoint(endpoint)
        from actors.router.loader import PolicyLoader

        loader = PolicyLoader(self.paths.models_file, self.paths.routing_file, env=self.env)
        loader.current()

        def registry() -> ModelRegistry:  # always the last-known-good registry
            return loader.engine.registry if loader.engine else ModelRegistry()
        adapters = AdapterPool(registry, env=self.env, demo_chunk_delay=self.demo_chunk_delay,
                               max_attempts=self.settings.retry_max_attempts,
                               base_delay=self.settings.retry_base_delay_s)
        tools = ToolBox(workspace_settings=workspace_settings, delegator=Delegator(self.store))
        system = self.system

        async def publish(transitions) -> None:
            if self.router is not None:
                await self.router.on_availability_change(transitions)

        self.availability = AvailabilityActor(system, clock=self.clock, on_change=publish)
        cost = CostActor(system, self.store)
        self.router = RouterActor(system, loader, store=self.store)
        planner = PlannerActor(system, registry=registry, adapters=adapters, tools=tools)
        worker = PlannerActor(system, registry=registry, adapters=adapters, tools=tools, name="worker")
        self.session = SessionActor(system, self.store, resolve_model=self.router.resolve_model_name)
        control = ControlActor(system, self)

        children = [ChildSpec(a.name, a.run, Restart.PERMANENT) for a in
                    (self.availability, cost, self.router, planner, worker, self.session, control)]
        self.supervisor = Supervisor(children, max_restarts=self.settings.max_restarts,
                                     window_s=self.settings.restart_window_s)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.supervisor.run)
                await nursery.start(self.node.serve, endpoint)
                nursery.start_soon(self._signals)
                interval = watchdog_interval()
                if interval:
                    nursery.start_soon(self._watchdog, interval)
                notify("READY=1", f"STATUS=serving on {self.node.endpoint}")
                log.info("daemon ready", endpoint=self.node.endpoint, pid=os.getpid(), wire_mode=self.wire_mode)
                task_status.started(self.node.endpoint)
                await self._stop.wait()
                notify("STOPPING=1")
                await self._drain()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await adapters.aclose()
            self.store.close()
            if endpoint.startswith("ipc://"):
                with contextlib.suppress(OSError):
                    os.unlink(endpoint[len("ipc://"):])
            log.info("daemon stopped", reason=self.stop_reason)

    async def _drain(self) -> None:
        """Let running turns finish within the grace period; then cancel them with a reason."""
        session = self.session
        assert session is not None
        session.accepting = False
        with trio.move_on_after(self.settings.shutdown_grace_s):
            await session.turns_idle.wait()
        if session.running_turns():
            log.info("grace period over; cancelling running turns", turns=session.running_turns())
            await session.cancel_all("daemon_shutdown")

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    report = await self.router.reload() if self.router else None
                    log.info("config reloaded on SIGHUP", ok=getattr(report, "ok", None))
                else:
                    self.request_stop(signal.Signals(signum).name)

    async def _watchdog(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1")
            await trio.sleep(interval)


async def serve(paths: Paths, *, wire_mode: bool = False) -> None:
    settings = load_settings(paths.daemon_file)
    daemon = Daemon(paths, settings, wire_mode=wire_mode)
    await daemon.run()
