"""run_command against real subprocesses (so the real clock; timeouts kept to ~1 s)."""
import os
import re
import sys
from pathlib import Path

import pytest
import trio

from actors.tools import ToolContext, dispatch


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    return ToolContext(workspace=workspace, run_command_allowed=True, command_timeout_s=10)


async def run(ctx, **arguments):
    return await dispatch(ctx, "run_command", arguments)


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running(pid: int) -> bool:
    """Exists and is not a zombie. A killed orphan stays a zombie until init reaps it (seconds,
    in some sandboxes); it no longer runs, which is all the kill can promise for it."""
    if not exists(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def assert_group_gone(leader: int, *others: int) -> None:
    # The leader is our child: it must be reaped by us, not merely dead (no zombie left behind).
    assert not exists(leader)
    with trio.move_on_after(1):
        while any(running(p) for p in others):
            await trio.sleep(0.02)
    assert not [p for p in others if running(p)]


async def test_shell_command_reports_exit_code_stdout_and_stderr(ctx):
    outcome = await run(ctx, command="echo out; echo err >&2")
    assert not outcome.is_error
    assert outcome.content == "$ echo out; echo err >&2\nexit code: 0\n--- stdout ---\nout\n--- stderr ---\nerr"


async def test_argv_command_runs_without_a_shell(ctx):
    outcome = await run(ctx, command=[sys.executable, "-c", "import sys; print(sys.argv[1])", "$HOME; no expansion"])
    assert not outcome.is_error and "$HOME; no expansion" in outcome.content


async def test_nonzero_exit_is_an_error_with_the_code(ctx):
    outcome = await run(ctx, command="echo nope >&2; exit 3")
    assert outcome.is_error and "exit code: 3" in outcome.content and "nope" in outcome.content


async def test_runs_in_the_workspace_with_empty_stdin(ctx, workspace):
    (workspace / "sub").mkdir()
    outcome = await run(ctx, command="pwd; cat", cwd="sub")
    assert not outcome.is_error
    assert f"--- stdout ---\n{(workspace / 'sub').resolve()}\n--- stderr ---" in outcome.content


async def test_cwd_is_confined(ctx):
    outcome = await run(ctx, command="pwd", cwd="..")
    assert outcome.is_error and outcome.content == "path escapes the workspace: .."


async def test_missing_program_is_an_error(ctx):
    outcome = await run(ctx, command=["definitely-not-a-program-xyz"])
    assert outcome.is_error and "cannot start definitely-not-a-program-xyz" in outcome.content


async def test_output_is_capped_keeping_head_and_tail(workspace):
    ctx = ToolContext(workspace=workspace, run_command_allowed=True, output_cap_bytes=2000)
    script = "import sys; sys.stdout.write('START' + 'x' * 500_000 + 'END')"
    outcome = await run(ctx, command=[sys.executable, "-c", script])
    assert not outcome.is_error
    assert outcome.content.count("x") <= 2000
    assert "START" in outcome.content and "END" in outcome.content
    assert "[output truncated: " in outcome.content


async def test_timeout_kills_the_whole_process_group(workspace):
    ctx = ToolContext(workspace=workspace, run_command_allowed=True, command_timeout_s=1)
    start = trio.current_time()
    outcome = await run(ctx, command="sleep 30 & echo $$ $!; wait")
    assert trio.current_time() - start < 3
    assert outcome.is_error and "timed out after 1 s" in outcome.content
    shell_pid, grandchild_pid = map(int, re.search(r"--- stdout ---\n(\d+) (\d+)", outcome.content).groups())
    await assert_group_gone(shell_pid, grandchild_pid)


async def test_model_can_shorten_but_not_extend_the_timeout(workspace):
    ctx = ToolContext(workspace=workspace, run_command_allowed=True, command_timeout_s=1)
    outcome = await run(ctx, command="sleep 30", timeout=3600)
    assert "timed out after 1 s" in outcome.content
    outcome = await run(ctx, command="sleep 30", timeout=0.2)
    assert "timed out after 0.2 s" in outcome.content


async def cancel_while_running(ctx, workspace, command):
    """Start ``command`` (which writes its pids to ./pids), cancel once it is up; return
    (seconds from cancel to dispatch unwinding, whether dispatch raised a bare Cancelled, pids)."""
    scope = trio.CancelScope()
    cancelled_at = None
    raised = None

    async def cancel_when_started():
        nonlocal cancelled_at
        while not (workspace / "pids").exists() or not (workspace / "pids").read_text().endswith("\n"):
            await trio.sleep(0.01)
        cancelled_at = trio.current_time()
        scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_started)
        with scope:
            try:
                await run(ctx, command=command)
            except BaseException as exc:
                raised = exc
                raise
            pytest.fail("dispatch returned although it was cancelled")
    assert scope.cancelled_caught
    pids = [int(p) for p in (workspace / "pids").read_text().split()]
    return trio.current_time() - cancelled_at, isinstance(raised, trio.Cancelled), pids


async def test_cancellation_kills_the_group_and_reraises_cancelled(ctx, workspace):
    elapsed, bare_cancelled, pids = await cancel_while_running(ctx, workspace, "sleep 30 & echo $$ $! > pids; wait")
    assert bare_cancelled
    assert elapsed < 1.0
    await assert_group_gone(*pids)


async def test_cancellation_kills_processes_that_ignore_sigterm(ctx, workspace):
    command = "trap '' TERM; sleep 30 & echo $$ $! > pids; wait"
    elapsed, bare_cancelled, pids = await cancel_while_running(ctx, workspace, command)
    assert bare_cancelled
    assert elapsed < 1.5  # TERM grace, then KILL
    await assert_group_gone(*pids)
