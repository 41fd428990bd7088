"""One streamed turn for the terminal (``ask``, and each message of ``chat``).

Exit codes (DESIGN §4.1): 0 completed, 1 failed, 130 cancelled.
"""
from __future__ import annotations

import json
import sys

import trio

from protocol import events as ev
from protocol.codec import event_to_json_obj
from protocol.errors import RemoteError

from .client import DaemonUnreachable

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CANCELLED = 0, 1, 2, 3, 130


async def ask(client, text: str, *, session: str | None, workspace: str | None, as_json: bool,
              out=None, on_started=None, sigint: bool = True) -> int:
    """One turn, streamed (``workspace`` an absolute path). Ctrl-C cancels the turn (not the
    program) and waits for turn.cancelled.

    Exit code: 0 completed, 1 failed, 130 cancelled. A closed stdout cancels the turn too — nobody
    reads the answer, so it must not keep running (and billing)."""
    out = out or sys.stdout
    info = await client.open_session(session, workspace)   # absolute: resolved by the CLI's parser
    async with client.turn(info.session_id, text, workspace=workspace) as turn:
        if on_started is not None:
            on_started(turn)
        with _cancel_on_sigint(client, turn, enabled=sigint):
            try:
                async for event in turn:
                    if as_json:
                        out.write(json.dumps(event_to_json_obj(event), default=str) + "\n")
                        out.flush()
                    else:
                        _print_event(event, out)
            except BrokenPipeError:
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    try:
                        await turn.cancel()
                    except (RemoteError, DaemonUnreachable):
                        pass
                raise
    if not as_json:
        out.write("\n" if not isinstance(turn.terminal, ev.TurnFailed) else "")
        print(f"[session {info.session_id} · turn {turn.turn_id}]", file=sys.stderr)
    if isinstance(turn.terminal, ev.TurnCancelled):
        return EXIT_CANCELLED
    return EXIT_FAIL if isinstance(turn.terminal, ev.TurnFailed) else EXIT_OK


def _print_event(event, out) -> None:
    if isinstance(event, ev.TextDelta):
        out.write(event.text)
        out.flush()
    elif isinstance(event, ev.Banner):
        print(f"\n» {event.text}", file=sys.stderr)
    elif isinstance(event, ev.TurnStarted):
        print(f"→ {event.model}", file=sys.stderr)
    elif isinstance(event, ev.ToolCalled):
        print(f"\n⚙ {event.name}({json.dumps(event.input)[:200]})", file=sys.stderr)
    elif isinstance(event, ev.DelegateStarted):
        print(f"\n⇢ delegating to {event.tier} tier: {event.task[:120]}", file=sys.stderr)
    elif isinstance(event, ev.TurnFailed):
        print(f"\norchestrator: turn failed: {event.message} [{event.error}]", file=sys.stderr)
    elif isinstance(event, ev.TurnCancelled):
        print(f"\n[turn cancelled: {event.reason}]", file=sys.stderr)
    elif isinstance(event, ev.StreamOverflow):
        print(f"\norchestrator: {event.message} [stream.overflow]", file=sys.stderr)


class _cancel_on_sigint:
    """While a turn streams, Ctrl-C sends CancelTurn instead of killing the program."""

    def __init__(self, client, turn, *, enabled: bool = True):
        self.client, self.turn, self.enabled = client, turn, enabled

    def __enter__(self):
        import signal

        if not self.enabled:  # the caller (chat) handles SIGINT itself
            self._old = None
            return self

        self._token = trio.lowlevel.current_trio_token()
        self._old = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            self._token.run_sync_soon(self._spawn_cancel)

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _spawn_cancel(self):
        trio.lowlevel.spawn_system_task(self._cancel)

    async def _cancel(self):
        try:
            await self.turn.cancel()
        except Exception:
            pass  # the turn may already be over

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False
