"""`orchestrator run` end to end on fake providers: the QC loop with provenance, fallback chains,
and cancellation of every running step."""
import pytest
import trio
import trio.testing

from actors.workflows import RunContext
from orchestrator.client import open_client
from orchestrator.workflows_run import WorkflowFailed, WorkflowRunner, load_home_config
from protocol.messages import GetHistory
from tests.fakes import Answer, Fail

from .conftest import cli, start, write_home

FINAL = "The final answer.\nUnresolved concerns:\n- the benchmark is synthetic\n\nConfidence: 82"


async def test_qc_runs_the_five_step_loop_with_provenance(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("the draft",)), Answer(text=("self-review: fine",)), Answer(text=(FINAL,)))
    oai.script(Answer(text=("cross-check: one gap",)))
    out = await cli(paths, "run", "qc", "--input", "summarise the design", "--json")
    assert out.returncode == 0, out.stderr
    lines = out.lines()
    terminal = lines[-1]
    assert terminal["type"] == "workflow.completed"
    assert all(line.get("step") for line in lines[:-1])
    routes = [(line["step"], line["chosen_model"]) for line in lines if line["type"] == "route.decided"]
    assert routes == [("produce", "anthropic:claude-sonnet-4-6"), ("self-review", "anthropic:claude-sonnet-4-6"),
                      ("cross-check", "openai:gpt-5.4"), ("synthesize", "anthropic:claude-opus-4-8")]
    result = terminal["result"]
    assert result["output"] == FINAL
    assert result["confidence"] == 82 and result["concerns"] == ["the benchmark is synthetic"]
    assert result["steps_completed"] == 4
    assert float(result["cost_usd"]) > 0
    prov = result["provenance"]
    assert [(p["step"], p["model"], p["status"]) for p in prov] == [
        ("produce", "anthropic:claude-sonnet-4-6", "run"), ("self-review", "anthropic:claude-sonnet-4-6", "run"),
        ("cross-check", "openai:gpt-5.4", "run"), ("synthesize", "anthropic:claude-opus-4-8", "run")]
    assert all(p["turn_id"] for p in prov) and len({p["turn_id"] for p in prov}) == 4
    assert "outside the producer's family (anthropic)" in prov[2]["reason"]
    # Each step read the earlier ones: the cross-check saw the draft and the self-review.
    cross_prompt = str(oai.requests[-1].json["messages"])
    assert "the draft" in cross_prompt and "self-review: fine" in cross_prompt
    trace = await cli(paths, "trace", prov[2]["turn_id"])
    assert trace.returncode == 0 and "openai:gpt-5.4" in trace.stdout
    daemon.request_stop("test over")


async def test_low_stakes_qc_skips_cross_check_and_synthesis_and_says_why(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("the draft\nConfidence: 75",)), Answer(text=("fine\nConfidence: 40",)))
    out = await cli(paths, "run", "qc", "--input", "rename a variable", "--stakes", "low", "--json")
    assert out.returncode == 0, out.stderr
    result = out.lines()[-1]["result"]
    assert [(p["step"], p["status"]) for p in result["provenance"]] == [
        ("produce", "run"), ("self-review", "run"), ("cross-check", "skipped"), ("synthesize", "skipped")]
    assert result["provenance"][2]["reason"] == "low stakes: self-review is sufficient"
    # The self-review judged the draft; the draft is the deliverable, with its own confidence.
    assert result["output"] == "the draft\nConfidence: 75"
    assert result["confidence"] == 75 and result["steps_completed"] == 2
    assert not oai.requests
    daemon.request_stop("test over")


CHAIN = """schema_version: 1
fallback_chains:
  production:
    - {model: "anthropic:claude-sonnet-4-6", timeout: 1s, retry: 1}
    - {model: "openai:gpt-5.4", timeout: 30s, retry: 0}
workflows:
  answer-with-fallback:
    steps:
      - name: answer
        chain: production
        prompt: "Answer the task. End with a line 'Confidence: N' (0-100)."
"""


async def test_fallback_chain_retries_a_timeout_then_falls_back(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url, CHAIN)
    daemon = await start(nursery, paths)
    # The first entry never answers within its timeout, twice (one retry); the second one answers.
    anth.script(Answer(text=("late",), headers_delay=60), Answer(text=("late",), headers_delay=60))
    oai.script(Answer(text=("42\nConfidence: 90",)))
    out = await cli(paths, "run", "answer-with-fallback", "--input", "what is 6*7?", "--json")
    assert out.returncode == 0, out.stderr
    lines = out.lines()
    attempts = [(line["attempt"], line["fallback_depth"], line["chosen_model"]) for line in lines
                if line["type"] == "route.decided"]
    assert attempts == [(1, 0, "anthropic:claude-sonnet-4-6"), (2, 0, "anthropic:claude-sonnet-4-6"),
                        (1, 1, "openai:gpt-5.4")]
    assert [line["reason"] for line in lines if line["type"] == "turn.cancelled"] == ["cancelled_by_user"] * 2
    (prov,) = lines[-1]["result"]["provenance"]
    assert (prov["model"], prov["attempt"], prov["fallback_depth"], prov["chain"]) == ("openai:gpt-5.4", 1, 1,
                                                                                       "production")
    daemon.request_stop("test over")


