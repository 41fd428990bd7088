"""The verdict table (DESIGN §4.10): pilot/land combinations → continue or stop, BLOCKED twice →
strike, malformed → strike, budget and tick limit → stop."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from actors.loops.driver import (
    COMPLETED, FAILED, INTERRUPTED, NO_VERDICT, PILOT, PROMPT, LoopSpec, TickOutcome, judge, outcome_score, struck,
    tick_prompt, wants_land,
)
from actors.loops.verdicts import LAND_VALUES, PILOT_VALUES, Verdict, parse_verdicts

PILOT_LAND = LoopSpec(PILOT, "pilot", land="land")
PILOT_ONLY = LoopSpec(PILOT, "pilot")
PROMPT_ONLY = LoopSpec(PROMPT, "do it")


def V(text: str | None) -> Verdict | None:
    if text is None:
        return None
    value, _, item = text.partition(" ")
    return Verdict(value, item or None)


@pytest.mark.parametrize("spec, pilot, land, land_ran, stop", [
    (PILOT_LAND, "ADVANCED", None, False, None),
    (PILOT_LAND, "DEFERRED_TO_LAND", "LANDED", True, None),
    (PILOT_LAND, "DEFERRED_TO_LAND", "MERGED", True, None),
    (PILOT_LAND, "NO_WORK", "NO_WORK", True, "no_work"),
    (PILOT_LAND, "NO_WORK", "LANDED", True, None),
    (PILOT_LAND, "DEFERRED_TO_LAND", "NO_WORK", True, None),
    (PILOT_LAND, "NEEDS_HUMAN", None, False, "needs_human"),
    (PILOT_LAND, "DEFERRED_TO_LAND", "NEEDS_HUMAN", True, "needs_human"),
    (PILOT_LAND, "BLOCKED fn-1", None, False, None),
    (PILOT_ONLY, "NO_WORK", None, False, "no_work"),
    (PILOT_ONLY, "ADVANCED", None, False, None),
    (PROMPT_ONLY, "NO_WORK", None, False, "no_work"),
    (PROMPT_ONLY, None, "NO_WORK", False, "no_work"),
    (PROMPT_ONLY, "ADVANCED", None, False, None),
    (PROMPT_ONLY, "NEEDS_HUMAN", None, False, "needs_human"),
])
def test_verdict_table_decides_continue_or_stop(spec, pilot, land, land_ran, stop):
    j = judge(spec, {}, TickOutcome(COMPLETED, V(pilot), V(land), land_ran), ticks_done=1, spend=Decimal(0))
    assert j.stop_reason == stop


@pytest.mark.parametrize("pilot", sorted(PILOT_VALUES))
def test_land_runs_only_after_deferred_to_land_or_no_work(pilot):
    assert wants_land(PILOT_LAND, Verdict(pilot)) == (pilot in ("DEFERRED_TO_LAND", "NO_WORK"))
    assert not wants_land(PILOT_ONLY, Verdict(pilot))
    assert not wants_land(PILOT_LAND, None)


def test_blocked_twice_on_the_same_item_strikes_it_and_the_next_prompt_skips_it():
    out = TickOutcome(COMPLETED, Verdict("BLOCKED", "fn-3"))
    first = judge(PILOT_LAND, {}, out, ticks_done=1, spend=Decimal(0))
    assert first.struck_now == () and struck(first.strikes) == []
    second = judge(PILOT_LAND, first.strikes, out, ticks_done=2, spend=Decimal(0))
    assert second.struck_now == ("fn-3",) and second.stop_reason is None
    assert "fn-3" in tick_prompt("work", second.strikes, "l_x") and "--clear-strikes" in tick_prompt(
        "work", second.strikes, "l_x")
    other = judge(PILOT_LAND, first.strikes, TickOutcome(COMPLETED, Verdict("BLOCKED", "fn-4")), ticks_done=2,
                  spend=Decimal(0))
    assert struck(other.strikes) == []


@pytest.mark.parametrize("spec, outcome", [
    (PILOT_LAND, TickOutcome(COMPLETED)),                                        # no verdict at all
    (PILOT_LAND, TickOutcome(COMPLETED, malformed=True)),                         # PILOT_VERDICT=DONE
    (PILOT_LAND, TickOutcome(COMPLETED, Verdict("DEFERRED_TO_LAND"), None, land_ran=True)),   # land said nothing
    (PILOT_LAND, TickOutcome(COMPLETED, Verdict("NO_WORK"), Verdict("NO_WORK"), True, malformed=True)),
    (PROMPT_ONLY, TickOutcome(COMPLETED)),
    (PROMPT_ONLY, TickOutcome(FAILED)),
])
def test_missing_or_malformed_verdict_is_a_strike_and_never_success(spec, outcome):
    j = judge(spec, {}, outcome, ticks_done=1, spend=Decimal(0))
    assert j.strikes.get(NO_VERDICT) == 1
    assert j.no_verdict and not j.progress and j.stop_reason is None
    assert outcome_score(outcome.pilot, no_verdict=True) == 0.0


def test_interrupted_tick_is_no_strike_and_no_stop():
    j = judge(PILOT_LAND, {"x": 1}, TickOutcome(INTERRUPTED), ticks_done=1, spend=Decimal(0))
    assert j.strikes == {"x": 1} and j.stop_reason is None and not j.no_verdict


@pytest.mark.parametrize("budget, spend, max_ticks, done, stop", [
    ("1.00", "1.00", None, 1, "budget"),
    ("1.00", "0.99", None, 1, None),
    (None, "100", 3, 3, "max_ticks"),
    (None, "0", 3, 2, None),
    ("0.5", "0.6", 1, 1, "budget"),
])
def test_budget_and_tick_limit_stop_the_loop(budget, spend, max_ticks, done, stop):
    spec = LoopSpec(PILOT, "p", land="l", budget_usd=budget, max_ticks=max_ticks)
    j = judge(spec, {}, TickOutcome(COMPLETED, Verdict("ADVANCED")), ticks_done=done, spend=Decimal(spend))
    assert j.stop_reason == stop


def test_needs_human_wins_over_the_budget():
    spec = LoopSpec(PILOT, "p", budget_usd="0")
    j = judge(spec, {}, TickOutcome(COMPLETED, Verdict("NEEDS_HUMAN")), ticks_done=1, spend=Decimal(1))
    assert j.stop_reason == "needs_human"


@pytest.mark.parametrize("verdict, score", [
    ("ADVANCED", 1.0), ("LANDED", 1.0), ("MERGED", 1.0), ("BLOCKED", 0.0), ("NO_WORK", None), ("NEEDS_HUMAN", None),
])
def test_verdicts_become_pattern_outcome_signals(verdict, score):
    assert outcome_score(Verdict(verdict), no_verdict=False) == score


# --- the parser -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, pilot, land, malformed", [
    ("work done\nPILOT_VERDICT=ADVANCED", "ADVANCED", None, ()),
    ("PILOT_VERDICT=BLOCKED fn-12 waiting on review\n", "BLOCKED fn-12 waiting on review", None, ()),
    ("`PILOT_VERDICT=DEFERRED_TO_LAND`", "DEFERRED_TO_LAND", None, ()),
    ("**LAND_VERDICT=NO_WORK**", None, "NO_WORK", ()),
    ("PILOT_VERDICT=NO_WORK\nLAND_VERDICT=MERGED pr-7", "NO_WORK", "MERGED pr-7", ()),
    ("PILOT_VERDICT=DONE", None, None, ("PILOT_VERDICT",)),
    ("PILOT_VERDICT=ADVANCED\nPILOT_VERDICT=SHIPPED", None, None, ("PILOT_VERDICT",)),
    ("PILOT_VERDICT=NEEDS_HUMAN\nPILOT_VERDICT=ADVANCED", "ADVANCED", None, ()),
    ("LAND_VERDICT=DEFERRED_TO_LAND", None, None, ("LAND_VERDICT",)),
    ("no verdict here", None, None, ()),
    ("PILOT_VERDICT=ADVANCED\n" + "\n".join(f"line {i}" for i in range(20)), None, None, ()),
    ("say PILOT_VERDICT=ADVANCED in prose", None, None, ()),
])
def test_parser_reads_the_last_lines(text, pilot, land, malformed):
    got = parse_verdicts(text)
    assert (str(got.pilot) if got.pilot else None, str(got.land) if got.land else None, got.malformed) == (
        pilot, land, malformed)


_noise = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60).filter(
    lambda s: "VERDICT" not in s.upper())


@given(st.lists(_noise, max_size=8), st.sampled_from(sorted(PILOT_VALUES)), st.sampled_from(sorted(LAND_VALUES)),
       st.one_of(st.none(), st.from_regex(r"[a-z]{1,5}-[0-9]{1,3}", fullmatch=True)))
def test_parser_finds_valid_verdicts_after_any_prose(prose, pilot, land, item):
    suffix = f" {item}" if item else ""
    text = "\n".join([*prose, f"PILOT_VERDICT={pilot}{suffix}", f"LAND_VERDICT={land}"])
    got = parse_verdicts(text)
    assert got.pilot == Verdict(pilot, item) and got.land == Verdict(land) and got.malformed == ()


@given(st.text(max_size=400))
def test_parser_never_crashes_and_only_returns_known_values(text):
    got = parse_verdicts(text)
    assert got.pilot is None or got.pilot.value in PILOT_VALUES
    assert got.land is None or got.land.value in LAND_VALUES
