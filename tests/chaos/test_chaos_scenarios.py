"""The chaos/ scenarios in their reduced size (the full sizes and measured figures: docs/reliability.md).

Each runs a real ``orchestrator serve`` process against the fake providers on 127.0.0.1 and
checks its invariants from outside; a scenario's report lists every invariant that broke.
"""
from chaos import fuzz_frames, kill9, provider_faults, soak


async def test_turns_under_injected_provider_faults_complete_on_a_validated_model_or_fail_with_the_spec_text():
    # …and the daemon never crashes, answers status throughout, and its ledger equals what the
    # fake providers billed.
    report = await provider_faults.run(**provider_faults.REDUCED, rate=0.2, auth_rate=0.004, seed=19,
                                       reset_every=5.0, size="reduced")
    assert report.ok, report.render()
    assert report.figures["outcomes"]["completed"] > 0
    injected = report.figures["faults_injected"]
    assert {"timeout", "cut_mid_stream", "malformed_sse", "429_retry_after", "500"} <= set(injected), injected


async def test_kill_9_mid_turn_and_mid_loop_loses_no_committed_row_tick_strike_or_spend_and_loops_resume():
    # Three loops tick all along (chaos/kill9_loops.py); the kills land at random, mid-tick and the
    # instant a tick's end is heard; after the last restart every loop stops on its NO_WORK verdict.
    report = await kill9.run(**kill9.REDUCED, seed=19, size="reduced")
    assert report.ok, report.render()
    assert report.figures["mid_turn_kills"] == kill9.REDUCED["kills"]
    assert report.figures["loop_ticks_cut_by_a_kill"] > 0
    assert report.figures["loop_stop"] == {"A": "finished/no_work", "B": "finished/no_work", "C": "finished/no_work"}


async def test_fuzzed_frames_never_crash_the_decoder_and_the_live_daemon_answers_each_bad_one_with_a_failure():
    report = await fuzz_frames.run(**fuzz_frames.REDUCED, seed=19, size="reduced")
    assert report.ok, report.render()
    assert "CRASH" not in report.figures["decoder_outcomes"]


async def test_a_soak_of_concurrent_sessions_keeps_daemon_rss_growth_within_ten_percent_and_loses_no_turn():
    report = await soak.run(**soak.REDUCED, fault_rate=0.03, seed=19, size="reduced")
    assert report.ok, report.render()
    assert report.figures["turns_accepted"] > soak.REDUCED["sessions"]
