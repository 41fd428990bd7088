"""What every benchmark shares: statistics, the result shape, and out-of-process helpers.

Result shape (what ``python -m bench`` prints and writes with ``--json``)::

    {"title": str, "notes": [str],
     "rows": [{"name", "median_us", "p99_us", "throughput", "throughput_unit", "ratio", "baseline"}],
     "targets": [{"name", "target", "value", "met"}],
     "raw": {...}}              # the module's own detailed numbers

``ratio`` is always ``this row's median / its baseline row's median`` (``baseline`` names that
row), both measured in the same run, rounds interleaved, so machine load hits both alike.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------- statistics

def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def summary_us(samples_us: list[float]) -> dict[str, float]:
    return {"median_us": statistics.median(samples_us), "p99_us": p99(samples_us), "n": len(samples_us)}


def row(name: str, median_us: float | None, p99_us: float | None = None, *, throughput: float | None = None,
        throughput_unit: str = "", baseline: str | None = None, base_median_us: float | None = None,
        ratio: float | None = None) -> dict:
    """One table row; the ratio is computed against ``base_median_us`` unless given."""
    if ratio is None and base_median_us and median_us is not None:
        ratio = median_us / base_median_us
    return {"name": name, "median_us": median_us, "p99_us": p99_us, "throughput": throughput,
            "throughput_unit": throughput_unit, "ratio": ratio, "baseline": baseline}


def target(name: str, target_text: str, value_text: str, met: bool) -> dict:
    return {"name": name, "target": target_text, "value": value_text, "met": bool(met)}


# ---------------------------------------------------------------------------------- the machine

def machine_info() -> dict:
    import msgpack
    import trio
    import zmq

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "trio": trio.__version__, "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, msgpack.version)), "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def read_rss_kib(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def process_cpu_s(pid: int) -> float:
    """User + system CPU of a whole process (every thread, living or exited), from /proc/<pid>/stat.

    Resolution is one clock tick (10 ms here): divide a delta over many turns, not one."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """Nanosecond CPU time per living thread (/proc/<pid>/task/*/schedstat): for windows too short
    for clock ticks. Compare with ``cpu_delta_ns``, which ignores threads that came or went."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return out


def cpu_delta_ns(before: dict[int, int], after: dict[int, int]) -> int:
    return sum(after[t] - before[t] for t in after if t in before)


# ---------------------------------------------------------------------------------- processes

def daemon_tree() -> Path:
    """The source tree the daemon runs from: this one, or ``$BENCH_DAEMON_TREE`` (an older checkout,
    to measure before → after with the same benchmark and the same client)."""
    return Path(os.environ.get("BENCH_DAEMON_TREE") or ROOT)


def short_tmpdir(prefix: str) -> Path:
    """A temp dir short enough for ipc:// socket paths (~100 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


class FakeProvider:
    """``bench/fake_provider.py`` in its own process: an OpenAI-compatible streaming server."""

    def __init__(self, dump_dir: Path):
        self.dump_dir = dump_dir
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--dump", str(dump_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if line[:1] != ["ready"]:
            self.proc.kill()
            raise RuntimeError(f"fake provider failed to start: {line!r}")
        self.base_url = line[1]

    def request_body(self, model: str) -> dict:
        """The first request body the fake received for ``model`` (captured from the daemon)."""
        import json

        return json.loads((self.dump_dir / f"{model}.json").read_text())

    def close(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.dump_dir, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # EOF on stdin: the helper's signal to exit
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def models_yaml(base_url: str, chunk_models: Iterator[int] | list[int], *, non_streaming: tuple[int, ...] = ()) -> str:
    """One ``openai_compatible`` provider at the fake; model ``fake:cN`` answers in N chunks (in one
    JSON body when N is in ``non_streaming``)."""
    lines = ["providers:",
             f'  fake: {{kind: openai_compatible, base_url: "{base_url}", api_key_env: null}}',
             "models:"]
    for n in chunk_models:
        streaming = "" if n not in non_streaming else ", supports_streaming: false"
        lines += [f'  "fake:c{n}":', "    tier: balanced",
                  f"    capabilities: {{max_context_tokens: 128000{streaming}}}",
                  "    pricing: {input_per_mtok: 0.5, output_per_mtok: 1.5}"]
    return "\n".join(lines) + "\n"


def routing_yaml(default_model: str, rules: dict[str, str]) -> str:
    """``rules`` maps a marker substring of the message to the model that answers it."""
    out = f"schema_version: 1\nglobal_default: {default_model}\nrules:\n"
    for marker, model in rules.items():
        out += f'  - name: "{marker}"\n    when: {{message_contains_any: ["{marker}"]}}\n    use: {model}\n'
    return out if rules else out.replace("rules:\n", "")


class DaemonProcess:
    """``python -m orchestrator serve`` on a temporary home, as a real deployment runs it."""

    def __init__(self, models: str, routing: str, *, log_level: str = "info", serve_args: tuple[str, ...] = (),
                 launcher: tuple[str, ...] = ("-m", "orchestrator"), extra_env: dict[str, str] | None = None):
        self.root = short_tmpdir("obench-")
        home, state = self.root / "home", self.root / "state"
        home.mkdir()
        state.mkdir()
        (home / "models.yaml").write_text(models)
        (home / "routing.yaml").write_text(routing)
        (home / "daemon.yaml").write_text(f"log_level: {log_level}\nshutdown_grace_s: 2\n")
        self.endpoint = f"ipc://{self.root / 'd.sock'}"
        tree = daemon_tree()
        env = dict(os.environ, ORCHESTRATOR_HOME=str(home), ORCHESTRATOR_STATE=str(state),
                   ORCHESTRATOR_ENDPOINT=self.endpoint, PYTHONUNBUFFERED="1", PYTHONPATH=str(tree), **(extra_env or {}))
        self.log_path = self.root / "daemon.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, *launcher, "serve", *serve_args], env=env, cwd=tree,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self, field: str = "VmRSS") -> int:
        return read_rss_kib(self.proc.pid, field)

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def thread_cpu_ns(self) -> dict[int, int]:
        return thread_cpu_ns(self.proc.pid)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        sock = self.endpoint[len("ipc://"):]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.proc.returncode}):\n{self.log_path.read_text()[-2000:]}")
            if os.path.exists(sock):  # bound only once every actor runs (Daemon.run)
                return
            time.sleep(0.02)
        raise RuntimeError(f"daemon not ready within {timeout}s:\n{self.log_path.read_text()[-2000:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class BackgroundLoad:
    """``nproc`` busy-looping processes at normal priority, so a benchmark runs on a machine whose
    cores are all busy. Bounded: each exits after ``max_s`` seconds, or when closed."""

    def __init__(self, max_s: float = 300.0, procs: int | None = None):
        code = ("import sys, time\n"
                f"end = time.monotonic() + {max_s!r}\n"
                "x = 0\n"
                "while time.monotonic() < end:\n"
                "    for _ in range(20000): x += 1\n")
        self.procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
                      for _ in range(procs or os.cpu_count() or 1)]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()


@contextlib.contextmanager
def closing_all(*objs) -> Iterator[None]:
    try:
        yield
    finally:
        for obj in reversed(objs):
            obj.close()


# ---------------------------------------------------------------------------------- printing

def fmt_time(us: float | None) -> str:
    if us is None:
        return ""
    if abs(us) >= 10_000:
        return f"{us / 1000:,.2f} ms"
    if abs(us) >= 10:
        return f"{us:,.1f} µs"
    return f"{us:.2f} µs"


def fmt_throughput(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:,.0f} {unit}".strip()


def print_section(section: dict, file=None) -> None:
    out = file or sys.stdout
    rows = section["rows"]
    w = max([len(r["name"]) for r in rows] + [20]) + 2
    print(f"\n## {section['title']}", file=out)
    print(f"{'measurement':<{w}}{'median':>12}{'p99':>12}{'throughput':>20}{'ratio':>9}  baseline", file=out)
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else ""
        print(f"{r['name']:<{w}}{fmt_time(r['median_us']):>12}{fmt_time(r['p99_us']):>12}"
              f"{fmt_throughput(r['throughput'], r['throughput_unit']):>20}{ratio:>9}  {r.get('baseline') or ''}",
              file=out)
    for note in section.get("notes", ()):
        print(f"  note: {note}", file=out)
    for t in section.get("targets", ()):
        mark = "MET   " if t["met"] else "MISSED"
        print(f"  [{mark}] {t['name']}: {t['value']} (target {t['target']})", file=out)
