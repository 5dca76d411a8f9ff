"""HF-native InternVL (``InternVLForConditionalGeneration``, the ``OpenGVLab/*-hf`` checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def encode(processor, prompts: Sequence[str], images: Sequence[Sequence] | None = None, max_patches: int | None = None):
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


# ---- training side -------------------------------------------------------------------------------

PARTS = {
    "vision": ["model.vision_tower"],
    "projector": ["model.multi_modal_projector"],
    "llm": ["model.language_model", "lm_head"],
}


def max_tiles_per_image(model_cfg, n_images: int) -> int:
    """InternVL's rule: the tile budget is shared by a sample's images (at least one tile each)."""
    budget = int(getattr(model_cfg, "max_dynamic_patch", 1) or 1) if model_cfg is not None else 1
    return max(1, budget // max(1, n_images))


def _tiling_kwargs(max_tiles: int) -> dict:
    return {"crop_to_patches": True, "max_patches": max_tiles} if max_tiles > 1 else {"crop_to_patches": False}


def _pixels_and_tiles(processor, images, model_cfg) -> tuple[torch.Tensor, list[int]]:
    kwargs = _tiling_kwargs(max_tiles_per_image(model_cfg, len(images)))
    pixels = processor.image_processor(list(images), return_tensors="pt", **kwargs)
    return pixels["pixel_values"], [int(n) for n in pixels["num_patches"]]


def pixels_for_training(processor, images, *, model_cfg=None) -> dict:
    """The image tensors of ``encode_for_training`` alone (``{}`` without images): ids need no pixels here."""
    return {"pixel_values": _pixels_and_tiles(processor, images, model_cfg)[0]} if images else {}


def encode_for_training(processor, record, images, max_length: int, *, model_cfg=None, too_long: str = "truncate") -> dict:
    """One supervised sample: ids, labels (answers only), pixel values.

    Args:
        processor: the checkpoint's ``InternVLProcessor``.
        record: a ``Record``; ``<image>`` placeholders become ``<img>`` + 16..256·tiles ``<IMG_CONTEXT>`` + ``</img>``.
        images: PIL images, one per placeholder; or ``(width, height)`` tuples for a length-only pass
            (then no ``pixel_values`` are computed).
        max_length: most tokens; see ``supervision.tokenize_pieces`` for what is cut or dropped.

    Returns:
        ``{"input_ids", "labels", "pixel_values" (tiles, 3, H, W; absent without images), "truncated"}``.

    Raises:
        SkipSample: the record cannot be a sample (reason in ``.reason``).
    """
    from finetune.models.adapters import supervision as sv

    tok = processor.tokenizer
    turns = sv.conversation_turns(record)
    out = {}
    if sv.has_pixels(images):
        out["pixel_values"], tiles = _pixels_and_tiles(processor, images, model_cfg)
    else:
        kwargs = _tiling_kwargs(max_tiles_per_image(model_cfg, len(images)))
        tiles = [processor.image_processor.get_number_of_image_patches(h, w, kwargs) for w, h in sv.image_sizes(images)]
    start, context, end = tok.convert_tokens_to_ids([tok.start_image_token, tok.context_image_token, tok.end_image_token])
    spans = [sv.image_span(start, context, end, processor.image_seq_length * n) for n in tiles]
    pieces = sv.conversation_pieces(turns, sv.HERMES2, spans)
    ids, labels, truncated = sv.tokenize_pieces(tok, pieces, max_length, too_long)
    out.update(input_ids=ids, labels=labels, truncated=truncated)
    return out


def model_parts(model) -> dict:
    """Module-name prefixes of the vision tower, projector and language model."""
    return PARTS


def lora_targets(model, lora_cfg, train_llm: bool = True) -> list[str]:
    """Full names of the LoRA target Linear modules (LLM by family; vision tower with ``lora.vision``)."""
    from finetune.lora import LLM_TARGETS, VISION_TARGETS, llm_family, resolve_lora_targets

    family = llm_family(model.config.text_config.model_type)
    return resolve_lora_targets(model, PARTS, LLM_TARGETS[family], VISION_TARGETS["internvl_vision"], lora_cfg, train_llm)


def apply_freeze(model, train_cfg) -> None:
    from finetune.lora import apply_freeze as freeze

    freeze(model, PARTS, train_cfg)
