"""Fallback-chain semantics as a pure state machine on an injected clock (the seed's
``call_with_fallback``):

- a timeout or a rate limit → retry the same entry (up to its ``retry``), then the next entry;
- a confidence below the gate (default 30) → the next entry at once, without a retry;
- any other failure (auth, bad request, …) → the next entry: retrying cannot fix it;
- every entry spent → ``all_models_failed``, naming the chain.

The runner asks ``next_attempt()`` for what to try and until when (``deadline`` on the injected
clock), runs it, and ``record()``s what happened. The accepted result names the model, the attempt
(1-based, within its entry) and the fallback depth (0 = the first entry).
"""
from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from actors.workflows.model import FallbackChain

RETRYABLE = frozenset({"timeout", "rate_limited"})


@frozen
class Attempt:
    model: str
    depth: int                  # index of the entry in the chain
    attempt: int                # 1-based, within the entry
    deadline: float             # on the injected clock


@frozen
class Outcome:
    kind: str                   # ok | timeout | rate_limited | failed
    output: str = ""
    confidence: int | None = None
    error: str | None = None    # the failure's code, for the record


@frozen
class Tried:
    model: str
    depth: int
    attempt: int
    result: str                 # accepted | retry | low_confidence | timeout | rate_limited | failed


@frozen
class ChainResult:
    model: str
    attempt: int
    fallback_depth: int
    output: str
    confidence: int | None


class AllModelsFailed(Exception):
    """No entry of the chain produced an acceptable answer."""

    error = "all_models_failed"

    def __init__(self, chain: str, tried: list[Tried]):
        self.chain, self.tried = chain, tried
        detail = ", ".join(f"{t.model}#{t.attempt}: {t.result}" for t in tried) or "nothing tried"
        super().__init__(f"no model in chain '{chain}' produced acceptable output ({detail})")


class ChainRun:
    def __init__(self, chain: FallbackChain, clock: Callable[[], float]):
        self.chain = chain
        self._clock = clock
        self._depth = 0
        self._attempt = 0           # attempts made on the current entry
        self.tried: list[Tried] = []
        self.result: ChainResult | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self._depth >= len(self.chain.entries)

    def next_attempt(self) -> Attempt | None:
        """What to try next, or None when the chain is decided (``result`` set, or exhausted)."""
        if self.done:
            return None
        entry = self.chain.entries[self._depth]
        self._attempt += 1
        return Attempt(entry.model, self._depth, self._attempt, self._clock() + entry.timeout_s)

    def record(self, attempt: Attempt, outcome: Outcome) -> str:
        """Account for one attempt's outcome; returns what happened (a ``Tried.result``)."""
        entry = self.chain.entries[attempt.depth]
        if outcome.kind == "ok":
            gate = self.chain.confidence_gate
            if outcome.confidence is not None and outcome.confidence < gate:
                return self._note(attempt, "low_confidence", advance=True)
            self.result = ChainResult(attempt.model, attempt.attempt, attempt.depth, outcome.output,
                                      outcome.confidence)
            return self._note(attempt, "accepted", advance=False)
        if outcome.kind in RETRYABLE:
            return self._note(attempt, outcome.kind, advance=attempt.attempt > entry.retry)
        return self._note(attempt, "failed", advance=True)

    def failure(self) -> AllModelsFailed:
        return AllModelsFailed(self.chain.name, self.tried)

    def _note(self, attempt: Attempt, result: str, *, advance: bool) -> str:
        self.tried.append(Tried(attempt.model, attempt.depth, attempt.attempt, result))
        if advance:
            self._depth += 1
            self._attempt = 0
        return result
