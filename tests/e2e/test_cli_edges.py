"""The command line at its edges, as a new user meets them: unusable paths and endpoints, an
invalid config at start, bad session ids and workspaces, full and closed outputs, a daemon that
stops or dies mid-answer, stop signals right after start — always one clear line and the
documented exit code (DESIGN §4.1), never a traceback."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli_process import PY, cli, start_daemon, stop_daemon


def one_line_error(out) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("orchestrator: "), out.stderr
    return lines[0]


SLOW_DEMO = ("demo: {kind: demo}", "demo: {kind: demo, options: {chunk_delay: 0.2}}")


def wait_for_running_turn(env) -> None:
    deadline = time.monotonic() + 20
    while json.loads(cli(env, "status", "--json").stdout)["turns_running"] < 1:
        assert time.monotonic() < deadline, "the turn never started"
        time.sleep(0.05)


# --- 1. unusable paths and endpoints: one line, exit 1 ---------------------------------------------


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("case", ["state_in_proc", "state_is_a_file", "socket_folder_in_proc", "tcp_port_busy"])
def test_serve_with_an_unusable_path_or_endpoint_says_so_in_one_line(env, short_tmp, busy_port, case):
    (short_tmp / "a_file").write_text("")
    overrides, expected = {
        "state_in_proc": ({"ORCHESTRATOR_STATE": "/proc/nope"}, "ORCHESTRATOR_STATE"),
        "state_is_a_file": ({"ORCHESTRATOR_STATE": str(short_tmp / "a_file")}, "not a directory"),
        "socket_folder_in_proc": ({"ORCHESTRATOR_ENDPOINT": "ipc:///proc/x/d.sock"}, "/proc/x"),
        "tcp_port_busy": ({"ORCHESTRATOR_ALLOW_TCP": "1", "ORCHESTRATOR_ENDPOINT": f"tcp://127.0.0.1:{busy_port}"},
                          "Address already in use"),
    }[case]
    out = cli({**env, **overrides}, "serve", timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("orchestrator: ")]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert "daemon stopped" not in out.stderr      # it never started


def test_init_into_an_unwritable_home_says_so_in_one_line(env):
    out = cli(env, "init", "--provider", "ollama", "--home", "/proc/nope")
    assert out.returncode == 1
    assert "/proc/nope" in one_line_error(out)


def test_ask_into_a_full_output_cancels_the_turn_and_says_so_in_one_line(env):
    proc = start_daemon(env)
    try:
        with open("/dev/full", "w") as full:
            out = subprocess.run([PY, "-m", "orchestrator", "ask", "hello"], env=env, stdout=full,
                                 stderr=subprocess.PIPE, text=True, timeout=60)
            status = subprocess.run([PY, "-m", "orchestrator", "status"], env=env, stdout=full,
                                    stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        assert stop_daemon(proc) == 0
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("orchestrator:")] == [
        line for line in out.stderr.splitlines() if "cannot write the answer to stdout" in line]
    assert status.returncode == 1
    assert "cannot write to stdout" in one_line_error(status)


def test_an_unexpected_error_names_itself_and_how_to_see_the_traceback():
    from orchestrator.cli import DEBUG_VAR, _last_resort_text

    text = _last_resort_text(KeyError("boom"))
    assert "\n" not in text and "KeyError" in text and "boom" in text and f"{DEBUG_VAR}=1" in text


# --- 2. an invalid config at start ----------------------------------------------------------------


@pytest.mark.parametrize("broken", ["models.yaml", "routing.yaml"])
def test_serve_refuses_to_start_on_an_invalid_config_file(env, broken):
    path = Path(env["ORCHESTRATOR_HOME"]) / broken
    old, new = {"models.yaml": ("tier: fast", "tier: warp"), "routing.yaml": ("demo:steady", "demo:nosuch")}[broken]
    path.write_text(path.read_text().replace(old, new))
    out = cli(env, "serve", timeout=60)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "refusing to start" in out.stderr and f"{broken}:" in out.stderr
    assert "daemon ready" not in out.stderr


# --- 3. a turn failure is one line with the command line's advice ----------------------------------


def test_a_turn_failure_prints_one_line_with_the_cli_commands_not_chat_ones(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    (home / "models.yaml").write_text(
        'providers:\n  far: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", api_key_env: F2_UNSET_KEY}\n'
        'models:\n  "far:m":\n    tier: balanced\n    aliases: [m]\n'
        "    capabilities: {max_context_tokens: 8000, supports_tools: true}\n"
        "    pricing: {input_per_mtok: 1.0, output_per_mtok: 1.0}\n")
    (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: far:m\n")
    env = {k: v for k, v in env.items() if k != "F2_UNSET_KEY"}
    proc = start_daemon(env)
    try:
        out = cli(env, "ask", "--session", "s_fail", "hi")
        as_json = cli(env, "ask", "--session", "s_fail", "--json", "hi")
    finally:
        assert stop_daemon(proc) == 0
    assert out.returncode == 1
    failures = [line for line in out.stderr.splitlines() if line.startswith("orchestrator:")]
    assert len(failures) == 1, out.stderr
    line = failures[0]
    assert "No model available for this turn." in line and " · Tried: " in line
    assert "orchestrator model set ID --session s_fail" in line and "/model" not in line
    # the event keeps the spec's text, line breaks and /model advice included
    terminal = json.loads(as_json.stdout.splitlines()[-1])
    assert terminal["type"] == "turn.failed" and "\nRun /model <id>" in terminal["message"]


def test_the_cli_failure_line_joins_the_spec_text_and_replaces_chat_advice():
    from actors.router.texts import Tried, no_model
    from actors.router.validation import ValidationFailure
    from orchestrator.streaming import cli_failure_line

    down = [Tried("anthropic:claude-opus-4-7", ValidationFailure.PROVIDER_UNAVAILABLE, "provider", "anthropic", "opus"),
            Tried("anthropic:claude-sonnet-4-6", ValidationFailure.PROVIDER_UNAVAILABLE, "provider", "anthropic",
                  "sonnet")]
    line = cli_failure_line(no_model(down, []), "s_1")
    assert line == ("No model available for this turn. · anthropic provider currently unavailable. · "
                    "Tried: opus, sonnet — all on anthropic. · Run `orchestrator model set ID --session s_1` "
                    "(or start the message with @ALIAS) to choose a model from a configured provider, "
                    "or wait for recovery (`orchestrator availability reset anthropic` forces it).")
    other = cli_failure_line(no_model([], []), "s_1")
    assert "\n" not in other and "`orchestrator check`" in other and "/rules" not in other


# --- 4.–7. refused at the edge ---------------------------------------------------------------------


def test_model_set_on_an_unknown_session_is_refused_and_creates_nothing(env):
    proc = start_daemon(env)
    try:
        out = cli(env, "model", "set", "swift", "--session", "s_fresh")
        show = cli(env, "model", "show", "--session", "s_fresh")
        assert cli(env, "ask", "--session", "s_known", "hi").returncode == 0
        known = cli(env, "model", "set", "swift", "--session", "s_known")
        alias_only = cli(env, "ask", "--session", "s_alias", "@swift")
        alias_session = cli(env, "model", "show", "--session", "s_alias")
    finally:
        assert stop_daemon(proc) == 0
    assert out.returncode == 1 and one_line_error(out) == "orchestrator: unknown session 's_fresh'"
    assert show.returncode == 1
    assert known.returncode == 0 and "demo:swift" in known.stdout
    assert alias_only.returncode == 2 and "empty message" in one_line_error(alias_only)
    assert alias_session.returncode == 1   # no session, no turn


@pytest.mark.parametrize("args", [("ask", "--workspace", "/nope", "hi"), ("rules", "show", "--workspace", "/nope"),
                                  ("chat", "--workspace", "/nope")])
def test_a_workspace_that_is_not_a_directory_is_a_usage_error(env, args):
    out = cli(env, *args, input="")
    assert out.returncode == 2
    assert one_line_error(out) == "orchestrator: workspace /nope is not a directory"


def test_a_workspace_that_is_a_file_is_a_usage_error(env, short_tmp):
    (short_tmp / "f").write_text("")
    out = cli(env, "ask", "--workspace", str(short_tmp / "f"), "hi")
    assert out.returncode == 2 and "is not a directory" in one_line_error(out)


@pytest.mark.parametrize("session", ["../../etc", ".hidden", "a/b", "x" * 129, "tab\there", ""])
def test_a_malformed_session_id_is_a_usage_error(env, session):
    out = cli(env, "ask", "--session", session, "hi")
    assert out.returncode == 2
    assert "invalid session id" in one_line_error(out)


def test_the_daemon_refuses_a_malformed_session_id_at_its_edge():
    from protocol.bounds import OutOfBounds, check_bounds, is_valid_session_id
    from protocol.messages import OpenSession, SetModel

    for good in ("s_1a2b", "my-session.2", "A" * 128):
        assert is_valid_session_id(good)
        check_bounds(SetModel(good, "swift"))
    for bad in ("../../etc", ".x", "a b", "", "é"):
        assert not is_valid_session_id(bad)
        with pytest.raises(OutOfBounds, match="session_id"):
            check_bounds(OpenSession(bad))
    check_bounds(OpenSession(None))   # None: the daemon picks an id


@pytest.mark.parametrize("endpoint", ["foo://bar", "just-a-path"])
def test_an_endpoint_with_an_unknown_scheme_is_a_config_error_naming_the_variable(env, endpoint):
    out = cli({**env, "ORCHESTRATOR_ENDPOINT": endpoint}, "status")
    assert out.returncode == 1
    assert "ORCHESTRATOR_ENDPOINT" in one_line_error(out)
    served = cli({**env, "ORCHESTRATOR_ENDPOINT": endpoint}, "serve")
    assert served.returncode == 1 and one_line_error(served) == one_line_error(out)


def test_a_second_daemon_on_the_same_state_folder_refuses_naming_the_first(env, short_tmp):
    first = start_daemon(env)
    try:
        lock = Path(env["ORCHESTRATOR_STATE"]) / "daemon.lock"
        assert lock.stat().st_mode & 0o777 == 0o600
        out = cli({**env, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/other.sock"}, "serve")
        assert out.returncode == 1
        line = one_line_error(out)
        assert env["ORCHESTRATOR_STATE"] in line and str(first.pid) in line and env["ORCHESTRATOR_ENDPOINT"] in line
    finally:
        first.kill()        # no clean shutdown: the lock file stays behind, the kernel drops the lock
        first.wait()
    second = start_daemon({**env, "ORCHESTRATOR_ENDPOINT": f"ipc://{short_tmp}/other.sock"})
    assert stop_daemon(second) == 0


def test_sighup_with_a_broken_models_yaml_warns_with_the_error(env):
    proc = start_daemon(env)
    log = Path(env["ORCHESTRATOR_STATE"] + ".log")
    try:
        models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
        models.write_text(models.read_text() + "bogus_top_level_key: 1\n")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "SIGHUP" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        entry = next(json.loads(line) for line in log.read_text().splitlines() if "SIGHUP" in line)
        assert entry["level"] == "warning" and "models.yaml" in " ".join(entry["errors"]), entry
    finally:
        stop_daemon(proc)


# --- 8. closed pipes -------------------------------------------------------------------------------


def closed_pipe(env, *args):
    """Run the CLI with stdout a pipe whose reader already left (as `… | head` after its lines)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([PY, "-m", "orchestrator", *args], env=env, stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(w)


def test_a_closed_stdout_ends_every_command_quietly_with_exit_0(env):
    proc = start_daemon(env)
    try:
        results = {args: closed_pipe(env, *args) for args in (
            ("ask", "--json", "hello"), ("ask", "hello"), ("rules", "show", "--json"), ("status",),
            ("demo", "--json", "--fast"))}
    finally:
        assert stop_daemon(proc) == 0
    for args, out in results.items():
        assert out.returncode == 0, (args, out.stderr)
        # nothing but the ask's own session footer: no traceback, no daemon log line
        noise = [line for line in out.stderr.splitlines() if not line.startswith(("[session ", "→ "))]
        assert noise == [], (args, out.stderr)


def test_a_stdout_closed_before_start_is_no_traceback(env, tmp_path):
    """`orchestrator … >&-`: Python starts with sys.stdout None; the command still ends cleanly."""
    def closed_stdout(*args):
        return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", PY, "-m", "orchestrator", *args], env=env,
                              stderr=subprocess.PIPE, text=True, timeout=120)

    for args in (("check",), ("migrate",), ("keys", "generate", "--out", str(tmp_path / "k.key")),
                 ("export", str(tmp_path / "x.jsonl"))):
        out = closed_stdout(*args)
        assert out.returncode == 0 and "Traceback" not in out.stderr and "a bug" not in out.stderr, (args, out.stderr)
    unreachable = closed_stdout("status")
    assert unreachable.returncode == 3 and len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr


