"""Adaptive-shift selection (arXiv 2409.13345): two stages of truncation.

Stage 1 clusters the features (``MiniBatchKMeans`` by default). Stage 2 keeps, in every cluster, a
share of the budget proportional to the cluster's size (largest-remainder rounding, so the total is
exact), choosing inside the cluster by the shift ``||phi(x) - phi(x~)||`` between the model's
embedding of a sample and of its perturbed copy (computed by ``selection.signals.shift_scores``).

``prefer`` (unpublished in the paper, which keeps samples "with high generalization potential"
without fixing the sign of the shift) defaults to ``middle``: the samples whose shift is closest to
their cluster's median. Chosen on the proxy study in the seed's regime (docs/results.md, issue 16: a
pretrained base + LoRA, 5 seeds, paired): ``middle`` beats ``low`` by +2.0 [+0.2, +3.8] and ``high`` by
+2.5 [+0.6, +4.4] avg points (95 % bootstrap intervals); it still only ties a random third
(-0.3 [-1.1, +0.4]). The older random-init proxy had suggested ``low`` from overlapping spreads.
The shift options (``perturbation`` e.g. ``image:gaussian_noise(sigma=0.05)``, ``distance`` l2|cosine,
``shift_layers``, ...: ``SHIFT_OPTION_KEYS``) are passed to ``selection.signals.shift_scores`` by the
pipeline when set (None: the signals' defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from selection.budget import (
    Selection,
    SelectionError,
    SelectionInputs,
    finish_selection,
    largest_remainder,
    order_by_score,
    resolve_budget,
    selector,
    timed,
)
from selection.cluster import cluster_features, members_by_cluster, resolve_clusters


def image_ids(images: Sequence[str]) -> np.ndarray:
    """An integer per distinct image key; a text-only record (key "") is its own image."""
    ids: dict[str, int] = {}
    out = np.empty(len(images), dtype=np.int64)
    for i, key in enumerate(images):
        out[i] = ids.setdefault(key or f"\0{i}", len(ids))
    return out


def pick_spread(orders: list[np.ndarray], counts: np.ndarray, images: np.ndarray) -> list[np.ndarray]:
    """Each cluster's ``counts[c]`` records, picked one at a time in turns across clusters: a cluster
    takes its best-ranked record (``orders[c]``) among those whose image has been kept the fewest
    times so far, in any cluster. So no scene gets a second record while a cluster can still take a
    first record of another scene.
    """
    kept_times = np.zeros(int(images.max()) + 1 if len(images) else 0, dtype=np.int64)
    left = [list(order) for order in orders]
    picked: list[list[int]] = [[] for _ in orders]
    for _ in range(int(counts.max()) if len(counts) else 0):
        for c in np.flatnonzero(counts > np.array([len(p) for p in picked])):
            times = kept_times[images[left[c]]]
            record = left[c].pop(int(np.argmin(times)))  # argmin: the first (best-ranked) of the least kept
            kept_times[images[record]] += 1
            picked[c].append(record)
    return [np.asarray(p, dtype=np.int64) for p in picked]


def keep_per_cluster(labels: np.ndarray, k: int, scores: np.ndarray, total: int, prefer: str,
                     images: Sequence[str] | None = None) -> Selection:
    """Keep ``total`` records, each cluster its size-proportional share, best ``scores`` first.

    Args:
        labels: ``(n,)`` cluster of every record.
        k: number of clusters.
        scores: ``(n,)`` score of every record (the shift).
        total: exact number to keep.
        prefer: ``high`` | ``low`` | ``middle`` (closest to the cluster's median).
        images: the image key of every record, to spread the budget over images (``pick_spread``);
            None ranks by score alone.
    """
    members = members_by_cluster(np.asarray(labels), k)
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    counts = largest_remainder(sizes, total, caps=sizes)
    active = np.flatnonzero(counts)
    orders = [members[c][order_by_score(scores[members[c]], prefer)] for c in active]
    if images is None:
        chosen_by_cluster = [order[: counts[c]] for order, c in zip(orders, active, strict=True)]
    else:
        chosen_by_cluster = pick_spread(orders, counts[active], image_ids(images))
    kept, cluster, score, rank = [], [], [], []
    for c, chosen in zip(active, chosen_by_cluster, strict=True):
        kept.append(chosen)
        cluster.append(np.full(len(chosen), c))
        score.append(scores[chosen])
        rank.append(np.arange(len(chosen)))
    cat = (lambda parts: np.concatenate(parts)) if kept else (lambda parts: np.zeros(0))
    return finish_selection(cat(kept), cat(cluster), cat(score), cat(rank), labels, scores, {"clusters": k})


# Options of selection.signals.shift_scores (its SHIFT_DEFAULTS); None: the signals' default.
SHIFT_OPTION_KEYS = ("perturbation", "distance", "shift_layers", "shift_pooling", "perturbation_seed",
                     "batch_size", "shard_size", "cache_dir")


@selector("adaptive_shift", needs=("features", "shift"), prefer="middle", spread_images=False,
          **dict.fromkeys(SHIFT_OPTION_KEYS))
def select_adaptive_shift(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    """Cluster the features, then keep each cluster's share by shift (``prefer`` high|low|middle;
    ``spread_images``: clusters pick in turns, each its best record of the least-kept images)."""
    order_by_score(np.zeros(0), options["prefer"])  # validate before the (long) clustering
    return _two_stages(inputs, inputs.signal("shift"), options["prefer"], options["spread_images"])


@selector("cluster_random", needs=("features",), spread_images=False)
def select_cluster_random(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    """Adaptive shift's stage 1 alone: each cluster's size-proportional share drawn at random (seeded).

    The control that tells what the clustering and the shift each add: against ``random`` it measures
    stage 1 (a draw stratified by cluster), against ``adaptive_shift`` stage 2 (the shift ranking).
    """
    draw = np.random.default_rng(inputs.seed).random(inputs.n)
    return _two_stages(inputs, draw, "low", options["spread_images"])


def _two_stages(inputs: SelectionInputs, scores: np.ndarray, prefer: str, spread_images: bool) -> Selection:
    features = inputs.require_features()
    if spread_images and inputs.images is None:
        raise SelectionError("selection.options.spread_images needs every record's image; the pipeline gave none")
    total = resolve_budget(inputs.budget, inputs.n)
    k = resolve_clusters(inputs.clusters, inputs.n)
    method = "minibatch" if inputs.cluster_method == "auto" else inputs.cluster_method
    timings: dict[str, float] = {}
    with timed(timings, "cluster"):
        clustering = cluster_features(features, k, seed=inputs.seed, method=method)
    with timed(timings, "keep_per_cluster"):
        images = inputs.images if spread_images else None
        selection = keep_per_cluster(clustering.labels, k, scores, total, prefer, images=images)
    selection.info.update(cluster_method=method, prefer=prefer, spread_images=bool(spread_images))
    selection.timings = timings
    return selection
