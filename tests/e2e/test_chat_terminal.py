"""`orchestrator chat` as a user drives it: input is read while a turn streams, Ctrl-C at an idle
prompt only clears the line, and a cancelled `ask` exits 130."""
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from .test_cli_process import PY, running_daemon


def slow_demo(env, delay="0.05"):
    models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
    slow = f"demo: {{kind: demo, options: {{chunk_delay: {delay}}}}}"
    models.write_text(models.read_text().replace("demo: {kind: demo}", slow))


def test_model_typed_during_a_turn_shows_the_pending_banner_and_applies_next_turn(env):
    slow_demo(env)
    with running_daemon(env):
        out = subprocess.run([PY, "-m", "orchestrator", "chat", "--session", "s_chat"], env=env,
                             input="tell me a story\n/model swift\n", capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "Model swap pending: demo:swift. Applies to next turn." in out.stdout + out.stderr
        show = subprocess.run([PY, "-m", "orchestrator", "model", "show", "--session", "s_chat"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert "Pending for next turn: demo:swift" in show.stdout   # queued for the next turn


def test_rules_check_and_reload_in_the_chat_answer_like_the_cli(env):
    with running_daemon(env):
        out = subprocess.run([PY, "-m", "orchestrator", "chat"], env=env, input="/rules check\n/rules reload\n",
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert "ok" in lines                                                      # the check of the home's files
        assert any(line.startswith("reloaded ") for line in lines), out.stdout   # the reload summary


def test_cancel_typed_during_a_turn_cancels_it(env):
    slow_demo(env, "0.2")
    with running_daemon(env):
        out = subprocess.run([PY, "-m", "orchestrator", "chat"], env=env, input="tell me a long story\n/cancel\n",
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0
        assert "[turn cancelled: cancelled_by_user]" in out.stderr


def spawn_chat_on_a_terminal(env):
    """The chat on a real terminal (a pty that is its controlling tty, so Ctrl-C raises SIGINT).

    ``setsid --ctty`` instead of ``pty.fork()``: forking this multi-threaded test process and
    running Python in the child before exec is not safe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["setsid", "--ctty", PY, "-m", "orchestrator", "chat"], env=env, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    return proc, master


def wait_exit(proc, fd, timeout=30.0) -> int:
    """Wait for the chat to exit while draining its terminal (a full pty would block it)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the chat did not leave"
        if select.select([fd], [], [], 0.1)[0]:
            try:
                os.read(fd, 4096)
            except OSError:
                pass
    return proc.returncode


class Screen:
    """What the chat wrote to its terminal; ``expect`` consumes output up to and including a text,
    so a text that arrived in the same read as an earlier one is not lost."""

    def __init__(self, fd: int):
        self.fd = fd
        self.pending = b""

    def expect(self, needle: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.pending:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {needle!r} in {self.pending!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"the terminal closed before {needle!r}; output: {self.pending!r}"
                self.pending += chunk
        before, _, self.pending = self.pending.partition(needle)
        return before + needle


def test_ctrl_c_at_an_idle_prompt_clears_the_line_and_ctrl_d_leaves(env):
    with running_daemon(env):
        chat, fd = spawn_chat_on_a_terminal(env)
        screen = Screen(fd)
        screen.expect(b"you> ")
        os.write(fd, b"half a line")
        screen.expect(b"half a line")              # echoed: it is in the terminal's line buffer
        os.write(fd, b"\x03")                     # Ctrl-C: the terminal sends SIGINT
        screen.expect(b"Ctrl-D or /quit to leave")
        assert chat.poll() is None, "Ctrl-C at the prompt ended the chat"
        os.write(fd, b"\x04")                     # Ctrl-D on an empty line leaves: the half line is gone
        assert wait_exit(chat, fd) == 0
        os.close(fd)


def test_a_cancelled_ask_exits_130(env):
    slow_demo(env, "0.2")
    with running_daemon(env):
        ask = subprocess.Popen([PY, "-m", "orchestrator", "ask", "tell me a long story"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.set_blocking(ask.stdout.fileno(), True)
        assert ask.stdout.read(1)                  # the answer is streaming
        ask.send_signal(signal.SIGINT)
        _, err = ask.communicate(timeout=60)
        assert ask.returncode == 130, err
        assert b"turn cancelled" in err


def test_ctrl_c_during_a_turn_cancels_the_turn_not_the_chat(env):
    slow_demo(env, "0.2")
    with running_daemon(env):
        chat, fd = spawn_chat_on_a_terminal(env)
        screen = Screen(fd)
        screen.expect(b"you> ")
        os.write(fd, b"tell me a long story\n")
        screen.expect(b"\xe2\x86\x92 demo:")      # "→ demo:…": the turn started
        os.write(fd, b"\x03")
        screen.expect(b"[turn cancelled: cancelled_by_user]")
        screen.expect(b"you> ")
        assert chat.poll() is None
        os.write(fd, b"/quit\n")
        assert wait_exit(chat, fd) == 0
        os.close(fd)


def _start_a_slow_turn(env):
    chat, fd = spawn_chat_on_a_terminal(env)
    screen = Screen(fd)
    screen.expect(b"you> ")
    os.write(fd, b"tell me a long story\n")
    screen.expect(b"\xe2\x86\x92 demo:")      # "→ demo:…": the turn started
    return chat, fd, screen


def _leave(chat, fd):
    os.write(fd, b"/quit\n")
    assert wait_exit(chat, fd) == 0
    os.close(fd)


def test_model_during_a_turn_prints_the_pending_banner_once_on_its_own_line(env):
    slow_demo(env, "0.2")
    with running_daemon(env):
        chat, fd, screen = _start_a_slow_turn(env)
        os.write(fd, b"/model swift\n")
        os.write(fd, b"/cancel\n")
        seen = screen.expect(b"[turn cancelled: cancelled_by_user]")
        os.write(fd, b"/help\n")
        seen += screen.expect(b"commands:")
        assert seen.count(b"Model swap pending: demo:swift") == 1, seen
        assert b"Pending for next turn" not in seen
        line = next(ln for ln in seen.split(b"\r\n") if b"Model swap pending" in ln)
        assert line.startswith("» ".encode()), line
        _leave(chat, fd)


def test_after_cancel_the_prompt_shows_once(env):
    slow_demo(env, "0.2")
    with running_daemon(env):
        chat, fd, screen = _start_a_slow_turn(env)
        for round in range(4):          # the second prompt came from a race: give it several chances
            if round:
                os.write(fd, b"tell me a long story\n")
                screen.expect(b"\xe2\x86\x92 demo:")
            os.write(fd, b"/cancel\n")
            screen.expect(b"[turn cancelled: cancelled_by_user]")
            # Every prompt the cancel causes is written before the next line is read.
            screen.expect(b"you> ")
            os.write(fd, b"/help\n")
            seen = screen.expect(b"commands:")
            assert b"you> " not in seen, seen
            assert b"Ctrl-D leaves; during a turn it cancels the turn first" in screen.expect(b"turn first")
            screen.expect(b"you> ")
        _leave(chat, fd)


def test_ctrl_d_during_a_turn_cancels_it_and_leaves(env):
    slow_demo(env, "0.2")
    with running_daemon(env):
        chat, fd, screen = _start_a_slow_turn(env)
        os.write(fd, b"\x04")                     # Ctrl-D on an empty line
        screen.expect(b"(leaving: cancelling the running turn)")
        screen.expect(b"[turn cancelled: cancelled_by_user]")
        assert wait_exit(chat, fd) == 0
        os.close(fd)

def with_unconfigured_model(env: dict) -> dict:
    """The demo home plus ``keyed:gpt``, whose key variable is not set in the daemon's environment."""
    models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
    models.write_text(models.read_text().replace(
        "providers:\n", "providers:\n  keyed: {kind: openai, api_key_env: MY_MISSING_KEY}\n")
        + '  "keyed:gpt":\n    pricing: {input_per_mtok: 1, output_per_mtok: 1}\n')
    return {k: v for k, v in env.items() if k != "MY_MISSING_KEY"}


def test_model_set_to_a_model_whose_key_is_missing_warns_at_once(env):
    env = with_unconfigured_model(env)
    with running_daemon(env):
        out = subprocess.run([PY, "-m", "orchestrator", "chat"], env=env, input="/model keyed:gpt\n/model swift\n",
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        warnings = [ln.removeprefix("you> ") for ln in out.stderr.splitlines() if "not_configured" in ln]
        assert warnings == [
            "warning: keyed:gpt is not_configured (MY_MISSING_KEY is not set in the daemon's environment); turns "
            "will fall through past it until it is (`orchestrator status` lists every such model)"], out.stderr


def test_model_set_from_the_cli_warns_like_chat_about_a_model_whose_key_is_missing(env):
    env = with_unconfigured_model(env)
    with running_daemon(env):
        run = [PY, "-m", "orchestrator"]
        assert subprocess.run([*run, "ask", "--session", "s_cli", "hi"], env=env, capture_output=True,
                              timeout=60).returncode == 0
        out = subprocess.run([*run, "model", "set", "keyed:gpt", "--session", "s_cli"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "warning: keyed:gpt is not_configured (MY_MISSING_KEY is not set" in out.stderr


def test_piped_messages_run_in_order_each_after_the_previous_answer(env):
    slow_demo(env)
    with running_daemon(env):
        out = subprocess.run([PY, "-m", "orchestrator", "chat", "--session", "s_piped"], env=env,
                             input="hello\n/model swift\nsecond\n", capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "a turn is running" not in out.stderr
        cost = subprocess.run([PY, "-m", "orchestrator", "cost", "--session", "s_piped", "--json"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert "demo:swift" in cost.stdout        # "second" ran, on the model /model queued for it
