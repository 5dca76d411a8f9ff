"""HF-native InternVL (``InternVLForConditionalGeneration``, the ``OpenGVLab/*-hf`` checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str) -> torch.dtype:
    """``auto`` is bf16 on a CUDA device that supports it, else fp32 (CPU runs stay exact)."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"model.dtype: unknown dtype '{name}'; choose from auto, {', '.join(DTYPES)}") from None


def load(model_cfg):
    """Load model and processor from ``model_cfg.path`` (a local folder; nothing is downloaded)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(model_cfg.path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"model.path: no checkpoint at '{path}' (config.json missing). Point model.path at a local "
            "folder, or build a tiny one with `geotune tiny-model --out DIR`."
        )
    trust = bool(model_cfg.trust_remote_code)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust)
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=resolve_dtype(model_cfg.dtype), trust_remote_code=trust, use_safetensors=True
    )
    return model, processor


def generation_prompt(processor, question: str, n_images: int = 1) -> str:
    """User turn with ``n_images`` images before the question, ending at the assistant's start."""
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def encode(processor, prompts: Sequence[str], images: Optional[Sequence[Sequence]] = None, max_patches: Optional[int] = None):
    """Tokenise prompts with their images into one left-padded batch.

    Args:
        processor: the checkpoint's ``InternVLProcessor``.
        prompts: chat-formatted strings, one per sample, each with one image placeholder per image.
        images: per sample, a list of PIL images (may be empty lists for text-only samples).
        max_patches: dynamic tiling up to this many tiles (+ thumbnail); None or 1: one tile per image.
    """
    flat = [img for sample in (images or []) for img in sample]
    # InternVLProcessor tiles by default whatever the saved config says, so always say it explicitly.
    kwargs = {"crop_to_patches": False}
    if max_patches is not None and max_patches > 1:
        kwargs = {"crop_to_patches": True, "max_patches": max_patches}
    processor.tokenizer.padding_side = "left"
    return processor(
        text=list(prompts), images=flat or None, return_tensors="pt", padding=True, **kwargs
    )


def image_token_id(model) -> int:
    return int(model.config.image_token_id)
