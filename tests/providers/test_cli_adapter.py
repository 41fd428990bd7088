"""The cli adapter with small real scripts: answers, streaming, timeout, exit codes, group kill.

These run real processes in real time, so they use trio's real clock (no autojump_clock).
"""
from __future__ import annotations

import os
import sys
import textwrap
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from actors.providers import cli
from actors.providers.base import ErrorClass, LLMRequest, ProviderError, TextChunk
from actors.providers.cli import CliAdapter, build_argv, render_prompt
from protocol.canonical import Message, Role, StopReason, TextBlock, ToolResultBlock, ToolUseBlock
from tests.fakes import drain


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "agent.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def request(text: str = "hello agent", **kw) -> LLMRequest:
    return LLMRequest(model="agent-1", messages=(Message(Role.USER, (TextBlock(text),)),), **kw)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_dead(pids: list[int], within: float = 5.0) -> list[int]:
    with trio.move_on_after(within):
        while any(alive(p) for p in pids):
            await trio.sleep(0.02)
    return [p for p in pids if alive(p)]


async def test_answers_from_stdout_with_the_prompt_on_stdin_and_model_in_argv(tmp_path):
    agent = script(tmp_path, """
        import sys
        prompt = sys.stdin.read()
        print(f"model={sys.argv[1]}; got {len(prompt)} chars: {prompt.strip()}")
    """)
    adapter = CliAdapter([sys.executable, agent, "{model}"], model="agent-1", timeout_s=20)
    out = await drain(adapter.stream(request()))
    text = out.completed.message.text
    assert text == "model=agent-1; got 11 chars: hello agent\n"
    assert "".join(out.text_chunks) == text
    assert out.completed.message.stop_reason is StopReason.END_TURN
    usage = out.completed.usage
    assert usage.input_tokens == 3 and usage.output_tokens == -(-len(text) // 4)
    assert usage.cost_usd is None  # estimated tokens only: unknown cost without explicit pricing


async def test_output_streams_as_it_arrives(tmp_path):
    agent = script(tmp_path, """
        import sys, time
        print("first", flush=True)
        time.sleep(0.4)
        print("second", flush=True)
    """)
    adapter = CliAdapter([sys.executable, agent], model="m", timeout_s=20)
    stamps = []
    async with aclosing(adapter.stream(request())) as stream:
        async for event in stream:
            if isinstance(event, TextChunk):
                stamps.append((event.text, trio.current_time()))
    assert stamps[0][0].startswith("first")
    assert "".join(t for t, _ in stamps) == "first\nsecond\n"
    assert stamps[-1][1] - stamps[0][1] >= 0.3  # the first line was seen before the script finished


async def test_timeout_raises_timeout_and_kills_the_agent(tmp_path):
    pid_file = tmp_path / "pid"
    agent = script(tmp_path, f"""
        import os, sys, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("thinking...", flush=True)
        time.sleep(60)
    """)
    adapter = CliAdapter([sys.executable, agent], model="m", timeout_s=1.0)
    start = trio.current_time()
    with pytest.raises(ProviderError) as info:
        await drain(adapter.stream(request()))
    assert info.value.error_class is ErrorClass.TIMEOUT
    assert info.value.partial_text == "thinking...\n"
    assert trio.current_time() - start < 10
    assert await wait_dead([int(pid_file.read_text())]) == []


async def test_nonzero_exit_is_a_server_error_with_the_stderr_tail(tmp_path):
    agent = script(tmp_path, """
        import sys
        sys.stderr.write("x" * 5000 + "\\nfatal: model overloaded\\n")
        sys.exit(3)
    """)
    adapter = CliAdapter([sys.executable, agent], model="m", timeout_s=20)
    with pytest.raises(ProviderError) as info:
        await drain(adapter.stream(request()))
    assert info.value.error_class is ErrorClass.SERVER_ERROR
    assert "status 3" in info.value.message and info.value.message.endswith("fatal: model overloaded")
    assert len(info.value.message) < 2200  # only the tail of stderr


async def test_a_missing_binary_is_a_bad_request(tmp_path):
    adapter = CliAdapter([str(tmp_path / "no-such-agent")], model="m")
    with pytest.raises(ProviderError) as info:
        await drain(adapter.stream(request()))
    assert info.value.error_class is ErrorClass.BAD_REQUEST


@pytest.mark.parametrize("child_ignores_term", [False, True])
async def test_cancelling_kills_the_whole_process_group_including_grandchildren(
    tmp_path, monkeypatch, child_ignores_term
):
    monkeypatch.setattr(cli, "TERM_GRACE_S", 0.5)
    grandchild_code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
        if child_ignores_term else "import time; time.sleep(60)"
    )
    agent = script(tmp_path, f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {grandchild_code!r}])
        time.sleep(0.2)  # let the grandchild install its handler
        print(os.getpid(), child.pid, flush=True)
        time.sleep(60)
    """)
    adapter = CliAdapter([sys.executable, agent], model="m", timeout_s=60)
    pids: list[int] = []
    with trio.move_on_after(30) as scope:
        async with aclosing(adapter.stream(request())) as stream:
            seen = ""
            async for event in stream:
                seen += event.text
                if seen.endswith("\n"):
                    pids = [int(p) for p in seen.split()]
                    assert all(alive(p) for p in pids)
                    scope.cancel()
    assert scope.cancelled_caught and len(pids) == 2
    # Cleanup ran shielded inside the cancelled stream, so by now both are dead.
    assert await wait_dead(pids, within=3.0) == []


def test_the_conversation_is_rendered_as_plain_text():
    req = LLMRequest(
        model="m",
        system="You are terse.",
        messages=(
            Message(Role.USER, (TextBlock("List files"),)),
            Message(Role.ASSISTANT, (ToolUseBlock("t1", "ls", {"path": "."}),)),
            Message(Role.TOOL, (ToolResultBlock("t1", "a.py b.py"),)),
        ),
        output_schema={"type": "array"},
    )
    text = render_prompt(req)
    assert text.startswith("System:\nYou are terse.\n\nUser:\nList files\n\nAssistant:\n[called tool ls")
    assert "Tool results:\n[tool result: a.py b.py]" in text
    assert text.rstrip().endswith('{"type": "array"}')
    assert render_prompt(request("just this")) == "just this"


def test_argv_template_substitutes_the_model_only():
    assert build_argv(["codex", "exec", "-m", "{model}", '{"x": 1}'], "gpt-5") == \
        ["codex", "exec", "-m", "gpt-5", '{"x": 1}']
