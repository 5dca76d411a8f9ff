"""Batched greedy generation over any model adapter, and the GeoChat prompts.

Batches are formed over questions sorted by prompt length (longest first, ties in input order), so a
batch pads little and the biggest batch runs first (an OOM shows at once). Because the order is a
fixed function of the questions, a resumed run that skips finished questions forms the same remaining
batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from eval.readers import BenchItem
from finetune.data.images import ImageError, read_image
from finetune.models.adapters import generate_new_tokens

CLASSIFICATION_PROMPT = (
    "Classify the given image in one of the following classes. Classes: {classes}. \n"
    "Answer in one word or a short phrase."
)
VQA_PROMPT = "{question} Answer the question using a single word or phrase."


def build_question(item: BenchItem, task: str, classes: Sequence[str], classification_prompt: str | None = None,
                   vqa_prompt: str = VQA_PROMPT) -> str:
    """The question text sent to the model (before the chat template).

    Classification: ``classification_prompt`` (``{classes}`` -> comma list) when given, else the item's
    own benchmark prompt (GeoChat-Bench ``text``), else GeoChat's prompt. VQA: ``vqa_prompt`` with
    ``{question}``; a question that already ends with the instruction is not given it twice.
    """
    if task == "classification":
        if classification_prompt is None and item.question:
            return item.question
        return (classification_prompt or CLASSIFICATION_PROMPT).format(classes=", ".join(classes))
    suffix = vqa_prompt.replace("{question}", "").strip()
    if suffix and item.question.rstrip().endswith(suffix):
        return item.question
    return vqa_prompt.format(question=item.question)


def prompt_lengths(processor, prompts: Sequence[str]) -> list[int]:
    tokenizer = getattr(processor, "tokenizer", processor)
    return [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]


def load_image(path: str) -> Image.Image:
    """The image as 8-bit RGB through training's reader (16-bit, float and multi-band stretched the same
    way, ``finetune.data.images``); an unusable file fails naming it."""
    try:
        return read_image(path)
    except ImageError as err:
        raise OSError(f"{err}; fix or remove the file, or point the eval root elsewhere") from err


def _model_device_dtype(model) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters())
    return param.device, param.dtype


@torch.inference_mode()
def generate_tokens(model, processor, adapter, batch: dict, max_new_tokens: int = 16) -> torch.Tensor:
    """Greedy new tokens (batch, <= ``max_new_tokens``) for an ``adapter.encode`` batch on the model's device.

    Families whose generation is not ``model.generate(**batch)`` returning prompt + new tokens give an
    ``adapter.generate`` that returns the new tokens only (``finetune.models.adapters.generate_new_tokens``).
    """
    return generate_new_tokens(adapter, model, processor, batch, max_new_tokens=max_new_tokens)


@torch.inference_mode()
def generate_batch(model, processor, adapter, prompts: Sequence[str], images: Sequence[Sequence[Image.Image]],
                   max_new_tokens: int = 16, max_patches: int | None = None) -> list[str]:
    """Greedy answers for one batch of chat-formatted prompts (left-padded by the adapter)."""
    device, dtype = _model_device_dtype(model)
    batch = adapter.encode(processor, prompts, images, max_patches=max_patches)
    batch = {k: v.to(device) for k, v in batch.items()}
    if "pixel_values" in batch and batch["pixel_values"].is_floating_point():
        batch["pixel_values"] = batch["pixel_values"].to(dtype)
    new_tokens = generate_tokens(model, processor, adapter, batch, max_new_tokens)
    tokenizer = getattr(processor, "tokenizer", processor)
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
