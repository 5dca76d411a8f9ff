"""InternLM-XComposer2-VL (remote code): ``<ImageHere>`` images, Partial LoRA via ``im_mask``, 490-px input.

Prompt layout (IXC2's fine-tuning ``conv2text``): ``[UNUSED_TOKEN_146]user\\n…[UNUSED_TOKEN_145]\\n``
``[UNUSED_TOKEN_146]assistant\\n…[UNUSED_TOKEN_145]\\n``; the answer and its ``[UNUSED_TOKEN_145]``
are supervised. IXC2's ``interleav_wrap`` tokenises raw text inside the model and its
``mask_human_targets`` hard-codes token id 92542, so geotune tokenises here instead, with exact label
masks: each image becomes a run of ``[UNUSED_TOKEN_141]`` ids (one per image token) whose embeddings
``forward_for_training`` replaces with ``vision_proj(vit(image))``, and ``im_mask`` marks the same
positions, as ``interleav_wrap`` does. Tested against geotune's stand-in checkpoint, not the real weights.
A peft LoRA on its Partial-LoRA linears merges exactly (the frozen image-only branch is untouched; see
``finetune.export``). The original config has no vision settings (``InternLMXcomposer2Config`` is
InternLM2's): image size and tokens come from the CLIP tower as loaded, whose position table IXC2
enlarges (24x24 -> 35x35 patches: 490 px).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from finetune.models.adapters import supervision as sv
from finetune.models.adapters.internvl_remote import (
    RemoteProcessor,
    load_remote,
    load_remote_tokenizer,
    stop_token_ids,
)

IMAGE_HERE = "<ImageHere>"
IMAGE_PLACEHOLDER = "[UNUSED_TOKEN_141]"
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
PARTS = {"vision": ["vit"], "projector": ["vision_proj"], "llm": ["model", "output"]}


def vision_input(model) -> tuple[int, int]:
    """``(image size in pixels, image tokens per image)`` of the CLIP tower as loaded.

    IXC2 writes its enlarged position table into no config: one class token + (size / patch)^2 patches,
    and ``img2emb`` keeps every patch.
    """
    tower = unwrap(model).vit.vision_tower
    patches = getattr(tower, "vision_model", tower).embeddings.position_embedding.num_embeddings - 1
    return int(tower.config.patch_size) * math.isqrt(patches), patches


def load(model_cfg):
    model = load_remote(model_cfg, "xcomposer2")
    # The original freezes CLIP when it builds it (build_mlp's load_model); transformers 5 materialises the
    # meta-device parameters anew, trainable. Training's freeze flags (train.freeze_vision) apply after this.
    model.vit.requires_grad_(False)
    tokenizer = load_remote_tokenizer(model_cfg)
    model.tokenizer = tokenizer  # interleav_wrap reads it, as in the original
    model.geotune_image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    size, tokens = vision_input(model)
    processor = RemoteProcessor(
        tokenizer=tokenizer, image_size=size, num_image_token=tokens, template="xcomposer2",
        system_message=model_cfg.system_message or None, max_tiles=1, use_thumbnail=False, mean=CLIP_MEAN, std=CLIP_STD,
    )
    return model, processor


def _span(processor) -> list[int]:
    return [processor.tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)] * processor.num_image_token


def encode_for_training(processor, record, images, max_length: int, *, model_cfg=None, too_long: str = "truncate") -> dict:
    """Ids (image positions = ``[UNUSED_TOKEN_141]``), labels (answers only), ``pixel_values`` (n_images, 3, S, S)."""
    turns = [(role, text.replace(IMAGE_HERE, sv.IMAGE_TOKEN)) for role, text in sv.conversation_turns(record)]
    out = {}
    if sv.has_pixels(images):
        out["pixel_values"] = torch.stack([processor.pixels(image) for image in images])
    pieces = sv.conversation_pieces(turns, sv.XCOMPOSER2, [_span(processor)] * len(images), processor.system_message)
    bos = processor.tokenizer.bos_token_id
    ids, labels, truncated = sv.tokenize_pieces(processor.tokenizer, pieces, max_length, too_long, bos)
    out.update(input_ids=ids, labels=labels, truncated=truncated)
    return out


def unwrap(model):
    """The remote model inside DeepSpeed / DDP (``.module``) and peft (``get_base_model``) wrappers."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def image_embeds(model, input_ids: torch.Tensor, pixel_values: torch.Tensor | None):
    """Token embeddings with image positions replaced by ``vision_proj(vit(pixels))``; and ``im_mask``."""
    base = unwrap(model)
    im_mask = input_ids == base.geotune_image_token_id
    embeds = base.get_input_embeddings()(input_ids)
    if pixel_values is not None:
        images, _, _ = base.img2emb(pixel_values.to(embeds.dtype))
        embeds = embeds.masked_scatter(im_mask[..., None], images.reshape(-1, images.shape[-1]).to(embeds.dtype))
    return embeds, im_mask


