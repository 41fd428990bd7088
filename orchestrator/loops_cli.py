"""``orchestrator loop start|list|show|stop|resume|watch`` (DESIGN §4.10) and the chat's ``/loop``.

Loops live in the daemon: ``loop start`` only asks for one and prints its id; the terminal can go
away. ``loop watch`` follows the events of one loop (or all) until the loop stops or Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .exitcodes import EXIT_OK, EXIT_USAGE, CliError


def _duration(value: str) -> float:
    from actors.loops.schedule import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ticks(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of ticks, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("--max-ticks must be at least 1")
    return n


def _usd(value: str) -> str:
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount in USD, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError("--budget-usd must be a number ≥ 0")
    return str(amount)


def add_subparser(sub: argparse._SubParsersAction, workspace_arg) -> None:
    lp = sub.add_parser("loop", help="durable pilot/land loops run by the daemon")
    lsub = lp.add_subparsers(dest="loop_command", required=True, metavar="ACTION")
    st = lsub.add_parser("start", help="start a loop; prints its id")
    st.add_argument("--every", type=_duration, default=0.0, metavar="DURATION",
                    help="time between tick starts: 30s, 10m, 1h, or 0 for back to back (default 0)")
    st.add_argument("--max-ticks", type=_ticks, metavar="N")
    st.add_argument("--budget-usd", type=_usd, metavar="X")
    st.add_argument("--workspace", type=workspace_arg)
    what = st.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", metavar="TEXT", help="each tick is this one turn")
    what.add_argument("--pilot", metavar="TEXT", help="each tick runs this pilot turn (then --land)")
    what.add_argument("--workflow", metavar="NAME", help="each tick runs this workflow")
    st.add_argument("--land", metavar="TEXT", help="with --pilot: run in the same tick after DEFERRED_TO_LAND/NO_WORK")
    ls = lsub.add_parser("list", help="every loop, its state and progress")
    ls.add_argument("--json", action="store_true")
    sh = lsub.add_parser("show", help="one loop: ticks, verdicts, strikes, spend")
    sh.add_argument("loop_id", metavar="ID")
    sh.add_argument("--json", action="store_true")
    sp = lsub.add_parser("stop", help="stop a loop (a running tick is cancelled and recorded interrupted)")
    sp.add_argument("loop_id", metavar="ID")
    rs = lsub.add_parser("resume", help="run a stopped or finished loop again")
    rs.add_argument("loop_id", metavar="ID")
    rs.add_argument("--clear-strikes", action="store_true", help="forget the strike ledger (struck items run again)")
    wt = lsub.add_parser("watch", help="follow loop events as they happen (all loops without ID)")
    wt.add_argument("loop_id", metavar="ID", nargs="?")
    wt.add_argument("--json", action="store_true", help="one JSON object per event")


def start_message(args: argparse.Namespace):
    from protocol.messages import StartLoop

    if args.land is not None and args.pilot is None:
        raise CliError("--land needs --pilot", EXIT_USAGE)
    for flag in ("prompt", "pilot", "land"):
        value = getattr(args, flag)
        if value is not None and not value.strip():
            raise CliError(f"--{flag} is empty", EXIT_USAGE)
    mode = "prompt" if args.prompt is not None else "pilot" if args.pilot is not None else "workflow"
    text = args.prompt if args.prompt is not None else args.pilot or ""
    if args.workflow is not None:
        _check_workflow(args.workflow)
    return StartLoop(mode, text, args.land, args.workflow, args.every, args.max_ticks, args.budget_usd,
                     args.workspace)


def _check_workflow(name: str) -> None:
    """An unknown workflow is refused here, as `orchestrator run` refuses it, instead of a loop that
    only fails. A home that does not load is left to the daemon (it says why at every tick)."""
    from .paths import resolve_paths
    from .workflows_run import ConfigProblem, load_home_config

    try:
        defined = load_home_config(resolve_paths().home).workflows.workflows
    except ConfigProblem:
        return
    if name not in defined:
        raise CliError(f"no workflow named {name!r} (defined: {', '.join(sorted(defined))})")


def run(args: argparse.Namespace) -> int:
    import trio

    return trio.run(_run, args)


async def _run(args: argparse.Namespace) -> int:
    from protocol.errors import RemoteError
    from protocol.messages import ListLoops, ResumeLoop, ShowLoop, StopLoop

    from .client import open_client

    cmd = args.loop_command
    message: Any = start_message(args) if cmd == "start" else None
    async with open_client() as client:
        try:
            if cmd == "start":
                info = await client.request("loops", message)
                print(info.loop["id"])
                return EXIT_OK
            if cmd == "list":
                listing = await client.request("loops", ListLoops())
                if args.json:
                    print(json.dumps(list(listing.loops)))
                else:
                    print(render_list(list(listing.loops)))
                return EXIT_OK
            if cmd == "show":
                info = await client.request("loops", ShowLoop(args.loop_id))
                print(json.dumps(contract_view(info.loop)) if args.json else render_loop(info.loop))
                return EXIT_OK
            if cmd == "stop":
                info = await client.request("loops", StopLoop(args.loop_id))
                print(f"{info.loop['id']}: {info.loop['state']}")
                return EXIT_OK
            if cmd == "resume":
                info = await client.request("loops", ResumeLoop(args.loop_id, args.clear_strikes))
                print(f"{info.loop['id']}: {info.loop['state']}")
                return EXIT_OK
            return await _watch(client, args.loop_id, args.json)
        except RemoteError as exc:
            if exc.code == "unknown_loop":
                raise CliError(f"unknown loop {args.loop_id!r}") from None
            if exc.code == "invalid_loop":
                raise CliError(exc.message, EXIT_USAGE) from None
            raise


async def _watch(client, loop_id: str | None, as_json: bool) -> int:
    import trio

    from .client import DaemonUnreachable

    try:
        return await _watch_events(client, loop_id, as_json)
    except (DaemonUnreachable, trio.TooSlowError):   # a dropped connection, or a daemon gone silent
        raise DaemonUnreachable("lost the daemon while watching loops") from None


async def _watch_events(client, loop_id: str | None, as_json: bool) -> int:
    import trio

    from protocol.messages import ShowLoop, WatchLoops

    from .client import LIVENESS_INTERVAL_S

    async with client.watch_loops(loop_id) as events:
        if loop_id is not None:     # subscribed first, then asked: a loop that already ended says so
            loop = (await client.request("loops", ShowLoop(loop_id))).loop
            if loop["state"] != "running":
                done = {"type": "loop.stopped", "loop_id": loop_id, "state": loop["state"],
                        "stop_reason": loop["stop_reason"]}
                print(json.dumps(done) if as_json else render_event(done), flush=True)
                return EXIT_OK
        while True:
            heard = client.heard
            with trio.move_on_after(LIVENESS_INTERVAL_S):
                try:
                    event = await events.receive()
                except trio.EndOfChannel:
                    return EXIT_OK
                print(json.dumps(event) if as_json else render_event(event), flush=True)
                if loop_id is not None and event.get("type") == "loop.stopped":
                    return EXIT_OK
                continue
            # Quiet for a while: ticks are slow, or the daemon is gone (ZeroMQ would wait for it
            # forever). A ping tells them apart; a daemon that came back has forgotten us: ask again.
            await client.check_alive(LIVENESS_INTERVAL_S, heard)   # TooSlowError: gone (see _watch)
            await client.request("loops", WatchLoops(loop_id))


# --- rendering --------------------------------------------------------------------------------------

CONTRACT_KEYS = ("id", "state", "stop_reason", "spend_usd", "ticks", "strikes")
TICK_KEYS = ("n", "status", "pilot_verdict", "land_verdict", "cost_usd")


def contract_view(loop: dict) -> dict:
    """`loop show --json`: the contract's keys first, in its order; the extra progress fields after."""
    out = {k: loop.get(k) for k in CONTRACT_KEYS}
    out["ticks"] = [{**{k: t.get(k) for k in TICK_KEYS}, **{k: v for k, v in t.items() if k not in TICK_KEYS}}
                    for t in loop.get("ticks", [])]
    out.update({k: v for k, v in loop.items() if k not in CONTRACT_KEYS})
    return out


