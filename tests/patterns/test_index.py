"""The vector index: exact while small, clustered above the limit, and still finding near-duplicates."""
import numpy as np

from actors.patterns.index import VectorIndex


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_small_index_searches_exactly():
    ix = VectorIndex(32, exact_limit=1000)
    rows = unit_rows(200, 32, 1)
    for r in rows:
        ix.add(r)
    ids, sims = ix.search(rows[7], k=5)
    expected = np.argsort(-(rows @ rows[7]))[:5]
    assert sorted(ids.tolist()) == sorted(expected.tolist())
    assert np.allclose(sorted(sims, reverse=True), (rows @ rows[7])[expected], atol=1e-5)


def test_clustered_index_finds_near_duplicates_added_before_and_after_the_build():
    ix = VectorIndex(64, exact_limit=300, nprobe=4)
    rows = unit_rows(2000, 64, 2)
    for r in rows:
        ix.add(r)
    assert ix._centroids is not None   # the clustered path is the one under test
    noise = unit_rows(2000, 64, 3) * 0.05
    for i in (0, 299, 1000, 1999):     # before the first build, between builds, after the last
        q = rows[i] + noise[i]
        q /= np.linalg.norm(q)
        ids, sims = ix.search(q, k=10)
        assert i in ids.tolist()
        assert float(sims.max()) > 0.99


def test_every_row_belongs_to_exactly_one_cluster_after_rebuilds():
    ix = VectorIndex(16, exact_limit=100)
    for r in unit_rows(1000, 16, 4):
        ix.add(r)
    members = sorted(int(m) for c in range(len(ix._members)) for m in ix._members_of(c))
    assert members == list(range(1000))


def test_a_bulk_load_clusters_once_and_finds_every_row():
    ix = VectorIndex(64, exact_limit=300, nprobe=4)
    rows = unit_rows(2000, 64, 4)
    ix.begin_bulk()
    for r in rows:
        ix.add(r)
    assert ix._centroids is None          # no clustering while the load runs
    ix.finish_bulk()
    assert ix._centroids is not None and ix._built_at == 2000
    for i in (0, 777, 1999):
        assert i in ix.search(rows[i], k=5)[0].tolist()


def test_a_bulk_load_onto_a_clustered_index_joins_the_existing_clusters():
    ix = VectorIndex(64, exact_limit=300, nprobe=4)
    rows = unit_rows(1100, 64, 5)
    for r in rows[:700]:
        ix.add(r)
    built = ix._built_at
    ix.begin_bulk()
    for r in rows[700:]:
        ix.add(r)
    ix.finish_bulk()
    assert ix._built_at == built == 602    # 1100 < 2 × the last build: no re-clustering
    for i in (700, 901, 1099):
        assert i in ix.search(rows[i], k=5)[0].tolist()
