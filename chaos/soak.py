"""Soak: many concurrent sessions running turns for minutes; the daemon's memory and lost turns.

    python -m chaos.soak              # reduced (CI): 100 sessions for 20 s
    python -m chaos.soak --full       # 1,000 sessions for 10 minutes
    python -m chaos.soak --sessions N --seconds S --fault-rate 0.03

``--sessions`` session slots run turns back to back against the fake providers (tests/fakes on
127.0.0.1; a few percent of the provider replies are faults, so error paths soak too). A slot
moves to a fresh session every ``--turns-per-session`` turns, so the number of concurrently
active sessions stays constant while no single history grows for the whole run (a history's
growth is data, not a leak). The daemon's RSS (VmRSS, /proc) is sampled every few seconds.

Invariants: RSS at the end ≤ 110 % of RSS at the end of the warm-up (the first fifth of the run,
at least 10 s; half of the reduced run); every turn the daemon accepted has exactly one terminal
event at the client and a turns row with a final status; the daemon process stays up.
"""
from __future__ import annotations

import random
import statistics
from collections import Counter

import trio

from chaos._harness import DaemonProcess, Report, checked_turn, main_exit, scenario_parser, size_label
from chaos.provider_faults import FaultPlan, models_yaml, routing_yaml
from orchestrator.client import open_client
from protocol import events as ev
from tests.fakes import open_fake_anthropic, open_fake_openai

SESSIONS_PER_CLIENT = 25
MAX_GROWTH = 0.10
TURN_DEADLINE_S = 240.0


