"""Recall@K and mR on hand-built similarity matrices, and their chance level."""

import math

import numpy as np
import pytest

from eval.retrieval import KEYS, recall_at_k


def _hand_built():
    # 2 images x 10 captions; image 0 owns captions 0-4, image 1 owns 5-9.
    img2txt = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    txt2img = [0] * 5 + [1] * 5
    sims = np.zeros((2, 10))
    # Image 0: its best own caption (3) ranks 2nd behind caption 7 -> i2t R@1 miss, R@5 hit.
    sims[0] = [0.1, 0.2, 0.3, 0.8, 0.15, 0.05, 0.5, 0.9, 0.05, 0.05]
    # Image 1: its own caption 9 ranks first.
    sims[1] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1, 0.95]
    return sims, img2txt, txt2img


def test_recall_on_a_hand_built_matrix_with_best_of_five():
    sims, img2txt, txt2img = _hand_built()
    r = recall_at_k(sims, img2txt, txt2img)
    assert (r["i2t_r1"], r["i2t_r5"], r["i2t_r10"]) == (50.0, 100.0, 100.0)
    # Text->image among 2 images: captions 6 and 7 (image 1's) score higher with image 0 -> 8 of 10 right.
    assert r["t2i_r1"] == 80.0
    assert r["t2i_r5"] == r["t2i_r10"] == 100.0
    assert r["mR"] == pytest.approx((50 + 100 + 100 + 80 + 100 + 100) / 6)
    assert set(KEYS) == set(r)


def test_chance_level_on_random_embeddings():
    rng = np.random.default_rng(0)
    n = 200
    img = rng.normal(size=(n, 64))
    txt = rng.normal(size=(5 * n, 64))
    img2txt = [list(range(5 * i, 5 * i + 5)) for i in range(n)]
    txt2img = [i for i in range(n) for _ in range(5)]
    r = recall_at_k(img @ txt.T, img2txt, txt2img)
    for k in (1, 5, 10):
        assert r[f"t2i_r{k}"] == pytest.approx(100 * k / n, abs=1.0)
        i2t = 1 - math.comb(5 * n - 5, k) / math.comb(5 * n, k)
        assert r[f"i2t_r{k}"] == pytest.approx(100 * i2t, abs=3.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 images"):
        recall_at_k(np.zeros((2, 4)), [[0], [1], [2]], [0, 1, 2, 2])


def test_queries_score_one_group_against_the_whole_gallery():
    """Image 1 alone as query: its i2t rank is 1, and 3 of its 5 captions rank it first (6 and 7 prefer image 0)."""
    sims, img2txt, txt2img = _hand_built()
    one = recall_at_k(sims, img2txt, txt2img, queries=[1])
    assert (one["i2t_r1"], one["t2i_r1"], one["t2i_r5"]) == (100.0, 60.0, 100.0)
    zero = recall_at_k(sims, img2txt, txt2img, queries=[0])
    assert (zero["i2t_r1"], zero["i2t_r5"], zero["t2i_r1"]) == (0.0, 100.0, 100.0)
    assert recall_at_k(sims, img2txt, txt2img, queries=[0, 1]) == recall_at_k(sims, img2txt, txt2img)
