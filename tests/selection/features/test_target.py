import math

import numpy as np
import pytest
import torch

from selection.features import extract_features
from selection.features.inputs import ModelRunner, sample_from_record
from selection.features.target import PooledStates


def test_target_features_shape_and_unit_norm(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool
    feats = extract_features(records, data, features_cfg("target", layers=[0, 1]), model_cfg, tmp_path / "c")
    assert feats.shape == (len(records), 2 * 64) and feats.dtype == np.float16
    assert np.allclose(np.linalg.norm(feats.astype(np.float32), axis=1), 1.0, atol=2e-3)


def test_separate_pooling_has_image_and_text_halves(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool
    cfg = features_cfg("target", layers=[-1], pooling="separate")
    feats = extract_features(records, data, cfg, model_cfg, tmp_path / "c").astype(np.float32)
    assert feats.shape == (len(records), 2 * 64)
    assert np.allclose(np.linalg.norm(feats[:, :64], axis=1)[[0, 1, 2]], 1 / math.sqrt(2), atol=2e-3)
    assert np.all(feats[7, :64] == 0)  # the text-only record has no image tokens


def test_pooled_layer_equals_mean_of_hf_hidden_state(pool, model_cfg):
    """The hook on layer 0 sees exactly HF's hidden_states[1]; pooling = masked mean, then unit norm."""
    records, data = pool
    runner = ModelRunner(model_cfg)
    samples = [sample_from_record(r, data) for r in records[:3]]
    got = PooledStates(runner, [0])(samples)
    batch = runner.encode(samples)
    with torch.inference_mode():
        hidden = runner.model(**batch, output_hidden_states=True).hidden_states[1]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    want = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(got, want, atol=1e-5)


def test_unknown_pooling_fails(pool, model_cfg, features_cfg, tmp_path):
    records, data = pool
    with pytest.raises(ValueError, match="selection.features.pooling"):
        extract_features(records, data, features_cfg("target", pooling="max"), model_cfg, tmp_path / "c")