def _verdicts(loop: dict) -> str:
    said = [v for v in (loop.get("last_pilot_verdict"), loop.get("last_land_verdict")) if v]
    return " / ".join(said) or "—"


def progress_line(loop: dict) -> str:
    state = loop["state"] + (f" ({loop['stop_reason']})" if loop.get("stop_reason") else "")
    ran = f"{loop.get('ticks_run', 0)} ticks"
    current = f"tick {loop['current_tick']} running" if loop.get("current_tick") else ran
    return f"{loop['id']}  {state:<22} {current:<16} last: {_verdicts(loop):<32} spend ${loop['spend_usd']}"


def render_list(loops: list[dict]) -> str:
    if not loops:
        return "no loops (start one with `orchestrator loop start --prompt TEXT`)"
    return "\n".join(progress_line(lp) for lp in loops)


def render_loop(loop: dict) -> str:
    what = {"prompt": "prompt", "pilot": "pilot/land" if loop.get("land") else "pilot",
            "workflow": f"workflow {loop.get('workflow')}"}.get(loop.get("mode", ""), loop.get("mode"))
    limits = [f"every {loop.get('every')}"]
    if loop.get("max_ticks"):
        limits.append(f"max {loop['max_ticks']} ticks")
    if loop.get("budget_usd") is not None:
        limits.append(f"budget ${loop['budget_usd']}")
    lines = [f"loop {loop['id']} · {what} · {', '.join(limits)}",
             f"state: {loop['state']}" + (f" — stopped: {loop['stop_reason']}" if loop.get("stop_reason") else ""),
             f"spend: ${loop['spend_usd']} · session {loop.get('session_id')}"
             + (f" · workspace {loop['workspace']}" if loop.get("workspace") else "")]
    if loop.get("current_tick"):
        lines.append(f"current tick: {loop['current_tick']} (running)")
    for t in loop.get("ticks", []):
        said = " / ".join(v for v in (t.get("pilot_verdict"), t.get("land_verdict")) if v) or "no verdict"
        lines.append(f"  tick {t['n']:>3}  {t['status']:<11} {said:<40} ${t.get('cost_usd') or '0'}")
        if t.get("error"):
            lines.append(f"             error: {t['error']}")
    if loop.get("strikes"):
        struck = set(loop.get("struck", []))
        lines.append("strikes: " + ", ".join(f"{k}×{n}{' (struck)' if k in struck else ''}"
                                             for k, n in sorted(loop["strikes"].items())))
    return "\n".join(lines)


