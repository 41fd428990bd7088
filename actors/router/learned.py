"""The live pattern store behind slot 4 (issue 14 phase B): rated outcomes in, a chain source out.

Sans-IO: the router actor loads the rows (from the state database) and feeds rated turns in; this
module only turns them into :class:`PatternStore` outcomes and answers the chain's questions.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from actors.patterns.store import PatternStore
from actors.router.chain import NoRecommendation, PatternSource
from actors.router.context import TurnContext
from actors.router.policy import PatternConfig
from actors.runtime.store import PatternOutcome


class LivePatterns:
    def __init__(self, store: PatternStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else PatternStore()
        self.clock = clock

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[PatternOutcome]) -> LivePatterns:
        live = cls()
        for o in outcomes:
            live.add(o)
        return live

    def add(self, o: PatternOutcome) -> bool:
        """Learn one outcome; a row out of range (a corrupt database) is skipped, never fatal."""
        if not o.text or not 0.0 <= o.score <= 1.0 or not o.cost_usd >= 0.0:
            return False
        self.store.add_outcome(o.text, o.model, o.score, o.cost_usd, workspace=o.workspace or "", at=o.at)
        return True

    def source(self, candidates: Iterable[str] | None = None) -> PatternSource:
        allowed = tuple(candidates) if candidates is not None else None

        def recommend(ctx: TurnContext, cfg: PatternConfig):
            if len(self.store) == 0:
                return NoRecommendation("no rated outcomes yet (`orchestrator rate`)")
            cands = [m for m in self.store.models if allowed is None or m in allowed]
            if not cands:
                return NoRecommendation("no rated outcomes for a configured model")
            rec, why = self.store.explain(ctx.message_text, cands, cfg.cost_weight, cfg.min_confidence,
                                          cfg.min_sample_size, self.clock())
            return rec if rec is not None else NoRecommendation(why)
        return recommend
