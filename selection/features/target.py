"""Target-model features: pooled hidden states of chosen decoder layers (image + text tokens).

For each chosen layer the decoder layer's output (captured by a forward hook, so only those layers
are kept in memory; the last layer's output is taken *before* the final norm) is mean-pooled over
the attention mask. ``pooling: separate`` pools image-token positions (``input_ids ==
adapter.image_token_id(model)``) and the other tokens separately and concatenates ``[image, text]``
(each L2-normalised, divided by sqrt(2); a text-only sample gets a zero image half). Layers are then
L2-normalised each, concatenated and divided by sqrt(n_layers): the feature is a unit vector.
``normalise=False`` keeps the raw pooled states (the adaptive-shift signal measures their distance).
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

POOLINGS = ("mean", "separate")


def pool_layer(hidden: torch.Tensor, batch, image_token_id: int, pooling: str, normalise: bool) -> torch.Tensor:
    """One layer's pooled vector per sample (B, H) or (B, 2H) for ``separate``."""
    mask = batch["attention_mask"].bool()
    if pooling == "mean":
        pooled = masked_mean(hidden, mask)
        return l2_normalise(pooled) if normalise else pooled
    is_image = mask & (batch["input_ids"] == image_token_id)
    parts = [masked_mean(hidden, is_image), masked_mean(hidden, mask & ~is_image)]
    if normalise:
        return torch.cat([l2_normalise(p) for p in parts], dim=-1) / math.sqrt(2)
    return torch.cat(parts, dim=-1)


class PooledStates:
    """Runs a model and returns pooled hidden states of chosen layers for samples.

    Args:
        runner: the loaded model.
        layers: decoder layer indices (negative: from the end).
        pooling: ``mean`` (image + text tokens together) or ``separate`` (``[image, text]``).
        normalise: unit-norm result (features) or raw concatenated means (shift distances).
        key: recipe key named in errors about ``layers``.
    """

    def __init__(self, runner: ModelRunner, layers: Sequence[int], pooling: str = "mean", normalise: bool = True, key: str = "selection.features.layers"):
        if pooling not in POOLINGS:
            raise ValueError(f"selection.features.pooling: unknown '{pooling}'; choose from {', '.join(POOLINGS)}")
        decoder = find_decoder_layers(runner.model)
        self.layers = resolve_layers(layers, len(decoder), key)
        self.modules = [decoder[i] for i in self.layers]
        self.runner, self.pooling, self.normalise = runner, pooling, normalise

    def __call__(self, samples: Sequence[Sample]) -> torch.Tensor:
        return self.run(self.runner.encode(samples))

    @torch.inference_mode()
    def run(self, batch) -> torch.Tensor:
        """Pooled states of a batch made by ``runner.encode``."""
        with capture(self.modules, "output") as outputs:
            self.runner.run_for_hidden_states(batch)
        pooled = [pool_layer(h, batch, self.runner.image_token_id, self.pooling, self.normalise) for h in outputs]
        joined = torch.cat(pooled, dim=-1)
        return joined / math.sqrt(len(pooled)) if self.normalise else joined


class TargetBackend:
    """``backend: target`` — see the module docstring. Loads the model on first use."""

    dtype = "float16"

    def __init__(self, features_cfg, model_cfg):
        self.cfg = features_cfg
        self.model_cfg = with_path(model_cfg, features_cfg.model_path)
        self._pool = None

    def identity(self) -> dict:
        return model_backend_identity("target", self.model_cfg, self.cfg, pooling=self.cfg.pooling)

    def pool(self) -> PooledStates:
        if self._pool is None:
            runner = ModelRunner(self.model_cfg, self.cfg.max_patches)
            self._pool = PooledStates(runner, list(self.cfg.layers), self.cfg.pooling, normalise=True)
        return self._pool

    def encode(self, records, data, batch_size: int) -> tuple[np.ndarray, dict[str, int]]:
        pool = self.pool()
        return encode_in_length_order(records, data, batch_size, lambda batch: (pool.run(batch), {}), prepare=pool.runner.encode)
