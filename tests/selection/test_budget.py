"""Budget arithmetic: exact counts, largest remainder, preference order, option checks."""

from __future__ import annotations

import numpy as np
import pytest

from selection.budget import SelectionError, check_options, largest_remainder, order_by_score, resolve_budget


@pytest.mark.parametrize(
    "keep, n, expected",
    [(0.333, 300, 100), (0.5, 3, 2), (0.5, 1, 1), (0.1, 4, 0), (1.0, 7, 7), (1, 7, 7), (100, 300, 100), (2.0, 2, 2)],
)
def test_resolve_budget(keep, n, expected):
    assert resolve_budget(keep, n) == expected


@pytest.mark.parametrize("keep", [0, -0.5, 2.5, 400, float("nan")])
def test_resolve_budget_rejects(keep):
    with pytest.raises(SelectionError, match="selection.keep"):
        resolve_budget(keep, 300)


def test_largest_remainder_by_hand():
    # 5 of (5, 3, 2): quotas 2.5, 1.5, 1.0 -> floors 2, 1, 1; the one left goes to the tie 0.5/0.5 -> cluster 0
    assert largest_remainder([5, 3, 2], 5).tolist() == [3, 1, 1]
    assert largest_remainder([1, 1, 1], 2).tolist() == [1, 1, 0]
    assert largest_remainder([1, 2, 3], 0).tolist() == [0, 0, 0]


def test_largest_remainder_caps_resplit():
    # quotas 4.17, .42, .42 -> cap 2 on part 0; the 3 left: parts 1, 2 by remainder, then 1 again
    assert largest_remainder([10, 1, 1], 5, caps=[2, 5, 5]).tolist() == [2, 2, 1]
    with pytest.raises(SelectionError):
        largest_remainder([1, 1], 5, caps=[2, 2])


def test_largest_remainder_sums_exactly():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(1, 40, size=rng.integers(1, 30))
        total = int(rng.integers(0, sizes.sum() + 1))
        counts = largest_remainder(sizes, total, caps=sizes)
        assert counts.sum() == total and (counts <= sizes).all()


def test_order_by_score_directions_and_ties():
    s = np.array([3.0, 1.0, 3.0, 2.0, 0.0])
    assert order_by_score(s, "high").tolist() == [0, 2, 3, 1, 4]
    assert order_by_score(s, "low").tolist() == [4, 1, 3, 0, 2]
    # median 2: |s - 2| = 1, 1, 1, 0, 2
    assert order_by_score(s, "middle").tolist() == [3, 0, 1, 2, 4]
    with pytest.raises(SelectionError, match="prefer"):
        order_by_score(s, "sideways")


def test_check_options_names_the_key():
    assert check_options("x", {"prefer": "low"}, {"prefer": "high", "tau": 0.1}) == {"prefer": "low", "tau": 0.1}
    with pytest.raises(SelectionError, match=r"selection\.options\.prefr.*Did you mean 'prefer'"):
        check_options("x", {"prefr": "low"}, {"prefer": "high"})