async def test_low_confidence_falls_through_without_retry_and_exhaustion_names_the_chain(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url, CHAIN)
    daemon = await start(nursery, paths, retry_max_attempts=1)
    anth.script(Answer(text=("maybe\nConfidence: 10",)))
    oai.script(Fail(429, "rate_limit_error", code="rate_limit_exceeded"))
    out = await cli(paths, "run", "answer-with-fallback", "--input", "guess", "--json")
    assert out.returncode == 1
    terminal = out.lines()[-1]
    assert terminal["type"] == "workflow.failed" and terminal["error"] == "all_models_failed"
    assert "chain 'production'" in terminal["message"]
    assert "anthropic:claude-sonnet-4-6#1: low_confidence" in terminal["message"]
    assert len(anth.requests) == 1          # low confidence: no retry of the same entry
    daemon.request_stop("test over")


SLOW_PARALLEL = """schema_version: 1
workflows:
  fan-out:
    steps:
      - name: validate
        parallel: [{model: "anthropic:claude-sonnet-4-6"}, {model: "openai:gpt-5.4"}, {model: "openai:gpt-5.4-mini"}]
        prompt: "Review for accuracy: {input}"
"""


async def test_cancelling_a_workflow_cancels_every_running_step_and_leaves_valid_histories(
        nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url, SLOW_PARALLEL)
    daemon = await start(nursery, paths)
    slow = Answer(text=tuple(f"w{i} " for i in range(200)), delay=0.5)
    anth.script(slow)
    oai.script(slow, slow)
    home = load_home_config(paths.home)
    events: list[dict] = []
    started = trio.Event()

    def emit(obj: dict) -> None:
        events.append(obj)
        if sum(1 for e in events if e["type"] == "text.delta" and e["step"] == "validate") and \
                len({e["branch"] for e in events if e["type"] == "text.delta"}) == 3:
            started.set()

    async with open_client(paths.endpoint) as client:
        runner = WorkflowRunner(client, home.workflows, home.registry, home.roles, emit=emit)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as inner:
                inner.start_soon(runner.run, "fan-out", "the draft", RunContext())
                await started.wait()
                scope.cancel()
        cancelled = {e["branch"]: e for e in events if e["type"] == "turn.cancelled"}
        assert sorted(cancelled) == [0, 1, 2]
        for e in cancelled.values():
            history = await client.request("session", GetHistory(e["session_id"]))
            assert [m.role.value for m in history.messages][:1] == ["user"]
    daemon.request_stop("test over")


async def test_an_unknown_workflow_is_one_line(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    out = await cli(paths, "run", "nope", "--input", "x")
    assert out.returncode == 1
    assert out.stderr.strip() == "orchestrator: no workflow named 'nope' (defined: qc)"
    async with open_client(paths.endpoint) as client:
        runner = WorkflowRunner(client, load_home_config(paths.home).workflows, load_home_config(paths.home).registry)
        with pytest.raises(WorkflowFailed):
            await runner.run("nope", "x", RunContext())
    daemon.request_stop("test over")


async def test_a_failing_step_fails_the_workflow_with_the_turns_error(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Fail(401, "authentication_error", "bad key"))
    out = await cli(paths, "run", "qc", "--input", "x", "--json")
    assert out.returncode == 1
    terminal = out.lines()[-1]
    assert terminal["type"] == "workflow.failed" and terminal["error"] == "provider_auth"
    assert terminal["message"].startswith("step 'produce' failed on anthropic:claude-sonnet-4-6")
    daemon.request_stop("test over")


async def test_ctrl_c_cancels_the_running_step_and_exits_130(nursery, short_tmp, fakes):
    import json
    import os
    import signal
    import subprocess
    import sys

    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=tuple(f"w{i} " for i in range(400)), delay=0.5))
    env = {**os.environ, "ORCHESTRATOR_HOME": str(paths.home), "ORCHESTRATOR_STATE": str(paths.state),
           "ORCHESTRATOR_ENDPOINT": paths.endpoint}
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "orchestrator", "run", "qc", "--input", "x",
                                             "--json"], env=env, stdout=subprocess.PIPE)
    buffer = b""
    async for chunk in proc.stdout:
        buffer += chunk
        if b'"text.delta"' in buffer:
            break
    proc.send_signal(signal.SIGINT)
    async for chunk in proc.stdout:
        buffer += chunk
    assert await proc.wait() == 130
    lines = [json.loads(line) for line in buffer.decode().splitlines()]
    assert lines[-1] == {"type": "workflow.failed", "error": "cancelled",
                         "message": "cancelled by the user; every running step was cancelled"}
    cancelled = [line for line in lines if line["type"] == "turn.cancelled"]
    assert [(c["step"], c["reason"]) for c in cancelled] == [("produce", "cancelled_by_user")]
    daemon.request_stop("test over")


