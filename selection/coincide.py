"""COINCIDE (arXiv 2406.10995): transferability- and density-weighted cluster budgets, MMD prototypes.

Features are COINCIDE reference features: per hooked layer a part ``[v, l]`` of width ``2d`` (image
half, then language half), layers concatenated. The steps, with DESIGN.md's constants:

1. spherical k-means (faiss) into K clusters (``selection.clusters``; 0: ``auto_clusters``);
2. transferability ``S_i``: cosine similarity between centroids restricted to the language half of
   every layer part; entries > 0.9 (self and near-duplicate clusters) are set to 0 and ``S_i`` is the
   mean of the remaining (unmasked) entries of row i (as the official code: sum / unmasked count);
3. density ``D_i``: mean Gaussian kernel ``exp(-||x - y||^2 / (2 sigma^2))``, sigma = 1, over all
   ordered pairs (x, y) of the cluster, self-pairs included (so a singleton has density 1). Clusters
   larger than ``max_rows`` use a seeded random sub-sample of ``max_rows`` rows (documented estimate);
4. ``P = softmax((S / D) / tau)``, tau = 0.1; clusters in descending P take ``round(remaining * P_i)``
   (round half to even, as the official code) capped at their size, P renormalised over the clusters
   not yet visited (suffix sums). If caps leave budget unspent, the same pass repeats over clusters with room, so the total is
   exactly the budget;
5. inside each cluster, greedy MMD-critic prototypes (Kim et al. 2016) with the same RBF kernel; a
   cluster larger than ``max_rows`` runs MMD on a seeded sub-sample of ``max_rows`` rows, and a count
   beyond that is filled at random from the rest of the cluster (only when K is far below auto).

Stage times are in ``Selection.timings`` (cluster, transferability, density, allocate, mmd).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import numpy as np

from selection.budget import (
    Selection,
    SelectionError,
    SelectionInputs,
    finish_selection,
    resolve_budget,
    selector,
    timed,
)
from selection.cluster import cluster_features, members_by_cluster, read_rows, resolve_clusters

log = logging.getLogger(__name__)


def language_halves(x: np.ndarray, n_layers: int) -> np.ndarray:
    """The language half of every layer part: ``(m, L * 2d) -> (m, L * d)``."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1] % (2 * n_layers):
        raise SelectionError(
            f"feature width {x.shape[1]} is not n_layers={n_layers} parts of [v, l]; "
            "set selection.options.n_layers to the number of hooked layers"
        )
    d = x.shape[1] // (2 * n_layers)
    return x.reshape(len(x), n_layers, 2 * d)[:, :, d:].reshape(len(x), n_layers * d)


def transferability(centroids_language: np.ndarray, mask_above: float = 0.9, block: int = 1024) -> np.ndarray:
    """``S_i``: mean cosine similarity of centroid i to the others, entries > ``mask_above`` dropped.

    Computed in row blocks so K = 10,000 needs no K x K matrix. A row whose entries are all masked
    gets 0.
    """
    c = np.asarray(centroids_language, dtype=np.float64)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    out = np.zeros(len(c))
    for start in range(0, len(c), block):
        sim = c[start : start + block] @ c.T
        keep = sim <= mask_above
        count = keep.sum(axis=1)
        total = np.where(keep, sim, 0.0).sum(axis=1)
        out[start : start + block] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return out


