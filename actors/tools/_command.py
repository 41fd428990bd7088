"""run_command: a shell command or argv in the workspace, output capped, group killed on exit paths.

Every way out that leaves the command unfinished (timeout, the turn being cancelled, a bug here)
goes through one shielded, bounded cleanup that ends the whole process group and reaps the leader.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess

import trio

from actors.tools._context import ToolContext, ToolError
from actors.tools._paths import confine
from actors.tools.workspace import base_command_env
from actors.runtime.procgroup import terminate_group

CLEANUP_BOUND_S = 2.0
_CHUNK = 65536


class _CappedBuffer:
    """Keeps the head and the tail of a stream (half of ``cap`` each) and counts the rest."""

    def __init__(self, cap: int) -> None:
        self._half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes | bytearray) -> None:
        self.total += len(chunk)
        room = self._half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: max(len(self.tail) - self._half, 0)]

    def render(self, keep: int) -> str:
        """At most ``keep`` bytes of the stream as text: its head and tail around a marker."""
        contiguous = len(self.head) + len(self.tail) == self.total
        data = bytes(self.head + self.tail)
        if contiguous and self.total <= keep:
            return data.decode("utf-8", errors="replace")
        head_n = keep // 2
        tail_n = keep - head_n
        source_head, source_tail = (data, data) if contiguous else (bytes(self.head), bytes(self.tail))
        head = source_head[:head_n]
        tail = source_tail[len(source_tail) - tail_n :] if tail_n else b""
        omitted = self.total - len(head) - len(tail)
        return (
            head.decode("utf-8", errors="replace")
            + f"\n[output truncated: {omitted} bytes omitted]\n"
            + tail.decode("utf-8", errors="replace")
        )


async def _drain(stream: trio.abc.ReceiveStream, buf: _CappedBuffer) -> None:
    # Keep reading past the cap: a child blocked on a full pipe would otherwise hang until timeout.
    while chunk := await stream.receive_some(_CHUNK):
        buf.feed(chunk)


def _argv(command: str | list[str]) -> list[str]:
    if isinstance(command, str):
        if not command.strip():
            raise ToolError("command must not be empty")
        return ["/bin/sh", "-c", command]
    if not command or not all(isinstance(a, str) and "\x00" not in a for a in command):
        raise ToolError("command must be a non-empty string or a non-empty list of strings")
    return list(command)


def _unwrap_cancelled(group: BaseExceptionGroup) -> BaseException:
    """A group of only Cancelled becomes one Cancelled, so callers see what any checkpoint raises."""
    cancelled, rest = group.split(trio.Cancelled)
    if rest is not None or cancelled is None:
        return group
    leaf: BaseException = cancelled
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


async def run_command(
    ctx: ToolContext, command: str | list[str], cwd: str = ".", timeout: float | None = None
) -> tuple[str, bool]:
    argv = _argv(command)
    workdir = confine(ctx, cwd, what="cwd")
    if not workdir.is_dir():
        raise ToolError(f"cwd is not a directory: {cwd}")
    # The model may shorten the limit granted by config, never extend it.
    limit = ctx.command_timeout_s if timeout is None else min(float(timeout), ctx.command_timeout_s)
    if not limit > 0:  # also rejects NaN
        raise ToolError("timeout must be a positive number of seconds")
    try:
        proc = await trio.lowlevel.open_process(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # Never the daemon's environment: it holds the provider keys.
            env=dict(ctx.command_env) if ctx.command_env is not None else base_command_env(os.environ),
        )
    except OSError as exc:
        raise ToolError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None

    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None   # both are pipes (subprocess.PIPE above)
    out, err = _CappedBuffer(ctx.output_cap_bytes), _CappedBuffer(ctx.output_cap_bytes)
    finished = False
    try:
        with trio.move_on_after(limit) as deadline:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_drain, stdout, out)
                    nursery.start_soon(_drain, stderr, err)
            except BaseExceptionGroup as group:
                raise _unwrap_cancelled(group) from None
            await proc.wait()
            finished = True
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_BOUND_S):
            if not finished:
                await terminate_group(proc)
            for stream in (stdout, stderr):
                await stream.aclose()
    status = _status(proc.returncode, timed_out=deadline.cancelled_caught, limit=limit)
    shown = command if isinstance(command, str) else shlex.join(argv)
    text = "\n".join(
        [f"$ {shown}", status, "--- stdout ---", *_sections(ctx.output_cap_bytes, out, err)]
    )
    return text, deadline.cancelled_caught or proc.returncode != 0


def _sections(cap: int, out: _CappedBuffer, err: _CappedBuffer) -> list[str]:
    # stderr usually carries the diagnosis, so it keeps at least a quarter of the budget.
    err_keep = min(err.total, max(cap // 4, cap - out.total))
    out_text = out.render(cap - err_keep).rstrip("\n")
    err_text = err.render(err_keep).rstrip("\n")
    return [out_text or "(empty)", "--- stderr ---", err_text or "(empty)"]


def _status(returncode: int | None, *, timed_out: bool, limit: float) -> str:
    if timed_out:
        return f"timed out after {limit:g} s; the command's process group was killed"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exit code: {returncode}"