def forward_for_training(model, batch: dict):
    """IXC2's own forward on ``inputs_embeds`` + ``im_mask`` (Partial LoRA on image tokens) + our labels."""
    embeds, im_mask = image_embeds(model, batch["input_ids"], batch.get("pixel_values"))
    return model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"], im_mask=im_mask)


def generation_prompt(processor, question: str, n_images: int = 1) -> str:
    """As training lays it out: the system turn (with a system message), the user turn, the assistant's opening."""
    fmt = sv.XCOMPOSER2
    system = fmt.system.format(processor.system_message) if processor.system_message else ""
    return system + fmt.user.format(IMAGE_HERE * n_images + question) + fmt.assistant_prefix


def encode(processor, prompts: Sequence[str], images: Sequence[Sequence] | None = None, max_patches: int | None = None):
    """Left-padded ``input_ids``/``attention_mask`` (image runs as ``[UNUSED_TOKEN_141]``) + ``pixel_values``.

    Feed ``image_embeds(model, input_ids, pixel_values)`` to the model as ``inputs_embeds`` with ``im_mask``
    (``generate`` does).
    """
    from transformers import BatchFeature

    tok = processor.tokenizer
    rows, pixels = [], []
    for i, prompt in enumerate(prompts):
        parts = prompt.split(IMAGE_HERE)
        ids = [tok.bos_token_id] + tok(parts[0], add_special_tokens=False)["input_ids"]
        for part in parts[1:]:
            ids += _span(processor) + tok(part, add_special_tokens=False)["input_ids"]
        rows.append(ids)
        pixels += [processor.pixels(image) for image in (images[i] if images else [])]
    longest = max(len(r) for r in rows)
    batch = {"input_ids": torch.tensor([[tok.pad_token_id] * (longest - len(r)) + r for r in rows]),
             "attention_mask": torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows])}
    if pixels:
        batch["pixel_values"] = torch.stack(pixels)
    return BatchFeature(batch)


def generate(model, processor, batch, **gen_kwargs) -> torch.Tensor:
    """New tokens only, as IXC2's ``chat`` generates: the LM's ``generate(inputs_embeds=..., im_mask=...)``
    on the image-spliced embeddings of an ``encode`` batch, stopping at ``[UNUSED_TOKEN_145]`` too."""
    embeds, im_mask = image_embeds(model, batch["input_ids"], batch.get("pixel_values"))
    gen_kwargs["eos_token_id"] = stop_token_ids(processor, sv.XCOMPOSER2, gen_kwargs.get("eos_token_id"))
    return unwrap(model).generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], im_mask=im_mask,
                                  **gen_kwargs)


def image_token_id(model) -> int:
    return int(unwrap(model).geotune_image_token_id)


def template_tokens(processor) -> list[str]:
    """``<s>``, the turn tokens of IXC2's layout and the image placeholder."""
    return [processor.tokenizer.bos_token, *sv.format_special_tokens(sv.XCOMPOSER2), IMAGE_PLACEHOLDER]


def model_parts(model) -> dict:
    """Module-name prefixes of the vision tower, projector and language model."""
    return PARTS


def lora_targets(model, lora_cfg, train_llm: bool = True) -> list[str]:
    from finetune.lora import LLM_TARGETS, VISION_TARGETS, resolve_lora_targets

    return resolve_lora_targets(model, PARTS, LLM_TARGETS["internlm2"], VISION_TARGETS["clip"], lora_cfg, train_llm)


def apply_freeze(model, train_cfg) -> None:
    from finetune.lora import apply_freeze as freeze

    freeze(model, PARTS, train_cfg)
