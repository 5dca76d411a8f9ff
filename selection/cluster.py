"""Clustering of per-sample features, in memory or streamed over a memmap / an iterator of shards.

Two methods:

- ``minibatch``: scikit-learn ``MiniBatchKMeans`` (the adaptive-shift paper's choice, the default).
  An in-memory array uses ``fit``; a memmap or shard iterator uses ``partial_fit`` over chunks, so the
  features are never all in memory. k-means++ init up to K=256, random rows above (its cost grows
  with K^2 and dominates at K in the thousands). Streamed training sees at most
  ``train_points_per_centroid * K`` seeded random rows (read in ascending-index chunks), as faiss
  caps its training sample per centroid; every row is still assigned.
- ``faiss``: faiss spherical k-means (COINCIDE's choice: unit vectors, cosine). faiss trains on an
  in-memory sample, gathered chunk by chunk (at most ``max_points_per_centroid`` per cluster, as
  faiss itself does, shrunk to ``train_bytes`` of float32 but never below 39 rows per centroid). A
  sample that cannot be held is trained by a streamed spherical Lloyd instead (``faiss_train_rows``);
  ``Clustering.info`` says how many rows trained and whether a cap applied.

Assignment (label and distance to the own centroid) is always one streamed pass over the rows.
Everything is deterministic given the seed (sample order, k-means init, chunking).
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from selection.budget import SelectionError

log = logging.getLogger(__name__)

FeatureSource = Union[np.ndarray, Iterable[np.ndarray]]  # noqa: UP007 (a runtime alias; py3.10 floor)

# COINCIDE uses K=10,000 for LLaVA-665k (66.5 samples per cluster) and 2,500 for Vision-Flan-191k (76).
SAMPLES_PER_CLUSTER = 66
MAX_AUTO_CLUSTERS = 10_000
CLUSTER_METHODS = ("minibatch", "faiss")
# sklearn's k-means++ takes k sequential passes over its init sample: with K in the thousands it alone
# takes longer than the whole clustering budget, so larger K starts from random rows, as faiss does.
KMEANS_PP_MAX_K = 256
# Rows read at once are sized by bytes so 2,048-d and 20,480-d features both stream in ~256 MB blocks.
CHUNK_BYTES = 256 << 20
# Streamed MiniBatchKMeans trains on at most this many rows per cluster (faiss's analogue,
# max_points_per_centroid, defaults to 256). At the auto K (~66 rows per cluster) only a cap below 66
# bites. Measured on the benchmarks/selection_scale.py generator, 200k x 256, K=auto=3,030, inertia of
# the full assignment vs the uncapped fit (seed 0): cap 64 +0.3%, 48 +0.9%, 32 +1.7%, 16 +3.0%;
# adjusted Rand vs the uncapped labels 0.919 at cap 32, near the seed-to-seed level (uncapped seed 1 vs
# seed 0: 0.925, inertia +0.1%). 32 halves the training rows at the auto K for +1.7% inertia.
TRAIN_POINTS_PER_CENTROID = 32
# faiss warns below 39 training rows per centroid ("please provide at least 39*k training points"):
# the faiss training sample is never capped below this.
MIN_POINTS_PER_CENTROID = 39
# ... but never fewer than this many mini-batches (at small K a per-centroid cap would leave k-means++
# on the first batch and no mini-batch steps at all).
MIN_TRAIN_BATCHES = 16


@dataclass
class Clustering:
    """Cluster labels ``(n,)``, centroids ``(k, d)`` float32 and each row's distance to its centroid.

    ``distance`` is Euclidean for ``minibatch`` and cosine distance ``1 - cos`` for ``faiss``.
    """

    labels: np.ndarray
    centroids: np.ndarray
    distance: np.ndarray
    method: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds: train, assign
    info: dict = field(default_factory=dict)  # training sample: kmeans_train_rows, kmeans_train_cap (when capped)

    @property
    def k(self) -> int:
        return len(self.centroids)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.k)


def auto_clusters(n: int) -> int:
    """``clusters: 0``: one cluster per ~66 samples, at least 1, at most 10,000 and at most n.

    Why: COINCIDE's tuned values are K=10,000 for 665k samples and 2,500 for 191k, i.e. 66-76 samples
    per cluster; keeping the cluster size (not K) fixed keeps per-cluster statistics (density, shift
    ranks, MMD prototypes) equally reliable at every data size, and reproduces K=10,000 at 665k.
    Beyond 10,000 the assignment pass costs more than it gains (COINCIDE stops there).
    """
    if n <= 0:
        return 0
    return int(min(n, MAX_AUTO_CLUSTERS, max(1, round(n / SAMPLES_PER_CLUSTER))))


def resolve_clusters(requested: int, n: int) -> int:
    """The number of clusters to use: ``requested`` (> 0) or the automatic rule, never more than n."""
    if requested < 0:
        raise SelectionError(f"selection.clusters must be >= 0 (0: automatic), got {requested}")
    k = auto_clusters(n) if requested == 0 else requested
    if k > n:
        raise SelectionError(f"selection.clusters={k} is more than the {n} records; lower it (0: automatic)")
    return k


def is_streamed(features: FeatureSource) -> bool:
    """True when the rows should not be loaded at once (memmap or an iterator of shards)."""
    return isinstance(features, np.memmap) or not isinstance(features, np.ndarray)


def default_chunk_rows(dim: int) -> int:
    return max(1024, CHUNK_BYTES // (4 * max(dim, 1)))


def _file_backing(x) -> tuple[str, int] | None:
    """``(path, offset)`` when ``x`` is a whole C-contiguous memmap of a file (e.g. ``np.load(mmap_mode="r")``).

    Such features are read with ``os.pread`` instead of through the mapping: mapped pages count in
    the process's RSS, so streaming a 27 GB memmap would otherwise show up as 20+ GB resident.
    """
    if (isinstance(x, np.memmap) and isinstance(getattr(x, "base", None), mmap.mmap)
            and getattr(x, "filename", None) and x.flags.c_contiguous and x.ndim == 2):
        return x.filename, int(x.offset)
    return None


def _pread_rows(x: np.memmap, backing: tuple[str, int], start: int, stop: int, fd: int) -> np.ndarray:
    row_bytes = x.shape[1] * x.itemsize
    buf = os.pread(fd, (stop - start) * row_bytes, backing[1] + start * row_bytes)
    return np.frombuffer(buf, dtype=x.dtype).reshape(stop - start, x.shape[1])


def read_rows(features: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``features[idx]`` as float32 (NaN -> 0); ``idx`` ascending. File-backed memmaps are read with
    one ``pread`` per run of consecutive rows (see ``_file_backing``)."""
    idx = np.asarray(idx, dtype=np.int64)
    backing = _file_backing(features)
    if backing is None or len(idx) == 0:
        return np.nan_to_num(np.asarray(features[idx], dtype=np.float32))
    out = np.empty((len(idx), features.shape[1]), dtype=np.float32)
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    fd = os.open(backing[0], os.O_RDONLY)
    try:
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(idx)], strict=True):
            out[lo:hi] = _pread_rows(features, backing, int(idx[lo]), int(idx[hi - 1]) + 1, fd)
    finally:
        os.close(fd)
    return np.nan_to_num(out, copy=False)


