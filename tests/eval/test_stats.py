"""Paired bootstrap intervals on cases whose answer is known, and against scipy's bootstrap."""

import numpy as np
import pytest
from scipy import stats

from eval.stats import bootstrap_mean_ci, paired_differences


def test_two_values_give_the_exact_percentile_interval():
    # Resampled means of [0, 1] are 0 (p 1/4), 0.5 (1/2) and 1 (1/4): the 2.5 / 97.5 percentiles are 0 and 1.
    mean, low, high = bootstrap_mean_ci([0.0, 1.0])
    assert (mean, low, high) == (0.5, 0.0, 1.0)


def test_constant_differences_have_a_zero_width_interval():
    assert bootstrap_mean_ci([2.5] * 5) == (2.5, 2.5, 2.5)


def test_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(1).normal(3.0, 2.0, 12)
    ours = bootstrap_mean_ci(x, resamples=20_000)
    theirs = stats.bootstrap((x,), np.mean, confidence_level=0.95, n_resamples=20_000, method="percentile",
                             random_state=0).confidence_interval
    assert ours[1] == pytest.approx(theirs.low, abs=0.05) and ours[2] == pytest.approx(theirs.high, abs=0.05)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci([1.0], level=1.5)


def test_paired_differences_use_the_seeds_both_have():
    assert paired_differences({0: 5.0, 1: 7.0, 2: 1.0}, {1: 6.0, 0: 4.0}) == [1.0, 1.0]
