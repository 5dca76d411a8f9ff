"""A CLIP-family dual encoder prepared for retrieval training: HarMA or a baseline, plus HarMA's own
temperature. ``build_retrieval_model`` decides what trains; ``trainable_state`` / ``load_trainable_state``
save and restore only that (adapters, LoRA, a probe's layers, or everything for full fine-tuning)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from finetune.files import write_text_atomic
from finetune.retrieval.adapters import HarmaAdapters, encoder_layers, harma_parameter

METHODS = ("harma", "lora", "full", "probe", "zeroshot")
WEIGHTS = "retrieval_weights.safetensors"
META = "retrieval_model.json"
# LoRA baseline targets: the attention projections of both towers (CLIP names them alike in both).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _pooled(out) -> torch.Tensor:
    """transformers 5.x returns a ModelOutput from get_*_features; 4.x returns the tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class RetrievalModel(nn.Module):
    """``clip`` (frozen or not, maybe with HarMA adapters or LoRA), the shared adapters, and ``temp``.

    ``temp`` is a raw learnable scalar (no clamp, no log), separate from CLIP's ``logit_scale``, which
    stays frozen and unused, as in the public code.
    """

    def __init__(self, clip: nn.Module, method: str, harma: HarmaAdapters | None, temp_init: float):
        super().__init__()
        self.method = method
        self.harma = harma  # registered before clip: the shared adapters are named harma.shared.N.*
        self.clip = clip
        self.temp = nn.Parameter(torch.tensor(float(temp_init)))

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(_pooled(self.clip.get_image_features(pixel_values=pixel_values)), dim=-1)

    def encode_texts(self, input_ids: torch.Tensor) -> torch.Tensor:
        # No attention mask: open_clip's text tower (which GeoRSCLIP is) uses the causal mask only, and
        # the adapters' attention sees the padded positions as in the public code.
        return F.normalize(_pooled(self.clip.get_text_features(input_ids=input_ids)), dim=-1)


def _lora(clip: nn.Module, lora_cfg) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    from finetune.sparse_dropout import use_sparse_dropout

    targets = list(lora_cfg.target_modules) if lora_cfg.target_modules else LORA_TARGETS
    config = LoraConfig(r=int(lora_cfg.r), lora_alpha=int(lora_cfg.alpha), lora_dropout=float(lora_cfg.dropout),
                        target_modules=targets)
    model = get_peft_model(clip, config)
    # train.lora, or a bare namespace of its fields without dropout_masks (benchmarks/harma_memory.py)
    use_sparse_dropout(model, getattr(lora_cfg, "dropout_masks", None))
    return model


def _probe_names(clip: nn.Module) -> tuple[str, ...]:
    """Prefixes a last-layer probe trains: each tower's last layer, final norms and projections."""
    towers = encoder_layers(clip)
    return (f"vision_model.encoder.layers.{len(towers['vision']) - 1}.",
            f"text_model.encoder.layers.{len(towers['text']) - 1}.",
            "vision_model.post_layernorm.", "text_model.final_layer_norm.", "visual_projection.", "text_projection.")


def build_retrieval_model(clip: nn.Module, method: str = "harma", share: str = "text_only", bottleneck: int = 128,
                          heads: int = 8, temp_init: float = 0.07, lora_cfg=None,
                          sites: tuple[str, ...] = ("mlp",)) -> RetrievalModel:
    """Wrap ``clip`` for ``method`` and set ``requires_grad`` on exactly what that method trains.

    Args:
        clip: a ``transformers.CLIPModel`` (or a dual encoder laid out like it).
        method: ``harma`` | ``lora`` (peft, both towers) | ``full`` | ``probe`` (last layers) | ``zeroshot``.
        share, bottleneck, heads: HarMA's shared-adapter mode and adapter sizes (``HarmaAdapters``).
        sites: which sublayer outputs get adapters: ``("mlp",)`` (HarMA) or ``("mlp", "attn")`` (an
            ablation, not HarMA); ``method=harma`` only.
        temp_init: initial InfoNCE temperature (0.07).
        lora_cfg: ``train.lora`` (r, alpha, dropout, target_modules) for ``method=lora``.
    """
    if method not in METHODS:
        raise ValueError(f"harma.method: '{method}' is not one of {', '.join(METHODS)}")
    clip.requires_grad_(False)
    harma = HarmaAdapters(clip, share, bottleneck, heads, tuple(sites)) if method == "harma" else None
    if method == "lora":
        clip = _lora(clip, lora_cfg)  # marks only the LoRA weights trainable
    model = RetrievalModel(clip, method, harma, temp_init)
    if method == "full":
        clip.requires_grad_(True)
        clip.logit_scale.requires_grad_(False)  # CLIP's own scale is not used by the losses
    elif method == "probe":
        prefixes = _probe_names(clip)
        for name, param in clip.named_parameters():
            param.requires_grad_(name.startswith(prefixes))
    elif method == "harma":
        for name, param in model.named_parameters():
            param.requires_grad_(harma_parameter(name))
    model.temp.requires_grad_(method != "zeroshot")
    return model


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Trainable parameters by name, each once (``named_parameters`` drops the shared duplicates)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def parameter_counts(model: nn.Module) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in trainable_parameters(model).values())
    return {"trainable_params": trainable, "total_params": total,
            "trainable_share": round(trainable / total, 6) if total else 0.0}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().contiguous().clone() for name, p in trainable_parameters(model).items()}


def save_trainable(model: RetrievalModel, folder: str | Path, meta: dict) -> Path:
    """Write ``retrieval_weights.safetensors`` (trainable parameters only) and ``retrieval_model.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(folder / WEIGHTS))
    write_text_atomic(folder / META, json.dumps({"method": model.method, **meta}, indent=2, sort_keys=True) + "\n")
    return folder


def load_trainable(model: RetrievalModel, folder: str | Path) -> None:
    """Load weights saved by ``save_trainable`` onto a model built the same way; names must match exactly."""
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a retrieval checkpoint (train with train.task=retrieval)")
    state = load_file(str(path))
    params = dict(model.named_parameters())
    expected = set(trainable_parameters(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                         "the recipe's harma.method / harma.share / model.path must be those it was trained with")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META
    return json.loads(path.read_text()) if path.is_file() else {}
