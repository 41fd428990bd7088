"""`orchestrator chat` as a user drives it: input is read while a turn streams, Ctrl-C at an idle
prompt only clears the line, and a cancelled `ask` exits 130."""
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from .test_cli_process import PY, start_daemon, stop_daemon


def slow_demo(env, delay="0.05"):
    models = Path(env["ORCHESTRATOR_HOME"]) / "models.yaml"
    slow = f"demo: {{kind: demo, options: {{chunk_delay: {delay}}}}}"
    models.write_text(models.read_text().replace("demo: {kind: demo}", slow))


def test_model_typed_during_a_turn_shows_the_pending_banner_and_applies_next_turn(env):
    slow_demo(env)
    proc = start_daemon(env)
    try:
        out = subprocess.run([PY, "-m", "orchestrator", "chat", "--session", "s_chat"], env=env,
                             input="tell me a story\n/model swift\n", capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "Model swap pending: demo:swift. Applies to next turn." in out.stdout + out.stderr
        show = subprocess.run([PY, "-m", "orchestrator", "model", "show", "--session", "s_chat"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert "Pending for next turn: demo:swift" in show.stdout   # queued for the next turn
    finally:
        stop_daemon(proc)


def test_cancel_typed_during_a_turn_cancels_it(env):
    slow_demo(env, "0.2")
    proc = start_daemon(env)
    try:
        out = subprocess.run([PY, "-m", "orchestrator", "chat"], env=env, input="tell me a long story\n/cancel\n",
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0
        assert "[turn cancelled: cancelled_by_user]" in out.stderr
    finally:
        stop_daemon(proc)


def _read_until(fd, needle: bytes, timeout=30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {needle!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_ctrl_c_at_an_idle_prompt_clears_the_line_and_ctrl_d_leaves(env):
    proc = start_daemon(env)
    try:
        pid, fd = pty.fork()
        if pid == 0:  # child: the chat on a real terminal
            os.execve(PY, [PY, "-m", "orchestrator", "chat"], env)
        _read_until(fd, b"you> ")
        os.write(fd, b"half a line")
        time.sleep(0.2)
        os.write(fd, b"\x03")                     # Ctrl-C: the terminal sends SIGINT
        _read_until(fd, b"Ctrl-D or /quit to leave")
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "Ctrl-C at the prompt ended the chat"
        os.write(fd, b"\x04")                     # Ctrl-D at an empty line: leave
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "Ctrl-D did not leave"
            try:
                select.select([fd], [], [], 0.1) and os.read(fd, 4096)
            except OSError:
                pass
        assert os.waitstatus_to_exitcode(status) == 0
        os.close(fd)
    finally:
        stop_daemon(proc)


def test_a_cancelled_ask_exits_130(env):
    slow_demo(env, "0.2")
    proc = start_daemon(env)
    try:
        ask = subprocess.Popen([PY, "-m", "orchestrator", "ask", "tell me a long story"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.set_blocking(ask.stdout.fileno(), True)
        assert ask.stdout.read(1)                  # the answer is streaming
        ask.send_signal(signal.SIGINT)
        _, err = ask.communicate(timeout=60)
        assert ask.returncode == 130, err
        assert b"turn cancelled" in err
    finally:
        stop_daemon(proc)


def test_ctrl_c_during_a_turn_cancels_the_turn_not_the_chat(env):
    slow_demo(env, "0.2")
    proc = start_daemon(env)
    try:
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(PY, [PY, "-m", "orchestrator", "chat"], env)
        _read_until(fd, b"you> ")
        os.write(fd, b"tell me a long story\n")
        _read_until(fd, b"\xe2\x86\x92 demo:")      # "→ demo:…": the turn started
        os.write(fd, b"\x03")
        _read_until(fd, b"[turn cancelled: cancelled_by_user]")
        _read_until(fd, b"you> ")
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
        os.write(fd, b"/quit\n")
        deadline = time.monotonic() + 30
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            assert time.monotonic() < deadline, "/quit did not leave"
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    os.read(fd, 4096)
                except OSError:
                    pass
        assert os.waitstatus_to_exitcode(done[1]) == 0
        os.close(fd)
    finally:
        stop_daemon(proc)
