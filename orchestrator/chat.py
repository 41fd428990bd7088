"""``orchestrator chat``: an interactive session.

Slash commands: /model <id>, /model -, /model show, /rules check|show|reload, /route override|ignore, /rate,
/cost, /cancel, /quit, /help. ``@alias`` at the start of a message overrides the model for that
message. Input is read while a turn streams, so ``/model`` during a turn is queued (the pending
banner shows at once, once) and ``/cancel`` stops it. Ctrl-C cancels the running turn, or clears
the line at an idle prompt; Ctrl-D or ``/quit`` leaves — on a terminal, Ctrl-D during a turn cancels
it first (at the end of piped input the running turn is let finish instead). Piped messages run
one after the other: a message line waits for the running turn to end.
"""
from __future__ import annotations

import signal
import sys

import trio

from protocol.errors import RemoteError

from protocol.messages import ModelState

from .client import open_client
from .model_hints import warn_if_not_configured
from .rating import override_message
from .render import render_cost, render_model_state, render_reload, render_rules
from .streaming import EXIT_OK, ask

HELP = """commands:
  /model <id|alias>   set the session's sticky model (queued if a turn is running)
  /model -            clear the sticky model
  /model show         active model and the last turn's chain
  /rules check|show|reload
  /route override|ignore   answer a pattern-store suggestion
  /rate good|bad|0.7  rate the last turn's answer (teaches the pattern store)
  /cost               this session's cost by model and role
  /run WORKFLOW TEXT  run a workflow (qc, or one of workflows.yaml) on TEXT
  /loop 30m PROMPT    start a loop in the daemon (a tick every 30m; 0 = back to back)
  /loop list|show ID|stop ID|resume ID   the daemon's loops (docs/loops.md)
  /cancel             cancel the running turn
  /quit               leave (also Ctrl-D)
  @alias message      use that model for this message only
  Ctrl-C cancels the running turn, or clears the line when idle
  Ctrl-D leaves; during a turn it cancels the turn first"""

PROMPT = "you> "


def _print_swap(state: ModelState) -> None:
    # Queued behind a running turn: that turn's stream shows the pending banner on its own line
    # (streaming prints Banner events); printing the state here too would show it twice, inside
    # the streamed answer.
    if not (state.pending_model or state.pending_clear):
        print(render_model_state(state, with_trace=False))


async def _command(client, sid: str, line: str) -> str | None:
    """Run a slash command; a message to send as a new turn comes back (``/route override``)."""
    parts = line.split()
    cmd, rest = parts[0], parts[1:]
    if cmd == "/model":
        if not rest or rest[0] == "show":
            print(render_model_state(await client.show_model(sid)))
        elif rest[0] == "-":
            _print_swap(await client.clear_model(sid))
        else:
            state = await client.set_model(sid, rest[0])
            _print_swap(state)
            await warn_if_not_configured(client, state)
    elif cmd == "/rules":
        action = rest[0] if rest else "show"
        if action == "check":
            from .check import check_home, print_report
            from .paths import resolve_paths

            # Reads every config file: in a thread, so the prompt's other tasks (Ctrl-C) stay live.
            print_report(await trio.to_thread.run_sync(check_home, resolve_paths().home, []))
        elif action == "reload":
            print("\n".join(render_reload(await client.reload_rules())))
        else:
            print(render_rules(await client.rules()))
    elif cmd == "/cost":
        print(render_cost(await client.cost(sid), sid))
    elif cmd == "/route":
        from protocol.messages import RouteChoice

        action = rest[0] if rest else ""
        if action not in ("override", "ignore"):
            print("usage: /route override|ignore")
            return None
        reply = await client.request("router", RouteChoice(sid, action))
        print(reply.detail)
        if reply.ok and reply.model:
            return override_message(reply.model, reply.text)
    elif cmd == "/rate":
        from protocol.errors import RemoteError

        from .rating import SCORE_USAGE, parse_score, rate, rated_line

        score = parse_score(rest[0]) if len(rest) == 1 else None
        if score is None:
            print(f"usage: /rate good|bad|0.7 ({SCORE_USAGE})")
            return None
        try:
            print(rated_line(await rate(client, "", score, sid)))
        except RemoteError as exc:
            print(exc.message)
    elif cmd == "/run":
        from .workflows_cli import chat_run

        await chat_run(client, rest)
    elif cmd == "/loop":
        from .loops_cli import chat_loop

        await chat_loop(client, rest)
    elif cmd in ("/help", "/?"):
        print(HELP)
    else:
        print(f"unknown command {cmd}; /help lists them")
    return None


