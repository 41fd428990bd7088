"""One streamed turn for the terminal (``ask``, and each message of ``chat``).

Exit codes (DESIGN §4.1): 0 completed, 1 failed (also: cancelled by a daemon shutdown), 130
cancelled by the user.
"""
from __future__ import annotations

import json
import re
import sys

import trio

from protocol import events as ev
from protocol.codec import event_to_json_obj
from protocol.errors import RemoteError

from .client import DaemonUnreachable
from .exitcodes import EXIT_CANCELLED, EXIT_FAIL, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, CliError

__all__ = ["EXIT_CANCELLED", "EXIT_FAIL", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "ask", "cli_failure_line"]

# Reasons a turn.cancelled carries when the user (Ctrl-C, /cancel, CancelTurn) stopped it: only
# these exit 130; any other (daemon_shutdown, internal_error) is a failure, exit 1.
USER_CANCEL_REASONS = frozenset({"cancelled_by_user"})


async def ask(client, text: str, *, session: str | None, workspace: str | None, as_json: bool,
              out=None, on_started=None, sigint: bool = True, in_chat: bool = False,
              role: str | None = None, tier: str | None = None, effort: str | None = None) -> int:
    """One turn, streamed (``workspace`` an absolute path). Ctrl-C cancels the turn (not the
    program) and waits for turn.cancelled.

    Exit code: 0 completed, 1 failed, 130 cancelled by the user. A closed or full stdout cancels the
    turn too — nobody reads the answer, so it must not keep running (and billing). ``in_chat``: a
    failure is printed as the daemon wrote it (its advice is chat's /commands); otherwise as one
    line with the command-line equivalents."""
    out = out or sys.stdout
    info = await client.open_session(session, workspace)   # absolute: resolved by the CLI's parser
    printer = _Printer(out, info.session_id, in_chat)
    async with client.turn(info.session_id, text, workspace=workspace, role=role, tier=tier,
                           effort=effort) as turn:
        if on_started is not None:
            on_started(turn)
        with _cancel_on_sigint(client, turn, enabled=sigint):
            try:
                async for event in turn:
                    if as_json:
                        out.write(json.dumps(event_to_json_obj(event), default=str) + "\n")
                        out.flush()
                    else:
                        printer.event(event)
            except DaemonUnreachable:  # a ConnectionError, but about the daemon, not the output
                printer.end_line()  # the error that follows starts on a line of its own
                raise
            except OSError as exc:  # BrokenPipeError, ENOSPC, EIO: the answer cannot be written
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    try:
                        await turn.cancel()
                    except (RemoteError, DaemonUnreachable):
                        pass
                if isinstance(exc, BrokenPipeError):
                    raise
                raise CliError(f"cannot write the answer to stdout: {exc.strerror or exc} "
                               f"(turn {turn.turn_id} cancelled)") from None
            except BaseException:
                printer.end_line()  # the error that follows starts on a line of its own
                raise
    if not as_json:
        printer.end_line()
        print(f"[session {info.session_id} · turn {turn.turn_id}]", file=sys.stderr)
    if isinstance(turn.terminal, ev.TurnCancelled):
        if turn.terminal.reason in USER_CANCEL_REASONS:
            return EXIT_CANCELLED
        if not as_json:
            print(f"orchestrator: {_cancel_reason_text(turn.terminal.reason)}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_FAIL if isinstance(turn.terminal, ev.TurnFailed) else EXIT_OK


def _cancel_reason_text(reason: str) -> str:
    if reason == "daemon_shutdown":
        return "the daemon shut down during the turn; it was cancelled (start the daemon and ask again)"
    return f"the turn was cancelled by the daemon ({reason})"


def cli_failure_line(message: str, session_id: str) -> str:
    """A turn failure for the command line: the daemon's (spec) text on one line, its chat advice
    replaced by the commands that exist outside chat."""
    text = message.replace(
        "Run /model <id>",
        f"Run `orchestrator model set ID --session {session_id}` (or start the message with @ALIAS)")
    text = text.replace("/rules check", "`orchestrator check`")
    outage = re.search(r"^(\S+) provider currently unavailable\.$", message, re.MULTILINE)
    if outage:  # recovery is automatic after 5 quiet minutes; say how to force it now
        text = text.replace("or wait for recovery.",
                            f"or wait for recovery (`orchestrator availability reset {outage.group(1)}` forces it).")
    return " · ".join(line.strip() for line in text.splitlines() if line.strip())


class _Printer:
    """The text form of a turn's events: the answer on stdout, everything else one line on stderr."""

    def __init__(self, out, session_id: str, in_chat: bool):
        self.out, self.session_id, self.in_chat = out, session_id, in_chat
        self.mid_line = False   # answer text was written and its line is not ended yet

    def end_line(self) -> None:
        if self.mid_line:
            self.mid_line = False
            try:
                self.out.write("\n")
                self.out.flush()
            except OSError:
                pass  # the output is gone; the error about it is reported elsewhere

    def event(self, event) -> None:
        if isinstance(event, ev.TextDelta):
            if event.text:
                self.out.write(event.text)
                self.out.flush()
                self.mid_line = not event.text.endswith("\n")
            return
        if isinstance(event, ev.TurnFailed) and not self.in_chat:
            self.end_line()
            print(f"orchestrator: turn failed: {cli_failure_line(event.message, self.session_id)} "
                  f"[{event.error}]", file=sys.stderr)
            return
        if isinstance(event, (ev.Banner, ev.ToolCalled, ev.DelegateStarted, ev.TurnFailed, ev.TurnCancelled,
                              ev.StreamOverflow)):
            self.end_line()
        _print_event(event, self.out)


def _print_event(event, out) -> None:
    if isinstance(event, ev.TextDelta):
        out.write(event.text)
        out.flush()
    elif isinstance(event, ev.Banner):
        print(f"» {event.text}", file=sys.stderr)
    elif isinstance(event, ev.RouteDecided):
        for warning in event.warnings:   # e.g. an effort the model does not accept, dropped
            print(f"» {warning}", file=sys.stderr)
    elif isinstance(event, ev.TurnStarted):
        print(f"→ {event.model}", file=sys.stderr)
    elif isinstance(event, ev.ToolCalled):
        print(f"⚙ {event.name}({json.dumps(event.input)[:200]})", file=sys.stderr)
    elif isinstance(event, ev.DelegateStarted):
        print(f"⇢ delegating to {event.tier} tier: {event.task[:120]}", file=sys.stderr)
    elif isinstance(event, ev.TurnFailed):
        print(f"orchestrator: turn failed: {event.message} [{event.error}]", file=sys.stderr)
    elif isinstance(event, ev.TurnCancelled):
        print(f"[turn cancelled: {event.reason}]", file=sys.stderr)
    elif isinstance(event, ev.StreamOverflow):
        print(f"orchestrator: {event.message} [stream.overflow]", file=sys.stderr)


class _cancel_on_sigint:
    """While a turn streams, Ctrl-C — and SIGTERM (``timeout``, a service manager) or SIGHUP (the
    terminal closed) — sends CancelTurn instead of killing the program, so the turn stops in the
    daemon too instead of running on, and billing, for a client that is gone."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, client, turn, *, enabled: bool = True):
        self.client, self.turn, self.enabled = client, turn, enabled
        self._old: dict[int, object] = {}

    def __enter__(self):
        import signal

        if not self.enabled:  # the caller (chat) handles SIGINT itself
            return self
        self._token = trio.lowlevel.current_trio_token()

        def handler(signum, frame):
            self._token.run_sync_soon(self._spawn_cancel)

        for name in self.SIGNALS:
            sig = getattr(signal, name)
            try:
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, handler)
            except ValueError:  # not the main thread
                self._old.pop(sig, None)
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

        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
