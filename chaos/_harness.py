"""What every chaos scenario shares: a real daemon process on a temporary home that can be killed
and restarted on the same state, the state database read from outside, and the report shape."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.client import Client, DaemonUnreachable, open_client  # noqa: E402

FAKE_KEYS = {"ANTHROPIC_API_KEY": "chaos-anthropic-key", "OPENAI_API_KEY": "chaos-openai-key",
             "GHOST_API_KEY": "chaos-ghost-key"}
READY_TIMEOUT_S = 60.0
# The source tree the daemon runs from: this one, or $CHAOS_DAEMON_TREE (an older export, to measure
# before → after with the same scenario and the same clients).
DAEMON_TREE = Path(os.environ.get("CHAOS_DAEMON_TREE") or ROOT)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def read_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"VmRSS not in /proc/{pid}/status")


def demo_home(home: Path, chunk_delay: float | None = None) -> None:
    home.mkdir(parents=True, exist_ok=True)
    for name in ("models.yaml", "routing.yaml"):
        text = resources.files("orchestrator").joinpath("demo_config", name).read_text()
        if chunk_delay is not None:
            text = text.replace("demo: {kind: demo}", f"demo: {{kind: demo, options: {{chunk_delay: {chunk_delay}}}}}")
        (home / name).write_text(text)


class DaemonProcess:
    """``python -m orchestrator serve`` on a temporary home; ``kill9`` + ``start`` reuse its state."""

    def __init__(self, *, models: str | None = None, routing: str | None = None, daemon_yaml: str = "",
                 keep: bool = False, demo_chunk_delay: float | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="ochaos-", dir="/tmp"))   # short: ipc:// paths ≤ ~100 bytes
        self.home, self.state = self.root / "home", self.root / "state"
        if models is None:
            demo_home(self.home, demo_chunk_delay)
        else:
            self.home.mkdir()
            (self.home / "models.yaml").write_text(models)
            (self.home / "routing.yaml").write_text(routing or "schema_version: 1\n")
        (self.home / "daemon.yaml").write_text(daemon_yaml or "log_level: warning\nshutdown_grace_s: 2\n")
        self.endpoint = f"ipc://{self.root / 'd.sock'}"
        self.env = {**os.environ, **FAKE_KEYS, "ORCHESTRATOR_HOME": str(self.home),
                    "ORCHESTRATOR_STATE": str(self.state), "ORCHESTRATOR_ENDPOINT": self.endpoint,
                    "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(DAEMON_TREE)}
        self.log_path = self.root / "daemon.log"
        self.keep = keep
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def db_path(self) -> Path:
        return self.state / "orchestrator.db"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        return read_rss_kib(self.pid)

    def log_summary(self, top: int = 8) -> dict[str, int]:
        """The daemon's warnings and errors by message (structlog's console lines), most frequent first."""
        counts: dict[str, int] = {}
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return counts
        for line in lines:
            for level in ("warning", "error", "critical"):
                marker = f"[{level}"
                if marker in line:
                    message = line.split("]", 1)[-1].strip().split("  ")[0][:80]
                    key = f"{level}: {message}"
                    counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def spawn(self) -> subprocess.Popen:
        """Start ``serve`` (a fork and exec: quick enough to do from the event loop)."""
        with open(self.log_path, "ab") as log:
            # CHAOS_MEMPROBE=DIR: through chaos.memprobe (debug: what grows in the daemon).
            entry = "chaos.memprobe" if os.environ.get("CHAOS_MEMPROBE") else "orchestrator"
            self.proc = subprocess.Popen([sys.executable, "-m", entry, "serve"], env=self.env, cwd=DAEMON_TREE,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        return self.proc

    async def start(self) -> None:
        """Start ``serve`` and wait (bounded) until it answers a Ping."""
        self.spawn()
        assert self.proc is not None
        deadline = trio.current_time() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.proc.returncode}) while starting:\n{self.log_tail()}")
            with contextlib.suppress(DaemonUnreachable):
                async with open_client(self.endpoint, timeout=5) as client:
                    await client.ping(5)
                    return
            if trio.current_time() > deadline:
                raise RuntimeError(f"daemon did not answer within {READY_TIMEOUT_S:g}s of starting:\n{self.log_tail()}")
            await trio.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int | None:
        """SIGTERM, bounded wait, SIGKILL as the last resort; the exit code (None: never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- the state database, read from outside (read-only; WAL lets the daemon keep writing) --------

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        with self.db() as conn:
            return conn.execute(sql, params).fetchall()


def ledger_totals(daemon: DaemonProcess) -> dict[str, dict[str, int]]:
    """Per model: calls and tokens of the ledger rows the provider reported (estimates apart)."""
    out: dict[str, dict[str, int]] = {}
    for model, inp, outp, cread, cwrite, price in daemon.query(
            "SELECT model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, price FROM costs"):
        estimated = bool(json.loads(price or "{}").get("estimated"))
        row = out.setdefault(model, {"calls": 0, "input": 0, "output": 0, "cache_read": 0, "cache_write": 0,
                                     "estimated_calls": 0})
        if estimated:
            row["estimated_calls"] += 1
            continue
        row["calls"] += 1
        row["input"] += inp
        row["output"] += outp
        row["cache_read"] += cread
        row["cache_write"] += cwrite
    return out


@attrs.define
class Report:
    """What a scenario measured and which of its invariants broke (``problems`` empty: all held)."""

    scenario: str
    size: str
    figures: dict[str, Any] = attrs.field(factory=dict)
    problems: list[str] = attrs.field(factory=list)
    loadavg_start: str = attrs.field(factory=loadavg)
    loadavg_end: str = ""
    started: float = attrs.field(factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str, *, limit: int = 50) -> None:
        if len(self.problems) < limit:
            self.problems.append(text)
        elif len(self.problems) == limit:
            self.problems.append("… more problems not listed")

    def finish(self) -> Report:
        self.loadavg_end = loadavg()
        self.figures["wall_s"] = round(time.monotonic() - self.started, 1)
        return self

    def render(self) -> str:
        lines = [f"## chaos: {self.scenario} ({self.size})",
                 f"loadavg at start: {self.loadavg_start}", f"loadavg at end:   {self.loadavg_end}"]
        for key, value in self.figures.items():
            lines.append(f"  {key}: {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
        lines.append("RESULT: ok" if self.ok else f"RESULT: {len(self.problems)} problem(s)")
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@attrs.define
class TurnRun:
    """One client turn as a scenario saw it. ``lost`` says why it has no terminal event (reported
    already): ``"hang"`` (none within the deadline) or ``"unreachable"`` (the daemon stopped answering)."""

    turn_id: str = "?"
    events: list[Any] = attrs.field(factory=list)
    terminal: Any = None
    lost: str | None = None


async def checked_turn(report: Report, client: Client, sid: str, text: str, *, deadline: float,
                       label: str = "") -> TurnRun:
    """Run one turn to its terminal event, within ``deadline`` seconds; a hang or an unreachable
    daemon is a problem of ``report`` (``label`` says whose turn it was), never an exception."""
    run = TurnRun()
    whose = f" ({label})" if label else ""
    try:
        with trio.fail_after(deadline):
            async with client.turn(sid, text) as turn:
                run.turn_id = turn.turn_id
                async for e in turn:
                    run.events.append(e)
                run.terminal = turn.terminal
    except trio.TooSlowError:
        run.lost = "hang"
        report.problem(f"turn {run.turn_id}{whose}: no terminal event within {deadline:g}s (hang)")
    except DaemonUnreachable as exc:
        run.lost = "unreachable"
        report.problem(f"turn {run.turn_id}{whose}: daemon unreachable: {exc}")
    return run


def scenario_parser(doc: str | None, full: str) -> argparse.ArgumentParser:
    """The flags every scenario has: ``--full`` (``full`` names the documented size), ``--seed``
    and ``--json``; the script adds its own sizes and rates."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help=f"the documented full size: {full}")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--json", help="also write the report here")
    return p


def size_label(full: bool, *overrides: object) -> str:
    """How a run was sized, for its report: ``--full``, the reduced defaults, or counts given by hand."""
    return "full" if full else ("reduced" if all(o is None for o in overrides) else "custom")


def main_exit(report: Report, json_out: str | None = None) -> None:
    print(report.render(), flush=True)
    if json_out:
        Path(json_out).write_text(json.dumps(attrs.asdict(report), default=str, indent=1))
    sys.exit(0 if report.ok else 1)
