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

from typing import Any

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


@selector("semdedup", needs=("features",), threshold=0.95)
def select_semdedup(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    features = inputs.require_features()
    total = resolve_budget(inputs.budget, inputs.n)
    k = resolve_clusters(inputs.clusters, inputs.n)
    method = "minibatch" if inputs.cluster_method == "auto" else inputs.cluster_method
    timings: dict[str, float] = {}
    with timed(timings, "cluster"):
        clustering = cluster_features(features, k, seed=inputs.seed, method=method)
    dup = np.empty(inputs.n)
    with timed(timings, "duplicates"):
        for c, idx in enumerate(members_by_cluster(clustering.labels, k)):
            if len(idx):
                _, dup[idx] = duplicate_scores(read_rows(features, idx), clustering.centroids[c])
    survivors = np.flatnonzero(dup <= options["threshold"])
    if len(survivors) >= total:
        order = np.sort(np.random.default_rng(inputs.seed).choice(survivors, size=total, replace=False))
    else:
        dropped = np.flatnonzero(dup > options["threshold"])
        fill = dropped[np.lexsort((dropped, dup[dropped]))][: total - len(survivors)]
        order = np.concatenate([survivors, fill])
    selection = selection_from_order(order, total, dup, clustering.labels)
    selection.info.update(clusters=k, cluster_method=method, near_duplicates=int((dup > options["threshold"]).sum()))
    selection.timings = timings
    return selection


@selector("self_sup", needs=("features",), prefer="high")
def select_self_sup(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    features = inputs.require_features()
    total = resolve_budget(inputs.budget, inputs.n)
    order_by_score(np.zeros(0), options["prefer"])  # validate before clustering
    k = resolve_clusters(inputs.clusters, inputs.n)
    method = "minibatch" if inputs.cluster_method == "auto" else inputs.cluster_method
    timings: dict[str, float] = {}
    with timed(timings, "cluster"):
        clustering = cluster_features(features, k, seed=inputs.seed, method=method)
    # cosine distance to the own prototype, whatever the clustering metric
    distance = np.empty(inputs.n)
    with timed(timings, "distances"):
        for c, idx in enumerate(members_by_cluster(clustering.labels, k)):
            if len(idx):
                distance[idx] = 1.0 - _unit(read_rows(features, idx)) @ _unit(clustering.centroids[c][None, :])[0]
    selection = selection_from_order(order_by_score(distance, options["prefer"]), total, distance, clustering.labels)
    selection.info.update(clusters=k, cluster_method=method)
    selection.timings = timings
    return selection


@selector("full")
def select_full(inputs: SelectionInputs, options: dict[str, Any]) -> Selection:
    indices = np.arange(inputs.n)
    return finish_selection(indices, np.full(inputs.n, -1), np.zeros(inputs.n), indices, None, None)
