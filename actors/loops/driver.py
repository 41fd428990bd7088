"""The composed pilot/land driver (DESIGN §4.10, the seed's "Pilot and land"): what a tick runs,
and what its verdicts mean for the loop — continue, strike an item, or stop with a reason.

Pure: no trio, no store. The runner (``runner.py``) asks ``wants_land`` between pilot and land and
``judge`` once the tick is over; the actor persists what ``judge`` returns.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs
from attrs import frozen

from .verdicts import Verdict

if TYPE_CHECKING:
    from protocol.messages import StartLoop

PROMPT, PILOT, WORKFLOW = "prompt", "pilot", "workflow"
MODES = (PROMPT, PILOT, WORKFLOW)
# Tick statuses (stored and shown): a tick that ran to its end, one whose turn failed, one that a
# crash, a shutdown or `loop stop` cut short. Only ``running`` is never shown as a finished tick.
COMPLETED, FAILED, INTERRUPTED, RUNNING = "completed", "failed", "interrupted", "running"
# Loop states and stop reasons (the contract's words).
STATE_RUNNING, STATE_STOPPED, STATE_FINISHED, STATE_WAITING = "running", "stopped", "finished", "waiting_approval"
NO_WORK, NEEDS_HUMAN, BUDGET, MAX_TICKS, STOPPED = "no_work", "needs_human", "budget", "max_ticks", "stopped"
STOP_REASONS = (NO_WORK, NEEDS_HUMAN, BUDGET, MAX_TICKS, STOPPED)

STRIKE_LIMIT = 2                 # BLOCKED twice on the same item → struck
NO_VERDICT = "(no verdict)"      # the strike ledger's key for a tick without a valid verdict
UNNAMED = "(unnamed item)"       # BLOCKED without naming an item
LAND_AFTER = frozenset({"DEFERRED_TO_LAND", "NO_WORK"})
PROGRESS = frozenset({"ADVANCED", "LANDED", "MERGED"})


@frozen
class LoopSpec:
    """What ``loop start`` asked for. ``text`` is the --prompt or --pilot text."""

    mode: str
    text: str = ""
    land: str | None = None
    workflow: str | None = None
    every_s: float = 0.0
    max_ticks: int | None = None
    budget_usd: str | None = None          # a decimal as text: money is never a float here
    workspace: str | None = None

    @classmethod
    def from_start(cls, start: StartLoop, workspace: str | None) -> LoopSpec:
        """The spec of a validated ``loop start``, field by field (by name: the two classes cannot
        drift apart silently); what its mode does not use is dropped, ``workspace`` is the resolved path."""
        fields = attrs.asdict(start, recurse=False)
        fields.update(land=start.land if start.mode == PILOT else None,
                      workflow=start.workflow if start.mode == WORKFLOW else None,
                      every_s=float(start.every_s), workspace=workspace)
        return cls(**fields)


@frozen
class TickOutcome:
    """What a tick produced. ``pilot``/``land`` are the valid verdicts; ``land_ran`` says whether the
    land step ran (then its verdict is required); ``malformed`` whether a verdict line was invalid."""

    status: str
    pilot: Verdict | None = None
    land: Verdict | None = None
    land_ran: bool = False
    malformed: bool = False


@frozen
class Judgement:
    stop_reason: str | None
    strikes: dict[str, int]
    struck_now: tuple[str, ...] = ()
    progress: bool = False        # ADVANCED / LANDED / MERGED
    no_verdict: bool = False      # the tick counts as a strike for a missing or malformed verdict


def wants_land(spec: LoopSpec, pilot: Verdict | None) -> bool:
    """With --land, land runs in the same tick after pilot says DEFERRED_TO_LAND or NO_WORK."""
    return spec.mode == PILOT and bool(spec.land) and pilot is not None and pilot.value in LAND_AFTER


def struck(strikes: Mapping[str, int]) -> list[str]:
    """Items to skip: BLOCKED twice (the no-verdict counter is not an item)."""
    return sorted(k for k, n in strikes.items() if n >= STRIKE_LIMIT and k != NO_VERDICT)


def tick_prompt(base: str, strikes: Mapping[str, int], loop_id: str = "") -> str:
    """The prompt of the next tick: the user's text, and which struck items to skip."""
    items = struck(strikes)
    if not items:
        return base
    clear = f" (a human clears them with `orchestrator loop resume {loop_id} --clear-strikes`)" if loop_id else ""
    return (f"{base}\n\nSkip these items: each was BLOCKED twice and is struck{clear}: "
            + ", ".join(items) + ".")


def budget_reached(spec: LoopSpec, spend: Decimal) -> bool:
    return spec.budget_usd is not None and spend >= Decimal(spec.budget_usd)


def limit_reached(spec: LoopSpec, ticks_done: int) -> bool:
    return spec.max_ticks is not None and ticks_done >= spec.max_ticks


def judge(spec: LoopSpec, strikes: Mapping[str, int], outcome: TickOutcome, *, ticks_done: int,
          spend: Decimal) -> Judgement:
    """The verdict table. ``ticks_done`` counts this tick; ``spend`` includes it."""
    ledger = dict(strikes)
    before = set(struck(ledger))
    verdicts = [v for v in (outcome.pilot, outcome.land) if v is not None]
    stop: str | None = None
    no_verdict = False
    if outcome.status != INTERRUPTED:     # a crash or a stop is nobody's verdict: no strike, no stop
        if spec.mode == PILOT:
            missing = outcome.pilot is None or (outcome.land_ran and outcome.land is None)
        else:
            missing = not verdicts
        if missing or outcome.malformed:
            no_verdict = True
            ledger[NO_VERDICT] = ledger.get(NO_VERDICT, 0) + 1
        for v in verdicts:
            if v.value == "BLOCKED":
                key = v.item or UNNAMED
                ledger[key] = ledger.get(key, 0) + 1
        if any(v.value == "NEEDS_HUMAN" for v in verdicts):
            stop = NEEDS_HUMAN
        elif _no_work(spec, outcome):
            stop = NO_WORK
    if stop is None and budget_reached(spec, spend):
        stop = BUDGET
    if stop is None and limit_reached(spec, ticks_done):
        stop = MAX_TICKS
    progress = not no_verdict and any(v.value in PROGRESS for v in verdicts)
    now = tuple(i for i in struck(ledger) if i not in before)
    return Judgement(stop, ledger, now, progress, no_verdict)


def _no_work(spec: LoopSpec, outcome: TickOutcome) -> bool:
    if outcome.malformed:
        return False
    pilot, land = outcome.pilot, outcome.land
    if spec.mode == PILOT:
        if pilot is None or pilot.value != "NO_WORK":
            return False
        return not spec.land or (land is not None and land.value == "NO_WORK")
    verdict = pilot or land              # --prompt / --workflow: the one verdict of the output
    return verdict is not None and verdict.value == "NO_WORK"


def outcome_score(verdict: Verdict | None, *, no_verdict: bool) -> float | None:
    """A verdict as a pattern-store outcome: progress 1, stuck or silent 0, no work → no signal."""
    if no_verdict:
        return 0.0
    if verdict is None:
        return None
    if verdict.value in PROGRESS:
        return 1.0
    if verdict.value == "BLOCKED":
        return 0.0
    return None
