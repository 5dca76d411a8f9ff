import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, CLIPModel

from finetune.models.tiny import IMAGE_TOKENS, build_tiny_clip, build_tiny_internvl
from finetune.retrieval.backbone import load_backbone
from finetune.retrieval.model import build_retrieval_model, parameter_counts


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_internvl_reloads_runs_forward_and_generate(tiny_internvl):
    processor = AutoProcessor.from_pretrained(tiny_internvl)
    model = AutoModelForImageTextToText.from_pretrained(tiny_internvl).eval()
    assert type(model).__name__ == "InternVLForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    for name, token in IMAGE_TOKENS.items():
        assert getattr(processor.tokenizer, name) == token
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8))
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Classify the image."}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    batch = processor(images=[image], text=[prompt], return_tensors="pt", crop_to_patches=False)
    n_image_tokens = int((batch["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == model.config.image_seq_length == 16
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 4


def test_tiny_internvl_same_seed_same_files(tmp_path):
    a = build_tiny_internvl(tmp_path / "a", seed=3)
    b = build_tiny_internvl(tmp_path / "b", seed=3)
    c = build_tiny_internvl(tmp_path / "c", seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]


def test_text_overrides_widen_the_text_model(tmp_path):
    """The throughput benchmark's `small` model: a wider text model, a padded vocabulary, same tokenizer."""
    path = build_tiny_internvl(tmp_path / "small", text_overrides={"hidden_size": 96, "num_hidden_layers": 3,
                                                                    "vocab_size": 1024, "tie_word_embeddings": False})
    model = AutoModelForImageTextToText.from_pretrained(path)
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.vocab_size) == (96, 3, 1024)
    assert len(AutoProcessor.from_pretrained(path).tokenizer) < 1024
    ids = torch.tensor([[1, 2, 3]])
    assert model(input_ids=ids).logits.shape == (1, 3, 1024)


def test_a_wide_tiny_clip_has_vit_b_proportions_and_harma_under_5_percent(tmp_path):
    """`--width 128`: both towers 128-d, MLPs 4x, 32-d heads (ViT-B/32's proportions, 768 = 12 x 64 aside),
    so HarMA's r=16 adapters are under 5 % of the parameters as on ViT-B/32 (3.8 %); the default is 11.5 %."""
    path = build_tiny_clip(tmp_path / "w128", width=128)
    config = CLIPModel.from_pretrained(path).config
    for tower in (config.text_config, config.vision_config):
        assert (tower.hidden_size, tower.intermediate_size, tower.num_attention_heads) == (128, 512, 4)
    assert config.projection_dim == 128
    counts = parameter_counts(build_retrieval_model(load_backbone(path).clip, "harma", bottleneck=16, heads=2))
    assert counts["trainable_share"] < 0.05 and counts["total_params"] > 900_000
    again = build_tiny_clip(tmp_path / "again", width=128)
    assert _digest(again)["model.safetensors"] == _digest(path)["model.safetensors"]
    with pytest.raises(ValueError, match="multiple of 32"):
        build_tiny_clip(tmp_path / "odd", width=100)
