"""What each method trains, and checkpoints that hold only that and load back onto the base."""

import pytest
import torch
from transformers import CLIPModel

from finetune.models.tiny import build_tiny_clip
from finetune.retrieval.backbone import load_backbone, tokenize
from finetune.retrieval.model import (
    WEIGHTS,
    build_retrieval_model,
    load_trainable,
    save_trainable,
    trainable_parameters,
)


def test_tiny_clip_reloads_and_is_reproducible(tiny_clip, tmp_path):
    model = CLIPModel.from_pretrained(tiny_clip)
    assert model.config.text_config.hidden_act == "quick_gelu" and model.config.text_config.eos_token_id != 2
    backbone = load_backbone(tiny_clip)
    ids = tokenize(backbone.tokenizer, ["a river"], backbone.context_length)[0]
    eos = model.config.text_config.eos_token_id
    assert ids.shape == (77,) and int((ids == eos).sum()) == 1 and ids[0] == backbone.tokenizer.bos_token_id
    again = build_tiny_clip(tmp_path / "again", seed=0)
    assert (again / "model.safetensors").read_bytes() == (tiny_clip / "model.safetensors").read_bytes()


@pytest.mark.parametrize("method,expect", [
    ("full", lambda n: n == "temp" or (n.startswith("clip.") and n != "clip.logit_scale")),
    ("probe", lambda n: n == "temp" or any(k in n for k in ("layers.1.", "post_layernorm", "final_layer_norm",
                                                           "visual_projection", "text_projection"))),
    ("lora", lambda n: n == "temp" or "lora_" in n),
    ("zeroshot", lambda n: False),
])
def test_each_baseline_trains_what_it_says(tiny_clip, method, expect):
    from omegaconf import OmegaConf

    lora = OmegaConf.create({"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None})
    model = build_retrieval_model(load_backbone(tiny_clip).clip, method, lora_cfg=lora)
    names = [n for n, _ in model.named_parameters()]
    trainable = set(trainable_parameters(model))
    assert trainable == {n for n in names if expect(n)}
    if method == "lora":  # both towers
        assert any("vision_model" in n for n in trainable) and any("text_model" in n for n in trainable)


def test_adapter_checkpoint_holds_only_the_adapters_and_loads_onto_the_base(tiny_clip, tmp_path):
    from safetensors.torch import load_file

    model = build_retrieval_model(load_backbone(tiny_clip).clip, "harma", "both", bottleneck=16, heads=2)
    with torch.no_grad():
        for p in trainable_parameters(model).values():
            p.add_(torch.randn_like(p))
    save_trainable(model, tmp_path, {"share": "both"})
    saved = load_file(str(tmp_path / WEIGHTS))
    assert set(saved) == set(trainable_parameters(model)) and not any(".mlp.mlp." in n for n in saved)
    fresh = build_retrieval_model(load_backbone(tiny_clip).clip, "harma", "both", bottleneck=16, heads=2)
    load_trainable(fresh, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    other = build_retrieval_model(load_backbone(tiny_clip).clip, "harma", "none", bottleneck=16, heads=2)
    with pytest.raises(ValueError, match="harma.share"):
        load_trainable(other, tmp_path)


def test_lora_baseline_follows_train_lora_dropout_masks(tiny_clip):
    from omegaconf import OmegaConf

    from finetune.sparse_dropout import SparseDropout

    for masks, kind in (("sparse", SparseDropout), ("torch", torch.nn.Dropout)):
        lora = OmegaConf.create({"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": None, "dropout_masks": masks})
        model = build_retrieval_model(load_backbone(tiny_clip).clip, "lora", lora_cfg=lora)
        kinds = {type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_A")}
        assert kinds == {kind}, (masks, kinds)


def test_lora_baseline_takes_a_bare_namespace_without_dropout_masks(tiny_clip):
    """benchmarks/harma_memory.py passes train.lora's fields as a SimpleNamespace: sparse masks by default."""
    from types import SimpleNamespace

    from finetune.sparse_dropout import SparseDropout

    lora = SimpleNamespace(r=4, alpha=8, dropout=0.1, target_modules=None)
    model = build_retrieval_model(load_backbone(tiny_clip).clip, "lora", lora_cfg=lora)
    assert {type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_A")} == {SparseDropout}