def iter_row_chunks(features: FeatureSource, rows: int) -> Iterator[np.ndarray]:
    """Yield float32 blocks of exactly ``rows`` rows (the last may be shorter), in row order.

    ``features`` is an array / memmap (read one block at a time) or an iterable of 2-D shards of any
    sizes (re-blocked).
    """
    if isinstance(features, np.ndarray):
        for start in range(0, len(features), rows):
            yield read_rows(features, np.arange(start, min(start + rows, len(features))))
        return
    pending: list[np.ndarray] = []
    count = 0
    for shard in features:
        shard = np.asarray(shard)
        pending.append(shard)
        count += len(shard)
        while count >= rows:
            block = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield np.nan_to_num(np.asarray(block[:rows], dtype=np.float32))
            pending, count = [block[rows:]], count - rows
    if count:
        yield np.nan_to_num(np.asarray(np.concatenate(pending), dtype=np.float32))


def sample_rows(features: np.ndarray, m: int, seed: int, chunk_rows: int = 4096) -> np.ndarray:
    """``m`` seeded random rows (ascending index, float32), read ``chunk_rows`` at a time (all if m >= n)."""
    n = len(features)
    picked = np.arange(n) if m >= n else np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    out = np.empty((len(picked), features.shape[1]), dtype=np.float32)
    for i in range(0, len(picked), chunk_rows):
        out[i : i + chunk_rows] = read_rows(features, picked[i : i + chunk_rows])
    return out


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def nearest_centroids(
    features: FeatureSource, centroids: np.ndarray, spherical: bool, chunk_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One streamed pass: each row's nearest centroid (ties: lower index) and its distance to it.

    Euclidean distance, or cosine distance (rows normalised) when ``spherical``.
    """
    c = np.asarray(centroids, dtype=np.float32)
    c_sq = (c * c).sum(axis=1)
    chunk_rows = chunk_rows or default_chunk_rows(c.shape[1])
    labels, dists = [], []
    for block in iter_row_chunks(features, chunk_rows):
        if spherical:
            sim = _normalize(block) @ c.T
            lab = np.argmax(sim, axis=1)
            dist = 1.0 - sim[np.arange(len(block)), lab]
        else:
            d2 = (block * block).sum(axis=1, keepdims=True) - 2.0 * (block @ c.T) + c_sq
            lab = np.argmin(d2, axis=1)
            dist = np.sqrt(np.maximum(d2[np.arange(len(block)), lab], 0.0))
        labels.append(lab.astype(np.int64))
        dists.append(dist.astype(np.float32))
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(labels), np.concatenate(dists)


def train_sample_size(n: int, k: int, batch_size: int, points_per_centroid: int | None) -> int:
    """Rows streamed MiniBatchKMeans trains on: ``points_per_centroid * k`` (``None``/0: no cap), but
    at least the first ``partial_fit`` call's 3k rows and ``MIN_TRAIN_BATCHES`` mini-batches, at most n."""
    if not points_per_centroid:
        return n
    return int(min(n, max(points_per_centroid * k, 3 * k, MIN_TRAIN_BATCHES * batch_size)))


def iter_sampled_chunks(features: FeatureSource, picked: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """Float32 blocks of the rows ``picked`` (global, ascending) of an array / memmap or a list of
    shards, ``rows`` at a time; only the picked rows are read."""
    if isinstance(features, np.ndarray):
        for i in range(0, len(picked), rows):
            yield read_rows(features, picked[i : i + rows])
        return
    shards = list(features)
    bounds = np.cumsum([0] + [len(s) for s in shards])
    for i in range(0, len(picked), rows):
        idx = picked[i : i + rows]
        which = np.searchsorted(bounds, idx, side="right") - 1
        parts = []
        for j in np.unique(which):
            shard = shards[j] if isinstance(shards[j], np.ndarray) else np.asarray(shards[j])
            parts.append(read_rows(shard, idx[which == j] - bounds[j]))
        yield np.concatenate(parts) if len(parts) > 1 else parts[0]


def _fit_minibatch(
    features: FeatureSource, k: int, seed: int, batch_size: int, epochs: int, chunk_rows: int,
    train_points_per_centroid: int | None = TRAIN_POINTS_PER_CENTROID,
) -> np.ndarray:
    from sklearn.cluster import MiniBatchKMeans

    init = "k-means++" if k <= KMEANS_PP_MAX_K else "random"
    if not is_streamed(features):
        km = MiniBatchKMeans(n_clusters=k, init=init, random_state=seed, batch_size=batch_size, n_init=3)
        km.fit(np.nan_to_num(np.asarray(features, dtype=np.float32)))
        return km.cluster_centers_.astype(np.float32)
    # partial_fit: the first call initialises on its batch, so it must hold >= k rows; give it 3k rows
    # like fit's init_size. Later calls are one mini-batch step of `batch_size` rows.
    km = MiniBatchKMeans(n_clusters=k, init=init, random_state=seed, batch_size=batch_size, n_init=1)
    first_rows = max(batch_size, 3 * k)
    shards = features if isinstance(features, np.ndarray) else list(features)  # memmaps: reads nothing
    n = len(shards) if isinstance(shards, np.ndarray) else sum(len(s) for s in shards)
    m = train_sample_size(n, k, batch_size, train_points_per_centroid)
    # The same seeded sample every epoch, read in ascending-index chunks (never the whole memmap).
    picked = None if m >= n else np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    for _ in range(epochs):
        if picked is None:
            source = shards if isinstance(shards, np.ndarray) else iter(shards)
            blocks = iter_row_chunks(source, max(chunk_rows, first_rows))
        else:
            blocks = iter_sampled_chunks(shards, picked, max(chunk_rows, first_rows))
        for block in blocks:
            start = 0
            if not hasattr(km, "cluster_centers_"):
                if len(block) < k:
                    raise SelectionError(f"selection.clusters={k} is more than the first chunk's {len(block)} rows")
                km.partial_fit(block[:first_rows])
                start = first_rows
            for s in range(start, len(block), batch_size):
                km.partial_fit(block[s : s + batch_size])
    return km.cluster_centers_.astype(np.float32)


def faiss_train_rows(n: int, k: int, dim: int, max_points_per_centroid: int, train_bytes: int) -> tuple[int, bool]:
    """Rows spherical k-means trains on, and whether they are streamed from disk.

    faiss's own rule (and so the official COINCIDE code's) is ``min(n, max_points_per_centroid * k)``.
    When that sample is larger than ``train_bytes`` of float32 it shrinks to what fits, but never below
    ``MIN_POINTS_PER_CENTROID * k`` rows (or all rows): fewer clusters the centroids measurably worse
    (at 665k x 20,480 and K = 10,000, 2 GiB is 2.6 rows per centroid). A sample that must be larger
    than ``train_bytes`` is streamed (Lloyd iterations over chunks) instead of held in memory.
    """
    wanted = min(n, max_points_per_centroid * k)
    fits = max(1, train_bytes // (4 * max(dim, 1)))
    if wanted <= fits:
        return wanted, False
    m = max(fits, min(n, MIN_POINTS_PER_CENTROID * k))
    return m, m > fits


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # in place: it can be GBs
    return x


def _fit_spherical_streamed(
    features: FeatureSource, picked: np.ndarray, k: int, seed: int, niter: int, chunk_rows: int
) -> np.ndarray:
    """Spherical k-means (Lloyd) on the rows ``picked``, re-read chunk by chunk every iteration.

    Initialised on ``k`` seeded random rows of the sample, as faiss; a cluster left empty keeps its
    centroid. Only ``k x d`` sums are held, so the sample may be larger than memory.
    """
    rng = np.random.default_rng(seed)
    init = np.sort(rng.choice(picked, size=k, replace=False))
    centroids = _unit(next(iter_sampled_chunks(features, init, len(init))).copy())
    for _ in range(niter):
        sums = np.zeros(centroids.shape, dtype=np.float64)
        counts = np.zeros(k, dtype=np.int64)
        for block in iter_sampled_chunks(features, picked, chunk_rows):
            block = _unit(np.array(block, dtype=np.float32))
            labels = np.argmax(block @ centroids.T, axis=1)
            order = np.argsort(labels, kind="stable")
            present, starts = np.unique(labels[order], return_index=True)
            sums[present] += np.add.reduceat(block[order], starts, axis=0)
            counts[present] += np.diff(np.r_[starts, len(order)])
        filled = counts > 0
        centroids[filled] = _unit(sums[filled].astype(np.float32))
    return centroids


def _fit_faiss(
    features: FeatureSource, n: int, dim: int, k: int, seed: int, niter: int, max_points_per_centroid: int,
    train_bytes: int, chunk_rows: int,
) -> tuple[np.ndarray, dict]:
    m, streamed = faiss_train_rows(n, k, dim, max_points_per_centroid, train_bytes)
    picked = np.arange(n) if m >= n else np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    info = {"kmeans_train_rows": int(m)}
    wanted = min(n, max_points_per_centroid * k)
    if m < wanted:
        info["kmeans_train_cap"] = (f"trained on {m} of the {wanted} rows faiss would sample "
                                    f"({m / k:.1f} per centroid; cap train_bytes={train_bytes})")
        log.warning("k-means: %s", info["kmeans_train_cap"])
    if streamed:
        info["kmeans_streamed"] = True
        return _fit_spherical_streamed(features, picked, k, seed, niter, chunk_rows), info
    try:
        import faiss
    except ImportError as err:  # optional extra
        raise SelectionError(
            "selection.cluster_method=faiss needs faiss: pip install 'geotune[faiss]' (faiss-cpu), "
            "or use selection.cluster_method=minibatch"
        ) from err
    sample = np.concatenate(list(iter_sampled_chunks(features, picked, chunk_rows))) if m else np.zeros((0, dim), np.float32)
    km = faiss.Kmeans(dim, k, niter=niter, spherical=True, seed=seed, verbose=False,
                      max_points_per_centroid=max_points_per_centroid)
    km.train(np.ascontiguousarray(_unit(sample)))
    return np.asarray(km.centroids, dtype=np.float32), info


def cluster_features(
    features: FeatureSource,
    k: int,
    *,
    seed: int = 0,
    method: str = "minibatch",
    batch_size: int = 4096,
    epochs: int = 1,
    chunk_rows: int | None = None,
    niter: int = 50,
    max_points_per_centroid: int = 256,
    train_bytes: int = 2 << 30,
    train_points_per_centroid: int | None = TRAIN_POINTS_PER_CENTROID,
) -> Clustering:
    """Cluster the rows of ``features`` into ``k`` clusters and assign every row.

    Args:
        features: ``(n, d)`` array, memmap (streamed), or iterable of shards (streamed; the list of
            shards is re-read for each epoch).
        k: number of clusters (see ``resolve_clusters``).
        seed: k-means seed.
        method: ``minibatch`` or ``faiss``.
        batch_size / epochs / chunk_rows: mini-batch size, passes over a streamed source, rows read at
            once (default: ~256 MB of float32).
        niter / max_points_per_centroid / train_bytes: faiss k-means iterations and training-sample caps.
        train_points_per_centroid: streamed ``minibatch`` trains (``partial_fit``) on a seeded random
            sample of at most this many rows per cluster (``None``/0: every row); all rows are
            assigned. In-memory arrays use ``fit`` on every row.

    Returns:
        A Clustering with labels, centroids and distances.
    """
    if method not in CLUSTER_METHODS:
        raise SelectionError(f"selection.cluster_method must be one of {', '.join(CLUSTER_METHODS)}, got '{method}'")
    if not isinstance(features, np.ndarray):
        features = list(features)  # shards are (usually) memmaps: listing them reads nothing
        if not features:
            raise SelectionError("no feature rows to cluster")
    chunk_rows = chunk_rows or default_chunk_rows((features if isinstance(features, np.ndarray) else features[0]).shape[1])
    start = time.perf_counter()
    info: dict = {}
    if method == "faiss":
        n = len(features) if isinstance(features, np.ndarray) else sum(len(s) for s in features)
        dim = (features if isinstance(features, np.ndarray) else features[0]).shape[1]
        centroids, info = _fit_faiss(features, n, dim, k, seed, niter, max_points_per_centroid, train_bytes, chunk_rows)
        if isinstance(features, list):
            features = iter(features)
    else:
        centroids = _fit_minibatch(features, k, seed, batch_size, epochs, chunk_rows, train_points_per_centroid)
        if isinstance(features, list):
            features = iter(features)
    trained = time.perf_counter()
    labels, distance = nearest_centroids(features, centroids, spherical=method == "faiss", chunk_rows=chunk_rows)
    timings = {"train": trained - start, "assign": time.perf_counter() - trained}
    return Clustering(labels=labels, centroids=centroids, distance=distance, method=method, timings=timings, info=info)


def members_by_cluster(labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices of each cluster, ascending."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(k)]
