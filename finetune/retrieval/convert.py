"""``geotune convert-clip``: an open_clip ViT state dict (the format GeoRSCLIP ships) -> a transformers
``CLIPModel`` folder in safetensors, with a CLIP tokenizer and image processor when open_clip's BPE
vocabulary is at hand.

    geotune convert-clip --checkpoint models/RS5M_ViT-B-32_RET-2.pt --out models/georsclip-vit-b-32

The checkpoint is read with ``torch.load(weights_only=True)``: tensors only, no pickled code. Shapes
give the architecture; head counts assume open_clip's default head width of 64 (``--head-width``).
The text tower pools at the end-of-text token (the highest id, 49407 for OpenAI's vocabulary), as
open_clip's argmax does, and captions are zero-padded as open_clip pads them.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import torch

_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
          "attn.out_proj": "self_attn.out_proj"}
_IGNORED = re.compile(r"(^|\.)attn_mask$|position_ids$")


def read_open_clip_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an open_clip checkpoint (bare, under ``state_dict``, ``module.``-prefixed)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "visual.conv1.weight" not in {k.removeprefix("module.") for k in state}:
        raise ValueError(f"{path}: not an open_clip ViT state dict (no visual.conv1.weight)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _depth(state, prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"resblocks\.(\d+)\.", k))}
    return max(found) + 1


def clip_config_from_open_clip(state: dict, quick_gelu: bool = True, head_width: int = 64):
    """A ``CLIPConfig`` with the shapes of ``state``. ``quick_gelu``: OpenAI / GeoRSCLIP (True) or LAION (False)."""
    from transformers import CLIPConfig

    act = "quick_gelu" if quick_gelu else "gelu"
    v_width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = int(round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5))
    vocab, t_width = state["token_embedding.weight"].shape
    vision = dict(hidden_size=v_width, intermediate_size=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                  num_hidden_layers=_depth(state, "visual.transformer."), num_attention_heads=max(1, v_width // head_width),
                  image_size=patch * grid, patch_size=patch, hidden_act=act)
    text = dict(vocab_size=vocab, hidden_size=t_width, intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                num_hidden_layers=_depth(state, "transformer."), num_attention_heads=max(1, t_width // head_width),
                max_position_embeddings=state["positional_embedding"].shape[0], hidden_act=act,
                eos_token_id=vocab - 1, bos_token_id=vocab - 2, pad_token_id=0)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=state["text_projection"].shape[1])


def _blocks(state, out, used, src: str, dst: str, depth: int) -> None:
    for i in range(depth):
        s, d = f"{src}resblocks.{i}.", f"{dst}layers.{i}."
        for part in ("weight", "bias"):
            q, k, v = state[f"{s}attn.in_proj_{part}"].chunk(3)
            out.update({f"{d}self_attn.q_proj.{part}": q, f"{d}self_attn.k_proj.{part}": k, f"{d}self_attn.v_proj.{part}": v})
            used.add(f"{s}attn.in_proj_{part}")
            for a, b in _BLOCK.items():
                out[f"{d}{b}.{part}"] = state[f"{s}{a}.{part}"]
                used.add(f"{s}{a}.{part}")


def convert_open_clip_state(state: dict, config) -> dict[str, torch.Tensor]:
    """open_clip names -> transformers CLIP names; every source tensor must be used (else ValueError)."""
    direct = {"visual.class_embedding": "vision_model.embeddings.class_embedding",
              "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
              "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
              "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
              "positional_embedding": "text_model.embeddings.position_embedding.weight", "logit_scale": "logit_scale"}
    for part in ("weight", "bias"):
        direct.update({f"visual.ln_pre.{part}": f"vision_model.pre_layrnorm.{part}",
                       f"visual.ln_post.{part}": f"vision_model.post_layernorm.{part}",
                       f"ln_final.{part}": f"text_model.final_layer_norm.{part}"})
    out = {dst: state[src] for src, dst in direct.items()}
    used = set(direct)
    # open_clip multiplies x @ proj; a Linear stores the transpose.
    out["visual_projection.weight"], out["text_projection.weight"] = state["visual.proj"].t(), state["text_projection"].t()
    used |= {"visual.proj", "text_projection"}
    _blocks(state, out, used, "visual.transformer.", "vision_model.encoder.", config.vision_config.num_hidden_layers)
    _blocks(state, out, used, "transformer.", "text_model.encoder.", config.text_config.num_hidden_layers)
    left = sorted(k for k in set(state) - used if not _IGNORED.search(k))
    if left:
        raise ValueError(f"open_clip tensors with no transformers counterpart: {left[:5]} ({len(left)}); "
                         "only plain ViT CLIPs (no layer scale, no attention pooling) convert")
    return {k: v.contiguous() for k, v in out.items()}


def write_clip_tokenizer(folder: Path, bpe_path: str | Path) -> None:
    """``vocab.json`` + ``merges.txt`` of OpenAI's CLIP BPE from open_clip's ``bpe_simple_vocab_16e6.txt.gz``,
    built as open_clip's SimpleTokenizer builds them; padding with id 0 as open_clip pads."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    # from_pretrained reads vocab.json + merges.txt in transformers 4.x and 5.x alike
    CLIPTokenizer.from_pretrained(str(folder), pad_token="!").save_pretrained(str(folder))


def convert_open_clip_checkpoint(checkpoint: str | Path, out_dir: str | Path, quick_gelu: bool = True,
                                 head_width: int = 64, bpe_path: str | Path | None = None) -> Path:
    """Write a transformers CLIP folder (safetensors) from an open_clip ViT checkpoint; returns the folder."""
    from transformers import CLIPImageProcessor, CLIPModel

    state = read_open_clip_state(checkpoint)
    config = clip_config_from_open_clip(state, quick_gelu, head_width)
    with torch.device("meta"):
        model = CLIPModel(config)
    model.load_state_dict(convert_open_clip_state(state, config), strict=False, assign=True)
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ValueError(f"{checkpoint}: no weights for {missing[:5]}")
    model.vision_model.embeddings.position_ids = torch.arange(model.vision_model.embeddings.num_positions).unsqueeze(0)
    model.text_model.embeddings.position_ids = torch.arange(config.text_config.max_position_embeddings).unsqueeze(0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    size = config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(str(out))
    if bpe_path is not None:
        write_clip_tokenizer(out, bpe_path)
    return out


def default_bpe_path() -> str | None:
    try:
        from open_clip.tokenizer import default_bpe
    except ImportError:
        return None
    return default_bpe()
