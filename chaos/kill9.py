"""kill -9 of the daemon at random points mid-turn, then ``orchestrator serve`` again on the same state.

    python -m chaos.kill9             # reduced (CI): 3 kills
    python -m chaos.kill9 --full      # 20 kills
    python -m chaos.kill9 --kills N --sessions 8 --seed 7

Clients stream turns (a fake OpenAI-compatible and a fake Anthropic provider on 127.0.0.1, answers
that take about half a second) on sessions that outlive the daemon. At a random moment while at
least one turn is mid-stream the daemon gets SIGKILL — every other kill lands the instant a client
hears ``turn.completed``; it is restarted on the same home and state.

Invariants, checked after every restart against everything the clients saw over the whole run:
- the daemon answers after each restart;
- a turn whose answer a client saw streaming (a ``text.delta``) or ending has its turn row and
  its user message on disk (``turn.started`` itself goes out while the turn's start is being
  committed — by design, so that no SQLite wait delays the first token; the deltas are held until
  the commit — so a kill in between may leave a ``turn.started`` without a row: counted, not a loss);
- a turn whose ``turn.completed`` a client saw is ``completed`` on disk with its assistant answer
  and ledger rows whose tokens add up to the usage the client was told;
- rows never go away: messages, turns and ledger rows after a restart ≥ what the file held at the kill;
- no turn is left ``running``: those the kill interrupted read ``interrupted``;
- sessions carry on: after the last restart every session runs one more turn to completion.

Mid-LOOP kills (issue 19: "no loop state lost"): three loops tick against the same fakes the whole
run (chaos/kill9_loops.py: what they are and what is checked after each restart). The kill points
cycle: a random moment; mid-tick (a random moment after a ``loop.tick_started``); the instant a
client hears ``loop.tick_finished``; the instant a client hears ``turn.completed``.
"""
from __future__ import annotations

import random
from collections import Counter

import attrs
import trio

from chaos._harness import DaemonProcess, Report, checked_turn, main_exit, scenario_parser, size_label
from chaos.kill9_loops import LoopChaos
from orchestrator.client import DaemonUnreachable, open_client
from protocol import events as ev
from tests.fakes import Answer, Tokens, open_fake_anthropic, open_fake_openai

TURN_DEADLINE_S = 60.0
KILL_POINTS = {1: "random", 2: "mid-tick", 3: "a tick's end heard", 0: "a turn's end heard"}


def models_yaml(anthropic_url: str, openai_url: str) -> str:
    return f"""providers:
  anthropic: {{kind: anthropic, base_url: "{anthropic_url}"}}
  openai: {{kind: openai, base_url: "{openai_url}"}}
models:
  "anthropic:claude-fast":
    tier: fast
    capabilities: {{max_context_tokens: 200000}}
    pricing: {{input_per_mtok: 1.0, output_per_mtok: 5.0}}
  "openai:gpt-main":
    tier: balanced
    capabilities: {{max_context_tokens: 200000}}
    pricing: {{input_per_mtok: 1.25, output_per_mtok: 10.0}}
"""


ROUTING = """schema_version: 1
global_default: openai:gpt-main
rules:
  - name: "anthropic"
    when: {message_contains_any: ["[af]"]}
    use: anthropic:claude-fast
"""


@attrs.define
class Seen:
    """What the clients saw of one turn."""
    session_id: str
    started: bool = False      # turn.started: sent while the turn's start is being committed
    streamed: bool = False     # a text.delta: held back until the start is on disk
    completed: ev.TurnCompleted | None = None
    terminal: object = None


def _counts(daemon: DaemonProcess) -> dict[str, int]:
    return {table: daemon.query(f"SELECT COUNT(*) FROM {table}")[0][0] for table in ("messages", "turns", "costs")}


def _running(daemon: DaemonProcess) -> set[str]:
    return {t for (t,) in daemon.query("SELECT id FROM turns WHERE status='running'")}


