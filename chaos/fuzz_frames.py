"""Fuzzed frames against the frame decoder and against a live daemon's socket.

    python -m chaos.fuzz_frames               # reduced (CI): 4,000 frames
    python -m chaos.fuzz_frames --full        # 1,000,000 frames
    python -m chaos.fuzz_frames --frames N --seed 7 [--decoder-only]
    python -m chaos.fuzz_decoder_atheris [--full]   # coverage-guided, decoder only (`pip install atheris`)

Frames are mutations of a corpus of valid frames — one per message class of the wire vocabulary,
sent to the actors that serve them — at two levels: bytes (bit flips, replaced / inserted / deleted
bytes, truncation, splices of two frames, duplicated runs, random bytes) and msgpack structure
(the envelope unpacked, one part replaced by a hostile value: another or an unknown tag, versions
out of range, headers of the wrong type, body fields deleted, added or swapped for junk such as
huge integers, NaN, deep nesting, long strings; then packed again).

Every frame goes through ``protocol.codec.decode`` here (a crash is anything but a FrameError)
and then, in batches closed by a Ping barrier, to a real ``orchestrator serve`` (demo models)
over a ZeroMQ DEALER. Invariants: 0 decoder crashes; every frame the decoder rejects is answered
by the daemon with a ``Failure`` carrying the same error code; the daemon process stays up, no
actor restarts, and a normal turn completes afterwards.
"""
from __future__ import annotations

import math
import random
import sys
import time
from collections import Counter
from typing import Any

import msgpack
import trio
import zmq

from chaos._harness import DaemonProcess, Report, checked_turn, main_exit, scenario_parser, size_label
from orchestrator.client import open_client
from protocol import events as ev
from protocol.codec import Envelope, decode, encode, new_id
from protocol.errors import FrameError
from protocol.messages import TAGS, Failure, Ping, Pong
from protocol.transport import open_zmq_socket

BATCH = 500
ACTORS = ("session", "control", "cost", "router", "planner", "worker", "availability", "nobody")


def corpus() -> list[bytes]:
    """One valid frame per message class (sample values from the codec round-trip test)."""
    from tests.test_codec import sample

    frames = []
    for i, (_tag, cls) in enumerate(sorted(TAGS.items())):
        try:
            body = sample(cls)
        except TypeError:
            continue
        frames.append(encode(Envelope(body, ACTORS[i % len(ACTORS)], "fuzz/client")))
    return frames


_HOSTILE: list[Any] = [None, True, -1, 0, 2**63 - 1, 2**64 - 1, -(2**63), math.nan, math.inf, -math.inf, 1e308,
                       "", "x" * 70_000, "\x00\ud7ff", b"", b"\xff" * 300, [], {}, [[[[[[]]]]]], {"": None},
                       {"type": "nope"}, {"k": {"k": {"k": {"k": {"k": {}}}}}}, list(range(200))]


