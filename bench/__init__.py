"""The benchmark suite: ``python -m bench [--quick] [--json PATH] [--only NAME,...]``.

Every benchmark measures its own baseline in the same run (rounds interleaved) and reports the
ratio, because the machines are shared and absolute numbers drift by up to 2×. Results and the
machine description go into docs/benchmarks.md.
"""
