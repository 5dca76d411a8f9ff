"""Baselines on tiny hand-checked cases."""

from __future__ import annotations

import numpy as np

from selection.baselines import (
    duplicate_scores,
    select_el2n,
    select_full,
    select_length,
    select_perplexity,
    select_random,
    select_self_sup,
    select_semdedup,
)
from selection.budget import SelectionInputs


def test_random_is_a_seeded_permutation_prefix():
    sel = select_random(SelectionInputs(n=10, budget=3, seed=5))
    assert sel.indices.tolist() == sorted(np.random.default_rng(5).permutation(10)[:3].tolist())
    assert select_random(SelectionInputs(n=10, budget=3, seed=6)).indices.tolist() != sel.indices.tolist()


def test_length_prefers_long_then_lower_index():
    lengths = np.array([5, 9, 9, 1, 7])
    assert select_length(SelectionInputs(n=5, budget=3, lengths=lengths)).indices.tolist() == [1, 2, 4]
    short = select_length(SelectionInputs(n=5, budget=2, lengths=lengths, options={"prefer": "low"}))
    assert short.indices.tolist() == [0, 3]


def test_perplexity_middle_and_el2n_high():
    loss = np.log(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))  # perplexity 1..4, 100; median 3
    sel = select_perplexity(SelectionInputs(n=5, budget=3, signals={"loss": loss}))
    assert sel.indices.tolist() == [1, 2, 3]  # |p - 3| = 2, 1, 0, 1, 97
    np.testing.assert_allclose(sel.score, [2.0, 3.0, 4.0])
    el2n = np.array([0.1, 0.9, 0.5, 0.9])
    assert select_el2n(SelectionInputs(n=4, budget=2, signals={"el2n": el2n})).indices.tolist() == [1, 3]
    low = select_el2n(SelectionInputs(n=4, budget=0.25, signals={"el2n": el2n}, options={"prefer": "low"}))
    assert low.indices.tolist() == [0]


def test_semdedup_duplicate_scores_by_hand():
    rows = np.array([[1, 0], [0, 1], [0.6, 0.8], [0, 1]], dtype=np.float32)
    order, scores = duplicate_scores(rows, np.array([1.0, 0.0]))
    # least similar to the centroid first: rows 1, 3 (cos 0, tie by index), 2 (.6), 0 (1)
    assert order.tolist() == [1, 3, 2, 0]
    # row 3 duplicates row 1 (1.0); row 2's best earlier match .8; row 0's .6; row 1 is first (-1)
    np.testing.assert_allclose(scores, [0.6, -1.0, 0.8, 1.0], atol=1e-6)


def test_semdedup_drops_duplicates_first(clustered):
    x, _ = clustered(40, 2, 8, seed=0, noise=0.3)
    x = np.concatenate([x, x[:10]])  # 10 exact duplicates: records 40..49
    sel = select_semdedup(SelectionInputs(n=50, budget=40, features=x, clusters=2, options={"threshold": 0.99}))
    assert len(sel) == 40
    kept = set(sel.indices.tolist())
    for i in range(10):  # of each duplicate pair exactly one is dropped
        assert (i in kept) != (40 + i in kept)
    assert sel.info["near_duplicates"] == 10


def test_self_sup_prefers_far_from_prototype(clustered):
    x, _ = clustered(60, 3, 8, seed=4, noise=0.2)
    sel = select_self_sup(SelectionInputs(n=60, budget=6, features=x, clusters=3))
    dist = sel.all_scores
    assert sorted(sel.indices.tolist()) == sorted(np.argsort(-dist, kind="stable")[:6].tolist())
    easy = select_self_sup(SelectionInputs(n=60, budget=6, features=x, clusters=3, options={"prefer": "low"}))
    assert set(easy.indices.tolist()) == set(np.argsort(dist, kind="stable")[:6].tolist())


def test_full_keeps_everything_whatever_the_budget():
    sel = select_full(SelectionInputs(n=7, budget=0.2))
    assert sel.indices.tolist() == list(range(7))
