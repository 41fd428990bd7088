"""The live pattern store behind slot 4 (issue 14 phase B): rated outcomes in, a chain source out.

Sans-IO: the router actor loads the rows (from the state database) and feeds rated turns in; this
module only turns them into :class:`PatternStore` outcomes and answers the chain's questions.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from attrs import frozen

from actors.patterns.fingerprint import pack_vector, unpack_vector
from actors.patterns.store import PatternStore
from actors.router.chain import NoRecommendation, PatternSource
from actors.router.context import TurnContext
from actors.router.policy import DisagreementConfig, PatternConfig
from actors.runtime.store import PatternOutcome, StoredOutcome, TurnFacts
from protocol.routing import Policy, PolicyEvaluation, Verdict


# What a /route choice teaches (spec §5.6: "the user's choice is itself an event … feeding back into
# pattern learning"). Both rows are about the model that actually ran the turn — the rule's — never
# about the suggested model, whose answer the user has not seen (no signal → no row):
# * override: the user rejected the rule's model's turn in favour of the suggestion → that model
#   scored 0 on this text; the re-run turn on the suggested model is rated on its own, if at all;
# * ignore: the user kept the rule's model's answer → that model scored 1 on this text, so the
#   store stops preferring the suggestion for texts like it.
OVERRIDE_SCORE = 0.0
DISMISS_SCORE = 1.0
LOADING_REASON = "pattern store loading"

NewFingerprints = list[tuple[int, str, bytes]]


class LivePatterns:
    def __init__(self, store: PatternStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else PatternStore()
        self.clock = clock
        self.loading = False    # True while the start-up load runs: slot 4 answers not_applicable
        self.load_error: str | None = None   # the start-up load failed: said in the trace while empty

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[PatternOutcome]) -> LivePatterns:
        live = cls()
        for o in outcomes:
            live.add(o)
        return live

    @property
    def fingerprint_name(self) -> str:
        return self.store.fp.name

    def fingerprint(self, text: str) -> np.ndarray:
        return self.store.fingerprint(text)

    def add(self, o: PatternOutcome, vec: np.ndarray | None = None) -> bool:
        """Learn one outcome; a row out of range (a corrupt database) is skipped, never fatal."""
        if not o.text or not 0.0 <= o.score <= 1.0 or not o.cost_usd >= 0.0:
            return False
        self.store.add_outcome(o.text if vec is None else vec, o.model, o.score, o.cost_usd,
                               workspace=o.workspace or "", at=o.at)
        return True

    def load_stored(self, rows: Sequence[StoredOutcome]) -> NewFingerprints:
        """Learn stored rows, reusing each cached fingerprint made by this store's fingerprinter;
        returns the fingerprints it had to compute, for the caller to cache in the database."""
        name, dim = self.store.fp.name, self.store.fp.dim
        self.store.begin_bulk()
        fresh: NewFingerprints = []
        vecs: list[np.ndarray] = []
        kept: list[PatternOutcome] = []
        for r in rows:
            o = r.outcome
            if not o.text or not 0.0 <= o.score <= 1.0 or not o.cost_usd >= 0.0:
                continue    # a corrupt row is skipped, never fatal
            vec = None
            if r.fp_name == name and r.fp:
                try:
                    vec = unpack_vector(r.fp)
                except ValueError:
                    vec = None
                if vec is not None and len(vec) != dim:
                    vec = None
            if vec is None:
                vec = self.store.fingerprint(o.text)
                fresh.append((r.id, name, pack_vector(vec)))
            vecs.append(vec)
            kept.append(o)
        if kept:
            self.store.add_many(np.stack(vecs), [o.model for o in kept], [o.score for o in kept],
                                [o.cost_usd for o in kept], [o.workspace or "" for o in kept], [o.at for o in kept])
        return fresh

    def finish_load(self) -> None:
        """After the last :meth:`load_stored` chunk: build the search index once."""
        self.store.finish_bulk()

    def source(self, candidates: Iterable[str] | None = None) -> PatternSource:
        allowed = tuple(candidates) if candidates is not None else None

        def recommend(ctx: TurnContext, cfg: PatternConfig):   # → Recommendation | NoRecommendation
            if self.loading:
                return NoRecommendation(LOADING_REASON)
            if len(self.store) == 0:
                if self.load_error:
                    return NoRecommendation(f"pattern store not loaded ({self.load_error}); see the daemon log")
                return NoRecommendation("no rated outcomes yet (`orchestrator rate`)")
            cands = [m for m in self.store.models if allowed is None or m in allowed]
            if not cands:
                return NoRecommendation("no rated outcomes for a configured model")
            rec, why = self.store.explain(ctx.message_text, cands, cfg.cost_weight, cfg.min_confidence,
                                          cfg.min_sample_size, self.clock())
            return rec if rec is not None else NoRecommendation(why)
        return recommend

    def stats(self) -> dict[str, object]:
        return {**self.store.stats(), "loading": self.loading}


def choice_outcome(s: Suggestion, action: str, facts: TurnFacts | None, at: float) -> PatternOutcome:
    """The outcome row a /route override|ignore teaches (see OVERRIDE_SCORE / DISMISS_SCORE)."""
    override = action == "override"
    return PatternOutcome(s.turn_id, facts.session_id if facts else None, facts.workspace if facts else None, s.text,
                          s.from_model, OVERRIDE_SCORE if override else DISMISS_SCORE,
                          facts.cost_usd if facts else 0.0, at, "override" if override else "dismissal")


@frozen
class Suggestion:
    """A surfaced disagreement (spec §5.6): the rule's model, the store's, and the turn to re-dispatch."""
    turn_id: str
    from_model: str
    to_model: str
    text: str


def surfaced_suggestion(turn_id: str, text: str, chain: Sequence[PolicyEvaluation], chosen: str | None,
                        d: DisagreementConfig) -> Suggestion | None:
    """The suggestion the disagreement banner showed for this decision, if it showed one."""
    if not d.surface or chosen is None:
        return None
    for e in chain:
        if (e.policy is Policy.PATTERN and e.verdict is Verdict.DEFERRED and e.candidate_model
                and e.candidate_model != chosen and (e.confidence or 0.0) >= d.min_confidence
                and (e.sample_size or 0) >= d.min_sample_size):
            return Suggestion(turn_id, chosen, e.candidate_model, text)
    return None


class PendingSuggestions:
    """At most one pending suggestion per session (its last turn's), bounded in sessions."""

    def __init__(self, cap: int = 1024) -> None:
        self.cap = cap
        self._by_session: dict[str, Suggestion] = {}

    def set(self, session_id: str, s: Suggestion | None) -> None:
        self._by_session.pop(session_id, None)    # a newer turn replaces (or clears) the old suggestion
        if s is None:
            return
        if len(self._by_session) >= self.cap:
            del self._by_session[next(iter(self._by_session))]
        self._by_session[session_id] = s

    def take(self, session_id: str) -> Suggestion | None:
        return self._by_session.pop(session_id, None)