@pytest.fixture
def patient_autojump_clock():
    """Autojump, but only after 0.1 real seconds with nothing runnable: real local I/O (ZeroMQ,
    the fake's HTTP) answers well within that, so only the scripted 600 s stall is jumped over."""
    return trio.testing.MockClock(autojump_threshold=0.1)


async def test_fallback_chain_on_a_jumping_clock_retries_timeouts_then_falls_back(
        nursery, short_tmp, fakes, patient_autojump_clock):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url, CHAIN.replace("timeout: 1s", "timeout: 60s"))
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("late",), headers_delay=600), Answer(text=("late",), headers_delay=600))
    oai.script(Answer(text=("42\nConfidence: 90",)))
    home = load_home_config(paths.home)
    events: list[dict] = []
    async with open_client(paths.endpoint) as client:
        runner = WorkflowRunner(client, home.workflows, home.registry, emit=events.append)
        result = await runner.run("answer-with-fallback", "what is 6*7?", RunContext())
    (prov,) = result["provenance"]
    assert (prov["model"], prov["attempt"], prov["fallback_depth"]) == ("openai:gpt-5.4", 1, 1)
    assert result["output"] == "42\nConfidence: 90" and result["confidence"] == 90
    assert [(e["attempt"], e["fallback_depth"]) for e in events if e["type"] == "route.decided"] == [
        (1, 0), (2, 0), (1, 1)]
    daemon.request_stop("test over")


async def test_run_without_json_prints_the_answer_and_one_provenance_line_per_step(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("draft\nConfidence: 60",)), Answer(text=("fine",)))
    out = await cli(paths, "run", "qc", "--input", "x", "--stakes", "low")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "draft\nConfidence: 60\n"
    assert "· cross-check: skipped — low stakes: self-review is sufficient" in out.stderr
    assert "[2 steps · confidence 60]" in out.stderr
    daemon.request_stop("test over")


async def test_parallel_validators_each_have_their_provenance(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url, SLOW_PARALLEL)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("ok A",)))
    oai.script(Answer(text=("ok B",)), Answer(text=("ok C",)))
    out = await cli(paths, "run", "fan-out", "--input", "draft", "--json")
    assert out.returncode == 0, out.stderr
    result = out.lines()[-1]["result"]
    assert sorted((p["branch"], p["model"]) for p in result["provenance"]) == [
        (0, "anthropic:claude-sonnet-4-6"), (1, "openai:gpt-5.4"), (2, "openai:gpt-5.4-mini")]
    assert "[anthropic:claude-sonnet-4-6]\nok A" in result["output"]
    daemon.request_stop("test over")


async def test_the_blocking_helper_runs_a_workflow(nursery, short_tmp, fakes, monkeypatch):
    from orchestrator.workflows_run import run_workflow

    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("draft",)))
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(paths.home))
    result = await trio.to_thread.run_sync(
        lambda: run_workflow("qc", "x", time_budget_s=10, endpoint=paths.endpoint))
    assert result["output"] == "draft" and result["steps_completed"] == 1
    daemon.request_stop("test over")


async def test_chat_run_runs_a_workflow_and_prints_its_answer(nursery, short_tmp, fakes, monkeypatch, capsys):
    from orchestrator.workflows_cli import chat_run

    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("draft",)), Answer(text=("fine",)), Answer(text=("the answer\nConfidence: 77",)))
    oai.script(Answer(text=("no gaps",)))
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(paths.home))
    async with open_client(paths.endpoint) as client:
        await chat_run(client, ["qc"])
        assert "usage: /run WORKFLOW TEXT" in capsys.readouterr().out
        await chat_run(client, ["qc", "--", "quick", "one"])   # the words are the task, verbatim
        await chat_run(client, ["nope", "x"])
    out = capsys.readouterr()
    assert "→ produce: anthropic:claude-sonnet-4-6" in out.err and "→ cross-check: openai:gpt-5.4" in out.err
    assert "· synthesize: anthropic:claude-opus-4-8" in out.err and "[4 steps · confidence 77]" in out.err
    assert out.out.startswith("the answer\nConfidence: 77\n")
    assert "workflow failed: no workflow named 'nope'" in out.out
    daemon.request_stop("test over")


async def test_a_step_the_daemon_refuses_fails_the_workflow_as_data(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    from actors.workflows import Selector, Step, Workflow, WorkflowsConfig

    home = load_home_config(paths.home)
    # models.yaml changed under a checked workflow: the pinned model is gone by the time it runs.
    gone = WorkflowsConfig({}, {"w": Workflow("w", (Step("only", "{input}", Selector(model="anthropic:gone")),))})
    async with open_client(paths.endpoint) as client:
        runner = WorkflowRunner(client, gone, home.registry)
        with pytest.raises(WorkflowFailed) as failed:
            await runner.run("w", "x", RunContext())
    assert failed.value.message.startswith("step 'only': "), failed.value.message
    assert not anth.requests
    daemon.request_stop("test over")
