"""The pattern store (issue 14): outcome rows in, recommendations out — pure, in memory.

Outcomes with the same fingerprint share a row of per-model aggregates (count, quality sum), so
a query costs one nearest-neighbour search over the distinct fingerprints (:mod:`.index`: exact up
to 20k rows, an inverted-file index above) plus a k × models product. Persistence is the caller's:
:meth:`PatternStore.add_row` loads
:class:`OutcomeRow` values (e.g. from the state database), :meth:`PatternStore.rows` gives every row
back in insertion order.

Neighbour weights are a similarity kernel, w = max(sim, 0)^power over the top ``k``: near-duplicate
texts dominate, loosely related ones still count a little. Shrinkage toward each model's store-wide
mean (``alpha`` pseudo-outcomes) replaces the spec's "K = 10 and a plain mean" (which, measured on
public routing data, routes worse than always using the best single model; docs/patterns.md).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
from attrs import frozen

from actors.patterns import scoring
from actors.patterns.fingerprint import Fingerprinter, make_fingerprinter
from actors.patterns.index import VectorIndex
from actors.patterns.types import Decision, OutcomeRow, Recommendation


@frozen
class StoreParams:
    """Chosen by cross-validation on the RouterBench train split only (bench/route_tune.py, docs/patterns.md)."""
    k: int = 256
    power: float = 2.0
    alpha: float = 2.0
    min_similarity: float = 0.2
    cost_scale: str = "log"                # cost efficiency "log" in price, or "linear" (spec §5.5)
    half_life_days: float | None = None    # recency decay of old outcomes; None keeps them all

    def __attrs_post_init__(self) -> None:
        if self.k < 1 or self.power < 0 or self.alpha < 0 or self.cost_scale not in ("log", "linear") or (
                self.half_life_days is not None and self.half_life_days <= 0):
            raise ValueError(f"invalid pattern store parameters: {self}")


class PatternStore:
    def __init__(self, fingerprinter: Fingerprinter | None = None, params: StoreParams | None = None) -> None:
        self.fp = fingerprinter if fingerprinter is not None else make_fingerprinter()
        self.params = params or StoreParams()
        self.models: list[str] = []
        self._model_ix: dict[str, int] = {}
        self._row_ix: dict[bytes, int] = {}
        self._index = VectorIndex(self.fp.dim)
        self._count = np.zeros((16, 4), dtype=np.float32)
        self._qsum = np.zeros((16, 4), dtype=np.float32)
        self._at = np.zeros(16, dtype=np.float64)
        self._tot_count = np.zeros(4)
        self._tot_q = np.zeros(4)
        self._tot_cost = np.zeros(4)
        # (row, model, quality, cost, workspace, at): the fingerprint bytes live once, in the index
        self._log: list[tuple[int, str, float, float, str, float]] = []

    # --- writing --------------------------------------------------------------------------------

    def fingerprint(self, text: str) -> np.ndarray:
        return self.fp(text)

    def add_outcome(self, text: str | np.ndarray, model: str, quality: float, cost_usd: float,
                    workspace: str = "", at: float = 0.0) -> OutcomeRow:
        vec = self.fp(text) if isinstance(text, str) else np.asarray(text, dtype=np.float32)
        row = OutcomeRow(self.fp.name, vec.tobytes(), model, float(quality), float(cost_usd), workspace, float(at))
        self.add_row(row)
        return row

    def add_row(self, row: OutcomeRow) -> None:
        if row.fingerprint_name != self.fp.name:
            raise ValueError(f"outcome fingerprinted with {row.fingerprint_name!r}, store uses {self.fp.name!r}")
        if not (0.0 <= row.quality <= 1.0) or not (row.cost_usd >= 0.0):
            raise ValueError(f"outcome out of range: quality {row.quality} (0..1), cost {row.cost_usd} (≥ 0)")
        if len(row.fingerprint) != 4 * self.fp.dim:
            raise ValueError(f"fingerprint has {len(row.fingerprint) // 4} dimensions, store uses {self.fp.dim}")
        r = self._row(row.fingerprint)
        m = self._model(row.model)
        self._count[r, m] += 1.0
        self._qsum[r, m] += row.quality
        self._at[r] = max(self._at[r], row.at)
        self._tot_count[m] += 1.0
        self._tot_q[m] += row.quality
        self._tot_cost[m] += row.cost_usd
        self._log.append((r, row.model, row.quality, row.cost_usd, row.workspace, row.at))

    def add_many(self, vecs: np.ndarray, models: Sequence[str], quality: Sequence[float], cost_usd: Sequence[float],
                 workspaces: Sequence[str], at: Sequence[float]) -> None:
        """Many fingerprinted outcomes at once (a start-up load): the same as :meth:`add_outcome` per
        row, with the per-model aggregates updated in a few array operations."""
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        q, c, t = (np.asarray(a, dtype=np.float64) for a in (quality, cost_usd, at))
        n = len(vecs)
        if vecs.ndim != 2 or vecs.shape[1] != self.fp.dim or not len(models) == len(workspaces) == len(q) == len(c) \
                == len(t) == n:
            raise ValueError(f"add_many needs {n} aligned rows of {self.fp.dim}-d fingerprints")
        if not (((q >= 0.0) & (q <= 1.0)).all() and (c >= 0.0).all()):
            raise ValueError("outcome out of range: quality (0..1), cost (≥ 0)")
        if n == 0:
            return
        rows = np.fromiter((self._row(v.tobytes()) for v in vecs), dtype=np.intp, count=n)
        ms = np.fromiter((self._model(m) for m in models), dtype=np.intp, count=n)
        np.add.at(self._count, (rows, ms), 1.0)
        np.add.at(self._qsum, (rows, ms), q)
        np.maximum.at(self._at, rows, t)
        k = len(self._tot_count)
        self._tot_count += np.bincount(ms, minlength=k)[:k]
        self._tot_q += np.bincount(ms, weights=q, minlength=k)[:k]
        self._tot_cost += np.bincount(ms, weights=c, minlength=k)[:k]
        self._log.extend(zip(rows.tolist(), models, q.tolist(), c.tolist(), workspaces, t.tolist(), strict=True))

    def begin_bulk(self) -> None:
        """Many rows follow (a start-up load): cluster the index once at :meth:`finish_bulk`."""
        self._index.begin_bulk()

    def finish_bulk(self) -> None:
        self._index.finish_bulk()

    def rows(self) -> Iterator[OutcomeRow]:
        vecs = self._index.vectors
        for r, model, quality, cost, workspace, at in self._log:
            yield OutcomeRow(self.fp.name, vecs[r].tobytes(), model, quality, cost, workspace, at)

    def __len__(self) -> int:
        return len(self._log)

    def stats(self) -> dict[str, object]:
        """What `orchestrator patterns stats` shows (DESIGN §4.7): outcomes, models, fingerprint."""
        mean, cost = self.global_stats()
        return {"outcomes": len(self._log), "distinct_texts": len(self._index), "fingerprint": self.fp.name,
                "models": {m: {"outcomes": int(self._tot_count[i]), "mean_quality": round(float(mean[i]), 4),
                               "mean_cost_usd": float(cost[i])} for i, m in enumerate(self.models)}}

    def _model(self, name: str) -> int:
        m = self._model_ix.get(name)
        if m is None:
            m = self._model_ix[name] = len(self.models)
            self.models.append(name)
            if m >= self._count.shape[1]:
                grow = self._count.shape[1]
                self._count = np.pad(self._count, ((0, 0), (0, grow)))
                self._qsum = np.pad(self._qsum, ((0, 0), (0, grow)))
                self._tot_count, self._tot_q, self._tot_cost = (np.pad(a, (0, grow)) for a in
                                                                (self._tot_count, self._tot_q, self._tot_cost))
        return m

    def _row(self, fingerprint: bytes) -> int:
        key = hashlib.blake2b(fingerprint, digest_size=16).digest()   # identical texts share a row
        r = self._row_ix.get(key)
        if r is not None:
            return r
        r = self._row_ix[key] = self._index.add(np.frombuffer(fingerprint, dtype=np.float32))
        if r >= len(self._count):
            self._count = np.concatenate([self._count, np.zeros_like(self._count)])
            self._qsum = np.concatenate([self._qsum, np.zeros_like(self._qsum)])
            self._at = np.concatenate([self._at, np.zeros_like(self._at)])
        return r

    # --- reading --------------------------------------------------------------------------------

    def global_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Store-wide mean quality and mean cost per model (aligned with :attr:`models`)."""
        k = len(self.models)
        n = np.maximum(self._tot_count[:k], 1.0)
        return self._tot_q[:k] / n, self._tot_cost[:k] / n

    def evidence(self, vec: np.ndarray, now: float | None = None) -> scoring.Evidence:
        k, p = len(self.models), self.params
        mean, cost = self.global_stats()
        if len(self._index) == 0:
            zero = np.zeros(k)
            return scoring.Evidence(tuple(self.models), zero, zero, zero, mean, cost, 0.0)
        top, sims = self._index.search(vec, p.k)
        s = sims.astype(np.float64)
        s[s < max(p.min_similarity, 0.0)] = 0.0       # dissimilar texts are no evidence at all
        w = s ** p.power
        if p.half_life_days is not None and now is not None:
            age_days = np.maximum(now - self._at[top], 0.0) / 86400.0
            w = w * 0.5 ** (age_days / p.half_life_days)
        counts = self._count[top, :k].astype(np.float64)
        return scoring.Evidence(
            models=tuple(self.models), weight=w @ counts, success=w @ self._qsum[top, :k].astype(np.float64),
            support=(counts * (s > 0)[:, None]).sum(axis=0), global_mean=mean, global_cost=cost,
            nearest=float(max(sims.max(initial=0.0), 0.0)))

    def recommend(self, text: str | np.ndarray, candidates: Sequence[str] | None = None, cost_weight: float = 0.05,
                  min_confidence: float = 0.05, min_sample_size: int = 5,
                  now: float | None = None) -> Recommendation | None:
        """Slot 4's answer (spec §5.5): a recommendation that passed the evidence gate, or None."""
        return self.explain(text, candidates, cost_weight, min_confidence, min_sample_size, now)[0]

    def explain(self, text: str | np.ndarray, candidates: Sequence[str] | None = None, cost_weight: float = 0.05,
                min_confidence: float = 0.05, min_sample_size: int = 5,
                now: float | None = None) -> tuple[Recommendation | None, str]:
        """Like :meth:`recommend`, with the reason it abstained (for the trace's not_applicable entry)."""
        return self._gated(self._evidence_for(text, now), cost_weight, candidates, min_confidence, min_sample_size)

    def decide(self, text: str | np.ndarray, cost_weights: Sequence[float], candidates: Sequence[str] | None = None,
               min_confidence: float = 0.05, min_sample_size: int = 5,
               now: float | None = None) -> list[Decision | None]:
        """Per cost weight: the recommendation, or the cost-aware prior when the store abstains (None only
        when no candidate has any outcome). The neighbourhood is computed once for all weights."""
        ev = self._evidence_for(text, now)
        mean, cost = self.global_stats()
        gated = scoring.recommend_many(ev, cost_weights, alpha=self.params.alpha, candidates=candidates,
                                       min_confidence=min_confidence, min_sample_size=min_sample_size,
                                       min_similarity=self.params.min_similarity, cost_scale=self.params.cost_scale)
        out: list[Decision | None] = []
        for w, (rec, why) in zip(cost_weights, gated, strict=True):
            if rec is not None:
                out.append(Decision(rec.model, "pattern", rec.confidence, why))
                continue
            model = scoring.prior_choice(self.models, mean, cost, w, candidates, self.params.cost_scale)
            out.append(None if model is None else Decision(model, "prior", 0.0, why))
        return out

    def _evidence_for(self, text: str | np.ndarray, now: float | None) -> scoring.Evidence:
        vec = self.fp(text) if isinstance(text, str) else np.asarray(text, dtype=np.float32)
        return self.evidence(vec, now)

    def _gated(self, ev: scoring.Evidence, cost_weight: float, candidates: Sequence[str] | None,
               min_confidence: float, min_sample_size: int) -> tuple[Recommendation | None, str]:
        return scoring.recommend(ev, cost_weight, alpha=self.params.alpha, candidates=candidates,
                                 min_confidence=min_confidence, min_sample_size=min_sample_size,
                                 min_similarity=self.params.min_similarity, cost_scale=self.params.cost_scale)