def rbf_kernel(x: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """``exp(-||x_i - x_j||^2 / (2 sigma^2))`` for all pairs of rows (float64)."""
    x = np.asarray(x, dtype=np.float64)
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.exp(-d2 / (2.0 * sigma * sigma))


def cluster_density(x: np.ndarray, sigma: float = 1.0) -> float:
    """``D``: mean of the Gaussian kernel over all ordered pairs of rows, self-pairs included."""
    if len(x) == 0:
        return 1.0
    return float(rbf_kernel(x, sigma).mean())


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def allocate_budget(p: np.ndarray, sizes: np.ndarray, total: int) -> np.ndarray:
    """COINCIDE's sequential allocation of ``total`` samples over clusters (see module docstring).

    Each visited cluster takes ``round(remaining * p_c / sum(p over clusters not yet visited))``,
    rounded half to even (the official code's Python ``round``), capped at its room. The shares come
    from suffix sums over the unvisited clusters, not from a running ``mass -= p_c`` that cancels to
    noise when P is very peaked. ``share <= 1`` and the last open cluster of a pass gets share 1, so a
    pass never overspends, and each pass either spends the rest or fills its last cluster: at most
    one pass per cluster.

    Args:
        p: cluster probabilities (sum 1).
        sizes: cluster sizes (caps).
        total: the budget; must not exceed ``sizes.sum()``.

    Returns:
        Per-cluster counts summing to ``total`` exactly, each in ``[0, sizes[c]]``.
    """
    p = np.asarray(p, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if total > sizes.sum():
        raise SelectionError(f"budget {total} exceeds the {int(sizes.sum())} records")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise SelectionError("cluster probabilities must be finite and >= 0")
    order = np.lexsort((np.arange(len(p)), -p))  # descending P, ties to the lower cluster index
    counts = np.zeros(len(p), dtype=np.int64)
    remaining = int(total)
    while remaining > 0:
        open_clusters = order[counts[order] < sizes[order]]
        mass_left = np.cumsum(p[open_clusters][::-1])[::-1]  # sum of p over this and later clusters
        for pos, c in enumerate(open_clusters):
            if remaining == 0:
                break
            # p_c <= its own suffix sum in floating point too, so share <= 1; an all-zero tail is shared evenly
            share = p[c] / mass_left[pos] if mass_left[pos] > 0 else 1.0 / (len(open_clusters) - pos)
            take = min(round(remaining * share), int(sizes[c] - counts[c]))
            counts[c] += take
            remaining -= take
    return counts


def mmd_prototypes(kernel: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy MMD-critic prototypes: ``m`` positions, in the order picked, and each one's gain.

    Maximises ``J(S) = 2/(n|S|) sum_{i, j in S} k(x_i, x_j) - 1/|S|^2 sum_{i, j in S} k(x_i, x_j)``
    (= const - MMD^2 between the cluster and S), adding the candidate with the largest ``J`` each step;
    ties go to the lower position.
    """
    k = np.asarray(kernel, dtype=np.float64)
    n = len(k)
    m = min(m, n)
    col_mean = k.mean(axis=0)
    cross = np.zeros(n)  # sum_{j in S} k(c, j) for every candidate c
    chosen = np.zeros(n, dtype=bool)
    sum_mean, sum_ss = 0.0, 0.0
    picked, gains = [], []
    current = 0.0
    for step in range(1, m + 1):
        j = 2.0 / step * (sum_mean + col_mean) - (sum_ss + 2.0 * cross + np.diag(k)) / step**2
        j = np.where(chosen, -np.inf, j)
        best = int(np.argmax(j))  # argmax returns the first maximum: lower position on ties
        picked.append(best)
        gains.append(float(j[best] - current))
        current = float(j[best])
        chosen[best] = True
        sum_mean += col_mean[best]
        sum_ss += 2.0 * cross[best] + k[best, best]
        cross += k[:, best]
    return np.asarray(picked, dtype=np.int64), np.asarray(gains)


def _cluster_rows(features: np.ndarray, members: np.ndarray, max_rows: int, rng: np.random.Generator):
    """Rows of one cluster (a seeded sub-sample of ``max_rows`` when larger), and their indices."""
    if len(members) > max_rows:
        members = np.sort(rng.choice(members, size=max_rows, replace=False))
    return read_rows(features, members), members


@selector("coincide", needs=("features",), tau=0.1, sigma=1.0, mask_above=0.9, n_layers=5, max_rows=4096, niter=50)
def select_coincide(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    """COINCIDE selection over reference features (see the module docstring for every step)."""
    features = inputs.require_features()
    total = resolve_budget(inputs.budget, inputs.n)
    k = resolve_clusters(inputs.clusters, inputs.n)
    method = inputs.cluster_method
    if method == "auto":  # the paper's spherical k-means when faiss is there; said, not silent, otherwise
        method = "faiss" if importlib.util.find_spec("faiss") else "minibatch"
        if method == "minibatch":
            log.warning("coincide: faiss is not installed (pip install 'geotune[faiss]'); clustering the unit "
                        "features with MiniBatchKMeans instead of spherical k-means")
    timings: dict[str, float] = {}
    with timed(timings, "cluster"):
        clustering = cluster_features(features, k, seed=inputs.seed, method=method, niter=int(options["niter"]))
        members = members_by_cluster(clustering.labels, k)
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    with timed(timings, "transferability"):
        s = transferability(language_halves(clustering.centroids, int(options["n_layers"])), options["mask_above"])
    rng = np.random.default_rng(inputs.seed)
    with timed(timings, "density"):
        density = np.array([cluster_density(_cluster_rows(features, m, options["max_rows"], rng)[0], options["sigma"])
                            for m in members])
    with timed(timings, "allocate"):
        p = softmax(s / density / options["tau"])
        p = np.where(sizes > 0, p, 0.0)
        counts = allocate_budget(p / p.sum(), sizes, total)
    with timed(timings, "mmd"):
        kept, cluster, score, rank = _prototypes_per_cluster(features, members, counts, options, rng)
    all_scores = (s / density)[clustering.labels]
    selection = finish_selection(kept, cluster, score, rank, clustering.labels, all_scores,
                                 {"clusters": k, "cluster_method": method, **clustering.info})
    timings.update({f"cluster.{k}": v for k, v in clustering.timings.items()})
    selection.timings = timings
    return selection


def _prototypes_per_cluster(features, members, counts, options, rng):
    """Greedy MMD prototypes in every cluster with a non-zero count (kept, cluster, score, rank)."""
    kept, cluster, score, rank = [], [], [], []
    for c in np.flatnonzero(counts):
        rows, idx = _cluster_rows(features, members[c], options["max_rows"], rng)
        picked, gains = mmd_prototypes(rbf_kernel(rows, options["sigma"]), int(counts[c]))
        chosen = list(idx[picked])
        extra = int(counts[c]) - len(chosen)
        if extra > 0:  # cluster larger than max_rows and count beyond the sub-sample: seeded random fill
            rest = np.setdiff1d(members[c], idx)
            chosen += list(rng.permutation(rest)[:extra])
            gains = np.concatenate([gains, np.zeros(extra)])
        kept += chosen
        cluster += [c] * len(chosen)
        score += list(gains)
        rank += list(range(len(chosen)))
    return np.array(kept, dtype=np.int64), np.array(cluster), np.array(score), np.array(rank)