def _check_disk(report: Report, daemon: DaemonProcess, seen: dict[str, Seen], in_flight: set[str],
                at_kill: dict[str, int], kill_no: int, started_not_saved: set[str],
                running_at_kill: set[str]) -> None:
    after = _counts(daemon)
    for table, n in at_kill.items():
        if after[table] < n:
            report.problem(f"kill {kill_no}: {table} rows went from {n} at the kill to {after[table]} after restart")
    status = dict(daemon.query("SELECT id, status FROM turns"))
    # Only the turns running at the kill: the loops' next turns may be running already.
    running = [t for t, s in status.items() if s == "running" and t in running_at_kill]
    if running:
        report.problem(f"kill {kill_no}: turns still 'running' after the restart: {running[:5]}")
    for turn_id in in_flight:
        if turn_id in status and status[turn_id] not in ("interrupted", "completed", "failed", "cancelled"):
            report.problem(f"kill {kill_no}: interrupted turn {turn_id} reads {status[turn_id]!r}")
    roles = {}
    for turn_id, role in daemon.query("SELECT turn_id, role FROM messages"):
        roles.setdefault(turn_id, set()).add(role)
    costs: dict[str, list[int]] = {}
    for turn_id, inp, outp, cread in daemon.query("SELECT turn_id, input_tokens, output_tokens, "
                                                  "cache_read_tokens FROM costs"):
        c = costs.setdefault(turn_id, [0, 0, 0])
        c[0] += inp
        c[1] += outp
        c[2] += cread
    for turn_id, s in seen.items():
        if (s.streamed or s.terminal is not None) and (turn_id not in status or "user" not in roles.get(turn_id, ())):
            report.problem(f"kill {kill_no}: turn {turn_id} streamed to the client (terminal: "
                           f"{type(s.terminal).__name__}) but its row or user message is missing")
            s.streamed, s.terminal = False, None   # reported once
        elif s.started and turn_id not in status:
            started_not_saved.add(turn_id)
        if s.completed is not None:
            u = s.completed.usage
            if status.get(turn_id) != "completed":
                report.problem(f"kill {kill_no}: turn {turn_id} completed for the client, reads "
                               f"{status.get(turn_id)!r} on disk")
            if "assistant" not in roles.get(turn_id, ()):
                report.problem(f"kill {kill_no}: completed turn {turn_id} lost its assistant message")
            if costs.get(turn_id) != [u.input_tokens, u.output_tokens, u.cache_read_tokens]:
                report.problem(f"kill {kill_no}: completed turn {turn_id}: ledger {costs.get(turn_id)} != the "
                               f"usage the client saw {[u.input_tokens, u.output_tokens, u.cache_read_tokens]}")


async def _traffic(client, sessions: list[str], seen: dict[str, Seen], rng: random.Random,
                   mid_stream: trio.Event, trigger: dict) -> None:
    async def one_session(sid: str) -> None:
        n = 0
        while True:
            n += 1
            marker = "[af] " if rng.random() < 0.4 else ""
            with trio.fail_after(TURN_DEADLINE_S):
                async with client.turn(sid, f"{marker}question {n} of {sid}") as turn:
                    s = seen[turn.turn_id] = Seen(sid)
                    async for e in turn:
                        if isinstance(e, ev.TurnStarted):
                            s.started = True
                        elif isinstance(e, ev.TextDelta):
                            s.streamed = True
                            mid_stream.set()
                        elif isinstance(e, ev.TurnCompleted):
                            s.completed = e
                            if trigger["armed"]:
                                trigger["fired"].set()   # kill now: no checkpoint before the kill
                    s.terminal = turn.terminal

    async with trio.open_nursery() as n:
        for sid in sessions:
            n.start_soon(one_session, sid)


