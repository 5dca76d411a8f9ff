"""Our HarMA against an independent statement of the public code's forward pass, trainable set and
weight-decay groups (seekerhuang/HarMA at ``d3f13f3``), on a tiny CLIP in float64.

The oracle is written here in plain torch, from reading these files and functions (not copied):

* ``open_clip/model.py``: ``MMadapter.forward`` (down to 128 + GELU, one ``nn.MultiheadAttention``
  applied twice with the shared module between, ``sigmoid(gate1)`` mix with the down-projection,
  zero-init up-projection, residual), ``BiShareAdapter.forward`` (128 -> 64 linear, attention, gated mix,
  zero-init 64 -> 128, residual; its GELU is computed and unused), and the module-level lists that give
  ``BiShareAdapter[l]`` to the text adapters only (``MMadapter_text``; ``MMadapter_img`` gets ``None``);
  ``CLIP.encode_text`` (argmax token pooling, ``@ text_projection``).
* ``open_clip/transformer.py``: ``ResidualAttentionBlock.forward`` (``x + attn(ln_1(x))``, then
  ``y = mlp(ln_2(x))``, ``y = sigmoid(gate1) * mmadapter(y) + (1 - sigmoid(gate1)) * y``, ``x + y``), in every
  block of ``Transformer`` of both towers, sequence-first ``[L, B, D]`` (``VisionTransformer.forward``
  permutes NLD -> LND); ``TextTransformer.build_attention_mask`` (causal, -inf above the diagonal).
* ``models/harma.py``: ``HarMABase.__init__`` (``temp`` = ``temp1``), ``get_contr_loss`` (the ``idx`` branch)
  and ``weighted_triplet_loss``; one process, so ``allgather`` is the identity.
* ``Retrieval.py``: ``set_trainable`` (modules named ``BiShareAdapter``/``mmadapter``/``MMadapter`` and
  parameters named ``gate``/``temp`` train); ``optim.py``: ``create_optimizer`` (no decay on names holding
  one of its ``no_decay`` strings).

Our model's weights are copied into the oracle under the public code's parameter names, so every test
also checks that the two hold the same tensors.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel

from finetune.retrieval.losses import harma_loss
from finetune.retrieval.model import build_retrieval_model, trainable_parameters
from finetune.retrieval.training import parameter_groups

VOCAB, CONTEXT, LAYERS = 64, 77, 2
BOS, EOT = VOCAB - 2, VOCAB - 1  # open_clip's layout: end-of-text is the highest id, padding is 0
HEADS = {"visual": 2, "text": 2}  # the towers' own heads
R, ADAPTER_HEADS = 16, 2  # adapter bottleneck (public: 128) and heads (public: 8); the shared one is R/2 wide
NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight", "norm.bias", "norm.weight", "norm1.bias", "norm1.weight",
            "norm2.bias", "norm2.weight")  # optim.py


def _config() -> CLIPConfig:
    text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS["text"], max_position_embeddings=CONTEXT, hidden_act="quick_gelu",
                bos_token_id=BOS, eos_token_id=EOT, pad_token_id=0)
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=LAYERS, num_attention_heads=HEADS["visual"],
                  image_size=32, patch_size=8, hidden_act="quick_gelu")
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)


def _model(share: str):
    torch.manual_seed(0)
    return build_retrieval_model(CLIPModel(_config()), "harma", share, bottleneck=R, heads=ADAPTER_HEADS).double()


# ---- our model's tensors under the public code's names ---------------------------------------------------------

def _public_names(share: str) -> dict[str, str]:
    """Public parameter name -> our parameter name, for every tensor that is one tensor in both."""
    names = {"temp": "temp"}
    towers = {"visual.transformer.resblocks": "clip.vision_model.encoder.layers",
              "transformer.resblocks": "clip.text_model.encoder.layers"}
    for theirs, ours in towers.items():
        for layer in range(LAYERS):
            block, mlp = f"{theirs}.{layer}", f"{ours}.{layer}.mlp"
            names[f"{block}.gate1"] = f"{mlp}.block_gate"
            names[f"{block}.mmadapter.gate1"] = f"{mlp}.adapter.gate"
            for leaf in ("weight", "bias"):
                names[f"{block}.mmadapter.img_proj_down.{leaf}"] = f"{mlp}.adapter.down.{leaf}"
                names[f"{block}.mmadapter.img_proj_up.{leaf}"] = f"{mlp}.adapter.up.{leaf}"
                names[f"{block}.ln_1.{leaf}"] = f"{ours}.{layer}.layer_norm1.{leaf}"
                names[f"{block}.ln_2.{leaf}"] = f"{ours}.{layer}.layer_norm2.{leaf}"
                names[f"{block}.attn.out_proj.{leaf}"] = f"{ours}.{layer}.self_attn.out_proj.{leaf}"
                names[f"{block}.mlp.c_fc.{leaf}"] = f"{mlp}.mlp.fc1.{leaf}"
                names[f"{block}.mlp.c_proj.{leaf}"] = f"{mlp}.mlp.fc2.{leaf}"
            for leaf in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
                names[f"{block}.mmadapter.multihead_attention.{leaf}"] = f"{mlp}.adapter.attn.{leaf}"
    if share != "none":  # the public code reaches BiShareAdapter[l] through the text block's adapter
        for layer in range(LAYERS):
            shared, ours = f"transformer.resblocks.{layer}.mmadapter.BiShareAdapterxx", f"harma.shared.{layer}"
            names[f"{shared}.gate1"] = f"{ours}.gate"
            for leaf in ("weight", "bias"):
                names[f"{shared}.l1.{leaf}"] = f"{ours}.down.{leaf}"
                names[f"{shared}.l2.{leaf}"] = f"{ours}.up.{leaf}"
            for leaf in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
                names[f"{shared}.multihead_attention1.{leaf}"] = f"{ours}.attn.{leaf}"
    for ln, ours in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                     ("ln_final", "text_model.final_layer_norm")):
        for leaf in ("weight", "bias"):
            names[f"{ln}.{leaf}"] = f"clip.{ours}.{leaf}"
    names.update({"visual.conv1.weight": "clip.vision_model.embeddings.patch_embedding.weight",
                  "visual.class_embedding": "clip.vision_model.embeddings.class_embedding",
                  "visual.positional_embedding": "clip.vision_model.embeddings.position_embedding.weight",
                  "token_embedding.weight": "clip.text_model.embeddings.token_embedding.weight",
                  "positional_embedding": "clip.text_model.embeddings.position_embedding.weight"})
    return names


def _public_state(model, share: str) -> dict[str, torch.Tensor]:
    """Our tensors, copied (fresh leaves) under the public names; q/k/v packed and projections transposed
    as open_clip stores them."""
    ours = dict(model.named_parameters())
    state = {theirs: ours[name].detach().clone().requires_grad_(ours[name].requires_grad)
             for theirs, name in _public_names(share).items()}
    towers = {"visual.transformer.resblocks": "clip.vision_model.encoder.layers",
              "transformer.resblocks": "clip.text_model.encoder.layers"}
    for theirs, layers in towers.items():
        for layer in range(LAYERS):
            attn = f"{layers}.{layer}.self_attn"
            for leaf in ("weight", "bias"):
                packed = torch.cat([ours[f"{attn}.{p}_proj.{leaf}"].detach() for p in "qkv"])
                state[f"{theirs}.{layer}.attn.in_proj_{leaf}"] = packed.clone()
    state["visual.proj"] = ours["clip.visual_projection.weight"].detach().t().clone()
    state["text_projection"] = ours["clip.text_projection.weight"].detach().t().clone()
    return state


# ---- the public forward pass, restated ---------------------------------------------------------------------------

def _linear(x, p, name):
    return x @ p[f"{name}.weight"].t() + p[f"{name}.bias"]


def _layer_norm(x, p, name):
    return F.layer_norm(x, x.shape[-1:], p[f"{name}.weight"], p[f"{name}.bias"], eps=1e-5)


def _attention(x, p, name, heads, mask=None):
    """``nn.MultiheadAttention(x, x, x)`` on sequence-first ``[L, B, D]``: packed in-projection, scaled dot
    product per head, softmax over keys, out-projection."""
    length, batch, dim = x.shape
    w, b = p[f"{name}.in_proj_weight"], p[f"{name}.in_proj_bias"]
    q, k, v = (x @ w[i * dim:(i + 1) * dim].t() + b[i * dim:(i + 1) * dim] for i in range(3))
    q, k, v = (t.reshape(length, batch, heads, dim // heads).permute(1, 2, 0, 3) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(dim // heads)
    if mask is not None:
        scores = scores + mask
    out = (scores.softmax(dim=-1) @ v).permute(2, 0, 1, 3).reshape(length, batch, dim)
    return _linear(out, p, f"{name}.out_proj")


def _bishare(h, p, name):
    """BiShareAdapter.forward: l1, attention, sigmoid(gate1) mix of the attention with l1's output, l2, residual."""
    u = _linear(h, p, f"{name}.l1")
    a = _attention(u, p, f"{name}.multihead_attention1", ADAPTER_HEADS)
    g = torch.sigmoid(p[f"{name}.gate1"])
    return _linear(g * a + (1 - g) * u, p, f"{name}.l2") + h