class Mutator:
    def __init__(self, rng: random.Random, seeds: list[bytes]):
        self.rng = rng
        self.seeds = seeds
        self.tags = sorted(TAGS)

    def junk(self, depth: int = 0) -> Any:
        r = self.rng
        roll = r.random()
        if roll < 0.5 or depth > 3:
            return r.choice(_HOSTILE)
        if roll < 0.7:
            return r.randbytes(r.randint(0, 40)).decode("latin-1")
        if roll < 0.85:
            return [self.junk(depth + 1) for _ in range(r.randint(0, 4))]
        return {r.choice(("text", "session_id", "type", "k", "")): self.junk(depth + 1) for _ in range(r.randint(0, 3))}

    def structural(self, frame: bytes) -> bytes:
        r = self.rng
        env = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        choice = r.randrange(7)
        if choice == 0:
            env[2] = r.choice((r.choice(self.tags), "no.such.tag", 7, None, ""))
        elif choice == 1:
            env[r.randrange(2)] = r.choice((-1, 2, 99, 2**40, "1", None, 1.5))
        elif choice == 2:
            env[r.randrange(3, 7)] = self.junk()
        elif choice == 3 and isinstance(env[7], dict) and env[7]:
            key = r.choice(list(env[7]))
            if r.random() < 0.4:
                del env[7][key]
            else:
                env[7][key] = self.junk()
        elif choice == 4 and isinstance(env[7], dict):
            env[7][r.choice(("extra", "text", "type", "session_id"))] = self.junk()
        elif choice == 5:
            env = env[: r.randrange(len(env))] if r.random() < 0.5 else env + [self.junk()]
        else:
            env[7] = self.junk()
        try:
            return msgpack.packb(env, use_bin_type=True)
        except (ValueError, OverflowError, TypeError):
            return frame[: len(frame) // 2]

    def bytewise(self, frame: bytes) -> bytes:
        r = self.rng
        b = bytearray(frame)
        for _ in range(r.randint(1, 4)):
            op = r.randrange(7)
            if op == 0 and b:
                i = r.randrange(len(b))
                b[i] ^= 1 << r.randrange(8)
            elif op == 1 and b:
                b[r.randrange(len(b))] = r.randrange(256)
            elif op == 2:
                i = r.randrange(len(b) + 1)
                b[i:i] = r.randbytes(r.randint(1, 8))
            elif op == 3 and b:
                i = r.randrange(len(b))
                del b[i:i + r.randint(1, 8)]
            elif op == 4:
                b = b[: r.randrange(len(b) + 1)]
            elif op == 5:
                other = r.choice(self.seeds)
                b = b[: r.randrange(len(b) + 1)] + other[r.randrange(len(other) + 1):]
            elif b:
                i = r.randrange(len(b))
                b[i:i] = b[i:i + r.randint(1, 16)] * r.randint(1, 4)
        return bytes(b)

    def frame(self) -> bytes:
        r = self.rng
        seed = r.choice(self.seeds)
        roll = r.random()
        if roll < 0.03:
            return r.randbytes(r.randint(0, 256))
        if roll < 0.5:
            return self.bytewise(seed)
        return self.structural(seed)


def check_decoder(frame: bytes, report: Report, counts: Counter) -> str | None:
    """The error code the decoder gives (None: it decoded); anything but a FrameError is a crash."""
    try:
        decode(frame)
    except FrameError as exc:
        counts[exc.code] += 1
        return exc.code
    except BaseException as exc:  # noqa: BLE001 — this is what the fuzzer looks for
        counts["CRASH"] += 1
        report.problem(f"decoder crashed with {type(exc).__name__}: {exc!r} on frame {frame[:80].hex()}")
        return None
    counts["decoded"] += 1
    return None


async def run(*, frames: int, seed: int, decoder_only: bool = False, size: str = "custom") -> Report:
    report = Report("fuzz_frames", size)
    rng = random.Random(seed)
    mutator = Mutator(rng, corpus())
    counts: Counter[str] = Counter()
    report.figures.update(frames=frames, seed=seed, corpus=len(mutator.seeds))
    if decoder_only:
        started = time.perf_counter()
        for _ in range(frames):
            check_decoder(mutator.frame(), report, counts)
        report.figures["decoder_frames_per_s"] = round(frames / (time.perf_counter() - started))
        report.figures["decoder_outcomes"] = dict(counts)
        return report.finish()
    # Demo models without their streaming delay: a mutation that stays a valid StartTurn runs a
    # turn, and those turns should cost the daemon little next to the frames under test.
    daemon = DaemonProcess(demo_chunk_delay=0.0)
    try:
        await daemon.start()
        rss_before = daemon.rss_kib()
        replies = await _live(report, daemon, mutator, frames, counts)
        report.figures["decoder_outcomes"] = dict(counts)
        report.figures["daemon_replies"] = dict(replies)
        report.figures["rss_kib_before_after"] = [rss_before, daemon.rss_kib()]
        await _still_serving(report, daemon)
        exit_code = daemon.stop()
        if exit_code != 0:
            report.problem(f"daemon exited {exit_code} on SIGTERM at the end:\n{daemon.log_tail()}")
    finally:
        daemon.close()
    return report.finish()


async def _live(report: Report, daemon: DaemonProcess, mutator: Mutator, frames: int, counts: Counter) -> Counter:
    replies: Counter[str] = Counter()
    rejected: Counter[str] = Counter()    # what the local decoder said, per code
    started = time.perf_counter()
    async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=daemon.endpoint,
                               options={zmq.RCVHWM: 0, zmq.SNDHWM: 0}) as sock:
        sent = 0
        while sent < frames:
            batch = [mutator.frame() for _ in range(min(BATCH, frames - sent))]
            for frame in batch:
                code = check_decoder(frame, report, counts)
                if code is not None:
                    rejected[code] += 1
                await sock.send([frame])
            sent += len(batch)
            barrier = Envelope(Ping(b"barrier"), "control", "fuzz/client", new_id())
            await sock.send([encode(barrier)])
            try:
                with trio.fail_after(120):
                    while True:
                        env = decode((await sock.receive())[-1])
                        if env.correlation_id == barrier.msg_id and isinstance(env.body, Pong):
                            break
                        if isinstance(env.body, Failure):
                            replies[env.body.code] += 1
                        else:
                            replies[f"other:{type(env.body).__name__}"] += 1
            except trio.TooSlowError:
                report.problem(f"no answer to the barrier Ping after {sent} frames (daemon alive: {daemon.alive()})")
                break
            if not daemon.alive():
                report.problem(f"daemon exited after {sent} frames:\n{daemon.log_tail()}")
                break
            if sent % 100_000 < BATCH:
                print(f"  … {sent:,} frames, {time.perf_counter() - started:,.0f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    report.figures["live_frames_per_s"] = round(frames / elapsed)
    report.figures["live_seconds"] = round(elapsed, 1)
    for code, n in rejected.items():
        if replies[code] != n:
            report.problem(f"{n} frames the decoder rejects as {code}, but {replies[code]} such Failure replies")
    return replies


async def _still_serving(report: Report, daemon: DaemonProcess) -> None:
    async with open_client(daemon.endpoint) as client:
        status = await client.status()
        restarted = {name: a["restarts"] for name, a in status.actors.items() if a.get("restarts")}
        if restarted:
            report.problem(f"actors restarted during the fuzzing: {restarted}")
        report.figures["actor_faults"] = {name: a.get("faults", 0) for name, a in status.actors.items()
                                          if a.get("faults")}
        sid = (await client.open_session()).session_id
        turn = await checked_turn(report, client, sid, "a normal turn after the fuzzing", deadline=60)
        if not turn.lost and not isinstance(turn.terminal, ev.TurnCompleted):
            report.problem(f"the turn after the fuzzing ended {turn.terminal!r}")


REDUCED = {"frames": 4_000}
FULL = {"frames": 1_000_000}


def main() -> None:
    p = scenario_parser(__doc__, "1,000,000 frames")
    p.add_argument("--frames", type=int)
    p.add_argument("--decoder-only", action="store_true", help="no daemon: the decoder alone")
    a = p.parse_args()
    frames = a.frames or (FULL if a.full else REDUCED)["frames"]
    report = trio.run(lambda: run(frames=frames, seed=a.seed, decoder_only=a.decoder_only,
                                  size=size_label(a.full, a.frames)))
    main_exit(report, a.json)


if __name__ == "__main__":
    main()
