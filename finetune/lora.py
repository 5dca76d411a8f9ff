"""LoRA targets, freeze policy and the peft wrapping every adapter shares.

Adapters describe their model with *parts*: ``{"vision": [...], "projector": [...], "llm": [...]}``,
each a list of module-name prefixes. LoRA targets are resolved to *full module names* by a suffix
rule restricted to one part, so ``q_proj`` in the vision tower is never hit by the language-model
targets (peft's own suffix matching would hit both), and the resolved names are what
``adapter_config.json`` records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

# Per-family LoRA targets (DESIGN.md "Training"): name suffixes inside the language model / vision tower.
LLM_TARGETS = {
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "internlm2": ["attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}
VISION_TARGETS = {
    "intern_vit": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
    # transformers' InternVLVisionModel names the same four layers differently.
    "internvl_vision": ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.projection_layer",
                        "mlp.fc1", "mlp.fc2"],
    "clip": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"],
}


def llm_family(model_type: str) -> str:
    """Map a text config's ``model_type`` to a key of ``LLM_TARGETS`` (unknown: Llama-style names)."""
    for key in LLM_TARGETS:
        if key in (model_type or "").lower():
            return key
    return "llama"


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def match_linear_modules(model: torch.nn.Module, suffixes: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """Full names of ``nn.Linear`` modules under ``prefixes`` whose name ends with one of ``suffixes``."""
    pattern = re.compile(r"(^|\.)(" + "|".join(re.escape(s) for s in suffixes) + r")$")
    return [
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and _under(name, prefixes) and pattern.search(name)
    ]


def resolve_lora_targets(model, parts: dict, llm_suffixes: Sequence[str], vision_suffixes: Sequence[str], lora_cfg,
                         train_llm: bool = True) -> list[str]:
    """LoRA target module names: the LLM's (unless frozen), plus the vision tower's when ``lora.vision``.

    ``lora.target_modules`` overrides the suffix lists (still restricted to the LLM, or to the vision
    tower with ``lora.vision``).
    """
    llm_suffixes = list(lora_cfg.target_modules or llm_suffixes)
    targets = match_linear_modules(model, llm_suffixes, parts["llm"]) if train_llm else []
    if lora_cfg.vision:
        targets += match_linear_modules(model, list(lora_cfg.target_modules or vision_suffixes), parts["vision"])
    if not targets:
        raise ValueError(
            f"train.lora: no Linear module matches {llm_suffixes} in the model; set train.lora.target_modules "
            "to suffixes of its module names"
        )
    return targets


def set_trainable(model: torch.nn.Module, prefixes: Sequence[str], trainable: bool) -> None:
    for name, param in model.named_parameters():
        if _under(name, prefixes):
            param.requires_grad_(trainable)


def frozen_parts(train_cfg) -> dict[str, bool]:
    return {"vision": bool(train_cfg.freeze_vision), "projector": bool(train_cfg.freeze_projector),
            "llm": bool(train_cfg.freeze_llm)}


def apply_freeze(model: torch.nn.Module, parts: dict, train_cfg) -> None:
    """Full mode: every parameter trains except those of the frozen parts."""
    model.requires_grad_(True)
    for part, frozen in frozen_parts(train_cfg).items():
        if frozen:
            set_trainable(model, parts[part], False)


def apply_lora(model: torch.nn.Module, targets: list[str], parts: dict, train_cfg):
    """Wrap ``model`` with peft LoRA on ``targets``; unfrozen parts without LoRA train fully.

    In LoRA mode the projector (and the vision tower, when not frozen and not LoRA-tuned) trains in
    full as peft ``modules_to_save``, as InternVL's official LoRA script does with ``freeze_mlp False``;
    they are saved inside the adapter folder. With ``lora.dropout_masks: sparse`` peft's dropout modules are
    swapped for ``finetune.sparse_dropout.SparseDropout`` (same distribution, cheaper on a CPU).
    """
    from peft import LoraConfig, get_peft_model

    from finetune.sparse_dropout import use_sparse_dropout

    lora = train_cfg.lora
    frozen = frozen_parts(train_cfg)
    full_parts = [p for p in ("projector", "vision") if not frozen[p] and not (p == "vision" and lora.vision)]
    modules_to_save = [prefix.rsplit(".", 1)[-1] for p in full_parts for prefix in parts[p]] or None
    config = LoraConfig(
        r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout), target_modules=targets,
        modules_to_save=modules_to_save, bias="none",
    )
    model.requires_grad_(False)
    model = get_peft_model(model, config)
    use_sparse_dropout(model, lora.dropout_masks)
    return model


def _numel(param: torch.nn.Parameter) -> int:
    return int(getattr(param, "ds_numel", param.numel()))  # ZeRO-3 leaves an empty shard in .data


def trainable_summary(model: torch.nn.Module) -> dict[str, int]:
    trainable = sum(_numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(_numel(p) for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total}