def _mmadapter(y, p, name, shared):
    """MMadapter.forward: down + GELU (x_mid), the same attention twice with the shared adapter between, mix, up,
    residual."""
    x_mid = F.gelu(_linear(y, p, f"{name}.img_proj_down"))
    x = _attention(x_mid, p, f"{name}.multihead_attention", ADAPTER_HEADS)
    if shared is not None:
        x = _bishare(x, p, shared)
    x = _attention(x, p, f"{name}.multihead_attention", ADAPTER_HEADS)
    alpha = torch.sigmoid(p[f"{name}.gate1"])
    return y + _linear(alpha * x_mid + (1 - alpha) * x, p, f"{name}.img_proj_up")


def _block(x, p, name, heads, shared, mask=None):
    """ResidualAttentionBlock.forward with an adapter (ls_1, ls_2 are identities for ViT-B/32: no ls_init_value)."""
    x = x + _attention(_layer_norm(x, p, f"{name}.ln_1"), p, f"{name}.attn", heads, mask)
    hidden = _linear(_layer_norm(x, p, f"{name}.ln_2"), p, f"{name}.mlp.c_fc")
    y = _linear(hidden * torch.sigmoid(1.702 * hidden), p, f"{name}.mlp.c_proj")  # QuickGELU
    alpha = torch.sigmoid(p[f"{name}.gate1"])
    y = alpha * _mmadapter(y, p, f"{name}.mmadapter", shared) + (1 - alpha) * y
    return x + y


