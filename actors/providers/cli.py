"""A model served by a command-line agent (``codex exec``, ``claude -p`` …).

The conversation is rendered as plain text on stdin; stdout, as it arrives, is the answer.

- stdin and stderr are unlinked temporary files, not pipes: with only stdout piped there is no
  pipe-buffer deadlock and no helper task, so the stream stays a plain async generator (a nursery
  must not stay open across a ``yield``).
- The agent runs in its own session / process group; on cancellation, timeout, early close or
  failure the whole group gets SIGTERM, then SIGKILL after a grace — shielded and bounded, so a
  cancelled turn cannot leave an agent (or the tools it spawned) running.
- Usage is estimated (~4 bytes/token of prompt and answer, see ``actors.planner.tokens``): agents do not
  report it on stdout in any common format. Those numbers understate what an agent really spends (it runs
  its own tool loop), so the cost is left unknown unless the model has explicit pricing.
"""
from __future__ import annotations

import codecs
import json
import os
import subprocess
import tempfile
from typing import IO
from collections.abc import AsyncGenerator, Sequence

import trio

from protocol.canonical import ImageBlock, Message, Role, StopReason, TextBlock, ToolResultBlock, ToolUseBlock, Usage

from actors.planner.tokens import estimate_text_tokens
from actors.runtime.procgroup import terminate_group
from actors.providers._http import Pricer, unpriced
from actors.providers.base import Completed, ErrorClass, LLMRequest, ProviderError, StreamEvent, TextChunk

DEFAULT_TIMEOUT_S = 600.0
TERM_GRACE_S = 2.0
KILL_WAIT_S = 2.0
EXIT_POLL_S = 0.5     # how often a silent agent is checked for having exited
EXIT_DRAIN_S = 2.0    # after its exit, how long output from processes outside its group is still read
STDERR_TAIL = 2000
READ_SIZE = 4096


def render_prompt(request: LLMRequest) -> str:
    """The conversation as text. A lone user message is passed through untouched."""
    if not request.system and len(request.messages) == 1 and request.messages[0].role is Role.USER \
            and request.output_schema is None:
        return _render_blocks(request.messages[0])
    sections = [f"System:\n{request.system}"] if request.system else []
    for message in request.messages:
        label = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.TOOL: "Tool results"}[message.role]
        body = _render_blocks(message)
        if body:
            sections.append(f"{label}:\n{body}")
    if request.output_schema is not None:
        sections.append(
            "Answer with only a JSON value matching this JSON schema, and nothing else:\n"
            + json.dumps(request.output_schema)
        )
    return "\n\n".join(sections) + "\n"


def _render_blocks(message: Message) -> str:
    parts: list[str] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, ImageBlock):
            parts.append(f"[image: {block.url}]" if block.url else "[image omitted]")
        elif isinstance(block, ToolUseBlock):
            parts.append(f"[called tool {block.name} with {json.dumps(block.input)}]")
        elif isinstance(block, ToolResultBlock):
            parts.append(f"[tool result{' (error)' if block.is_error else ''}: {block.content}]")
    return "\n".join(parts)


def build_argv(template: Sequence[str], model: str, effort: str | None = None) -> list[str]:
    """The agent's argv: ``{model}`` and ``{effort}`` filled in. An argument that mentions
    ``{effort}`` is left out when the turn has none, so write it as one argument, e.g.
    ``--config=model_reasoning_effort={effort}`` (codex) — never as a flag and a separate value."""
    # str.replace, not str.format: other arguments may legitimately contain braces (JSON flags).
    return [part.replace("{model}", model).replace("{effort}", effort or "") for part in template
            if effort is not None or "{effort}" not in part]


async def _terminate(process: trio.Process) -> None:
    """SIGTERM the agent's group, SIGKILL it after a grace. Shielded: runs even while cancelled."""
    with trio.CancelScope(shield=True), trio.move_on_after(TERM_GRACE_S + KILL_WAIT_S):
        await terminate_group(process, grace_s=TERM_GRACE_S)


def _tail(file: IO[bytes]) -> str:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - STDERR_TAIL))
    return file.read().decode("utf-8", errors="replace").strip()


class CliAdapter:
    def __init__(
        self,
        command: Sequence[str],
        *,
        model: str,
        timeout_s: float | None = None,
        pricer: Pricer | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ):
        if not command:
            raise ValueError("a cli model needs a command")
        self.command = tuple(command)
        self.model = model
        self.timeout_s = timeout_s or DEFAULT_TIMEOUT_S
        self.env = env
        self.cwd = cwd
        self._price = pricer or unpriced

    async def aclose(self) -> None:
        pass

    async def stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        argv = build_argv(self.command, request.model or self.model, request.effort)
        prompt = render_prompt(request)
        deadline = trio.current_time() + self.timeout_s
        text: list[str] = []
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
            stdin.write(prompt.encode())
            stdin.seek(0)
            try:
                process = await trio.lowlevel.open_process(
                    argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr,
                    # The agent works on the turn's workspace, never in the daemon's directory.
                    start_new_session=True, env=self.env, cwd=request.workspace or self.cwd,
                )
            except OSError as exc:  # missing binary, not executable: a configuration error
                raise ProviderError(ErrorClass.BAD_REQUEST, f"cannot start {argv[0]!r}: {exc}") from exc
            try:
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                assert process.stdout is not None
                exited_at: float | None = None
                while True:
                    # The deadline is checked per read, not with a scope around the loop: a cancel
                    # scope must not stay open across the ``yield`` below.
                    with trio.move_on_at(min(deadline, trio.current_time() + EXIT_POLL_S)) as read_scope:
                        data = await process.stdout.receive_some(READ_SIZE)
                    if read_scope.cancelled_caught:
                        if trio.current_time() >= deadline:
                            raise ProviderError(
                                ErrorClass.TIMEOUT, f"{argv[0]} timed out after {self.timeout_s:g}s",
                                partial_text="".join(text),
                            )
                        if process.poll() is None:
                            continue
                        # The agent has exited, but something it started (a dev server, a watcher)
                        # still holds its stdout: that is not the agent's answer. End its group; what
                        # escaped the group gets a short drain, then the pipe is no longer read.
                        if exited_at is None:
                            await _terminate(process)
                            exited_at = trio.current_time()
                        elif trio.current_time() - exited_at >= EXIT_DRAIN_S:
                            break
                        continue
                    chunk = decoder.decode(data, final=not data)
                    if chunk:
                        text.append(chunk)
                        yield TextChunk(chunk)
                    if not data:
                        break
                with trio.move_on_at(deadline):
                    await process.wait()
                if process.returncode is None:
                    raise ProviderError(
                        ErrorClass.TIMEOUT, f"{argv[0]} timed out after {self.timeout_s:g}s",
                        partial_text="".join(text),
                    )
                if process.returncode != 0:
                    raise ProviderError(
                        ErrorClass.SERVER_ERROR,
                        f"{argv[0]} exited with status {process.returncode}: {_tail(stderr)}",
                        partial_text="".join(text),
                    )
            finally:
                # Also after a clean exit: anything the agent left running in its group goes too.
                await _terminate(process)
                if process.stdout is not None:
                    with trio.CancelScope(shield=True):
                        await process.stdout.aclose()
        answer = "".join(text)
        usage = Usage(input_tokens=estimate_text_tokens(prompt), output_tokens=estimate_text_tokens(answer))
        message = Message(Role.ASSISTANT, (TextBlock(answer),) if answer else (), model=self.model,
                          stop_reason=StopReason.END_TURN)
        yield Completed(message, self._price(usage))
