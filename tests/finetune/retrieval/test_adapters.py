"""HarMA adapters on transformers' CLIP: identity at init, what trains, and the parameter count."""

import pytest
import torch
from transformers import CLIPModel

from finetune.config import HARMA_SITES
from finetune.retrieval.adapters import (
    SITES,
    GatedAttention,
    GatedMLP,
    adapter_count_formula,
    shared_count_formula,
)
from finetune.retrieval.backbone import load_backbone, tokenize, vit_b32_clip_config
from finetune.retrieval.losses import harma_loss
from finetune.retrieval.model import build_retrieval_model, parameter_counts, trainable_parameters


def _inputs(backbone, n=3):
    torch.manual_seed(1)
    pixels = torch.randn(n, 3, backbone.image_size, backbone.image_size)
    ids = tokenize(backbone.tokenizer, ["a forest with a red square", "river", "dense residential area"][:n],
                   backbone.context_length)
    return pixels, ids


# sites (mlp,) is HarMA; (mlp, attn) is our ablation, NOT HarMA as published: the same adapters also on each
# layer's self-attention output.
SITE_CASES = [("mlp",), ("mlp", "attn")]


@pytest.mark.parametrize("sites", SITE_CASES)
@pytest.mark.parametrize("share", ["text_only", "both", "none"])
def test_model_equals_the_backbone_at_init(tiny_clip, share, sites):
    base = load_backbone(tiny_clip)
    pixels, ids = _inputs(base)
    with torch.no_grad():
        ref_img = base.clip.get_image_features(pixel_values=pixels).pooler_output
        ref_txt = base.clip.get_text_features(input_ids=ids).pooler_output
    model = build_retrieval_model(load_backbone(tiny_clip).clip, "harma", share, bottleneck=16, heads=2, sites=sites)
    with torch.no_grad():
        img, txt = model.encode_images(pixels), model.encode_texts(ids)
    assert torch.equal(img, torch.nn.functional.normalize(ref_img, dim=-1))
    assert torch.equal(txt, torch.nn.functional.normalize(ref_txt, dim=-1))
    layers = [*model.clip.vision_model.encoder.layers, *model.clip.text_model.encoder.layers]
    assert all(isinstance(layer.mlp, GatedMLP) for layer in layers)
    assert all(isinstance(layer.self_attn, GatedAttention) == ("attn" in sites) for layer in layers)


@pytest.mark.parametrize("sites", SITE_CASES)
@pytest.mark.parametrize("share", ["text_only", "both"])
def test_only_adapters_gates_and_temperature_get_gradients(tiny_clip, share, sites):
    backbone = load_backbone(tiny_clip)
    model = build_retrieval_model(backbone.clip, "harma", share, bottleneck=16, heads=2, sites=sites)
    pixels, ids = _inputs(backbone)
    trainable = trainable_parameters(model)
    optimizer = torch.optim.SGD(trainable.values(), lr=0.5)
    # At init only the zero up-projections get a gradient (the adapters' output is zero); the shared
    # adapter's inner up-projection moves once the outer one has: from the third step on, all do.
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        harma_loss(model.encode_images(pixels), model.encode_texts(ids), model.temp, torch.arange(3))["loss"].backward()
        optimizer.step()
    for name, param in model.named_parameters():
        if name in trainable:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    assert "temp" in trainable and any(n.endswith("block_gate") for n in trainable)
    assert not any(n.startswith("clip.") and ".adapter." not in n and "gate" not in n for n in trainable)
    assert not model.clip.logit_scale.requires_grad
    # The image adapters use the shared module only when the paper's mode is asked for.
    image_adapter = model.clip.vision_model.encoder.layers[0].mlp.adapter
    text_adapter = model.clip.text_model.encoder.layers[0].mlp.adapter
    assert text_adapter.shared is model.harma.shared[0]
    assert (image_adapter.shared is model.harma.shared[0]) == (share == "both")
    attn_gates = [n for n in trainable if n.endswith("self_attn.block_gate")]
    assert len(attn_gates) == (4 if "attn" in sites else 0)  # 2 layers x 2 towers; CLIP's q/k/v/out stay frozen
    if "attn" in sites:  # a layer's two adapters use that depth's shared module
        layer = model.clip.text_model.encoder.layers[1]
        assert layer.self_attn.adapter.shared is layer.mlp.adapter.shared is model.harma.shared[1]


@pytest.mark.parametrize("sites", SITE_CASES)
@pytest.mark.parametrize("share", ["text_only", "both", "none"])
def test_trainable_count_matches_the_formula(tiny_clip, share, sites):
    """Per site, each layer of each tower has one adapter of its width and one block gate; shared ones count once."""
    model = build_retrieval_model(load_backbone(tiny_clip).clip, "harma", share, bottleneck=16, heads=2, sites=sites)
    depth = 2  # both towers of the tiny CLIP
    expected = len(sites) * depth * (adapter_count_formula(48, 16) + adapter_count_formula(32, 16) + 2) + 1
    expected += depth * shared_count_formula(16) if share != "none" else 0
    assert parameter_counts(model)["trainable_params"] == expected


def test_vit_b32_config_trains_5_934_397_parameters():
    """The public ViT-B/32 (OpenAI / GeoRSCLIP) built from its config, no weights (HARMA.md section 1.5)."""
    config = vit_b32_clip_config()
    assert adapter_count_formula(768) == 263_553 and adapter_count_formula(512) == 197_761
    assert shared_count_formula(128) == 33_217
    with torch.device("meta"):
        model = build_retrieval_model(CLIPModel(config), "harma", "text_only")
    counts = parameter_counts(model)
    assert counts["trainable_params"] == 5_934_397
    # backbone 151,277,313 (incl. CLIP's logit_scale), as the public count's 151.28 M
    assert counts["total_params"] - counts["trainable_params"] == 151_277_313
    with torch.device("meta"):
        both = build_retrieval_model(CLIPModel(config), "harma", "both")
    assert parameter_counts(both)["trainable_params"] == 5_934_397  # shared, so counted once


def test_an_attention_site_adapter_changes_the_output_once_trained(tiny_clip):
    """Identity at init is not identity by construction: a non-zero up-projection at the attention site moves the features."""
    backbone = load_backbone(tiny_clip)
    pixels, _ = _inputs(backbone)
    model = build_retrieval_model(backbone.clip, "harma", "both", bottleneck=16, heads=2, sites=("mlp", "attn"))
    before = model.encode_images(pixels).detach()
    with torch.no_grad():
        # not a constant: a shift equal across channels is what every following LayerNorm removes
        up = model.clip.vision_model.encoder.layers[0].self_attn.adapter.up
        up.bias.copy_(torch.linspace(-0.5, 0.5, up.bias.numel()))
    assert not torch.allclose(model.encode_images(pixels), before)


def test_sites_are_checked_and_match_the_recipe_check(tiny_clip):
    assert set(SITES) == set(HARMA_SITES)
    for bad in ((), ("mlp", "mlp"), ("mlp", "ffn")):
        with pytest.raises(ValueError, match="harma.sites"):
            build_retrieval_model(load_backbone(tiny_clip).clip, "harma", "both", bottleneck=16, heads=2, sites=bad)