async def _read_lines(send: trio.MemorySendChannel[str | None]) -> None:
    """stdin, one line at a time, in a thread: input keeps flowing while a turn streams."""
    async with send:
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                await send.send(None)       # Ctrl-D / end of input
                return
            await send.send(line.rstrip("\n"))


class _Chat:
    def __init__(self, client, session_id: str):
        self.client = client
        self.sid = session_id
        self.turn = None                    # the running turn's handle, if any
        self.turn_done = trio.Event()
        self.turn_done.set()
        # The prompt is on screen and no line was read since: both the input loop and the end of
        # a turn ask for a prompt, and whichever comes second must not print another one.
        self.prompted = False

    def prompt(self) -> None:
        if self.turn is None and not self.prompted:
            sys.stderr.write(PROMPT)
            sys.stderr.flush()
            self.prompted = True

    async def cancel(self) -> bool:
        turn = self.turn
        if turn is None:
            return False
        try:
            await turn.cancel()
        except RemoteError:
            pass  # it ended meanwhile
        return True

    async def run_turn(self, text: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.turn_done = trio.Event()
        started = False

        def on_started(turn) -> None:
            nonlocal started
            self.turn, started = turn, True
            task_status.started()

        try:
            await ask(self.client, text, session=self.sid, workspace=None, as_json=False,
                      on_started=on_started, sigint=False, in_chat=True)
        except RemoteError as exc:
            print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        finally:
            self.turn = None
            self.turn_done.set()
            if not started:
                task_status.started()
            else:
                self.prompt()

    async def on_sigint(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            task_status.started()           # from here on Ctrl-C never ends the program
            async for _ in signals:
                if not await self.cancel():
                    # Idle: the terminal dropped the typed line (ISIG flushes it); show a fresh prompt.
                    sys.stderr.write("\n(Ctrl-D or /quit to leave)\n")
                    self.prompted = False
                    self.prompt()


async def _chat(session: str | None, workspace: str | None) -> int:
    async with open_client() as client:
        info = await client.open_session(session, workspace)   # absolute: resolved by the CLI's parser
        print(f"session {info.session_id} · /help for commands · Ctrl-D to leave", file=sys.stderr)
        chat = _Chat(client, info.session_id)
        interactive = sys.stdin.isatty()
        send, lines = trio.open_memory_channel[str | None](64)
        async with trio.open_nursery() as nursery:
            await nursery.start(chat.on_sigint)
            nursery.start_soon(_read_lines, send)
            chat.prompt()
            async for line in lines:
                chat.prompted = False
                if line is None or line.strip() in ("/quit", "/exit"):
                    # Ctrl-D on a terminal is the user leaving, as /quit: cancel the running turn.
                    # The end of piped input is not: the last message's answer is let finish.
                    if line is not None or interactive:
                        if chat.turn is not None:
                            print("\n(leaving: cancelling the running turn)", file=sys.stderr)
                        await chat.cancel()
                    await chat.turn_done.wait()
                    print(file=sys.stderr)
                    nursery.cancel_scope.cancel()
                    break
                line = line.strip()
                if not line:
                    chat.prompt()
                    continue
                try:
                    if line == "/cancel":
                        if not await chat.cancel():
                            print("no turn is running", file=sys.stderr)
                    elif line.startswith("/"):
                        redo = await _command(client, info.session_id, line)
                        if redo is not None and chat.turn is None:
                            await nursery.start(chat.run_turn, redo)
                            continue
                    elif chat.turn is not None and interactive:
                        print("a turn is running: wait for it, or /cancel it", file=sys.stderr)
                    else:
                        # Piped input is a script: its messages run in order, each after the
                        # previous answer (commands before it have already applied).
                        await chat.turn_done.wait()
                        # Returns once the daemon accepted the turn, so a following /model is queued.
                        await nursery.start(chat.run_turn, line)
                        continue
                except RemoteError as exc:
                    print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
                chat.prompt()
    return EXIT_OK


def run_chat(args) -> int:
    return trio.run(_chat, args.session, args.workspace)