async def run(*, kills: int, sessions: int, seed: int, size: str = "custom") -> Report:
    report = Report("kill9", size)
    rng = random.Random(seed)
    report.figures.update(kills=kills, sessions=sessions, seed=seed)
    seen: dict[str, Seen] = {}
    sids = [f"s_kill9_{i}" for i in range(sessions)]
    mid_turn_kills = 0
    at_completion = 0   # kills the instant a client heard turn.completed
    kill_points: Counter[str] = Counter()
    started_not_saved: set[str] = set()   # turn.started seen, the kill came before the start's commit
    restart_s: list[float] = []
    loops = LoopChaos(random.Random(seed + 1))

    def answer(model: str, body: dict) -> Answer:
        usage = Tokens(input=rng.randint(10, 500), output=rng.randint(1, 200),
                       cache_read=rng.choice((0, rng.randint(1, 50))))
        return loops.answer(body, usage) or Answer(text=tuple(f"w{i} " for i in range(10)), delay=0.05, usage=usage)

    async with open_fake_anthropic(api_key="chaos-anthropic-key") as fa, \
            open_fake_openai(api_key="chaos-openai-key") as fo:
        fa.reply_for = fo.reply_for = answer
        daemon = DaemonProcess(models=models_yaml(fa.base_url, fo.base_url), routing=ROUTING)
        try:
            await daemon.start()
            async with open_client(daemon.endpoint) as client:
                await loops.start_loops(client)
            for kill_no in range(1, kills + 1):
                mid_stream = trio.Event()
                trigger = {"armed": False, "fired": trio.Event()}
                async with open_client(daemon.endpoint) as client:
                    for sid in sids:
                        await client.open_session(sid)
                    async with trio.open_nursery() as n:
                        await n.start(loops.watch, client)
                        n.start_soon(_traffic, client, sids, seen, rng, mid_stream, trigger)
                        with trio.move_on_after(30):
                            await mid_stream.wait()
                        spend_before = await loops.spend_now(client)
                        loops.arm()
                        kill_points[KILL_POINTS[kill_no % 4]] += 1
                        if kill_no % 4 == 1:
                            await trio.sleep(rng.uniform(0.0, 2.5))   # a random point of the running turns
                        elif kill_no % 4 == 2:                        # mid-tick: a random point of a tick
                            with trio.move_on_after(30):
                                await loops.tick_started.wait()
                            await trio.sleep(rng.uniform(0.05, 0.4))
                        elif kill_no % 4 == 3:                        # the instant a tick's end is heard
                            with trio.move_on_after(30):
                                await loops.tick_finished.wait()
                        else:
                            # The instant a client hears turn.completed: what it was just told must be
                            # on disk already (its answer and its ledger rows), with other turns mid-stream.
                            await trio.sleep(rng.uniform(0.0, 1.0))
                            trigger["armed"] = True
                            with trio.move_on_after(30):
                                await trigger["fired"].wait()
                            at_completion += 1
                        in_flight = {t for t, s in seen.items() if s.terminal is None}
                        mid_turn_kills += bool(in_flight)
                        daemon.kill9()
                        n.cancel_scope.cancel()
                at_kill, running_at_kill = _counts(daemon), _running(daemon)
                loops.record_kill(daemon)
                before = trio.current_time()
                await daemon.start()
                restart_s.append(round(trio.current_time() - before, 2))
                _check_disk(report, daemon, seen, in_flight, at_kill, kill_no, started_not_saved, running_at_kill)
                async with open_client(daemon.endpoint) as client:
                    await loops.check_restart(report, daemon, client, kill_no, spend_before)
            await _final_turns(report, daemon, sids)
            async with open_client(daemon.endpoint) as client:
                await loops.finish(report, daemon, client)
            exit_code = daemon.stop()
            if exit_code != 0:
                report.problem(f"daemon exited {exit_code} on SIGTERM at the end:\n{daemon.log_tail()}")
        finally:
            daemon.close()
        violations = [v for f in (fa, fo) for v in f.violations]
        if violations:
            report.problem(f"{len(violations)} requests the strict fakes rejected, e.g. {violations[:3]}")
    terminals = Counter(type(s.terminal).__name__ if s.terminal else "cut by the kill" for s in seen.values())
    report.figures.update(turns_seen=len(seen), outcomes=dict(terminals), mid_turn_kills=mid_turn_kills,
                          kills_at_a_completion=at_completion, kill_points=dict(kill_points),
                          started_but_not_saved=len(started_not_saved),
                          restart_s=restart_s,
                          interrupted_on_disk=sum(1 for s in seen.values() if s.terminal is None))
    if mid_turn_kills < kills:
        report.problem(f"only {mid_turn_kills} of {kills} kills landed while a turn was running")
    return report.finish()


async def _final_turns(report: Report, daemon: DaemonProcess, sids: list[str]) -> None:
    try:
        async with open_client(daemon.endpoint) as client:
            async def one(sid: str) -> None:
                turn = await checked_turn(report, client, sid, f"after the last restart, {sid}",
                                          deadline=TURN_DEADLINE_S, label=f"session {sid} after the last restart")
                if not turn.lost and not isinstance(turn.terminal, ev.TurnCompleted):
                    report.problem(f"session {sid}: the turn after the last restart ended {turn.terminal!r}")

            async with trio.open_nursery() as n:
                for sid in sids:
                    n.start_soon(one, sid)
    except DaemonUnreachable as exc:
        report.problem(f"the daemon did not serve turns after the last restart: {exc!r}")


REDUCED = {"kills": 3, "sessions": 8}
FULL = {"kills": 20, "sessions": 8}


def main() -> None:
    p = scenario_parser(__doc__, "20 kills")
    p.add_argument("--kills", type=int)
    p.add_argument("--sessions", type=int, default=8)
    a = p.parse_args()
    kills = a.kills or (FULL if a.full else REDUCED)["kills"]
    report = trio.run(lambda: run(kills=kills, sessions=a.sessions, seed=a.seed,
                                  size=size_label(a.full, a.kills)))
    main_exit(report, a.json)


if __name__ == "__main__":
    main()
