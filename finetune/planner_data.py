"""Architecture specs of the model families geotune trains, and exact parameter counts from them.

The memory planner needs the parameter count of each part (vision tower, projector, LLM) and the
shapes of the LoRA target layers. It reads them from a checkpoint's ``config.json`` when ``model.path``
exists (``spec_from_config``), else from ``KNOWN_MODELS`` (public configs of the released checkpoints).
Counts are computed from the architecture the way the modeling code builds it; the tests check them
against ``sum(p.numel())`` of instantiated models (tiny ones, and full-size ones on the meta device).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class VisionSpec:
    """A ViT: ``kind`` is ``internvit`` (InternViT and transformers' InternVLVision) or ``clip``."""

    kind: str
    hidden: int
    layers: int
    intermediate: int
    patch: int
    image_size: int
    qkv_bias: bool = True
    layer_scale: bool = True

    @property
    def positions(self) -> int:
        """Patch tokens + the class token."""
        return (self.image_size // self.patch) ** 2 + 1

    def layer_params(self) -> int:
        d, i = self.hidden, self.intermediate
        attn = 4 * d * d + d + (3 * d if self.qkv_bias or self.kind == "clip" else 0)
        mlp = 2 * d * i + i + d
        extra = 2 * d if self.layer_scale and self.kind == "internvit" else 0
        return attn + mlp + 4 * d + extra  # + two LayerNorms (weight and bias)

    def params(self) -> int:
        d = self.hidden
        if self.kind == "clip":  # patch conv without bias; pre- and post-LayerNorm
            embed = 3 * self.patch**2 * d + d + self.positions * d
            return embed + 4 * d + self.layers * self.layer_params()
        embed = 3 * self.patch**2 * d + d + d + self.positions * d  # conv + bias, class token, positions
        return embed + self.layers * self.layer_params()


@dataclass(frozen=True)
class LLMSpec:
    """A decoder-only LLM; ``arch`` names its layer layout: qwen2 | llama | internlm2 | phi3."""

    arch: str
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False
    head_dim: int | None = None

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """Per-layer ``{module suffix: (in_features, out_features)}`` with the modeling code's names."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.dim, self.kv_heads * self.dim
        if self.arch == "internlm2":
            return {"attention.wqkv": (h, q + 2 * kv), "attention.wo": (q, h),
                    "feed_forward.w1": (h, i), "feed_forward.w3": (h, i), "feed_forward.w2": (i, h)}
        if self.arch == "phi3":
            return {"qkv_proj": (h, q + 2 * kv), "o_proj": (q, h), "gate_up_proj": (h, 2 * i), "down_proj": (i, h)}
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def layer_params(self) -> int:
        weights = sum(a * b for a, b in self.linear_shapes().values())
        bias = self.heads * self.dim + 2 * self.kv_heads * self.dim if self.arch == "qwen2" else 0
        return weights + bias + 2 * self.hidden  # two RMSNorms

    def params(self) -> int:
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return embed + self.layers * self.layer_params() + self.hidden


@dataclass(frozen=True)
class ModelSpec:
    """A whole VLM: vision tower + projector + LLM, and how many tokens one image becomes."""

    name: str
    family: str  # internvl | xcomposer2
    vision: VisionSpec
    llm: LLMSpec
    downsample_ratio: float = 0.5
    plora_rank: int = 0  # XComposer2's built-in Partial-LoRA branches on the LLM's linear layers
    source: str = "table"

    def projector_params(self) -> int:
        d, h = self.vision.hidden, self.llm.hidden
        if self.family == "xcomposer2":  # vision_proj: Linear-GELU-Linear, plus the two separator embeddings
            return d * h + h + h * h + h + 2 * h
        c = int(d / self.downsample_ratio**2)  # pixel-unshuffle stacks 1/ratio^2 patches
        return 2 * c + c * h + h + h * h + h  # LayerNorm, Linear, GELU, Linear

    def plora_params(self) -> int:
        if not self.plora_rank:
            return 0
        per_layer = sum(self.plora_rank * (a + b) for a, b in self.llm.linear_shapes().values())
        return self.llm.layers * per_layer

    def parts(self) -> dict[str, int]:
        """Parameter count of each part; ``llm`` includes XComposer2's built-in PLoRA branches."""
        return {"vision": self.vision.params(), "projector": self.projector_params(),
                "llm": self.llm.params() + self.plora_params()}

    def params(self) -> int:
        return sum(self.parts().values())

    def image_tokens_per_tile(self) -> int:
        """LLM tokens per image tile: 256 for InternVL at 448 px, 1,225 for XComposer2 at 490 px."""
        grid = (self.vision.image_size // self.vision.patch) ** 2
        return grid if self.family == "xcomposer2" else int(grid * self.downsample_ratio**2)


INTERNVIT_300M = VisionSpec("internvit", hidden=1024, layers=24, intermediate=4096, patch=14, image_size=448)
# XComposer2-VL resizes CLIP ViT-L/14-336's position table to 490 px (35 x 35 patches = 1,225 tokens).
CLIP_L14_490 = VisionSpec("clip", hidden=1024, layers=24, intermediate=4096, patch=14, image_size=490)

# InternVL checkpoints keep a separate lm_head even where the base LLM ties it (InternVL2-1B: 938M).
QWEN2_05B = LLMSpec("qwen2", hidden=896, layers=24, intermediate=4864, heads=14, kv_heads=2, vocab=151655)
QWEN25_15B = LLMSpec("qwen2", hidden=1536, layers=28, intermediate=8960, heads=12, kv_heads=2, vocab=151674)
QWEN25_3B = LLMSpec("qwen2", hidden=2048, layers=36, intermediate=11008, heads=16, kv_heads=2, vocab=151674)
QWEN25_7B = LLMSpec("qwen2", hidden=3584, layers=28, intermediate=18944, heads=28, kv_heads=4, vocab=151674)
INTERNLM2_18B = LLMSpec("internlm2", hidden=2048, layers=24, intermediate=8192, heads=16, kv_heads=8, vocab=92553)
INTERNLM2_7B = LLMSpec("internlm2", hidden=4096, layers=32, intermediate=14336, heads=32, kv_heads=8, vocab=92553)
PHI3_MINI = LLMSpec("phi3", hidden=3072, layers=32, intermediate=8192, heads=32, kv_heads=32, vocab=32020)


def _internvl(name: str, llm: LLMSpec) -> ModelSpec:
    return ModelSpec(name, "internvl", INTERNVIT_300M, llm)


# Keyed by the checkpoint folder name (lower case); `lookup_model` also matches a path's last component.
KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name.lower(): spec
    for spec in [
        _internvl("Mini-InternVL-Chat-2B-V1-5", INTERNLM2_18B),
        _internvl("Mini-InternVL-Chat-4B-V1-5", PHI3_MINI),
        _internvl("InternVL2-1B", QWEN2_05B),
        _internvl("InternVL2-2B", INTERNLM2_18B),
        _internvl("InternVL2-4B", PHI3_MINI),
        _internvl("InternVL2-8B", INTERNLM2_7B),
        _internvl("InternVL2_5-1B", QWEN2_05B),
        _internvl("InternVL2_5-2B", INTERNLM2_18B),
        _internvl("InternVL2_5-4B", QWEN25_3B),
        _internvl("InternVL2_5-8B", INTERNLM2_7B),
        _internvl("InternVL3-1B", QWEN2_05B),
        _internvl("InternVL3-2B", QWEN25_15B),
        _internvl("InternVL3-8B", QWEN25_7B),
        ModelSpec("internlm-xcomposer2-vl-7b", "xcomposer2", CLIP_L14_490,
                  replace(INTERNLM2_7B, vocab=92544), plora_rank=256),
    ]
}
# The Mini-InternVL 1B is InternVL2-1B (InternViT-300M + Qwen2-0.5B).
KNOWN_MODELS["mini-internvl-1b"] = KNOWN_MODELS["internvl2-1b"]


def lookup_model(path: str) -> ModelSpec | None:
    """The table entry for a checkpoint path or name (``-hf`` suffix ignored), or None."""
    key = Path(str(path).rstrip("/")).name.lower().removesuffix("-hf")
    return KNOWN_MODELS.get(key)


def _llm_from(cfg: dict) -> LLMSpec:
    model_type = str(cfg.get("model_type", "")).lower()
    archs = " ".join(cfg.get("architectures") or []).lower()
    arch = next((a for a in ("internlm2", "phi3", "qwen2") if a in model_type or a in archs), "llama")
    heads = int(cfg["num_attention_heads"])
    return LLMSpec(
        arch=arch, hidden=int(cfg["hidden_size"]), layers=int(cfg["num_hidden_layers"]),
        intermediate=int(cfg["intermediate_size"]), heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads), vocab=int(cfg["vocab_size"]),
        tied=bool(cfg.get("tie_word_embeddings", False)), head_dim=cfg.get("head_dim"),
    )


def _first(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def _vision_from(cfg: dict, kind: str, image_size: int | None = None) -> VisionSpec:
    return VisionSpec(
        kind=kind, hidden=int(cfg["hidden_size"]), layers=int(cfg["num_hidden_layers"]),
        intermediate=int(cfg["intermediate_size"]), patch=_first(cfg["patch_size"]),
        image_size=image_size or _first(cfg["image_size"]),
        qkv_bias=bool(cfg.get("qkv_bias", cfg.get("attention_bias", True))),
        layer_scale=kind != "clip",
    )


def spec_from_config(model_dir: str | Path, vision_tower_path: str | None = None) -> ModelSpec:
    """Build a ``ModelSpec`` from a checkpoint folder's ``config.json`` (see ``spec_from_dict``)."""
    path = Path(model_dir) / "config.json"
    return spec_from_dict(json.loads(path.read_text()), Path(model_dir).name, str(path), vision_tower_path)


def spec_from_dict(cfg: dict, name: str, source: str, vision_tower_path: str | None = None) -> ModelSpec:
    """Build a ``ModelSpec`` from a config dict.

    Understands transformers' InternVL (``model_type: internvl``), the original ``InternVLChatModel``
    (``vision_config`` + ``llm_config``) and InternLM-XComposer2 (InternLM2 fields at the top level; the
    CLIP tower from ``vision_tower_path``'s config when given, else CLIP ViT-L/14 at 490 px).

    Raises:
        ValueError: the config is of an architecture the planner does not know (names the source).
    """
    archs = " ".join(cfg.get("architectures") or []).lower()
    if "vision_config" in cfg and ("text_config" in cfg or "llm_config" in cfg):
        text = cfg.get("text_config") or cfg["llm_config"]
        vision = cfg["vision_config"]
        size = cfg.get("force_image_size") or None
        # transformers ties by the top-level flag of its composite config; InternVLChatModel by the LLM's.
        tied = cfg.get("tie_word_embeddings", text.get("tie_word_embeddings")) if "text_config" in cfg \
            else text.get("tie_word_embeddings", False)
        text = {**text, "tie_word_embeddings": bool(tied)}
        return ModelSpec(name, "internvl", _vision_from(vision, "internvit", size), _llm_from(text),
                         downsample_ratio=float(cfg.get("downsample_ratio", 0.5)), source=source)
    if "xcomposer" in archs or "xcomposer" in str(cfg.get("model_type", "")).lower():
        vision = CLIP_L14_490
        clip_cfg = Path(vision_tower_path or "") / "config.json"
        if vision_tower_path and clip_cfg.exists():
            clip = json.loads(clip_cfg.read_text())
            vision = _vision_from(clip.get("vision_config", clip), "clip", image_size=490)
        llm = _llm_from({**cfg, "model_type": "internlm2"})
        return ModelSpec(name, "xcomposer2", vision, llm, plora_rank=256, source=source)
    raise ValueError(
        f"{source}: unknown architecture {cfg.get('architectures')} (model_type {cfg.get('model_type')!r}); the planner "
        "knows InternVL (HF-native and InternVLChatModel) and InternLM-XComposer2"
    )