def _shared_name(share: str, tower: str, layer: int) -> str | None:
    """BiShareAdapter[layer] for the text adapters (public code); for the image ones too with share=both (paper)."""
    if share == "none" or (share == "text_only" and tower == "visual"):
        return None
    return f"transformer.resblocks.{layer}.mmadapter.BiShareAdapterxx"


def _public_image_features(p, pixels, share):
    x = F.conv2d(pixels, p["visual.conv1.weight"], stride=8)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, width]
    cls = p["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = _layer_norm(torch.cat([cls, x], dim=1) + p["visual.positional_embedding"], p, "visual.ln_pre")
    x = x.permute(1, 0, 2)  # NLD -> LND
    for layer in range(LAYERS):
        x = _block(x, p, f"visual.transformer.resblocks.{layer}", HEADS["visual"], _shared_name(share, "visual", layer))
    x = x.permute(1, 0, 2)
    return _layer_norm(x[:, 0, :], p, "visual.ln_post") @ p["visual.proj"]


def _public_text_features(p, text, share):
    x = p["token_embedding.weight"][text] + p["positional_embedding"]
    mask = torch.full((CONTEXT, CONTEXT), float("-inf"), dtype=x.dtype).triu_(1)  # build_attention_mask
    x = x.permute(1, 0, 2)
    for layer in range(LAYERS):
        x = _block(x, p, f"transformer.resblocks.{layer}", HEADS["text"], _shared_name(share, "text", layer), mask)
    x = _layer_norm(x.permute(1, 0, 2), p, "ln_final")
    return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ p["text_projection"]


def _public_loss(image_feat, text_feat, temp, idx, margin=0.2, gamma=2.0):
    """get_contr_loss (idx branch) + weighted_triplet_loss, one process."""
    logits = image_feat @ text_feat.t() / temp
    pos = torch.eq(idx.view(-1, 1), idx.view(1, -1)).double()
    labels = pos / pos.sum(dim=1, keepdim=True)
    contr = (-torch.sum(F.log_softmax(logits, dim=1) * labels, dim=1).mean()
             - torch.sum(F.log_softmax(logits.t(), dim=1) * labels, dim=1).mean()) / 2
    scores = image_feat @ text_feat.t()
    diagonal = scores.diag().view(-1, 1)
    eye = torch.eye(scores.shape[0]) > 0.5
    cost_s = (margin + scores - diagonal.expand_as(scores)).clamp(min=0).masked_fill(eye, 0)
    cost_im = (margin + scores - diagonal.t().expand_as(scores)).clamp(min=0).masked_fill(eye, 0)
    cost_s = (1 - torch.exp(-cost_s)) ** gamma * cost_s
    cost_im = (1 - torch.exp(-cost_im)) ** gamma * cost_im
    return contr + (cost_s.sum() + cost_im.sum()) / 2


def _public_trainable(name: str) -> bool:
    """Retrieval.py set_trainable: by module name (the parameter's path without its leaf), then by parameter name."""
    module = name.rsplit(".", 1)[0] if "." in name else ""
    return any(k in module for k in ("BiShareAdapter", "mmadapter", "MMadapter")) or "gate" in name or "temp" in name


# ---- inputs -----------------------------------------------------------------------------------------------------

def _inputs(n=6):
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(n, 3, 32, 32, generator=generator, dtype=torch.float64)
    text = torch.zeros(n, CONTEXT, dtype=torch.long)
    for row in range(n):  # <start> words <end> then padding 0, captions of different lengths
        words = torch.randint(1, BOS, (3 + 2 * row,), generator=generator)
        text[row, :len(words) + 2] = torch.cat([torch.tensor([BOS]), words, torch.tensor([EOT])])
    return pixels, text, torch.tensor([0, 0, 1, 2, 2, 3])  # rows 0/1 and 3/4: two captions of one image


def _perturb(model) -> None:
    """Move every trainable tensor off its init (the up-projections are zero there, which hides the adapters)."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in trainable_parameters(model).values():
            param.add_(0.3 * torch.randn(param.shape, generator=generator, dtype=param.dtype))


# ---- tests ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("share", ["text_only", "both", "none"])
def test_trainable_set_and_decay_groups_follow_the_public_rules(share):
    model = _model(share)
    names, ours = _public_names(share), dict(model.named_parameters())
    trainable = {names[n] for n in names if _public_trainable(n)}
    assert trainable == set(trainable_parameters(model))
    # Every public tensor has our tensor of the same shape (the packed q/k/v and projections aside).
    assert all(ours[mine].shape == _public_state(model, share)[theirs].shape for theirs, mine in names.items())
    # optim.py: no decay on names holding "bias" (the adapters have no norms); gates and temp are decayed.
    decay, no_decay = parameter_groups(model, 0.04)
    public_no_decay = {names[n] for n in names if _public_trainable(n) and any(k in n for k in NO_DECAY)}
    assert {id(p) for p in no_decay["params"]} == {id(ours[n]) for n in public_no_decay}
    assert {id(p) for p in decay["params"]} == {id(ours[n]) for n in trainable - public_no_decay}
    assert decay["weight_decay"] == 0.04 and no_decay["weight_decay"] == 0.0


def test_init_follows_the_public_code():
    """Gates 0.6 (MMadapter, BiShareAdapter, block), zero up-projections (init_weights), temp = temp1 = 0.07."""
    model = _model("text_only")
    state = _public_state(model, "text_only")
    gates = [n for n in state if n.endswith("gate1")]
    assert len(gates) == 2 * LAYERS * 2 + LAYERS  # block + adapter per block of both towers, shared per depth
    assert all(float(state[n].detach()) == pytest.approx(0.6) for n in gates)
    ups = [n for n in state if ".img_proj_up." in n or ".l2." in n]
    assert len(ups) == 2 * (2 * LAYERS + LAYERS) and all(not state[n].any() for n in ups)
    assert float(state["temp"].detach()) == pytest.approx(0.07)


@pytest.mark.parametrize("share", ["text_only", "both", "none"])
def test_towers_equal_the_public_forward_pass(share):
    model = _model(share)
    _perturb(model)
    state = _public_state(model, share)
    pixels, text, _ = _inputs()
    with torch.no_grad():
        image, texts = model.encode_images(pixels), model.encode_texts(text)
        theirs_image = F.normalize(_public_image_features(state, pixels, share), dim=-1)
        theirs_text = F.normalize(_public_text_features(state, text, share), dim=-1)
    torch.testing.assert_close(image, theirs_image, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(texts, theirs_text, rtol=1e-10, atol=1e-12)
    # The adapters matter here: the same model without them gives other features.
    with torch.no_grad():
        bare = _public_state(model, share)
        for name in bare:
            if name.endswith(".gate1") and ".mmadapter." not in name:
                bare[name].fill_(-1e9)  # block gate -> 0: the block's MLP output alone
        assert not torch.allclose(F.normalize(_public_image_features(bare, pixels, share), dim=-1), image, atol=1e-3)


def test_one_image_layer_equals_the_public_block():
    model = _model("text_only")
    _perturb(model)
    state = _public_state(model, "text_only")
    x = torch.randn(3, 17, 48, generator=torch.Generator().manual_seed(3), dtype=torch.float64)  # [B, L, D]
    with torch.no_grad():
        ours = model.clip.vision_model.encoder.layers[0](x, attention_mask=None)
        theirs = _block(x.transpose(0, 1), state, "visual.transformer.resblocks.0", HEADS["visual"], None)
    torch.testing.assert_close(ours, theirs.transpose(0, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("share", ["text_only", "both"])
def test_loss_and_every_trainable_gradient_equal_the_public_ones(share):
    model = _model(share)
    _perturb(model)
    state = _public_state(model, share)
    pixels, text, idx = _inputs()
    ours = harma_loss(model.encode_images(pixels), model.encode_texts(text), model.temp, idx)["loss"]
    ours.backward()
    theirs = _public_loss(F.normalize(_public_image_features(state, pixels, share), dim=-1),
                          F.normalize(_public_text_features(state, text, share), dim=-1), state["temp"], idx)
    theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    names, params = _public_names(share), dict(model.named_parameters())
    compared = 0
    for public, mine in names.items():
        if not _public_trainable(public):
            assert state[public].grad is None and params[mine].grad is None, public
            continue
        assert state[public].grad is not None and state[public].grad.abs().sum() > 0, public
        torch.testing.assert_close(params[mine].grad, state[public].grad, rtol=1e-8, atol=1e-12, msg=public)
        compared += 1
    assert compared == len(trainable_parameters(model))
