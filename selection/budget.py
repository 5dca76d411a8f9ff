"""What every selector takes and returns, and the budget arithmetic they share.

A selector is a pure function ``SelectionInputs -> Selection`` registered in ``selection.SELECTORS``.
It declares which inputs it needs (``needs``) so the pipeline computes only those, and which options
it accepts (``defaults``); any other option key fails at once, naming ``selection.options.<key>``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Every input a selector can ask the pipeline for.
KNOWN_NEEDS = frozenset({"features", "shift", "loss", "el2n", "lengths"})


class SelectionError(ValueError):
    """A selection input or option the user can fix; the message names the recipe key."""


@dataclass
class SelectionInputs:
    """The inputs of every selector (the pipeline fills only what the selector ``needs``).

    Attributes:
        n: number of records.
        budget: ``selection.keep``: a fraction (<= 1) or a count (> 1, integral).
        seed: selection seed (k-means init, random baselines).
        features: ``(n, D)`` array or memmap (row i = record i), or None.
        signals: per-record scores by name (``"shift"``, ``"loss"``, ``"el2n"``), each ``(n,)``.
        lengths: ``(n,)`` record lengths in words, or None.
        tasks / sources: per-record task and source names (for reports and counts).
        images: per-record image key (its image paths joined; "" for text-only), for selectors that
            spread a budget over images (filled only when ``selection.options.spread_images`` is on).
        clusters: requested number of clusters (0: ``selection.cluster.auto_clusters``).
        cluster_method: ``auto`` (the selector's paper: faiss for coincide, else minibatch), ``minibatch`` or ``faiss``.
        options: ``selection.options`` (checked against the selector's defaults).
    """

    n: int
    budget: float
    seed: int = 0
    features: np.ndarray | None = None
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    lengths: np.ndarray | None = None
    tasks: Sequence[str] | None = None
    sources: Sequence[str] | None = None
    images: Sequence[str] | None = None
    clusters: int = 0
    cluster_method: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    def signal(self, name: str) -> np.ndarray:
        """The ``(n,)`` float64 signal ``name``, or a SelectionError saying it is missing."""
        if name not in self.signals or self.signals[name] is None:
            raise SelectionError(f"selector needs the signal '{name}' but the pipeline did not provide it")
        values = np.asarray(self.signals[name], dtype=np.float64)
        if values.shape != (self.n,):
            raise SelectionError(f"signal '{name}' has shape {values.shape}, expected ({self.n},)")
        return values

    def require_features(self) -> np.ndarray:
        if self.features is None:
            raise SelectionError("selector needs features but none were provided (selection.features)")
        if len(self.features) != self.n:
            raise SelectionError(f"features have {len(self.features)} rows for {self.n} records")
        return self.features


@dataclass
class Selection:
    """What a selector returns: the kept records, plus per-record values for reports.

    Attributes:
        indices: kept record indices, ascending.
        cluster: cluster of each kept record (-1 when the selector does not cluster).
        score: the selector's score of each kept record.
        rank_in_cluster: 0-based rank of each kept record inside its cluster (or overall).
        all_clusters: ``(n,)`` cluster of every record, or None.
        all_scores: ``(n,)`` score of every record (for kept-vs-dropped plots), or None.
        info: small JSON-able facts for the manifest header (e.g. the number of clusters).
        timings: seconds per stage inside the selector (``timings.json``, not the manifest).
    """

    indices: np.ndarray
    cluster: np.ndarray
    score: np.ndarray
    rank_in_cluster: np.ndarray
    all_clusters: np.ndarray | None = None
    all_scores: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


@contextlib.contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the seconds spent in the block to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def resolve_budget(keep: float, n: int) -> int:
    """The exact number of records to keep.

    A fraction ``0 < keep <= 1`` keeps ``floor(keep * n + 0.5)`` (round half up, so 0.5 of 3 is 2);
    ``keep > 1`` is a count and must be a whole number no larger than ``n``. ``keep == 1`` means all.

    Raises:
        SelectionError: naming ``selection.keep``.
    """
    if n < 0:
        raise SelectionError(f"number of records must be >= 0, got {n}")
    if not math.isfinite(keep) or keep <= 0:
        raise SelectionError(f"selection.keep must be a fraction in (0, 1] or a count > 1, got {keep}")
    if keep <= 1:
        return int(math.floor(keep * n + 0.5))
    if keep != int(keep):
        raise SelectionError(f"selection.keep={keep} is > 1, so a count, and must be a whole number")
    if keep > n:
        raise SelectionError(f"selection.keep={int(keep)} records but the data has only {n}; lower selection.keep")
    return int(keep)


def largest_remainder(weights: Sequence[float], total: int, caps: Sequence[int] | None = None) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` that sum to ``total`` exactly.

    Each part gets ``floor(total * w_i / sum(w))``; the units left go one each to the largest
    fractional remainders, ties to the lower index. With ``caps`` no part exceeds its cap; the excess
    is re-split over the parts with room the same way.
    """
    w = np.asarray(weights, dtype=np.float64)
    cap = np.full(len(w), np.iinfo(np.int64).max, dtype=np.int64) if caps is None else np.asarray(caps, np.int64)
    if total > cap.sum():
        raise SelectionError(f"cannot place {total} items in parts whose caps sum to {int(cap.sum())}")
    counts = np.zeros(len(w), dtype=np.int64)
    left = int(total)
    while left > 0:
        room = counts < cap
        share = np.where(room, w, 0.0)
        if share.sum() <= 0:  # only zero-weight parts have room: fill them in index order
            share = room.astype(np.float64)
        quota = left * share / share.sum()
        add = np.minimum(np.floor(quota).astype(np.int64), cap - counts)
        rest = left - int(add.sum())
        remainder = np.where(room & (counts + add < cap), quota - np.floor(quota), -1.0)
        order = np.lexsort((np.arange(len(w)), -remainder))  # largest remainder, then lowest index
        for i in order[:rest]:
            if remainder[i] < 0:
                break
            add[i] += 1
        counts += add
        left = total - int(counts.sum())
    return counts


def order_by_score(scores: np.ndarray, prefer: str) -> np.ndarray:
    """Positions of ``scores`` from most to least preferred; ties go to the lower position.

    ``high``: largest first; ``low``: smallest first; ``middle``: closest to the median (of the
    finite scores) first. A NaN/inf score (a failed forward pass) is never preferred: those positions
    come last, whatever ``prefer`` says.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positions = np.arange(len(scores))
    finite = np.isfinite(scores)
    if prefer == "high":
        key = -scores
    elif prefer == "low":
        key = scores
    elif prefer == "middle":
        key = np.abs(scores - np.median(scores[finite])) if finite.any() else scores
    else:
        raise SelectionError(f"selection.options.prefer must be high, low or middle, got '{prefer}'")
    return np.lexsort((positions, np.where(finite, key, 0.0), ~finite))


def check_options(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``options``; an unknown key fails naming ``selection.options.<key>``."""
    for key in options:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            known = ", ".join(sorted(defaults)) or "none"
            raise SelectionError(
                f"selection.options.{key}: unknown option for selector '{name}'.{hint} Known options: {known}"
            )
    return {**defaults, **dict(options)}


def selector(name: str, needs: Sequence[str] = (), **defaults: Any) -> Callable:
    """Declare a selector: its ``needs`` and option ``defaults`` become attributes of the function.

    The wrapped function is called as ``fn(inputs, options)`` with options already checked.
    """
    unknown = set(needs) - KNOWN_NEEDS
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; known: {sorted(KNOWN_NEEDS)}")

    def wrap(fn: Callable[[SelectionInputs, dict[str, Any]], Selection]) -> Callable[[SelectionInputs], Selection]:
        @functools.wraps(fn)
        def run(inputs: SelectionInputs) -> Selection:
            options = check_options(name, dict(inputs.options or {}), defaults)
            return fn(inputs, options)

        run.selector_name = name
        run.needs = frozenset(needs)
        run.defaults = dict(defaults)
        return run

    return wrap


def selection_from_order(
    order: np.ndarray, k: int, scores: np.ndarray, clusters: np.ndarray | None = None
) -> Selection:
    """A Selection keeping the first ``k`` of a global preference ``order`` (no per-cluster quota).

    ``rank_in_cluster`` is the rank inside the record's cluster among kept records (or the global
    rank when ``clusters`` is None).
    """
    kept = np.asarray(order[:k], dtype=np.int64)
    n = len(scores)
    labels = np.full(n, -1, dtype=np.int64) if clusters is None else np.asarray(clusters, np.int64)
    ranks = np.zeros(len(kept), dtype=np.int64)
    seen: dict[int, int] = {}
    for j, i in enumerate(kept):
        c = int(labels[i])
        ranks[j] = seen.get(c, 0)
        seen[c] = ranks[j] + 1
    return finish_selection(kept, labels[kept], np.asarray(scores)[kept], ranks, clusters, scores)


def finish_selection(
    kept: np.ndarray,
    cluster: np.ndarray,
    score: np.ndarray,
    rank: np.ndarray,
    all_clusters: np.ndarray | None,
    all_scores: np.ndarray | None,
    info: dict[str, Any] | None = None,
) -> Selection:
    """Sort the kept rows by record index (the manifest order) and build the Selection.

    Non-finite scores are counted into ``info`` (``nan_scores`` over all records, ``nan_kept`` among
    the kept ones), which the manifest header and the report carry.
    """
    kept = np.asarray(kept, dtype=np.int64)
    if len(np.unique(kept)) != len(kept):
        raise AssertionError("selector kept a record twice")
    info = dict(info or {})
    if all_scores is not None:
        bad = ~np.isfinite(np.asarray(all_scores, dtype=np.float64))
        if bad.any():
            info.update(nan_scores=int(bad.sum()), nan_kept=int(bad[kept].sum()))
    order = np.argsort(kept, kind="stable")
    return Selection(
        indices=kept[order],
        cluster=np.asarray(cluster, dtype=np.int64)[order],
        score=np.asarray(score, dtype=np.float64)[order],
        rank_in_cluster=np.asarray(rank, dtype=np.int64)[order],
        all_clusters=None if all_clusters is None else np.asarray(all_clusters, dtype=np.int64),
        all_scores=None if all_scores is None else np.asarray(all_scores, dtype=np.float64),
        info=info,
    )
