"""Supervision: restart kinds and intensity, after the Erlang/OTP vocabulary.

- permanent: always restarted;
- transient: restarted only after an abnormal exit (an exception);
- temporary: never restarted.

More than ``max_restarts`` restarts within ``window_s`` seconds and the supervisor gives up by
raising ``SupervisorGaveUp``: the daemon then exits non-zero and systemd restarts the process.
"""
from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

log = structlog.get_logger("supervisor")


class Restart(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class SupervisorGaveUp(RuntimeError):
    pass


@attrs.define
class ChildSpec:
    name: str
    start: Callable[..., Awaitable[None]]   # async fn(task_status=...) that runs the child
    restart: Restart = Restart.PERMANENT


@attrs.define
class ChildState:
    status: str = "starting"
    restarts: int = 0
    last_error: str | None = None


class Supervisor:
    def __init__(self, children: list[ChildSpec], *, max_restarts: int = 5, window_s: float = 30.0):
        self.children = children
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.state = {c.name: ChildState() for c in children}
        self._restart_times: deque[float] = deque()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Start every child in order (each ready before the next starts), then keep them alive."""
        async with trio.open_nursery() as nursery:
            for child in self.children:
                await nursery.start(self._keep, child)
            task_status.started()

    def _note_restart(self, child: ChildSpec) -> None:
        now = trio.current_time()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.window_s:
            self._restart_times.popleft()
        if len(self._restart_times) > self.max_restarts:
            raise SupervisorGaveUp(
                f"{child.name}: more than {self.max_restarts} restarts within {self.window_s:g}s; giving up"
            )

    async def _keep(self, child: ChildSpec, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        state = self.state[child.name]
        first = True
        while True:
            ready = _Readiness(task_status if first else trio.TASK_STATUS_IGNORED, state)
            try:
                await child.start(task_status=ready)
                state.status = "stopped"
                if child.restart is not Restart.PERMANENT:
                    return
                log.warning("child exited; restarting", child=child.name)
            except Exception as exc:
                state.status = "crashed"
                state.last_error = repr(exc)
                log.error("child crashed", child=child.name, error=repr(exc))
                if child.restart is Restart.TEMPORARY:
                    return
                if not ready.started_once:
                    raise  # failing before ready is a configuration problem, not a crash to retry
            except BaseExceptionGroup as group:
                crash, rest = group.split(Exception)
                if crash is None or rest is None:
                    raise
                # A crash that raced with our own cancellation (the daemon stopping): say so in the
                # log; the cancellation goes on, the crash must not turn a clean stop into a traceback.
                state.status = "crashed"
                state.last_error = repr(crash)
                log.error("child crashed while stopping", child=child.name, error=repr(crash))
                raise rest from None
            first = False
            self._note_restart(child)
            state.restarts += 1
            state.status = "restarting"
            await trio.sleep(min(0.05 * state.restarts, 1.0))


class _Readiness:
    """Passes readiness through and remembers whether the child ever became ready."""

    def __init__(self, inner, state: ChildState):
        self.inner = inner
        self.state = state
        self.started_once = False

    def started(self, value=None) -> None:
        self.started_once = True
        self.state.status = "running"
        self.inner.started(value)
