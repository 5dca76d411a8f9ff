"""Model-family adapters: one module per family behind one small interface.

Every adapter module provides (eval and selection rely on the first four):

- ``load(model_cfg) -> (model, processor)``: from a local folder only; ``trust_remote_code`` only when
  the recipe sets it.
- ``generation_prompt(processor, question, n_images) -> str``: the chat-formatted user turn with one
  image placeholder per image, ending where the assistant's answer starts.
- ``encode(processor, prompts, images, max_patches=None) -> BatchFeature``: a left-padded batch
  (``input_ids``, ``attention_mask``, ``pixel_values`` ...), ready for ``model(**batch)`` and ``generate``.
- ``image_token_id(model) -> int``: the id that marks image-token positions in ``input_ids``.

The training issue adds supervision (label masks), LoRA targets, freeze policy and save/merge.
"""

from __future__ import annotations

from types import ModuleType

from finetune.models.adapters import internvl_hf

ADAPTERS: dict[str, ModuleType] = {
    "internvl_hf": internvl_hf,
}


def get_adapter(name: str) -> ModuleType:
    """The adapter module for ``model.adapter``; an unknown name fails with the choices."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"model.adapter: unknown adapter '{name}'; choose from: {', '.join(sorted(ADAPTERS))}") from None
