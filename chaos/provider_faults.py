"""Provider faults: turns through a real daemon against the fake providers, faults injected at a rate.

    python -m chaos.provider_faults            # reduced (CI): 600 turns
    python -m chaos.provider_faults --full     # 10,000 turns
    python -m chaos.provider_faults --turns N --rate 0.25 --concurrency 24 --seed 7

Two strict fake providers (Anthropic Messages, OpenAI Chat Completions; tests/fakes) on 127.0.0.1
answer every request from a seeded random choice: a normal streamed answer with random usage, or —
at ``--rate`` — one fault: 429 with and without ``retry-after``, 500/503/529, a first byte later
than the provider's ``timeout_s`` (then the connection drops), a slow but in-time first byte, a
stream cut before or after the first delta, malformed SSE, an in-stream error event; at
``--auth-rate`` a 401 or 403 (which takes the whole provider down, spec §4.5). A third provider's
``base_url`` is on an ``.invalid`` host: every call to it is a DNS failure. Rules route the turns
over five models of the chain; half the sessions have a workspace with ``mid_turn_fallback: true``.
An "operator" resets availability every ``--reset-every`` seconds, standing in for the spec's
5-minute auto-clear, so faulted providers come back within the run.

Invariants (each breach is a problem in the report; exit 1):
- every turn ends with exactly one terminal event within a bound (no hang): ``turn.completed`` on
  a model of the registry that is not the DNS-dead one, or ``turn.failed`` whose message is the
  spec's hard-failure text (``No model available for this turn.`` + ``Tried: …``) or one clear
  line (no traceback) with a provider error code; never ``internal_error``;
- routing banners are the spec's fall-through texts;
- the daemon process never exits and answers ``status`` throughout;
- the ledger's rows the providers reported equal, per model, the calls and tokens the fakes
  billed (answers served in full); calls that broke mid-stream are in the ledger as estimates.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import trio

from chaos._harness import DaemonProcess, Report, checked_turn, ledger_totals, main_exit, scenario_parser, size_label
from orchestrator.client import DaemonUnreachable, open_client
from protocol import events as ev
from tests.fakes import Answer, Fail, FakeAnthropic, FakeOpenAI, Tokens, open_fake_anthropic, open_fake_openai

TIMEOUT_S = 3.0                 # the fake providers' timeout_s: a slower first byte is a timeout
TURN_DEADLINE_S = 240.0         # a turn without a terminal event by then hangs (5 attempts × timeouts + backoff)
DNS_HOST = "chaos-provider.invalid"
MODELS = {  # id → (routing marker, price in/out per Mtok)
    "anthropic:claude-fast": ("[af]", 1.0, 5.0),
    "anthropic:claude-deep": ("[ad]", 3.0, 15.0),
    "openai:gpt-main": (None, 1.25, 10.0),        # the global default: the chain's floor
    "openai:gpt-mini": ("[om]", 0.25, 2.0),
    "ghost:gpt-ghost": ("[gh]", 1.0, 1.0),        # DNS failure on every call
}
VALID_MODELS = {m for m in MODELS if not m.startswith("ghost:")}
MARKERS = [marker for marker, _, _ in MODELS.values()]
MARKER_WEIGHTS = [22, 18, 30, 25, 5]             # marker None: the global default
KNOWN_FAILURES = {"provider_rate_limit", "provider_server_error", "provider_timeout", "provider_network",
                  "provider_auth", "no_model_available"}
NO_MODEL_HEAD = "No model available for this turn."
FELL_THROUGH = [re.compile(r"^\S+ currently unavailable\. Routing fell through to \S+\.$"),
                re.compile(r"^\S+ provider currently unavailable\. Routing fell through to \S+ \(.+\)\.$")]


def models_yaml(anthropic_url: str, openai_url: str, *, ghost: bool = True) -> str:
    lines = ["providers:",
             f'  anthropic: {{kind: anthropic, base_url: "{anthropic_url}", timeout_s: {TIMEOUT_S}}}',
             f'  openai: {{kind: openai, base_url: "{openai_url}", timeout_s: {TIMEOUT_S}}}',
             f'  ghost: {{kind: openai, base_url: "http://{DNS_HOST}/v1", api_key_env: GHOST_API_KEY, '
             f'timeout_s: {TIMEOUT_S}}}',
             "models:"]
    for model, (_, pin, pout) in MODELS.items():
        if model.startswith("ghost:") and not ghost:
            continue
        lines += [f'  "{model}":', "    tier: balanced",
                  "    capabilities: {max_context_tokens: 200000, supports_tools: true}",
                  f"    pricing: {{input_per_mtok: {pin}, output_per_mtok: {pout}}}"]
    return "\n".join(lines) + "\n"


def routing_yaml(*, ghost: bool = True) -> str:
    out = "schema_version: 1\nglobal_default: openai:gpt-main\nrules:\n"
    for model, (marker, _, _) in MODELS.items():
        if marker and (ghost or not model.startswith("ghost:")):
            out += f'  - name: "{marker}"\n    when: {{message_contains_any: ["{marker}"]}}\n    use: {model}\n'
    return out


class FaultPlan:
    """The seeded choice of every fake reply; counts what it injected."""

    FAULTS = ("429_retry_after", "429_plain", "500", "503", "529", "timeout", "slow_first_byte", "cut_before_first",
              "cut_mid_stream", "malformed_sse", "stream_error_event")

    def __init__(self, rng: random.Random, rate: float, auth_rate: float):
        self.rng, self.rate, self.auth_rate = rng, rate, auth_rate
        self.injected: Counter[str] = Counter()

    def answer(self, **kw) -> Answer:
        r = self.rng
        usage = Tokens(input=r.randint(5, 900), output=r.randint(1, 300),
                       cache_read=r.choice((0, 0, 0, r.randint(1, 400))))
        return Answer(text=("The ", "answer ", "is ", "here."), usage=usage, **kw)

    def reply(self, vendor: str, model: str, body: dict) -> Answer | Fail:
        r = self.rng
        roll = r.random()
        if roll < self.auth_rate:
            status = r.choice((401, 403))
            self.injected[f"auth_{status}"] += 1
            if vendor == "anthropic":
                return Fail(status, "authentication_error" if status == 401 else "permission_error", "chaos: auth")
            return Fail(status, "invalid_request_error", "chaos: auth",
                        code="invalid_api_key" if status == 401 else None)
        if roll >= self.auth_rate + self.rate:
            self.injected["none"] += 1
            return self.answer()
        fault = r.choice(self.FAULTS)
        self.injected[fault] += 1
        rate_type = "rate_limit_error" if vendor == "anthropic" else "requests"
        code = None if vendor == "anthropic" else "rate_limit_exceeded"
        server = "api_error" if vendor == "anthropic" else "server_error"
        match fault:
            case "429_retry_after":
                return Fail(429, rate_type, "chaos: slow down", code=code, retry_after="0.2")
            case "429_plain":
                return Fail(429, rate_type, "chaos: slow down", code=code)
            case "500" | "503":
                return Fail(int(fault), server, "chaos: server error")
            case "529":
                return Fail(529, "overloaded_error" if vendor == "anthropic" else server, "chaos: overloaded")
            case "timeout":
                return self.answer(headers_delay=TIMEOUT_S * 3, cut_after=0)
            case "slow_first_byte":
                return self.answer(headers_delay=TIMEOUT_S / 6)
            case "cut_before_first":
                return self.answer(cut_after=0)
            case "cut_mid_stream":
                return self.answer(cut_after=2)
            case "malformed_sse":
                return self.answer(garble_after=r.choice((0, 2)))
            case _:
                return self.answer(error_after=r.choice((0, 2)),
                                   error=Fail(500, "api_error" if vendor == "anthropic" else "server_error",
                                              "chaos: stream error"))


def check_terminal(report: Report, turn_id: str, events: list, outcomes: Counter) -> None:
    terminals = [e for e in events if isinstance(e, ev.TERMINAL_EVENT_TYPES)]
    if len(terminals) != 1:
        report.problem(f"turn {turn_id}: {len(terminals)} terminal events")
        return
    t = terminals[0]
    for b in events:
        if isinstance(b, ev.Banner):
            outcomes[f"banner:{b.kind}"] += 1
            if b.kind == "routing" and not any(p.match(b.text) for p in FELL_THROUGH):
                report.problem(f"turn {turn_id}: routing banner not in the spec's words: {b.text!r}")
    if isinstance(t, ev.TurnCompleted):
        outcomes["completed"] += 1
        if t.model not in VALID_MODELS:
            report.problem(f"turn {turn_id} completed on {t.model!r}, not a validated model")
        return
    if not isinstance(t, ev.TurnFailed):
        report.problem(f"turn {turn_id}: unexpected terminal {t!r}")
        return
    outcomes[f"failed:{t.error}"] += 1
    message = t.message or ""
    if t.error not in KNOWN_FAILURES:
        report.problem(f"turn {turn_id} failed with {t.error}: {message[:300]!r}")
    if "Traceback" in message or not message.strip():
        report.problem(f"turn {turn_id}: failure message is empty or a traceback: {message[:300]!r}")
    if t.error == "no_model_available":
        lines = message.splitlines()
        if lines[:1] != [NO_MODEL_HEAD] or not any(line.startswith("Tried: ") for line in lines):
            report.problem(f"turn {turn_id}: hard failure not in the spec's text: {message!r}")
    elif "\n" in message:
        report.problem(f"turn {turn_id}: failure message is not one line: {message[:300]!r}")


async def run(*, turns: int, concurrency: int, rate: float, auth_rate: float, seed: int, reset_every: float,
              turns_per_session: int = 8, size: str = "custom") -> Report:
    report = Report("provider_faults", size)
    rng = random.Random(seed)
    plan = FaultPlan(rng, rate, auth_rate)
    report.figures.update(turns=turns, concurrency=concurrency, fault_rate=rate, auth_rate=auth_rate, seed=seed)
    async with open_fake_anthropic(api_key="chaos-anthropic-key") as fa, \
            open_fake_openai(api_key="chaos-openai-key") as fo:
        fakes: dict[str, FakeAnthropic | FakeOpenAI] = {"anthropic": fa, "openai": fo}
        fa.reply_for = lambda model, body: plan.reply("anthropic", model, body)
        fo.reply_for = lambda model, body: plan.reply("openai", model, body)
        daemon = DaemonProcess(models=models_yaml(fa.base_url, fo.base_url), routing=routing_yaml(),
                               daemon_yaml="log_level: warning\nshutdown_grace_s: 5\nretry_base_delay_s: 0.05\n")
        workspace = daemon.root / "ws"
        (workspace / ".orchestrator").mkdir(parents=True)
        (workspace / ".orchestrator" / "workspace.yaml").write_text("mid_turn_fallback: true\n")
        try:
            await daemon.start()
            await _drive(report, daemon, plan, turns, concurrency, reset_every, turns_per_session, workspace,
                         random.Random(seed + 1))
            exit_code = daemon.stop()
            if exit_code != 0:
                report.problem(f"daemon exited {exit_code} on SIGTERM after the run:\n{daemon.log_tail()}")
            _check_ledger(report, daemon, fakes)
        finally:
            daemon.close()
    report.figures["faults_injected"] = dict(sorted(plan.injected.items()))
    report.figures["fake_requests"] = {name: len(f.requests) for name, f in fakes.items()}
    violations = [v for f in fakes.values() for v in f.violations if not v.startswith("auth:")]
    if violations:
        report.problem(f"{len(violations)} requests the strict fakes rejected, e.g. {violations[:3]}")
    return report.finish()


async def _drive(report: Report, daemon: DaemonProcess, plan: FaultPlan, turns: int, concurrency: int,
                 reset_every: float, turns_per_session: int, workspace: Path, rng: random.Random) -> None:
    outcomes: Counter[str] = Counter()
    status = {"answered": 0, "unanswered": 0}
    next_turn = iter(range(turns))
    done = trio.Event()

    async def watch(client) -> None:
        while not done.is_set():
            if not daemon.alive():
                report.problem(f"daemon exited ({daemon.proc.returncode if daemon.proc else '?'}):\n"
                               f"{daemon.log_tail()}")
                return
            try:
                await client.status()
                status["answered"] += 1
            except DaemonUnreachable:
                status["unanswered"] += 1
                report.problem("daemon did not answer status")
            with trio.move_on_after(1.0):
                await done.wait()

    async def operator(client) -> None:
        while not done.is_set():
            with trio.move_on_after(reset_every):
                await done.wait()
            for scope in ("anthropic", "openai", "ghost"):
                await client.reset_availability(scope)

    async def worker(client, w: int) -> None:
        sid = None
        for n in next_turn:
            if n % turns_per_session == 0 or sid is None:
                ws = str(workspace) if w % 2 else None
                sid = (await client.open_session(workspace=ws)).session_id
            marker = rng.choices(MARKERS, MARKER_WEIGHTS)[0]
            text = f"{marker or ''} chaos question {n}".strip()
            turn = await checked_turn(report, client, sid, text, deadline=TURN_DEADLINE_S, label=repr(text))
            if turn.lost == "hang":
                sid = None
                continue
            if turn.lost:
                return
            events = turn.events
            check_terminal(report, turn.turn_id, events, outcomes)
            if w % 2 and isinstance(events[-1], ev.TurnFailed):
                outcomes[f"failed_with_mid_turn_fallback_on:{events[-1].error}"] += 1

    clients = max(1, concurrency // 8)
    async with open_client(daemon.endpoint) as control:
        async with trio.open_nursery() as background:
            background.start_soon(watch, control)
            background.start_soon(operator, control)
            async with trio.open_nursery() as workers:
                for c in range(clients):
                    workers.start_soon(_client_workers, daemon.endpoint, worker, range(c, concurrency, clients))
            done.set()
            background.cancel_scope.cancel()
    report.figures["outcomes"] = dict(sorted(outcomes.items()))
    report.figures["status_checks"] = status
    seen = sum(n for k, n in outcomes.items() if not k.startswith(("banner:", "failed_with_")))
    if seen != turns:
        report.problem(f"{turns - seen} of {turns} turns ended without a checked terminal event")


async def _client_workers(endpoint: str, worker, indexes: range) -> None:
    async with open_client(endpoint) as client:
        async with trio.open_nursery() as n:
            for w in indexes:
                n.start_soon(worker, client, w)


def _check_ledger(report: Report, daemon: DaemonProcess, fakes: dict[str, FakeAnthropic | FakeOpenAI]) -> None:
    ledger = ledger_totals(daemon)
    billed: dict[str, dict[str, int]] = {}
    for provider, fake in fakes.items():
        for name, tokens in fake.billed.items():
            billed[f"{provider}:{name}"] = {"calls": fake.billed_calls[name], "input": tokens.input,
                                            "output": tokens.output, "cache_read": tokens.cache_read,
                                            "cache_write": tokens.cache_write}
    report.figures["billed_by_fakes"] = billed
    report.figures["ledger"] = ledger
    for model in sorted(set(billed) | set(ledger)):
        mine = {k: v for k, v in ledger.get(model, {}).items() if k != "estimated_calls"}
        theirs = billed.get(model, {"calls": 0, "input": 0, "output": 0, "cache_read": 0, "cache_write": 0})
        if mine and mine != theirs or not mine and theirs["calls"]:
            report.problem(f"ledger for {model} {mine} != what the fake provider billed {theirs}")
    running = daemon.query("SELECT COUNT(*) FROM turns WHERE status='running'")[0][0]
    if running:
        report.problem(f"{running} turns still 'running' in the database after a clean stop")


# The reduced size CI runs (tests/chaos) and the documented full size.
REDUCED = {"turns": 600, "concurrency": 16}
FULL = {"turns": 10_000, "concurrency": 32}


def main() -> None:
    p = scenario_parser(__doc__, "10,000 turns")
    p.add_argument("--turns", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--rate", type=float, default=0.2, help="share of provider requests that get a fault")
    p.add_argument("--auth-rate", type=float, default=0.004, help="share that get a 401/403")
    p.add_argument("--reset-every", type=float, default=5.0, help="seconds between availability resets")
    a = p.parse_args()
    size = FULL if a.full else REDUCED
    turns = a.turns or size["turns"]
    concurrency = a.concurrency or size["concurrency"]
    report = trio.run(lambda: run(turns=turns, concurrency=concurrency, rate=a.rate, auth_rate=a.auth_rate,
                                  seed=a.seed, reset_every=a.reset_every,
                                  size=size_label(a.full, a.turns)))
    main_exit(report, a.json)


if __name__ == "__main__":
    main()
