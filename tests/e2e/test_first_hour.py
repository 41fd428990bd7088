"""The first hour, as a new user lives it: init for a real (here: fake, local) OpenAI-compatible
provider, serve, ask — no hand-editing — then the CLI's manners in pipes and with bad input."""
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import trio

from tests.fakes.openai import open_fake_openai
from tests.fakes.script import Answer

PY = sys.executable


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()


async def run(env, *args):
    return Result(await trio.run_process([PY, "-m", "orchestrator", *args], env=env, capture_stdout=True,
                                         capture_stderr=True, check=False))


@pytest.fixture
async def fake(nursery):
    async with open_fake_openai(api_key=None) as oai:
        yield oai


@pytest.fixture
def fresh_env(short_tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(short_tmp / "home"), ORCHESTRATOR_STATE=str(short_tmp / "state"),
               ORCHESTRATOR_ENDPOINT=f"ipc://{short_tmp}/d.sock", ORCHESTRATOR_UNIT_DIR=str(short_tmp / "units"))
    return env


@pytest.fixture
async def served(nursery, fake, fresh_env):
    """`init --provider openai_compatible` + `serve`, exactly as the README says."""
    init = await run(fresh_env, "init", "--provider", "openai_compatible", "--base-url", fake.base_url,
                     "--model", "llama")
    assert init.returncode == 0, init.stderr
    log = open(Path(fresh_env["ORCHESTRATOR_STATE"] + ".log"), "wb")
    proc = await trio.lowlevel.open_process([PY, "-m", "orchestrator", "serve"], env=fresh_env, stderr=log)
    log.close()
    try:
        with trio.fail_after(30):
            while (await run(fresh_env, "status")).returncode != 0:
                assert proc.poll() is None, "the daemon exited"
                await trio.sleep(0.1)
        yield fresh_env, fake
    finally:
        proc.terminate()
        with trio.move_on_after(15) as scope:
            scope.shield = True
            await proc.wait()
        if proc.returncode is None:
            proc.kill()


