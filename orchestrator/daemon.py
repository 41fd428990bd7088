"""The daemon: wires the actors under a supervisor, binds the endpoint, handles signals.

SIGTERM/SIGINT stop new turns, let running ones finish within the grace period, cancel the rest
with a reason, and exit 0. SIGHUP re-reads the config files. systemd hears READY=1 only once
clients can be served, STOPPING=1 on shutdown, and WATCHDOG=1 while the loop is alive.

Signals are received for the whole life of ``run`` — its cleanup included — so any number of
SIGTERM/SIGINT during shutdown lead down the same clean path (``timeout`` and systemd send them
in bursts); before and after ``run``, ``SignalLatch`` holds them (see ``orchestrator serve``).
"""
from __future__ import annotations

import contextlib
import os
from functools import partial
import signal
import time
from collections.abc import Callable

import attrs
import structlog
import trio
import zmq

from actors.availability.actor import AvailabilityActor
from actors.availability.shared import SharedObservations
from actors.cost.actor import CostActor
from actors.loops.actor import LoopActor
from actors.worker.delegation import Delegator
from actors.delegate.tool import CodeDelegation
from actors.runtime.kernel import Actor, ActorSystem
from actors.runtime.lease import LeaseKeeper, lease_ttl
from actors.runtime.node import Node
from actors.planner.actor import PlannerActor
from actors.config.registry import ModelRegistry
from actors.router.actor import RouterActor
from actors.session.actor import STOP_GRACE_S, SessionActor
from actors.runtime.store import StorageError, Store
from actors.runtime.supervisor import ChildSpec, Restart, Supervisor
from actors.remote.hub import WorkerHub
from actors.planner.support import AdapterPool, ToolBox
from protocol import events as ev
from protocol.codec import converter
from protocol.messages import (
    ActorStatus, DrainTurns, Failure, GetActorStatus, GetSessionStats, GetStatus, GetTrace, GetUnavailableScopes,
    ListLoops, LoopListing,
    Ping, Pong, ReloadRules, RulesReport, SessionStats, StatusReport, TraceReply, UnavailableScopes,
)

from . import __version__
from .paths import Paths, check_endpoint, prepare_endpoint
from .sdnotify import notify, watchdog_interval
from .settings import DaemonSettings, load_settings, workspace_settings
from .signals import STOP_SIGNALS, SignalLatch
from .statelock import StateLock

log = structlog.get_logger("daemon")

# How long ``status`` waits for each actor's own answer.
STATUS_ASK_S = 2.0


class ControlActor(Actor):
    """Daemon-level questions: liveness, status, traces."""

    name = "control"

    def __init__(self, system, daemon: Daemon):
        super().__init__(system)
        self.daemon = daemon

    def handlers(self):
        return {Ping: self.on_ping, GetStatus: self.on_status, GetTrace: self.on_trace}

    async def on_ping(self, env):
        return Pong(env.body.payload)

    async def on_status(self, env):
        # Asking every actor takes a few round trips: do it from a task, so Ping keeps answering.
        self.spawn(self._status, env)
        return None

    async def _status(self, env) -> None:
        await self._reply(env, await self.daemon.status())

    async def on_trace(self, env):
        route = self.daemon.store.turn_route(env.body.turn_id)
        if route is None:
            return Failure("unknown_turn", f"no turn {env.body.turn_id!r} in the database")
        fallback = tuple(converter.structure(r, ev.RouteDecided) for r in route.get("fallback", ()))
        return TraceReply(converter.structure(route, ev.RouteDecided), fallback)


