import numpy as np

from selection.config import FeaturesConfig
from selection.features import extract_features
from selection.features.text import TextBackend, default_text_model


def test_default_model_is_the_bundled_package():
    path = default_text_model()
    assert (path / "model.safetensors").exists() and path.name == "model"


def test_text_encoder_dim_norm_and_similarity():
    backend = TextBackend(FeaturesConfig(backend="text"))
    emb = backend.encode_texts(["a river next to a forest", "a forest beside a river", "the stock market fell"], 8)
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_text_backend_through_extract_features(pool, features_cfg, tmp_path):
    records, data = pool
    feats = extract_features(records, data, features_cfg("text"), None, tmp_path / "c")
    assert feats.shape == (len(records), 384) and feats.dtype == np.float16
    # records 0 and 4 share question and answer text, so their rows are identical
    assert np.array_equal(feats[0], feats[4])
