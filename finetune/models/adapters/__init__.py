"""Model-family adapters: one module per family behind one small interface.

Every adapter module provides (eval and selection rely on the first four):

- ``load(model_cfg) -> (model, processor)``: from a local folder only; ``trust_remote_code`` only when
  the recipe sets it.
- ``generation_prompt(processor, question, n_images) -> str``: the chat-formatted user turn with one
  image placeholder per image, ending where the assistant's answer starts.
- ``encode(processor, prompts, images, max_patches=None) -> BatchFeature``: a left-padded batch
  (``input_ids``, ``attention_mask``, ``pixel_values`` ...), ready for ``model(**batch)`` and ``generate``.
- ``image_token_id(model) -> int``: the id that marks image-token positions in ``input_ids``.
- optional ``generate(model, processor, batch, **gen_kwargs) -> LongTensor``: the new tokens only
  (batch, new), for families whose generation is not ``model.generate(**batch)`` returning prompt +
  new tokens (InternVLChatModel's returns the new ones only; XComposer2 generates from image
  embeddings + ``im_mask``). ``eval.generate.generate_batch`` uses it when present.

Training side (``finetune.training``), per family:

- ``encode_for_training(processor, record, images, max_length, *, model_cfg=None, too_long="truncate") -> dict``:
  ``input_ids`` and ``labels`` (lists; labels only on assistant answers and their end-of-turn token,
  ``-100`` elsewhere), image tensors (``pixel_values``, ``image_flags`` ...), ``truncated``. ``images``
  may be ``(width, height)`` sizes instead of PIL images: then only ids/labels are computed (the length
  pass). Raises ``supervision.SkipSample`` (counted by reason) for records that cannot be samples;
  an image-token span is never cut.
- optional ``pixels_for_training(processor, images, *, model_cfg=None) -> dict``: the image tensors of
  ``encode_for_training`` alone, for families whose ids depend on image sizes only: ``SupervisedDataset``
  then keeps the length pass's ids/labels and tokenises each record once per run (InternVL, both kinds).
- ``model_parts(model) -> {"vision": [...], "projector": [...], "llm": [...]}``: module-name prefixes.
- ``lora_targets(model, lora_cfg, train_llm=True) -> list[str]``: full names of the LoRA target
  Linear modules (per-family suffixes, LLM only unless ``lora.vision``).
- ``apply_freeze(model, train_cfg)``: full mode's freeze flags.
- optional ``forward_for_training(model, batch) -> ModelOutput`` when ``model(**batch)`` is not the
  family's training forward (XComposer2: image embeddings + ``im_mask``).
- optional ``template_tokens(processor) -> list[str]``: the special tokens its chat layout and image spans
  use (``geotune doctor`` checks their ids).

``training_forward`` and ``generate_new_tokens`` below dispatch on the optional ones, for every caller.

Saving is the same for all (``Trainer.save_model``: the peft adapter, or full weights with the
remote code files, + the processor/tokenizer); merging is ``geotune export``'s.
"""

from __future__ import annotations

from types import ModuleType

import torch

from finetune.models.adapters import auto, internvl_hf, internvl_remote, xcomposer2

ADAPTERS: dict[str, ModuleType] = {
    "internvl_hf": internvl_hf,
    "internvl_remote": internvl_remote,
    "xcomposer2": xcomposer2,
    "auto": auto,
}


def get_adapter(name: str) -> ModuleType:
    """The adapter module for ``model.adapter``; an unknown name fails with the choices."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"model.adapter: unknown adapter '{name}'; choose from: {', '.join(sorted(ADAPTERS))}") from None


def training_forward(adapter: ModuleType, model, batch: dict):
    """The family's training forward on a collated batch: ``forward_for_training`` where it has one."""
    forward = getattr(adapter, "forward_for_training", None)
    return forward(model, batch) if forward is not None else model(**batch)


def generate_new_tokens(adapter: ModuleType, model, processor, batch: dict, **gen_kwargs) -> torch.Tensor:
    """Greedy new tokens ``(batch, <= max_new_tokens)`` for an ``adapter.encode`` batch.

    ``adapter.generate`` where the family has one (it returns the new tokens only), else
    ``model.generate(**batch)`` minus the prompt. ``pad_token_id``/``eos_token_id`` default to the tokenizer's.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    gen_kwargs = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                  **gen_kwargs}
    generate = getattr(adapter, "generate", None)
    if generate is not None:
        return generate(model, processor, batch, **gen_kwargs)
    return model.generate(**batch, **gen_kwargs)[:, batch["input_ids"].shape[1] :]
