"""``backend: clip``: a retrieval pair's feature is its CLIP image and caption embeddings, as transformers'
own ``get_image_features`` / ``get_text_features`` give them, cached under the cache root."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch_threads import one_torch_thread  # noqa: F401  (autouse fixture)

from finetune.cache import recipe_cache_dir
from finetune.retrieval.data import pairs_training_data, read_train_pairs
from selection.config import FeaturesConfig
from selection.features import extract_features


def _model_cfg(path):
    return OmegaConf.create({"path": str(path), "dtype": "auto"})


def test_rows_are_the_dual_encoders_normalised_image_and_caption_embeddings(rsitmd_files, tiny_clip, tmp_path):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    pairs = read_train_pairs(rsitmd_files / "train.json", rsitmd_files)
    data = pairs_training_data(pairs)
    records = data.records[:12]  # rows of the first three images (5 captions each is 15: a partial image too)
    cfg = OmegaConf.structured(FeaturesConfig(backend="clip", batch_size=5, shard_size=7))
    cache = recipe_cache_dir({"cache_dir": str(tmp_path / "root")}, "features")
    feats = np.asarray(extract_features(records, data, cfg, _model_cfg(tiny_clip), cache), dtype=np.float32)
    assert list(cache.glob("clip-*/values.npy")), "cached under <cache root>/features/clip-<key>/"

    # Reference: transformers' CLIP and the checkpoint's own image processor (the images are already at the
    # model's size), captions padded to the context as training does.
    clip = CLIPModel.from_pretrained(str(tiny_clip)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_clip))
    processor = AutoImageProcessor.from_pretrained(str(tiny_clip))
    with torch.no_grad():
        pixels = processor([data.load_image(r) for r in records], return_tensors="pt")["pixel_values"]
        image = clip.get_image_features(pixel_values=pixels)
        ids = tok([r.answer for r in records], padding="max_length", truncation=True,
                  max_length=min(77, clip.config.text_config.max_position_embeddings), return_tensors="pt")["input_ids"]
        text = clip.get_text_features(input_ids=ids)
    pooled = [out if isinstance(out, torch.Tensor) else out.pooler_output for out in (image, text)]
    expected = torch.cat([F.normalize(p, dim=-1) for p in pooled], dim=1).numpy() / math.sqrt(2)
    assert feats.shape == (12, 2 * clip.config.projection_dim)
    np.testing.assert_allclose(feats, expected, atol=2e-3)  # fp16 on disk
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=2e-3)
    same_image = [i for i, r in enumerate(records) if r.images == records[0].images]
    assert len(same_image) == 5 and all(np.array_equal(feats[i, :32], feats[0, :32]) for i in same_image)


def test_records_of_retrieval_rows_name_image_caption_and_line(rsitmd_files):
    pairs = read_train_pairs(rsitmd_files / "train.json", rsitmd_files)
    records = pairs_training_data(pairs).records
    assert len(records) == len(pairs) and len({r.id for r in records}) == len(records)
    assert records[1].id == f"{pairs.images[1]}#1" and records[1].answer == pairs.captions[1]
    assert records[1].location.endswith("train.json:" + records[1].location.rsplit(":", 1)[1])
    sub = pairs.subset([7, 2])
    assert sub.captions == [pairs.captions[7], pairs.captions[2]] and sub.image_ids == [pairs.image_ids[7], pairs.image_ids[2]]
