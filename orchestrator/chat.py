"""``orchestrator chat``: an interactive session.

Slash commands: /model <id>, /model -, /model show, /rules check|show|reload, /route override|ignore,
/cost, /help. ``@alias`` at the start of a message overrides the model for that message.
Ctrl-C cancels the running turn (not the program); Ctrl-D leaves.
"""
from __future__ import annotations

import os
import sys

import trio

from protocol.errors import RemoteError

from .cli import EXIT_OK, ask
from .client import open_client
from .render import render_cost, render_model_state, render_rules

HELP = """commands:
  /model <id|alias>   set the session's sticky model (queued if a turn is running)
  /model -            clear the sticky model
  /model show         active model and the last turn's chain
  /rules check|show|reload
  /route override|ignore   answer a pattern-store suggestion
  /cost               this session's cost by model and role
  @alias message      use that model for this message only
  Ctrl-C cancels the running turn · Ctrl-D leaves"""


async def _read_line(prompt: str) -> str | None:
    def read() -> str | None:
        try:
            return input(prompt)
        except EOFError:
            return None
        except KeyboardInterrupt:
            return ""
    return await trio.to_thread.run_sync(read, abandon_on_cancel=True)


async def _command(client, sid: str, line: str) -> None:
    parts = line.split()
    cmd, rest = parts[0], parts[1:]
    if cmd == "/model":
        if not rest or rest[0] == "show":
            print(render_model_state(await client.show_model(sid)))
        elif rest[0] == "-":
            print(render_model_state(await client.clear_model(sid), with_trace=False))
        else:
            print(render_model_state(await client.set_model(sid, rest[0]), with_trace=False))
    elif cmd == "/rules":
        action = rest[0] if rest else "show"
        if action == "check":
            from .cli import _check

            _check(None, [])
        else:
            report = await (client.reload_rules() if action == "reload" else client.rules())
            print(render_rules(report))
    elif cmd == "/cost":
        print(render_cost(await client.cost(sid), sid))
    elif cmd == "/route":
        from protocol.messages import RouteChoice

        action = rest[0] if rest else ""
        if action not in ("override", "ignore"):
            print("usage: /route override|ignore")
            return
        reply = await client.request("router", RouteChoice(sid, action))
        print(reply.detail)
    elif cmd in ("/help", "/?"):
        print(HELP)
    else:
        print(f"unknown command {cmd}; /help lists them")


async def _chat(session: str | None, workspace: str | None) -> int:
    async with open_client() as client:
        info = await client.open_session(session, os.path.abspath(workspace) if workspace else None)
        print(f"session {info.session_id} · /help for commands · Ctrl-D to leave", file=sys.stderr)
        while True:
            line = await _read_line("you> ")
            if line is None:
                print(file=sys.stderr)
                return EXIT_OK
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    await _command(client, info.session_id, line)
                else:
                    await ask(client, line, session=info.session_id, workspace=None, as_json=False)
            except RemoteError as exc:
                print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)


def run_chat(args) -> int:
    return trio.run(_chat, args.session, args.workspace)
