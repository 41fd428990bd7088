"""Nearest-neighbour search over unit vectors: exact for small stores, an inverted-file index above.

A matrix–vector scan is memory-bound: 100k × 512 float32 is 200 MB read per query (≈ 25 ms on
the 2-core test machine). Above ``exact_limit`` rows the index clusters the vectors (a few k-means
rounds on a sample, ≈ 2·√n centroids) and a query scans only the rows of its ``nprobe`` nearest
clusters — a few thousand — exactly. Rows added later join their nearest cluster at once; the
clustering is rebuilt when the store has doubled since the last build (amortised, deterministic:
seeded sampling, no clock, no threads).
"""
from __future__ import annotations

import math

import numpy as np


class VectorIndex:
    def __init__(self, dim: int, exact_limit: int = 20_000, nprobe: int = 12, seed: int = 14) -> None:
        self.dim = dim
        self.exact_limit = exact_limit
        self.nprobe = nprobe
        self._rng = np.random.default_rng(seed)
        self._vecs = np.zeros((64, dim), dtype=np.float32)
        self._n = 0
        self._centroids: np.ndarray | None = None
        self._clustered: list[np.ndarray] = []       # per cluster: its rows at the last build
        self._members: list[list[int]] = []          # per cluster: rows added since
        self._member_arrays: dict[int, np.ndarray] = {}   # per cluster: both, concatenated (cache)
        self._built_at = 0
        self.deferred = False   # bulk loading: no clustering until finish_bulk() (one build, not log₂ n)
        self._deferred_from = 0

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        return self._vecs[:self._n]

    def add(self, vec: np.ndarray) -> int:
        r = self._n
        if r >= len(self._vecs):
            self._vecs = np.concatenate([self._vecs, np.zeros_like(self._vecs)])
        self._vecs[r] = vec
        self._n += 1
        if self._centroids is not None and not self.deferred:
            c = int(np.argmax(self._centroids @ vec))
            self._members[c].append(r)
            self._member_arrays.pop(c, None)
        if not self.deferred and self._n > self.exact_limit and self._n >= 2 * self._built_at:
            self._build()
        return r

    def begin_bulk(self) -> None:
        """Rows added from now on are searched only after :meth:`finish_bulk` (when clustered)."""
        if not self.deferred:
            self.deferred, self._deferred_from = True, self._n

    def finish_bulk(self) -> None:
        """End a bulk load: cluster once over everything added, or add the new rows to the clusters."""
        if not self.deferred:
            return
        self.deferred = False
        if self._n > self.exact_limit and self._n >= 2 * self._built_at:
            self._build()
        elif self._centroids is not None:
            for lo in range(self._deferred_from, self._n, 8192):
                hi = min(self._n, lo + 8192)
                for r, c in zip(range(lo, hi), np.argmax(self._vecs[lo:hi] @ self._centroids.T, axis=1), strict=True):
                    self._members[int(c)].append(r)
                    self._member_arrays.pop(int(c), None)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and similarities of (up to) the ``k`` most similar rows, unordered."""
        if self._centroids is None:
            ids = np.arange(self._n)
            sims = self.vectors @ q
        else:
            near = np.argpartition(-(self._centroids @ q), min(self.nprobe, len(self._centroids)) - 1)[:self.nprobe]
            ids = np.concatenate([self._members_of(int(c)) for c in near])
            sims = self._vecs[ids] @ q
        if len(ids) > k:
            top = np.argpartition(-sims, k - 1)[:k]
            ids, sims = ids[top], sims[top]
        return ids, sims

    def _members_of(self, c: int) -> np.ndarray:
        arr = self._member_arrays.get(c)
        if arr is None:
            extra = self._members[c]
            arr = self._clustered[c] if not extra else np.concatenate(
                [self._clustered[c], np.array(extra, dtype=np.intp)])
            self._member_arrays[c] = arr
        return arr

    def _build(self) -> None:
        n = self._n
        nlist = max(16, int(2 * math.sqrt(n)))
        sample = self.vectors[self._rng.choice(n, size=min(n, 40 * nlist), replace=False)]
        centroids = sample[self._rng.choice(len(sample), size=nlist, replace=False)].copy()
        for _ in range(4):   # spherical k-means on the sample
            assign = np.argmax(sample @ centroids.T, axis=1)
            for c in range(nlist):
                members = sample[assign == c]
                if len(members):
                    centroids[c] = members.sum(axis=0)
            norms = np.linalg.norm(centroids, axis=1, keepdims=True)
            centroids /= np.where(norms > 0, norms, 1.0)
        full = np.concatenate([np.argmax(self.vectors[lo:lo + 8192] @ centroids.T, axis=1)
                               for lo in range(0, n, 8192)])
        order = np.argsort(full, kind="stable")
        bounds = np.searchsorted(full[order], np.arange(nlist + 1))
        self._clustered = [order[bounds[c]:bounds[c + 1]].astype(np.intp) for c in range(nlist)]
        self._members = [[] for _ in range(nlist)]
        self._member_arrays = {}
        self._centroids = centroids
        self._built_at = n