# --- 9.–10. the daemon stops or dies during a turn -------------------------------------------------


def test_a_turn_cancelled_by_daemon_shutdown_exits_1_saying_so(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    (home / "daemon.yaml").write_text("shutdown_grace_s: 0.2\n")
    models = home / "models.yaml"
    models.write_text(models.read_text().replace(*SLOW_DEMO))
    proc = start_daemon(env)
    slow = subprocess.Popen([PY, "-m", "orchestrator", "ask", "a long question"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_running_turn(env)
    finally:
        assert stop_daemon(proc) == 0
    out, err = slow.communicate(timeout=30)
    assert slow.returncode == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("orchestrator:")]
    assert len(errors) == 1 and "daemon shut down during the turn" in errors[0], err


def test_a_daemon_lost_mid_answer_is_reported_on_a_new_line(env):
    models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
    models.write_text(models.read_text().replace(*SLOW_DEMO))
    proc = start_daemon(env)
    slow = subprocess.Popen([PY, "-m", "orchestrator", "ask", "a long question"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert slow.stdout is not None
        first = slow.stdout.read(1)   # the answer has begun
    finally:
        proc.kill()
        proc.wait(10)
    rest, err = slow.communicate(timeout=30)
    answer = (first + rest).decode()
    assert slow.returncode == 3 and b"lost the daemon" in err
    assert answer.strip() and answer.endswith("\n"), answer


# --- 11. stop signals right after start ------------------------------------------------------------


def test_the_cli_module_imports_nothing_heavy():
    """``serve`` installs its stop-signal latch in ``cli.main``: importing the CLI must be quick,
    so that latch is in place before trio, zmq and the daemon load."""
    probe = ("import sys, orchestrator.cli\n"
             "heavy = [m for m in ('trio', 'zmq', 'structlog', 'orchestrator.daemon', 'orchestrator.client') "
             "if m in sys.modules]\n"
             "print(','.join(heavy))\n")
    out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the handler mask from /proc")
def test_two_sigterms_as_soon_as_serve_catches_them_end_in_a_clean_exit_0(env):
    proc = subprocess.Popen([PY, "-m", "orchestrator", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not _catches_sigterm(proc.pid):   # the latch is installed: from here no signal kills
            assert proc.poll() is None and time.monotonic() < deadline
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
