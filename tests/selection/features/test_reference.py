import math

import numpy as np
import pytest
import torch

from selection.features import extract_features, load_report
from selection.features.reference import coincide_parts, image_and_following_text_masks


def test_masks_take_image_span_and_only_text_after_it():
    # left pad, 2 text tokens, 3 image tokens (id 5), 2 text tokens after
    ids = torch.tensor([[0, 7, 8, 5, 5, 5, 9, 10]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1]])
    image, text = image_and_following_text_masks(ids, mask, image_token_id=5)
    assert image.int().tolist() == [[0, 0, 0, 1, 1, 1, 0, 0]]
    assert text.int().tolist() == [[0, 0, 0, 0, 0, 0, 1, 1]]


def test_coincide_parts_hand_computed():
    # one layer, hidden 2: image mean (1, 0) -> tanh -> unit (1, 0); text mean (0, 2) -> unit (0, 1)
    hidden = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    image = torch.tensor([[True, True, False]])
    text = torch.tensor([[False, False, True]])
    out = coincide_parts([hidden], image, text)
    s = 1 / math.sqrt(2)
    assert torch.allclose(out, torch.tensor([[s, 0.0, 0.0, s]]))


def test_reference_features_dimension_and_unit_norm(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool
    feats = extract_features(records, data, features_cfg("reference", layers=[0, 1]), model_cfg, tmp_path / "c")
    n_layers, hidden = 2, 64
    assert feats.shape == (len(records), 2 * n_layers * hidden)
    assert feats.dtype == np.float16
    f = feats.astype(np.float32)
    norms = np.linalg.norm(f, axis=1)
    with_image = [i for i, r in enumerate(records) if r.images]
    assert np.allclose(norms[with_image], 1.0, atol=2e-3)
    # text-only record 7: zero image halves, so only the text halves (norm 1/sqrt(2)) remain
    assert norms[7] == pytest.approx(1 / math.sqrt(2), abs=2e-3)
    # every [v, t] half of every layer part is a unit vector / sqrt(2 n_layers)
    halves = f[with_image].reshape(len(with_image), 2 * n_layers, hidden)
    assert np.allclose(np.linalg.norm(halves, axis=2), 1 / math.sqrt(2 * n_layers), atol=2e-3)
    report = load_report(feats)
    assert report["nan_rows"] == 0 and report["no_image_rows"] == 1 and report["rows"] == len(records)


def test_layers_beyond_depth_name_the_recipe_key(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool
    with pytest.raises(ValueError, match=r"selection\.features\.layers.*layer 3 does not exist.*2 decoder layers"):
        extract_features(records, data, features_cfg("reference", layers=[0, 3]), model_cfg, tmp_path / "c")
