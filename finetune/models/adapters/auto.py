"""Any ``AutoModelForImageTextToText`` checkpoint whose processor has a chat template (Qwen2-VL, LLaVA, ...).

Supervision comes from the chat template itself: the conversation is rendered turn by turn, the
characters of each assistant answer (and the end-of-turn token right after it) are marked, and the
rendered text is cut there, so every piece is tokenised by the processor (which expands the image
tokens its own way) and labelled exactly. Templates must render a conversation as the concatenation
of its prefixes (true of Qwen2-VL, LLaVA, InternVL-hf); others are refused with that reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from finetune.data.records import HUMAN, IMAGE_TOKEN
from finetune.models.adapters import internvl_hf
from finetune.models.adapters import supervision as sv

VISION = ["model.vision_tower", "model.visual", "model.vision_model", "vision_tower", "visual", "vision_model"]
PROJECTOR = ["model.multi_modal_projector", "multi_modal_projector", "model.visual.merger", "model.connector"]
LLM = ["model.language_model", "language_model", "lm_head"]

load = internvl_hf.load
generation_prompt = internvl_hf.generation_prompt


def model_parts(model) -> dict:
    """Vision tower / projector / language model prefixes found among the model's module names."""
    names = {name for name, _ in model.named_modules()}
    return {"vision": [p for p in VISION if p in names], "projector": [p for p in PROJECTOR if p in names],
            "llm": [p for p in LLM if p in names]}


def _messages(turns) -> list[dict]:
    messages = []
    for role, text in turns:
        if role == HUMAN:
            content = []
            for i, part in enumerate(text.split(IMAGE_TOKEN)):
                if i:
                    content.append({"type": "image"})
                if part.strip():
                    content.append({"type": "text", "text": part.strip()})
            messages.append({"role": "user", "content": content})
        else:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
    return messages


def supervised_spans(processor, messages) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the ``[start, end)`` character spans of each answer + its end token."""
    render = lambda msgs, gen=False: processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)  # noqa: E731
    full = render(messages)
    eos = getattr(processor.tokenizer, "eos_token", None) or ""
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix, upto = render(messages[:k], True), render(messages[: k + 1])
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise ValueError("model.adapter=auto: this chat template does not render a conversation as the "
                             "concatenation of its turns; use a family adapter")
        answer = message["content"][0]["text"]
        start = upto.index(answer, len(prefix))
        end = start + len(answer)
        if eos and upto.startswith(eos, end):
            end += len(eos)
        spans.append((len(prefix), end))
    return full, spans


def encode_for_training(processor, record, images, max_length: int, *, model_cfg=None, too_long: str = "truncate") -> dict:
    """Ids, labels (answers only) and whatever image tensors the processor makes (``pixel_values`` ...)."""
    turns = sv.conversation_turns(record)
    pil = list(images) if sv.has_pixels(images) else [Image.new("RGB", size) for size in sv.image_sizes(images)]
    full, spans = supervised_spans(processor, _messages(turns))
    cuts = [0] + [i for span in spans for i in span] + [len(full)]
    image_marker = getattr(processor, "image_token", None) or IMAGE_TOKEN
    pieces, extras, remaining = [], {}, iter(pil)
    for n, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        text = full[a:b]
        if not text:
            continue
        seg_images = [next(remaining) for _ in range(text.count(image_marker))]
        out = processor(text=[text], images=seg_images or None, add_special_tokens=False, return_tensors="pt")
        for key, value in out.items():
            if key not in ("input_ids", "attention_mask") and isinstance(value, torch.Tensor):
                extras.setdefault(key, []).append(value)
        pieces.append(sv.Piece(ids=out["input_ids"][0].tolist(), supervised=n % 2 == 1, atomic=bool(seg_images)))
    ids, labels, truncated = sv.tokenize_pieces(processor.tokenizer, pieces, max_length, too_long)
    result = {k: torch.cat(v) for k, v in extras.items()} if sv.has_pixels(images) else {}
    result.update(input_ids=ids, labels=labels, truncated=truncated)
    return result


def encode(processor, prompts: Sequence[str], images: Sequence[Sequence] | None = None, max_patches: int | None = None):
    flat = [img for sample in (images or []) for img in sample]
    processor.tokenizer.padding_side = "left"
    return processor(text=list(prompts), images=flat or None, return_tensors="pt", padding=True)


def image_token_id(model) -> int:
    config = model.config
    return int(getattr(config, "image_token_id", None) or config.image_token_index)


def lora_targets(model, lora_cfg, train_llm: bool = True) -> list[str]:
    from finetune.lora import LLM_TARGETS, VISION_TARGETS, llm_family, resolve_lora_targets

    text_config = getattr(model.config, "text_config", model.config)
    family = llm_family(text_config.model_type)
    vision = VISION_TARGETS["internvl_vision"] + VISION_TARGETS["clip"] + ["attn.qkv", "attn.proj"]
    return resolve_lora_targets(model, model_parts(model), LLM_TARGETS[family], vision, lora_cfg, train_llm)


def apply_freeze(model, train_cfg) -> None:
    from finetune.lora import apply_freeze as freeze

    freeze(model, model_parts(model), train_cfg)
