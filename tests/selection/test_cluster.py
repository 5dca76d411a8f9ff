"""Clustering: the auto rule, streaming over memmaps and shards, faiss, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from selection.budget import SelectionError
from selection.cluster import (
    auto_clusters,
    cluster_features,
    iter_row_chunks,
    members_by_cluster,
    nearest_centroids,
    resolve_clusters,
    sample_rows,
)


def test_auto_rule():
    assert auto_clusters(665_000) == 10_000  # COINCIDE's K for LLaVA-665k
    assert auto_clusters(318_000) == 4818
    assert auto_clusters(191_000) == 2894  # COINCIDE used 2,500 for Vision-Flan
    assert auto_clusters(10) == 1 and auto_clusters(200) == 3 and auto_clusters(5_000_000) == 10_000
    assert resolve_clusters(0, 1000) == 15 and resolve_clusters(7, 1000) == 7
    with pytest.raises(SelectionError, match="selection.clusters"):
        resolve_clusters(20, 10)


def test_row_chunks_reblock_shards():
    shards = [np.arange(i * 10, i * 10 + n * 2).reshape(n, 2) for i, n in enumerate([3, 1, 5])]
    blocks = list(iter_row_chunks(iter(shards), 4))
    assert [len(b) for b in blocks] == [4, 4, 1]
    np.testing.assert_array_equal(np.concatenate(blocks), np.concatenate(shards).astype(np.float32))


def test_sample_rows_matches_fancy_index(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float16)
    rows = sample_rows(x, 7, seed=1, chunk_rows=8)
    picked = np.sort(np.random.default_rng(1).choice(50, size=7, replace=False))
    np.testing.assert_array_equal(rows, x[picked].astype(np.float32))


def test_read_rows_from_file_backed_memmap(tmp_path):
    from selection.cluster import _file_backing, read_rows

    x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float16)
    x[4, 2] = np.nan
    mm = _memmap(tmp_path, x)
    assert _file_backing(mm) is not None and _file_backing(mm[3:9]) is None  # slices use plain indexing
    idx = np.array([0, 1, 2, 4, 9, 10, 29])  # runs of consecutive rows are read together
    expected = np.nan_to_num(x[idx].astype(np.float32))
    np.testing.assert_array_equal(read_rows(mm, idx), expected)
    np.testing.assert_array_equal(read_rows(mm[0:30], idx), expected)


def _memmap(tmp_path, x):
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=x.dtype, shape=x.shape)
    mm[:] = x
    mm.flush()
    return np.load(tmp_path / "f.npy", mmap_mode="r")


def test_streamed_memmap_matches_in_memory(tmp_path, clustered):
    x, truth = clustered(2000, 6, 16, seed=0, noise=0.15)
    mm = _memmap(tmp_path, x)
    memory = cluster_features(np.asarray(x), 6, seed=0)
    streamed = cluster_features(mm, 6, seed=0, batch_size=512, chunk_rows=1024, epochs=2)
    assert adjusted_rand_score(memory.labels, streamed.labels) > 0.99
    assert adjusted_rand_score(truth, streamed.labels) > 0.99
    inertia = [float((c.distance.astype(np.float64) ** 2).sum()) for c in (memory, streamed)]
    assert inertia[1] == pytest.approx(inertia[0], rel=0.02)
    # a list of shards is streamed through the same blocks: identical result
    shards = [mm[i : i + 700] for i in range(0, 2000, 700)]
    from_shards = cluster_features(shards, 6, seed=0, batch_size=512, chunk_rows=1024, epochs=2)
    np.testing.assert_array_equal(from_shards.labels, streamed.labels)
    np.testing.assert_array_equal(from_shards.centroids, streamed.centroids)


def test_deterministic_by_seed(clustered):
    x, _ = clustered(500, 5, 16, seed=3, noise=0.4)
    a, b = cluster_features(x, 5, seed=7), cluster_features(x, 5, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)


def test_faiss_spherical(tmp_path, clustered):
    pytest.importorskip("faiss")
    x, truth = clustered(600, 4, 16, seed=5, noise=0.1)
    mm = _memmap(tmp_path, x)
    a = cluster_features(mm, 4, seed=1, method="faiss", chunk_rows=128)
    b = cluster_features(np.asarray(x), 4, seed=1, method="faiss")
    assert adjusted_rand_score(truth, a.labels) == 1.0
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-5)
    assert (a.distance >= -1e-6).all() and (a.distance <= 2).all()  # cosine distances


def test_nearest_centroids_by_hand():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    c = np.array([[0.0, 0.0], [10.0, 0.0]])
    labels, dist = nearest_centroids(x, c, spherical=False, chunk_rows=2)
    assert labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(dist, [0, 5, 0], atol=1e-5)
    assert [m.tolist() for m in members_by_cluster(labels, 3)] == [[0, 1], [2], []]


def test_unknown_method():
    with pytest.raises(SelectionError, match="cluster_method"):
        cluster_features(np.zeros((4, 2)), 2, method="hdbscan")


def test_train_cap_limits_partial_fit_rows(tmp_path, clustered, monkeypatch):
    from sklearn.cluster import MiniBatchKMeans

    from selection.cluster import train_sample_size

    x, truth = clustered(3000, 5, 16, seed=2, noise=0.1)
    mm = _memmap(tmp_path, x)
    seen: list[int] = []
    original = MiniBatchKMeans.partial_fit

    def counting(self, X, *args, **kwargs):
        seen.append(len(X))
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(MiniBatchKMeans, "partial_fit", counting)
    # cap 40 per centroid x 5 = 200 rows, floored at 16 mini-batches; never more than n; None: no cap
    assert train_sample_size(3000, 5, 16, 40) == 256 and train_sample_size(3000, 5, 4, 40) == 200
    assert train_sample_size(3000, 5, 256, 40) == 3000 and train_sample_size(3000, 5, 4, None) == 3000
    capped = cluster_features(mm, 5, seed=0, batch_size=4, chunk_rows=64, epochs=2, train_points_per_centroid=40)
    assert sum(seen) == 2 * 200 and max(seen) <= 64  # two epochs over the same 200-row sample
    assert len(capped.labels) == 3000 and len(capped.distance) == 3000  # every row is still assigned
    assert adjusted_rand_score(truth, capped.labels) > 0.99
    again = cluster_features(mm, 5, seed=0, batch_size=4, chunk_rows=64, epochs=2, train_points_per_centroid=40)
    np.testing.assert_array_equal(again.centroids, capped.centroids)  # same seed: same sample, same fit
    # shards read the same sampled rows: identical result
    shards = [mm[i : i + 700] for i in range(0, 3000, 700)]
    from_shards = cluster_features(shards, 5, seed=0, batch_size=4, chunk_rows=64, epochs=2,
                                   train_points_per_centroid=40)
    np.testing.assert_array_equal(from_shards.centroids, capped.centroids)
    np.testing.assert_array_equal(from_shards.labels, capped.labels)
    seen.clear()
    cluster_features(mm, 5, seed=0, batch_size=4, chunk_rows=64, train_points_per_centroid=None)
    assert sum(seen) == 3000  # no cap: one epoch over every row


def test_faiss_training_sample_never_below_39_rows_per_centroid():
    # The paper's scale: 665k x 20,480 float32, K = 10,000. A 2 GiB cap would give 26,214 rows (2.6 per
    # centroid); the sample stays at 39 per centroid and is streamed, since it does not fit 2 GiB.
    from selection.cluster import faiss_train_rows

    assert faiss_train_rows(665_000, 10_000, 20_480, 256, 2 << 30) == (390_000, True)
    assert faiss_train_rows(665_000, 1_000, 2_048, 256, 2 << 30) == (256_000, False)  # fits: faiss's own cap
    assert faiss_train_rows(665_000, 10_000, 512, 256, 2 << 30) == (665_000, False)  # all rows fit 2 GiB
    assert faiss_train_rows(20_000, 1_000, 20_480, 256, 2 << 30) == (20_000, False)  # all rows


def test_streamed_spherical_kmeans_when_the_sample_does_not_fit(tmp_path, clustered):
    x, truth = clustered(800, 8, 16, seed=3, noise=0.1)
    mm = _memmap(tmp_path, x)
    # 100 rows fit train_bytes; 39 * 8 = 312 are needed: streamed, and the report is told so
    c = cluster_features(mm, 8, seed=2, method="faiss", chunk_rows=64, train_bytes=4 * 16 * 100)
    assert c.info["kmeans_train_rows"] == 312 and c.info["kmeans_streamed"]
    assert "312 of the 800 rows" in c.info["kmeans_train_cap"]
    assert adjusted_rand_score(truth, c.labels) > 0.95
    np.testing.assert_allclose(np.linalg.norm(c.centroids, axis=1), 1.0, atol=1e-5)
    shards = [mm[:300], mm[300:]]
    d = cluster_features(shards, 8, seed=2, method="faiss", chunk_rows=64, train_bytes=4 * 16 * 100)
    np.testing.assert_array_equal(c.labels, d.labels)  # shards and one memmap: the same sample and result