async def run(*, sessions: int, seconds: float, fault_rate: float, turns_per_session: int, seed: int,
              warmup: float | None = None, size: str = "custom") -> Report:
    report = Report("soak", size)
    report.figures.update(sessions=sessions, seconds=seconds, fault_rate=fault_rate, seed=seed,
                          turns_per_session=turns_per_session)
    plan = FaultPlan(random.Random(seed), fault_rate, 0.0)
    rng = random.Random(seed + 1)
    accepted: dict[str, object] = {}
    outcomes: Counter[str] = Counter()
    samples: list[tuple[float, int]] = []
    throughput: list[int] = []   # turns ended so far, at each RSS sample
    # The turns in the histories of the slots' current sessions: the session data the daemon holds
    # for them (their turns run one after another, so none of them is idle long enough to leave
    # the session cache). It climbs until the slots move to fresh sessions (turns_per_session).
    ages: dict[int, int] = {}
    live_history: list[int] = []
    warmup = max(10.0, seconds / 5) if warmup is None else warmup
    report.figures["warmup_s"] = warmup
    async with open_fake_anthropic(api_key="chaos-anthropic-key") as fa, \
            open_fake_openai(api_key="chaos-openai-key") as fo:
        def reply(vendor: str, fake):
            def choose(model: str, body: dict):
                fake.requests.clear()   # the fake keeps every request; the driver must not grow either
                return plan.reply(vendor, model, body)
            return choose
        fa.reply_for, fo.reply_for = reply("anthropic", fa), reply("openai", fo)
        daemon = DaemonProcess(models=models_yaml(fa.base_url, fo.base_url, ghost=False),
                               routing=routing_yaml(ghost=False),
                               daemon_yaml="log_level: warning\nshutdown_grace_s: 5\nretry_base_delay_s: 0.05\n")
        try:
            await daemon.start()
            start = trio.current_time()
            stop_at = start + seconds

            async def sampler() -> None:
                while daemon.alive():
                    samples.append((round(trio.current_time() - start, 1), daemon.rss_kib()))
                    throughput.append(sum(1 for t in accepted.values() if t is not None))
                    live_history.append(sum(ages.values()))
                    await trio.sleep(2.0)
                report.problem(f"daemon exited during the soak:\n{daemon.log_tail()}")

            async def slot(client, n: int) -> None:
                sid, done_here = None, 0
                while trio.current_time() < stop_at:
                    if sid is None or done_here >= turns_per_session:
                        sid, done_here = (await client.open_session()).session_id, 0
                    marker = rng.choice(("[af] ", "[ad] ", "[om] ", ""))
                    done_here += 1
                    ages[n] = done_here
                    turn = await checked_turn(report, client, sid, f"{marker}soak turn {done_here} of slot {n}",
                                              deadline=TURN_DEADLINE_S, label=f"slot {n}")
                    if turn.turn_id != "?":   # accepted: it must end with one terminal event and a final row
                        accepted[turn.turn_id] = turn.terminal
                    if turn.lost == "hang":
                        sid = None
                        continue
                    if turn.lost:
                        return
                    terminals = sum(isinstance(e, ev.TERMINAL_EVENT_TYPES) for e in turn.events)
                    if terminals != 1:
                        report.problem(f"turn {turn.turn_id}: {terminals} terminal events")
                    t = turn.terminal
                    outcomes[type(t).__name__ + (f":{t.error}" if isinstance(t, ev.TurnFailed) else "")] += 1

            async def client_group(first: int, count: int) -> None:
                async with open_client(daemon.endpoint) as client:
                    async with trio.open_nursery() as n:
                        for i in range(first, first + count):
                            n.start_soon(slot, client, i)

            async with trio.open_nursery() as outer:
                outer.start_soon(sampler)
                async with trio.open_nursery() as groups:
                    for first in range(0, sessions, SESSIONS_PER_CLIENT):
                        groups.start_soon(client_group, first, min(SESSIONS_PER_CLIENT, sessions - first))
                samples.append((round(trio.current_time() - start, 1), daemon.rss_kib()))
                outer.cancel_scope.cancel()
            exit_code = daemon.stop()
            if exit_code != 0:
                report.problem(f"daemon exited {exit_code} on SIGTERM at the end:\n{daemon.log_tail()}")
            _check(report, daemon, accepted, samples, warmup)
            step = max(1, len(samples) // 20)
            timeline = [(t, n, h) for (t, _), n, h in zip(samples, throughput, live_history, strict=False)]
            report.figures["turns_ended_and_live_history_turns_over_time"] = timeline[::step]
            report.figures["daemon_log"] = daemon.log_summary()
        finally:
            daemon.close()
    report.figures["outcomes"] = dict(sorted(outcomes.items()))
    report.figures["faults_injected"] = sum(v for k, v in plan.injected.items() if k != "none")
    return report.finish()


def _check(report: Report, daemon: DaemonProcess, accepted: dict[str, object], samples: list[tuple[float, int]],
           warmup: float) -> None:
    status = dict(daemon.query("SELECT id, status FROM turns"))
    no_terminal = [t for t, term in accepted.items() if term is None]
    no_row = [t for t in accepted if t not in status]
    not_final = [t for t in accepted if status.get(t) not in (None, "completed", "failed", "cancelled")]
    report.figures["turns_accepted"] = len(accepted)
    report.figures["turns_per_s"] = round(len(accepted) / max(samples[-1][0], 1e-9), 1) if samples else None
    for what, ids in (("no terminal event at the client", no_terminal), ("no turns row", no_row),
                      ("no final status on disk", not_final)):
        if ids:
            report.problem(f"{len(ids)} accepted turns with {what}, e.g. {ids[:3]}")
    after_warmup = [kib for t, kib in samples if t >= warmup]
    if len(after_warmup) < 2:
        report.problem(f"too few RSS samples after the {warmup:g} s warm-up: {samples}")
        return
    base, end, peak = after_warmup[0], samples[-1][1], max(kib for _, kib in samples)
    growth = (end - base) / base
    report.figures["rss_kib"] = {"after_warmup": base, "end": end, "peak": peak, "growth_pct": round(growth * 100, 1)}
    report.figures["rss_samples"] = samples[:: max(1, len(samples) // 20)]
    # RSS swings by several MB from one 2 s sample to the next (what 1,000 turns in flight hold):
    # the medians of the 30 s after the warm-up and of the last 30 s, next to the single samples.
    window = [kib for t, kib in samples if warmup <= t < warmup + 30]
    last = [kib for t, kib in samples if t >= samples[-1][0] - 30]
    if window and last:
        m0, m1 = statistics.median(window), statistics.median(last)
        report.figures["rss_median_30s_kib"] = {"after_warmup": m0, "end": m1,
                                                "growth_pct": round((m1 - m0) / m0 * 100, 1)}
    if growth > MAX_GROWTH:
        report.problem(f"RSS grew {growth:.1%} after the warm-up ({base} → {end} KiB), more than {MAX_GROWTH:.0%}")


REDUCED = {"sessions": 100, "seconds": 20.0, "turns_per_session": 3, "warmup": 10.0}
FULL = {"sessions": 1000, "seconds": 600.0, "turns_per_session": 20, "warmup": None}


def main() -> None:
    p = scenario_parser(__doc__, "1,000 sessions for 10 minutes")
    p.add_argument("--sessions", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--fault-rate", type=float, default=0.03)
    p.add_argument("--turns-per-session", type=int, help="default: 20 (full), 3 (reduced)")
    p.add_argument("--warmup", type=float, help="seconds; default: a fifth of the run, at least 10 s (full), "
                                                "half of it (reduced)")
    a = p.parse_args()
    base = FULL if a.full else REDUCED
    sessions = a.sessions or base["sessions"]
    seconds = a.seconds or base["seconds"]
    size = size_label(a.full, a.sessions, a.seconds)
    turns_per_session = a.turns_per_session or base["turns_per_session"]
    warmup = a.warmup if a.warmup is not None else (None if a.full else seconds / 2)
    report = trio.run(lambda: run(sessions=sessions, seconds=seconds, fault_rate=a.fault_rate,
                                  turns_per_session=turns_per_session, seed=a.seed, warmup=warmup, size=size))
    main_exit(report, a.json)


if __name__ == "__main__":
    main()