def render_event(event: dict) -> str:
    kind, lid = event.get("type"), event.get("loop_id")
    if kind == "loop.tick_started":
        return f"{lid} tick {event.get('n')} started"
    if kind == "loop.tick_finished":
        said = " / ".join(v for v in (event.get("pilot_verdict"), event.get("land_verdict")) if v) or "no verdict"
        struck = f" · struck: {', '.join(event['struck'])}" if event.get("struck") else ""
        return (f"{lid} tick {event.get('n')} {event.get('status')}: {said} · ${event.get('cost_usd')} "
                f"(spend ${event.get('spend_usd')}){struck}")
    if kind == "loop.stopped":
        return f"{lid} {event.get('state')}: {event.get('stop_reason')}"
    return json.dumps(event)


def render_status_loops(loops: list[dict] | tuple[dict, ...]) -> str:
    if not loops:
        return "loops: none running"
    return "loops:\n" + "\n".join("  " + progress_line(lp) for lp in loops)


# --- chat: /loop --------------------------------------------------------------------------------------

CHAT_USAGE = ("usage: /loop DURATION PROMPT (e.g. /loop 30m run the pilot) · /loop list · /loop show ID · "
              "/loop stop ID · /loop resume ID")


async def chat_loop(client, words: list[str], workspace: str | None = None) -> None:
    """The chat's ``/loop``: start a --prompt loop, or list / show / stop / resume one."""
    from protocol.errors import RemoteError
    from protocol.messages import ListLoops, ResumeLoop, ShowLoop, StartLoop, StopLoop

    from actors.loops.schedule import parse_duration

    try:
        if not words:
            print(CHAT_USAGE)
        elif words[0] == "list":
            print(render_list(list((await client.request("loops", ListLoops())).loops)))
        elif words[0] in ("show", "stop", "resume") and len(words) == 2:
            body = {"show": ShowLoop, "stop": StopLoop, "resume": ResumeLoop}[words[0]](words[1])
            info = await client.request("loops", body)
            print(render_loop(info.loop) if words[0] == "show" else f"{info.loop['id']}: {info.loop['state']}")
        else:
            try:
                every = parse_duration(words[0])
            except ValueError:
                print(CHAT_USAGE)
                return
            if len(words) < 2:
                print(CHAT_USAGE)
                return
            info = await client.request("loops", StartLoop("prompt", " ".join(words[1:]), every_s=every,
                                                           workspace=workspace))
            print(f"loop {info.loop['id']} started (every {info.loop['every']}); /loop show {info.loop['id']}")
    except RemoteError as exc:
        print(f"error: {exc.message}", file=sys.stdout)
