"""Adaptive shift: per-cluster shares by size, ordered by shift."""

from __future__ import annotations

import numpy as np
import pytest

from selection.adaptive_shift import (
    SHIFT_OPTION_KEYS,
    image_ids,
    keep_per_cluster,
    select_adaptive_shift,
    select_cluster_random,
)
from selection.budget import SelectionError, SelectionInputs

LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
SHIFT = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.0])


def test_per_cluster_counts_and_high_order():
    # 5 of sizes (5, 3, 2): largest remainder gives (3, 1, 1)
    sel = keep_per_cluster(LABELS, 3, SHIFT, 5, "high")
    assert sel.indices.tolist() == [0, 1, 3, 6, 8]
    assert sel.cluster.tolist() == [0, 0, 0, 1, 2]
    assert sel.rank_in_cluster.tolist() == [2, 0, 1, 0, 0]
    np.testing.assert_allclose(sel.score, SHIFT[[0, 1, 3, 6, 8]])


def test_low_and_middle():
    assert keep_per_cluster(LABELS, 3, SHIFT, 5, "low").indices.tolist() == [0, 2, 4, 5, 9]
    # cluster 0 median .5 -> distances 0, .4, .4, .2, .2 -> 0, 3 (tie with 4: lower index), 4
    # cluster 1 median .4 -> 7; cluster 2 median .3 -> tie .3/.3 -> 8
    assert keep_per_cluster(LABELS, 3, SHIFT, 5, "middle").indices.tolist() == [0, 3, 4, 7, 8]


def test_selector_end_to_end(clustered):
    x, _ = clustered(90, 3, 8, seed=2)
    shift = np.random.default_rng(0).random(90)
    sel = select_adaptive_shift(SelectionInputs(n=90, budget=0.2, features=x, signals={"shift": shift}, clusters=3))
    assert len(sel) == 18
    # equal clusters of 30 keep 6 each; the default (prefer: middle, chosen on the proxy study in the
    # seed's regime, docs/results.md) keeps the 6 shifts closest to each cluster's median
    assert sel.info["prefer"] == "middle"
    for c in range(3):
        members = np.flatnonzero(sel.all_clusters == c)
        top = members[np.argsort(np.abs(shift[members] - np.median(shift[members])), kind="stable")[:6]]
        assert sorted(top.tolist()) == sorted(sel.indices[sel.cluster == c].tolist())


def test_shift_options_match_signals():
    from selection.signals import SHIFT_DEFAULTS

    assert set(SHIFT_OPTION_KEYS) == set(SHIFT_DEFAULTS)


# Two clusters; records 0-3 show image "a", 4-5 image "b", 6 "c" (cluster 0); 7-9 cluster 1, one image each.
SPREAD_LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
SPREAD_SHIFT = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.1, 0.2, 0.3])
SPREAD_IMAGES = ["a", "a", "a", "a", "b", "b", "c", "d", "e", "f"]


def test_spread_images_keeps_a_second_record_of_a_scene_only_after_every_scene_has_one_inside_a_cluster():
    # prefer low keeps 0,1,2,3 (all image "a") without spreading; with it: best of a, b, c, then a's next
    plain = keep_per_cluster(SPREAD_LABELS, 2, SPREAD_SHIFT, 6, "low")
    assert plain.indices.tolist() == [0, 1, 2, 3, 7, 8]
    spread = keep_per_cluster(SPREAD_LABELS, 2, SPREAD_SHIFT, 6, "low", images=SPREAD_IMAGES)
    assert spread.indices.tolist() == [0, 1, 4, 6, 7, 8]
    # rank inside the cluster follows the spread order: a(0), b(4), c(6) first, then a's second (1)
    assert dict(zip(spread.indices.tolist(), spread.rank_in_cluster.tolist(), strict=True))[1] == 3


def test_adaptive_shift_spread_images_option_needs_images():
    x = np.eye(10)[SPREAD_LABELS][:, :2].astype(np.float32)
    inputs = SelectionInputs(n=10, budget=6, features=x, signals={"shift": SPREAD_SHIFT}, clusters=2,
                             options={"prefer": "low", "spread_images": True}, images=SPREAD_IMAGES)
    assert sorted(select_adaptive_shift(inputs).indices.tolist()) == [0, 1, 4, 6, 7, 8]
    inputs.images = None
    with pytest.raises(SelectionError, match="spread_images"):
        select_adaptive_shift(inputs)


def test_cluster_random_keeps_each_cluster_its_share_at_random(clustered):
    x, _ = clustered(90, 3, 8, seed=2)
    a = select_cluster_random(SelectionInputs(n=90, budget=0.2, features=x, clusters=3, seed=1))
    b = select_cluster_random(SelectionInputs(n=90, budget=0.2, features=x, clusters=3, seed=2))
    assert len(a) == len(b) == 18
    for sel in (a, b):  # equal clusters of 30 keep 6 each
        assert np.bincount(sel.cluster, minlength=3).tolist() == [6, 6, 6]
    assert a.indices.tolist() != b.indices.tolist()  # the draw inside a cluster follows the seed


def test_text_only_records_are_each_their_own_image():
    assert image_ids(["", "", "x", "x", "y"]).tolist() == [0, 1, 2, 2, 3]


def test_spread_images_reaches_across_clusters():
    # The shift is mostly a property of the image, so every cluster ranks the same scene first; once
    # cluster 0 has kept image "a", cluster 1 takes its best record of another image.
    labels = np.array([0, 0, 1, 1, 1])
    shift = np.array([0.1, 0.2, 0.1, 0.2, 0.3])
    images = ["a", "b", "a", "b", "c"]
    assert keep_per_cluster(labels, 2, shift, 2, "low").indices.tolist() == [0, 2]
    assert keep_per_cluster(labels, 2, shift, 2, "low", images=images).indices.tolist() == [0, 3]
