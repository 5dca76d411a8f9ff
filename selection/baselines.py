"""Baseline selectors (COINCIDE's comparison set, plus length and full).

- ``random``: a seeded permutation.
- ``length``: longest (``prefer: high``, default) or shortest conversations, in words.
- ``perplexity``: reference-model loss; ``prefer: middle`` by default (Marion et al. 2023 found the
  middle of the perplexity distribution best for pruning LLM data), ``high`` / ``low`` as options.
- ``el2n``: error-vector norm of the reference model; ``prefer: high`` (hardest, Paul et al. 2021)
  by default, ``middle`` / ``low`` as options.
- ``semdedup`` (Abbas et al. 2023): k-means on unit features; inside each cluster, records ordered
  farthest-from-centroid first, and each record's duplicate score is its largest cosine similarity to
  any record before it (as the official code: max over the upper triangle). Records above
  ``threshold`` are near-duplicates and dropped; the survivors are trimmed to the budget by a seeded
  random sample, or, if too few, filled with the dropped records of lowest duplicate score.
- ``self_sup`` (Sorscher et al. 2022): cosine distance to the k-means prototype; ``prefer: high``
  (hardest, the paper's choice for large data) or ``low`` (easiest).
- ``full``: keep everything; ``selection.keep`` is ignored (it is the reference run).

Ties are broken by record index everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from selection.budget import (
    Selection,
    SelectionError,
    SelectionInputs,
    finish_selection,
    order_by_score,
    resolve_budget,
    selection_from_order,
    selector,
    timed,
)
from selection.cluster import cluster_features, members_by_cluster, read_rows, resolve_clusters


@selector("random")
def select_random(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    total = resolve_budget(inputs.budget, inputs.n)
    order = np.random.default_rng(inputs.seed).permutation(inputs.n)
    score = np.empty(inputs.n)
    score[order] = np.arange(inputs.n)  # the position drawn: lower is kept first
    return selection_from_order(order, total, score)


@selector("length", needs=("lengths",), prefer="high")
def select_length(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    if inputs.lengths is None:
        raise SelectionError("selector 'length' needs record lengths")
    lengths = np.asarray(inputs.lengths, dtype=np.float64)
    total = resolve_budget(inputs.budget, inputs.n)
    return selection_from_order(order_by_score(lengths, options["prefer"]), total, lengths)


@selector("perplexity", needs=("loss",), prefer="middle")
def select_perplexity(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    perplexity = np.exp(inputs.signal("loss"))
    total = resolve_budget(inputs.budget, inputs.n)
    return selection_from_order(order_by_score(perplexity, options["prefer"]), total, perplexity)


@selector("el2n", needs=("el2n",), prefer="high")
def select_el2n(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    el2n = inputs.signal("el2n")
    total = resolve_budget(inputs.budget, inputs.n)
    return selection_from_order(order_by_score(el2n, options["prefer"]), total, el2n)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=np.float32))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def duplicate_scores(rows: np.ndarray, centroid: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """SemDeDup inside one cluster: the keep order and each row's duplicate score.

    Rows are ordered by cosine similarity to the centroid, least similar first (ties: lower row);
    a row's score is its largest cosine similarity to a row earlier in that order (-1 for the first).

    Returns:
        ``(order, scores)``: row positions in keep order, and ``scores[i]`` for row position i.
    """
    x = _unit(rows)
    c = _unit(np.asarray(centroid)[None, :])[0]
    order = np.lexsort((np.arange(len(x)), x @ c))
    xo = x[order]
    scores_o = np.full(len(x), -1.0)
    for start in range(0, len(x), block):
        sim = xo[start : start + block] @ xo[: start + block].T
        rows_here = np.arange(start, min(start + block, len(x)))
        earlier = np.arange(sim.shape[1])[None, :] < rows_here[:, None]
        masked = np.where(earlier, sim, -np.inf)
        if masked.shape[1]:
            best = masked.max(axis=1)
            scores_o[rows_here] = np.where(np.isfinite(best), best, -1.0)
    scores = np.empty(len(x))
    scores[order] = scores_o
    return order, scores


class ClusterScores(NamedTuple):
    """Per-record scores computed inside k-means clusters (see :func:`score_within_clusters`)."""

    labels: np.ndarray
    scores: np.ndarray
    info: dict[str, Any]
    timings: dict[str, float]


def score_within_clusters(
    inputs: SelectionInputs,
    features: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    step: str,
) -> ClusterScores:
    """Cluster the features, then score each cluster's rows against its centroid.

    Args:
        inputs: selection inputs (``n``, ``clusters``, ``cluster_method``, ``seed`` are read).
        features: ``inputs.require_features()``, one row per record.
        score: ``score(rows, centroid)``: one score per row of one non-empty cluster.
        step: name under which the scoring time is recorded (next to ``cluster``).

    Returns:
        Labels and scores per record, ``info`` (``clusters``, ``cluster_method``) and timings.
    """
    k = resolve_clusters(inputs.clusters, inputs.n)
    method = "minibatch" if inputs.cluster_method == "auto" else inputs.cluster_method
    timings: dict[str, float] = {}
    with timed(timings, "cluster"):
        clustering = cluster_features(features, k, seed=inputs.seed, method=method)
    scores = np.empty(inputs.n)
    with timed(timings, step):
        for c, idx in enumerate(members_by_cluster(clustering.labels, k)):
            if len(idx):
                scores[idx] = score(read_rows(features, idx), clustering.centroids[c])
    return ClusterScores(clustering.labels, scores, {"clusters": k, "cluster_method": method}, timings)


def _prototype_distance(rows: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    # cosine distance to the own prototype, whatever the clustering metric
    return 1.0 - _unit(rows) @ _unit(centroid[None, :])[0]


@selector("semdedup", needs=("features",), threshold=0.95)
def select_semdedup(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    features = inputs.require_features()
    total = resolve_budget(inputs.budget, inputs.n)
    clustered = score_within_clusters(
        inputs, features, lambda rows, centroid: duplicate_scores(rows, centroid)[1], "duplicates"
    )
    dup = clustered.scores
    survivors = np.flatnonzero(dup <= options["threshold"])
    if len(survivors) >= total:
        order = np.sort(np.random.default_rng(inputs.seed).choice(survivors, size=total, replace=False))
    else:
        dropped = np.flatnonzero(dup > options["threshold"])
        fill = dropped[np.lexsort((dropped, dup[dropped]))][: total - len(survivors)]
        order = np.concatenate([survivors, fill])
    selection = selection_from_order(order, total, dup, clustered.labels)
    selection.info.update(clustered.info, near_duplicates=int((dup > options["threshold"]).sum()))
    selection.timings = clustered.timings
    return selection


@selector("self_sup", needs=("features",), prefer="high")
def select_self_sup(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    features = inputs.require_features()
    total = resolve_budget(inputs.budget, inputs.n)
    order_by_score(np.zeros(0), options["prefer"])  # validate before clustering
    clustered = score_within_clusters(inputs, features, _prototype_distance, "distances")
    distance = clustered.scores
    selection = selection_from_order(order_by_score(distance, options["prefer"]), total, distance, clustered.labels)
    selection.info.update(clustered.info)
    selection.timings = clustered.timings
    return selection


@selector("full")
def select_full(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    indices = np.arange(inputs.n)
    return finish_selection(indices, np.full(inputs.n, -1), np.zeros(inputs.n), indices, None, None)
