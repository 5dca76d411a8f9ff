"""COINCIDE reference-model features (arXiv 2406.10995, DESIGN.md "Selection algorithms" B).

For each hooked layer ``l`` (default {3, 7, 11, 15, 19}) a forward pre-hook takes the *input* of
``self_attn.o_proj`` — the concatenated attention-head outputs, (B, T, heads·head_dim). Per sample:

    v_l = normalise(tanh(mean over image-token positions))
    t_l = normalise(tanh(mean over the text tokens after the last image token))
    part_l = [v_l, t_l] / sqrt(2 · n_layers)

and the feature is ``[part_l for l in layers]``: a unit vector of 2 · n_layers · (heads·head_dim)
dims (20,480 for a 2048-wide model and 5 layers), stored fp16. Non-finite values become 0 and the
rows are counted (``nan_rows`` in report.json). A sample without image tokens gets a zero image half
(counted as ``no_image_rows``); a sample with no text after its image gets a zero text half
(``no_text_rows``). The language half of each layer part is what COINCIDE's transferability uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from selection.features.inputs import (
    ModelRunner,
    Sample,
    capture,
    encode_in_length_order,
    find_decoder_layers,
    l2_normalise,
    masked_mean,
    model_backend_identity,
    resolve_layers,
    with_path,
)


def image_and_following_text_masks(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int):
    """(image positions, text positions after each sample's last image token), both (B, T) bool."""
    mask = attention_mask.bool()
    is_image = mask & (input_ids == image_token_id)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    last_image = torch.where(is_image, positions, torch.full_like(positions, -1)).max(dim=1, keepdim=True).values
    return is_image, mask & ~is_image & (positions > last_image)


def coincide_parts(inputs: Sequence[torch.Tensor], image_mask: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """The COINCIDE vector from per-layer o_proj inputs: ``[v_l, t_l]`` per layer, scaled to unit norm."""
    scale = math.sqrt(2 * len(inputs))
    parts = []
    for hidden in inputs:
        v = l2_normalise(torch.tanh(masked_mean(hidden, image_mask)))
        t = l2_normalise(torch.tanh(masked_mean(hidden, text_mask)))
        parts.append(torch.cat([v, t], dim=-1) / scale)
    return torch.cat(parts, dim=-1)


class ReferenceBackend:
    """``backend: reference`` — see the module docstring. Loads the model on first use.

    ``selection.features.model_path`` names the reference VLM (COINCIDE used TinyLLaVA-2B); when unset
    the recipe's ``model.path`` is used (a logged choice, not an error: the target is a valid reference).
    """

    dtype = "float16"

    def __init__(self, features_cfg, model_cfg):
        self.cfg = features_cfg
        self.model_cfg = with_path(model_cfg, features_cfg.model_path)
        self._loaded = None

    def identity(self) -> dict:
        return model_backend_identity("reference", self.model_cfg, self.cfg)

    def load(self):
        if self._loaded is None:
            runner = ModelRunner(self.model_cfg, self.cfg.max_patches)
            decoder = find_decoder_layers(runner.model)
            layers = resolve_layers(list(self.cfg.layers), len(decoder))
            self._loaded = runner, [decoder[i].self_attn.o_proj for i in layers]
        return self._loaded

    @torch.inference_mode()
    def features(self, samples: Sequence[Sample]) -> tuple[torch.Tensor, dict[str, int]]:
        return self.features_of_batch(self.load()[0].encode(samples))

    @torch.inference_mode()
    def features_of_batch(self, batch) -> tuple[torch.Tensor, dict[str, int]]:
        """Features and row counts of a batch made by ``ModelRunner.encode``."""
        runner, o_projs = self.load()
        with capture(o_projs, "input") as inputs:
            runner.run_for_hidden_states(batch)
        image_mask, text_mask = image_and_following_text_masks(batch["input_ids"], batch["attention_mask"], runner.image_token_id)
        stats = {"no_image_rows": int((image_mask.sum(1) == 0).sum()), "no_text_rows": int((text_mask.sum(1) == 0).sum())}
        return coincide_parts(inputs, image_mask, text_mask), stats

    def encode(self, records, data, batch_size: int) -> tuple[np.ndarray, dict[str, int]]:
        runner, _ = self.load()  # loaded here, before the loader thread starts using its processor
        return encode_in_length_order(records, data, batch_size, self.features_of_batch, prepare=runner.encode)
