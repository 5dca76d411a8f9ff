"""Paired comparisons of runs: mean difference and its percentile-bootstrap confidence interval.

A selector and random 1/3 trained with the same seed share everything but the subset, so the study
compares them seed by seed: ``diff_s = score(selector, s) - score(random 1/3, s)``. The interval is the
percentile bootstrap of the mean over seeds (seeds resampled with replacement), the standard choice for
a handful of paired runs; with few seeds it is narrow-biased, so the number of seeds is reported with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_mean_ci(values: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its percentile-bootstrap interval.

    Raises:
        ValueError: no values, or ``level`` outside (0, 1).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_mean_ci: no values")
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap_mean_ci: level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(x.mean()), float(low), float(high)


def paired_differences(scores: dict[int, float], reference: dict[int, float]) -> list[float]:
    """``scores[s] - reference[s]`` for every seed ``s`` both have, in seed order."""
    return [scores[s] - reference[s] for s in sorted(set(scores) & set(reference))]
