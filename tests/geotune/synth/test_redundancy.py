"""The pool redundancy measure on hand-made rows whose near-duplicate pairs are known."""

import numpy as np
import pytest
from PIL import Image

from geotune.synth.redundancy import image_vectors, near_duplicate_pairs


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_pair_needs_both_the_same_text_and_the_same_image():
    text = unit([[1, 0], [1, 0.01], [1, 0], [0, 1]])  # 0, 1, 2 share a text; 3 does not
    image = unit([[1, 0, 0], [1, 0, 0.01], [0, 1, 0], [1, 0, 0]])  # 0, 1, 3 share an image; 2 does not
    out = near_duplicate_pairs(text, image, block=2)  # blocks smaller than n: pairs counted once
    assert out["pairs"] == 1 and out["pair_share"] == pytest.approx(1 / 6)
    assert out["records_with_partner"] == 2 and out["record_share"] == 0.5


def test_same_file_counts_as_the_same_image_even_when_flat():
    text = unit([[1, 0], [1, 0], [1, 0]])
    image = np.zeros((3, 4), np.float32)  # flat pictures: no correlation
    assert near_duplicate_pairs(text, image)["pairs"] == 0
    assert near_duplicate_pairs(text, image, same_file=np.array([0, 0, 2]))["pairs"] == 1


def test_image_vectors_are_correlations(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 32, 3)).astype(np.uint8)
    brighter = np.clip(base.astype(int) * 1.05 + 3, 0, 255).astype(np.uint8)  # a gain: correlation ~1
    other = rng.integers(0, 255, (32, 32, 3)).astype(np.uint8)
    flat = np.full((32, 32, 3), 90, np.uint8)
    paths = []
    for name, pixels in (("a", base), ("b", brighter), ("c", other), ("d", flat)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    v = image_vectors(paths)
    assert v[0] @ v[1] > 0.99 and abs(v[0] @ v[2]) < 0.5 and not v[3].any()