@attrs.define
class Daemon:
    paths: Paths
    settings: DaemonSettings = attrs.field(factory=DaemonSettings)
    wire_mode: bool = False
    env: dict | None = None
    demo_chunk_delay: float | None = None
    clock: Callable[[], float] = time.time   # the availability windows' clock; tests step it
    started_at: float = attrs.field(factory=time.time)
    store: Store = attrs.field(init=False)
    system: ActorSystem = attrs.field(init=False)
    node: Node = attrs.field(init=False)
    supervisor: Supervisor | None = None
    session: SessionActor | None = None
    router: RouterActor | None = None
    availability: AvailabilityActor | None = None
    # A shared database (PostgreSQL): this daemon's leases on sessions (and loops); None on SQLite.
    leases: LeaseKeeper | None = None
    actors: dict[str, Actor] = attrs.field(factory=dict)
    # Subclasses to run instead of the standard session / planner actor (fault-injection tests).
    session_class: type[SessionActor] = SessionActor
    planner_class: type[PlannerActor] = PlannerActor
    signal_latch: SignalLatch | None = None
    _stop: trio.Event = attrs.field(factory=trio.Event)
    stop_reason: str = ""
    http_url: str | None = None            # where the HTTP gateway listens (settings.http), once it does
    _http_stop: trio.Event = attrs.field(factory=trio.Event)
    workers: WorkerHub | None = None       # the remote workers' hub (settings.workers), once built

    def __attrs_post_init__(self) -> None:
        self.store = Store(self.paths.database)
        self.system = ActorSystem(wire_mode=self.wire_mode)
        self.node = Node(self.system, zmq.Context.instance(), answer_pings=True)

    async def status(self) -> StatusReport:
        """Supervision state (the daemon's own) plus what each actor says about itself, by message."""
        sup = self.supervisor
        actors = {name: {"status": st.status, "restarts": st.restarts, "last_error": st.last_error}
                  for name, st in (sup.state.items() if sup else [])}
        answers: dict[tuple[str, type], object] = {}

        async def ask(actor: str, body: object) -> None:
            try:
                answers[actor, type(body)] = await self.system.request(actor, body, timeout=STATUS_ASK_S)
            except Exception as exc:  # an actor that cannot answer shows as such, status still answers
                answers[actor, type(body)] = exc

        async with trio.open_nursery() as nursery:
            for name in actors:
                nursery.start_soon(ask, name, GetActorStatus())
            nursery.start_soon(ask, "session", GetSessionStats())
            nursery.start_soon(ask, "availability", GetUnavailableScopes())
            if "gateway" in self.actors:   # HTTP gateway turns run outside the session actor
                nursery.start_soon(ask, "gateway", GetSessionStats())
            if "loops" in self.actors:
                nursery.start_soon(ask, "loops", ListLoops(running_only=True))
        for name, entry in actors.items():
            answer = answers.get((name, GetActorStatus))
            if isinstance(answer, ActorStatus):
                entry.update(faults=answer.faults, dropped=answer.dropped, last_fault=answer.last_fault)
            else:
                entry["unresponsive"] = str(answer)
        stats = answers.get(("session", GetSessionStats))
        if not isinstance(stats, SessionStats):
            stats = SessionStats(False, 0, 0)
        gateway = answers.get(("gateway", GetSessionStats))
        if isinstance(gateway, SessionStats):
            actors.setdefault("gateway", {})["turns_running"] = gateway.turns_running
            stats = attrs.evolve(stats, turns_running=stats.turns_running + gateway.turns_running)
        unavailable = answers.get(("availability", GetUnavailableScopes))
        scopes = tuple({"scope": u.scope, "kind": u.kind, "reason": u.reason, "since": u.since,
                        **({"detail": u.detail} if u.detail is not None else {})}
                       for u in (unavailable.scopes if isinstance(unavailable, UnavailableScopes) else ()))
        loops = answers.get(("loops", ListLoops))
        return StatusReport(__version__, os.getpid(), round(time.time() - self.started_at, 3), self.node.endpoint or "",
                            stats.accepting_turns, stats.sessions_open, stats.turns_running, actors, scopes,
                            loops.loops if isinstance(loops, LoopListing) else (),
                            self.workers.connected() if self.workers is not None else ())

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        endpoint = check_endpoint(self.paths.endpoint, authenticated=self.settings.curve is not None)
        if self.settings.curve is not None:   # CURVE on the client endpoint (docs/remote-workers.md)
            from actors.remote.keys import load_server_keys
            from actors.remote.zap import CurveServer

            curve = self.settings.curve
            server, allowed = load_server_keys(curve.server_key, curve.allow, state=self.paths.state,
                                               home=self.paths.home, section="curve")
            assert server.secret is not None
            # A context of its own: the ZAP handler is per context (tests run several daemons in one process).
            self.node.ctx = zmq.Context()
            self.node.curve = CurveServer(server.public, server.secret, frozenset(allowed))
        lock = None
        if self.paths.database_url is None:   # a shared database: leases, not a folder lock
            lock = StateLock(self.paths.state)
            lock.acquire(endpoint)               # StateLocked: another daemon uses this state
        try:
            await self._run_locked(endpoint, lock, task_status)
        finally:
            if lock is not None:
                lock.release()
            if self.node.curve is not None:
                self.node.ctx.destroy(linger=0)

    async def _run_locked(self, endpoint: str, lock: StateLock | None, task_status) -> None:
        prepare_endpoint(endpoint)
        from actors.router.loader import PolicyLoader

        loader = PolicyLoader(str(self.paths.models_file), str(self.paths.routing_file), env=self.env)
        loader.current()

        def registry() -> ModelRegistry:  # always the last-known-good registry
            return loader.engine.registry if loader.engine else ModelRegistry()
        adapters = AdapterPool(registry, env=self.env, demo_chunk_delay=self.demo_chunk_delay,
                               max_attempts=self.settings.retry_max_attempts,
                               base_delay=self.settings.retry_base_delay_s)
        if self.settings.workers is not None:   # remote workers (docs/remote-workers.md)
            from actors.remote.hub import hub_from_config

            self.workers = hub_from_config(self.settings.workers, state=self.paths.state, home=self.paths.home)
        tools = ToolBox(workspace_settings=workspace_settings, delegator=Delegator(self.store), remote=self.workers,
                        workspace_tools=CodeDelegation(self.store, registry, env=self.env))
        system = self.system

        if self.store.shared:   # several daemons on one database (docs/postgresql.md)
            self.leases = LeaseKeeper(self.store, ttl=lease_ttl(self.env))
        shared = SharedObservations(self.store, self.leases.owner) if self.leases is not None else None
        self.availability = AvailabilityActor(system, clock=self.clock, shared=shared)
        cost = CostActor(system, self.store)
        self.router = RouterActor(system, loader, store=self.store)
        planner = self.planner_class(system, registry=registry, adapters=adapters, tools=tools)
        worker = self.planner_class(system, registry=registry, adapters=adapters, tools=tools, name="worker")
        self.session = self.session_class(system, self.store, leases=self.leases)
        control = ControlActor(system, self)
        from .loops_daemon import workflow_hook

        loops = LoopActor(system, self.store, workflow=workflow_hook(self.paths.home), leases=self.leases)
        cast: tuple[Actor, ...] = (self.availability, cost, self.router, planner, worker, self.session, control, loops)
        gateway = None
        if self.settings.http is not None:
            from .gateway.turns import GatewayActor

            gateway = GatewayActor(system, self.store, registry)
            cast += (gateway,)
        self.actors = {a.name: a for a in cast}

        children = [ChildSpec(a.name, a.run, Restart.PERMANENT) for a in cast]
        self.supervisor = Supervisor(children, max_restarts=self.settings.max_restarts,
                                     window_s=self.settings.restart_window_s)
        started = False
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._signals, signals)
                    if self.signal_latch is not None and self.signal_latch.signum is not None:
                        self.request_stop(signal.Signals(self.signal_latch.signum).name)  # arrived during startup
                    if self.leases is not None:
                        await nursery.start(self.leases.run)
                    await nursery.start(self.supervisor.run)
                    if self.workers is not None:
                        await nursery.start(self.workers.serve)
                    await nursery.start(self.node.serve, endpoint)
                    if gateway is not None:
                        await self._serve_http(nursery, gateway)
                    started = True
                    if lock is not None:
                        lock.record(self.node.endpoint or endpoint)
                    interval = watchdog_interval()
                    if interval:
                        nursery.start_soon(self._watchdog, interval)
                    notify("READY=1", f"STATUS=serving on {self.node.endpoint}")
                    log.info("daemon ready", endpoint=self.node.endpoint, pid=os.getpid(), wire_mode=self.wire_mode)
                    task_status.started(self.node.endpoint)
                    await self._stop.wait()
                    notify("STOPPING=1")
                    self._http_stop.set()   # no new HTTP requests; running ones get the same grace as turns
                    async with trio.open_nursery() as draining:
                        draining.start_soon(self._drain)
                        if gateway is not None:
                            draining.start_soon(gateway.drain, _grace(self.settings.shutdown_grace_s))
                    nursery.cancel_scope.cancel()
            finally:
                # Still inside the signal receiver: a signal now is queued and ignored, not fatal.
                with trio.CancelScope(shield=True):
                    await adapters.aclose()
                if self.leases is not None:   # a clean stop hands its sessions on at once
                    with contextlib.suppress(StorageError):
                        self.leases.release_all()
                self.store.close()
                if endpoint.startswith("ipc://"):
                    with contextlib.suppress(OSError):
                        os.unlink(endpoint[len("ipc://"):])
                if started:   # a daemon that never listened (e.g. a busy port) did not "stop"
                    log.info("daemon stopped", reason=self.stop_reason)
                if self.signal_latch is not None:
                    # `serve` only: trio closes its signal wakeup socket before it restores the
                    # previous wakeup fd, and a signal in that window prints a traceback. Held
                    # signals stay pending and are discarded when serve sets them to ignored.
                    signal.pthread_sigmask(signal.SIG_BLOCK, (*STOP_SIGNALS, signal.SIGHUP))

    async def _serve_http(self, nursery: trio.Nursery, gateway: Actor) -> None:
        from .gateway.app import GatewayApp
        from .gateway.config import HttpRefused, api_keys, refusal
        from .gateway.server import serve_gateway
        from .gateway.turns import STOP_GRACE_S as GATEWAY_STOP_S, GatewayActor

        http = self.settings.http
        assert http is not None and isinstance(gateway, GatewayActor)
        if (refused := refusal(http, self.env)) is not None:
            raise HttpRefused(refused)
        app = GatewayApp(gateway, api_keys(http, self.env))
        # Hypercorn's own grace outlasts the gateway's drain, which ends running turns with a proper
        # error response; the daemon's nursery closes the server once the drain is done.
        graceful = _grace(self.settings.shutdown_grace_s) + GATEWAY_STOP_S + 1.0
        binds = await nursery.start(partial(serve_gateway, app, http, self._http_stop, graceful_s=graceful))
        self.http_url = binds[0] if binds else f"http://{http.listen}"
        log.info("http gateway ready", url=self.http_url)

    async def _drain(self) -> None:
        """Let running turns finish within the grace period; then cancel them with a reason."""
        grace = _grace(self.settings.shutdown_grace_s)
        try:
            await self.system.request("session", DrainTurns(grace), timeout=grace + STOP_GRACE_S + 5)
        except Exception as exc:  # the turns still end, with the session actor's own cleanup
            log.warning("running turns did not drain", error=str(exc))

    async def _signals(self, signals) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                try:
                    report = await self.system.request("router", ReloadRules(), timeout=30)
                except Exception as exc:  # a reload that fails must not end signal handling
                    log.error("config reload on SIGHUP failed", error=repr(exc))
                    continue
                if isinstance(report, RulesReport) and not report.ok:
                    # The last-known-good config stays active; say why the new one was not taken.
                    log.warning("config reload on SIGHUP rejected; keeping the last good config",
                                errors=list(report.errors[:3]), error_count=len(report.errors))
                else:
                    log.info("config reloaded on SIGHUP", ok=getattr(report, "ok", None))
            elif self._stop.is_set():
                log.info("already stopping", signal=signal.Signals(signum).name)
            else:
                self.request_stop(signal.Signals(signum).name)

    async def _watchdog(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1")
            await trio.sleep(interval)


def _grace(seconds: float) -> float:
    """A usable grace period from any configured value: negative or NaN mean none."""
    return seconds if seconds >= 0 else 0.0  # NaN compares false


async def serve(paths: Paths, *, wire_mode: bool = False) -> None:
    settings = load_settings(paths.daemon_file)
    daemon = Daemon(paths, settings, wire_mode=wire_mode)
    await daemon.run()
