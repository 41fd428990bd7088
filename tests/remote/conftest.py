"""Key pairs, a hub on a loopback port, and workers (in-process or as `orchestrator worker` processes)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from actors.remote.config import WorkersConfig
from actors.remote.keys import KeyPair, generate_key_pair, write_key_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_pair(short_tmp) -> tuple[Path, KeyPair]:
    pair = generate_key_pair()
    path = short_tmp / "server.key"
    write_key_file(path, pair)
    return path, pair


@pytest.fixture
def worker_pair(short_tmp) -> tuple[Path, KeyPair]:
    pair = generate_key_pair()
    path = short_tmp / "worker.key"
    write_key_file(path, pair)
    return path, pair


def workers_config(server_file: Path, *allowed: bytes, heartbeat_s: float = 0.5,
                   pools: tuple[str, ...] = ("default", "build")) -> WorkersConfig:
    return WorkersConfig("tcp://127.0.0.1:*", tuple(k.decode() for k in allowed), str(server_file),
                         heartbeat_s, pools)


class WorkerProcess:
    """``orchestrator worker`` as a child process in its own cwd, with a marker in its environment."""

    def __init__(self, proc: subprocess.Popen, cwd: Path):
        self.proc = proc
        self.cwd = cwd

    @property
    def pid(self) -> int:
        return self.proc.pid


def _spawn(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def start_worker_process(endpoint: str, key_file: Path, server_public: bytes, cwd: Path, *,
                               pool: str = "build", mark: str = "on-the-worker") -> WorkerProcess:
    """Start a worker and wait for its "connected" line (the daemon welcomed it)."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WORKER_MARK": mark, "PYTHONPATH": str(REPO), "ORCHESTRATOR_STATE": str(cwd / "state")}
    proc = _spawn([sys.executable, "-m", "orchestrator", "worker", "--connect", endpoint, "--key", str(key_file),
                   f"--server-key={server_public.decode()}", "--pool", pool, "--hello-timeout", "20"], cwd, env)
    assert proc.stdout is not None
    line = "-"
    while line and "connected" not in line:   # log lines may come first
        line = await trio.to_thread.run_sync(proc.stdout.readline)
    if "connected" not in line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"worker did not connect: {line!r} {err[-2000:]!r}")
    return WorkerProcess(proc, cwd)


def stop_worker_process(worker: WorkerProcess) -> None:
    if worker.proc.poll() is None:
        worker.proc.terminate()
        try:
            worker.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
    for stream in (worker.proc.stdout, worker.proc.stderr):
        if stream is not None:
            stream.close()


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes in a container is not running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
