"""Coverage-guided fuzzing of the frame decoder with atheris (libFuzzer for Python); optional.

    pip install atheris                          # not a project dependency
    python -m chaos.fuzz_decoder_atheris         # 100,000 runs
    python -m chaos.fuzz_decoder_atheris --full  # 1,000,000 runs
    python -m chaos.fuzz_decoder_atheris -- -max_total_time=600   # libFuzzer options after --

protocol/ and cattrs are imported under atheris' instrumentation, so libFuzzer's mutations are guided by the
decoder's branch coverage; the corpus starts from one valid frame per message class. Anything the
decoder raises other than a FrameError stops the run with the input that caused it (exit ≠ 0).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports(include=["protocol", "cattrs"]):
    from protocol.codec import decode
    from protocol.errors import FrameError


def one(data: bytes) -> None:
    try:
        decode(data)
    except FrameError:
        pass


def main() -> None:
    from chaos.fuzz_frames import corpus

    runs = 1_000_000 if "--full" in sys.argv else 100_000
    seeds = Path(tempfile.mkdtemp(prefix="ochaos-corpus-"))
    for i, frame in enumerate(corpus()):
        (seeds / f"seed{i}").write_bytes(frame)
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=4096", *extra, str(seeds)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