async def test_init_serve_ask_works_against_an_openai_compatible_server_with_no_hand_editing(served):
    env, fake = served
    fake.script(Answer(text=("Hello", " from", " the", " local", " server")))
    out = await run(env, "ask", "hello")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hello from the local server"
    assert fake.requests[-1].json["model"] == "llama"
    state = Path(env["ORCHESTRATOR_STATE"])
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("orchestrator.db", "orchestrator.db-wal"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name


async def test_an_empty_message_is_a_usage_error_and_starts_no_turn(served):
    env, fake = served
    out = await run(env, "ask", "  ")
    assert out.returncode == 2 and "empty message" in out.stderr
    assert fake.requests == []


async def test_ask_json_into_a_closed_pipe_exits_quietly(served):
    env, fake = served
    fake.script(Answer(text=tuple(f"chunk {i} " for i in range(2000))))
    script = (f"import subprocess, sys\n"
              f"p = subprocess.Popen([{PY!r}, '-m', 'orchestrator', 'ask', '--json', 'long please'],"
              f" stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
              "p.stdout.readline(); p.stdout.close()\n"
              "err = p.stderr.read().decode(); p.wait()\n"
              "sys.stdout.write(err)\n")
    out = Result(await trio.run_process([PY, "-c", script], env=env, capture_stdout=True, capture_stderr=True))
    assert "Traceback" not in out.stdout and "BrokenPipeError" not in out.stdout, out.stdout


async def test_unknown_sessions_follow_one_rule_across_commands(served):
    env, _ = served
    for args in (("model", "show", "--session", "nope"), ("model", "clear", "--session", "nope"),
                 ("cost", "--session", "nope")):
        out = await run(env, *args)
        assert out.returncode == 1, args
        assert out.stderr.strip() == "orchestrator: unknown session 'nope'", (args, out.stderr)
    trace = await run(env, "trace", "t_nope")
    assert trace.returncode == 1 and trace.stderr.strip() == "orchestrator: unknown turn 't_nope'"
    # model show did not create it either
    assert (await run(env, "model", "show", "--session", "nope")).returncode == 1


async def test_an_unknown_availability_scope_exits_1(served):
    env, _ = served
    out = await run(env, "availability", "reset", "nosuch")
    assert out.returncode == 1 and "unknown scope 'nosuch'" in out.stderr
    ok = await run(env, "availability", "reset", "local")
    assert ok.returncode == 0


async def test_status_shows_not_configured_models_an_invalid_file_and_the_service(served):
    env, _ = served
    home = Path(env["ORCHESTRATOR_HOME"])
    models = home / "models.yaml"
    models.write_text(models.read_text().replace(
        "providers:\n", "providers:\n  openai: {kind: openai}\n").replace(
        "models:\n", 'models:\n  "openai:gpt-5-mini":\n    aliases: [gpt5mini]\n'))
    status = await run(env, "status", "--json")
    data = json.loads(status.stdout)
    assert data["not_configured"]["openai:gpt-5-mini"] == "OPENAI_API_KEY is not set in the daemon's environment"
    assert data["config"]["ok"] is True and data["service"]["installed"] is False
    text = (await run(env, "status")).stdout
    assert "openai:gpt-5-mini" in text and "OPENAI_API_KEY is not set" in text
    models.write_text(models.read_text().replace("aliases: [gpt5mini]", "aliases: [gpt5mini]\n    tier: huge"))
    await run(env, "ask", "hello")      # the next turn sees the broken edit
    data = json.loads((await run(env, "status", "--json")).stdout)
    assert data["config"]["ok"] is False and data["config"]["errors"][0].startswith("models.yaml:")
    log = Path(env["ORCHESTRATOR_STATE"] + ".log").read_text()
    assert "config invalid" in log and "tier: 'huge' is not a tier" in log     # and the daemon logged it
    text = (await run(env, "status")).stdout
    assert "models.yaml is INVALID" in text and "orchestrator check" in text
    (home / "daemon.yaml").write_text("log_level: verbose\n")
    data = json.loads((await run(env, "status", "--json")).stdout)
    assert "daemon.yaml:1: log_level: expected one of debug, info, warning, error, critical, got 'verbose'" in \
        data["config"]["errors"]
    (home / "daemon.yaml").unlink()
    assert (await run(env, "service", "install")).returncode == 1      # models.yaml is still broken
    models.write_text(models.read_text().replace("\n    tier: huge", ""))
    assert (await run(env, "service", "install")).returncode == 0
    data = json.loads((await run(env, "status", "--json")).stdout)
    assert data["service"]["installed"] is True and data["config"]["ok"] is True
    assert "service: unit installed at" in (await run(env, "status")).stdout


async def test_rules_reload_confirms_what_changed(served):
    env, _ = served
    routing = Path(env["ORCHESTRATOR_HOME"]) / "routing.yaml"
    same = await run(env, "rules", "reload")
    assert same.returncode == 0 and "no changes" in same.stdout
    routing.write_text(routing.read_text() + 'rules:\n  - {name: "short", when: {message_matches: "^hi"}, '
                                             "use: local:llama}\n")
    changed = await run(env, "rules", "reload")
    assert changed.returncode == 0 and 'rule "short" added' in changed.stdout


async def test_override_of_an_unconfigured_model_says_so_in_the_turn(served):
    env, fake = served
    models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
    models.write_text(models.read_text().replace(
        "providers:\n", "providers:\n  openai: {kind: openai}\n").replace(
        "models:\n", 'models:\n  "openai:gpt-5-mini":\n    aliases: [mini]\n'))
    fake.script(Answer(text=("local answer",)))
    out = await run(env, "ask", "--json", "@mini hello")
    events = [json.loads(line) for line in out.stdout.splitlines()]
    banners = [e["text"] for e in events if e["type"] == "banner"]
    assert banners == ["@mini (openai:gpt-5-mini) is not configured: OPENAI_API_KEY is not set in the daemon's "
                       "environment. Routing fell through to local:llama."]
    assert events[-1]["type"] == "turn.completed" and events[-1]["model"] == "local:llama"


async def test_unknown_cost_prints_as_unknown_and_null_never_zero(served):
    env, fake = served
    fake.script(Answer(text=("priced?",)))
    out = await run(env, "ask", "--session", "s_cost", "hello")
    assert out.returncode == 0
    data = json.loads((await run(env, "cost", "--session", "s_cost", "--json")).stdout)
    assert data["unknown_cost_calls"] == 1
    assert data["by_model"][0]["cost_usd"] is None and data["by_model"][0]["unknown_cost_calls"] == 1
    text = (await run(env, "cost", "--session", "s_cost")).stdout
    assert "unknown" in text and "1 call(s) of unknown cost" in text


def closed_pipe_run(env, *args):
    """Run the CLI with stdout a pipe nobody reads (its read end is already closed)."""
    import subprocess

    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([PY, "-m", "orchestrator", *args], env=env, stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(w)


async def test_commands_writing_into_a_closed_pipe_print_no_traceback(served):
    env, fake = served
    fake.script(Answer(text=("x",)))
    assert (await run(env, "ask", "--session", "s_pipe", "hi")).returncode == 0
    for args in (("model", "show", "--session", "s_pipe"), ("rules", "show"), ("ask", "--json", "again"),
                 ("demo", "--json", "--fast")):
        fake.script(Answer(text=("y",)))
        out = await trio.to_thread.run_sync(closed_pipe_run, env, *args)
        assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, (args, out.stderr)
        assert out.returncode == 0, args   # a closed stdout is not a failure
