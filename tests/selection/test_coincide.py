"""COINCIDE formulas on hand-computed tiny cases."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selection.budget import SelectionError
from selection.coincide import (
    allocate_budget,
    cluster_density,
    language_halves,
    mmd_prototypes,
    softmax,
    transferability,
)


def test_language_halves_layout():
    # 2 layers, d = 2: [v0 v0 l0 l0 | v1 v1 l1 l1]
    x = np.array([[1, 2, 3, 4, 5, 6, 7, 8]], dtype=np.float32)
    assert language_halves(x, 2).tolist() == [[3, 4, 7, 8]]
    with pytest.raises(SelectionError, match="n_layers"):
        language_halves(x, 3)


def test_transferability_masks_self_and_near_duplicates():
    # language halves: c0=(1,0), c1=(0,1), c2=(1,1)/sqrt2, c3=(1,0.1); cos(c0,c3)=0.995 > 0.9 is masked
    lang = np.array([[1, 0], [0, 1], [1, 1], [1, 0.1]])
    vision = np.random.default_rng(0).normal(size=(4, 2))  # must be ignored
    cents = np.concatenate([vision, lang], axis=1)
    r2, n3 = math.sqrt(2), math.sqrt(1.01)
    c02, c13, c23 = 1 / r2, 0.1 / n3, 1.1 / (r2 * n3)
    expected = [
        (0 + c02) / 2,  # c0: self and c3 masked
        (0 + c02 + c13) / 3,  # c1: self masked
        (c02 + c02 + c23) / 3,  # c2: self masked
        (c13 + c23) / 2,  # c3: self and c0 masked
    ]
    s = transferability(language_halves(cents, 1), block=3)  # block smaller than K: row blocks
    np.testing.assert_allclose(s, expected, rtol=1e-6)  # float32 features


def test_transferability_all_masked_is_zero():
    assert transferability(np.array([[1.0, 0.0]])).tolist() == [0.0]


def test_density_by_hand():
    x = np.array([[0.0], [1.0]])  # squared distance 1
    assert cluster_density(x) == pytest.approx((1 + math.exp(-0.5)) / 2)
    assert cluster_density(x, sigma=2.0) == pytest.approx((1 + math.exp(-1 / 8)) / 2)
    assert cluster_density(np.array([[3.0, 4.0]])) == 1.0  # a singleton's only pair is itself


def test_softmax_with_temperature():
    p = softmax(np.array([0.0, 0.1]) / 0.1)
    np.testing.assert_allclose(p, [1 / (1 + math.e), math.e / (1 + math.e)])


def test_allocation_descending_with_renormalisation():
    # c0 (P .5) takes min(round(10*.5), 2) = 2; c1: round(8 * .3/.5) = round(4.8) = 5; c2: the 3 left
    assert allocate_budget(np.array([0.5, 0.3, 0.2]), np.array([2, 10, 10]), 10).tolist() == [2, 5, 3]
    # visiting order is by P: c2 (.5) capped at 1, then c1 round(5*.6) = 3, then c0 gets 2
    assert allocate_budget(np.array([0.2, 0.3, 0.5]), np.array([10, 10, 1]), 6).tolist() == [2, 3, 1]


def test_allocation_second_pass_when_last_cluster_is_capped():
    # c0 round(5*.6)=3, c1 takes min(2, 1)=1 -> 1 unspent; the next pass gives it to c0
    assert allocate_budget(np.array([0.6, 0.4]), np.array([10, 1]), 5).tolist() == [4, 1]


def test_allocation_rounds_half_to_even_and_breaks_ties_by_index():
    # the official code's Python round(): round(1.5) = 2, round(2.5) = 2
    assert allocate_budget(np.array([0.5, 0.5]), np.array([10, 10]), 3).tolist() == [2, 1]
    assert allocate_budget(np.array([0.5, 0.5]), np.array([10, 10]), 5).tolist() == [2, 3]


def _peaked_case(seed: int, k: int = 1000):
    """A K = 1,000 case with softmax logits of scale 5-80 (low temperature / uneven S/D ratios)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 100, size=k)
    p = softmax(rng.normal(size=k) * rng.uniform(5, 80))
    return p, sizes, int(sizes.sum() * 0.2)


def _allocate_or_hang(p, sizes, total):
    """allocate_budget in a thread: a running-mass implementation looped forever on these inputs."""
    result = {}
    worker = threading.Thread(target=lambda: result.update(counts=allocate_budget(p, sizes, total)), daemon=True)
    worker.start()
    worker.join(timeout=900)  # catches a hang only; the call takes milliseconds
    assert not worker.is_alive(), "allocate_budget did not return"
    return result["counts"]


@pytest.mark.parametrize("seed", [135, 164])  # a running `mass -= p` gave a count of -1 on these
def test_allocation_never_negative_on_peaked_probabilities(seed):
    p, sizes, total = _peaked_case(seed)
    counts = _allocate_or_hang(p, sizes, total)
    assert counts.sum() == total and counts.min() >= 0 and (counts <= sizes).all()


@pytest.mark.parametrize("seed", [128, 139])  # every share rounded to 0 and the old loop never ended
def test_allocation_returns_on_peaked_probabilities(seed):
    p, sizes, total = _peaked_case(seed)
    counts = _allocate_or_hang(p, sizes, total)
    assert counts.sum() == total and counts.min() >= 0 and (counts <= sizes).all()


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(1, 400),
    scale=st.floats(0.0, 200.0),
    seed=st.integers(0, 2**32 - 1),
    keep=st.floats(0.0, 1.0),
    empty_share=st.floats(0.0, 0.5),
)
def test_allocation_properties_on_random_peaked_distributions(k, scale, seed, keep, empty_share):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 80, size=k) * (rng.random(k) >= empty_share)
    if sizes.sum() == 0:
        sizes[0] = 1
    p = softmax(rng.standard_cauchy(size=k) * scale) * (sizes > 0)  # heavy tails: very uneven P
    p = p / p.sum() if p.sum() > 0 else (sizes > 0) / (sizes > 0).sum()
    total = int(round(keep * sizes.sum()))
    counts = _allocate_or_hang(p, sizes, total)
    assert counts.sum() == total
    assert (counts >= 0).all() and (counts <= sizes).all()


def test_allocation_is_exact_on_random_cases():
    rng = np.random.default_rng(3)
    for _ in range(100):
        k = int(rng.integers(1, 20))
        sizes = rng.integers(0, 30, size=k)
        p = softmax(rng.normal(size=k) * 5) * (sizes > 0)
        if p.sum() == 0:
            continue
        total = int(rng.integers(0, sizes.sum() + 1))
        counts = allocate_budget(p / p.sum(), sizes, total)
        assert counts.sum() == total and (counts <= sizes).all()


def test_mmd_greedy_order_by_hand():
    # three points on a line: k(0,1)=k(1,2)=.5, k(0,2)=.1
    k = np.array([[1, 0.5, 0.1], [0.5, 1, 0.5], [0.1, 0.5, 1]])
    picked, gains = mmd_prototypes(k, 3)
    # step 1: J(c) = 2 mean_i k(i,c) - k(c,c) = [1/15, 1/3, 1/15] -> the middle point
    # step 2: J({1,0}) = J({1,2}) = (2/3 + 1.6/3) - 3/4 = 0.45 -> tie, lower index 0
    # step 3: J(all) = sum(K)/9 = 5.2/9
    assert picked.tolist() == [1, 0, 2]
    np.testing.assert_allclose(gains, [1 / 3, 0.45 - 1 / 3, 5.2 / 9 - 0.45])
    assert mmd_prototypes(k, 1)[0].tolist() == [1]
