"""Turning records into model batches and running them: chat text, images, length-sorted batches,
decoder-layer lookup, capturing layer inputs/outputs with hooks.

A sample is encoded exactly as training encodes it: the adapter's ``encode_for_training`` (every turn
of the conversation, the family's own chat template, system message and end-of-turn tokens, image
token runs), left-padded into a batch; its ``labels`` mark the answer tokens the loss signals score.
InternLM2 / XComposer2 end a turn with ``[UNUSED_TOKEN_145]``, not eos, so a "first answer + eos"
text would differ from what the model is trained on. A text perturbation rewrites the first human
turn (``Sample.question``); the image placeholders then go in front of it.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from finetune.batching import length_sorted_batches
from finetune.data.records import IMAGE_TOKEN, Record
from selection.features.prefetch import prefetched

# Where decoder layers live in the model families geotune loads (HF-native InternVL/LLaVA/Qwen2-VL,
# plain causal LMs, and the same under a peft wrapper). Add a path here for a new family.
DECODER_LAYER_PATHS = (
    "model.language_model.layers",
    "language_model.model.layers",
    "language_model.layers",
    "model.layers",
    "model.model.language_model.layers",
    "base_model.model.model.language_model.layers",
    "model.model.layers",
)

_PLACEHOLDER = re.compile(r"\s*" + re.escape(IMAGE_TOKEN) + r"\s*")


@dataclass
class Sample:
    """What a model sees of one record: its first question (no placeholders; what text perturbations
    change), first answer, images, and the whole conversation as the record has it."""

    question: str
    answer: str
    images: list = field(default_factory=list)
    conversations: list = field(default_factory=list)
    record_id: str = ""


def strip_placeholders(text: str) -> str:
    """The text without ``<image>`` placeholders (the adapter puts its own image tokens back)."""
    return _PLACEHOLDER.sub(" ", text).strip()


def sample_from_record(record, data) -> Sample:
    """Load a record's images (``data.load_image``); keep its conversation and first question/answer."""
    images = [data.load_image(record, i) for i in range(len(record.images))]
    return Sample(strip_placeholders(record.prompt), record.answer, images, copy.deepcopy(record.conversations), record.id)


def training_record(sample: Sample) -> Record:
    """The record training would encode for ``sample`` (its first human turn rewritten when a text
    perturbation changed the question)."""
    convs = copy.deepcopy(sample.conversations) or [{"from": "human", "value": sample.question},
                                                    {"from": "gpt", "value": sample.answer}]
    if strip_placeholders(convs[0]["value"]) != sample.question:
        convs[0]["value"] = f"{IMAGE_TOKEN}\n" * len(sample.images) + sample.question
    names = [f"image{i}" for i in range(len(sample.images))]  # only their number matters to the encoder
    return Record(id=sample.record_id or "sample", images=names, conversations=convs, source="selection")


def length_key(record) -> tuple[int, int]:
    """Sort key that predicts token count: images first (each adds a fixed token block), then characters."""
    return (len(record.images), len(record.prompt) + len(record.answer))


def prefetched_samples(records, data, batch_size: int, prepare=None) -> Iterator[tuple[list[int], Any]]:
    """``(indices, samples)`` per ``length_sorted_batches`` batch of ``records``, the next batches' images
    decoded in a background thread while the caller runs the current one.

    With ``prepare``, the thread also runs ``prepare(samples)`` (e.g. ``ModelRunner.encode``: chat
    template, tokenising, image tiling) and its result is yielded instead of the samples.
    """

    def load(idx: list[int]):
        samples = [sample_from_record(records[i], data) for i in idx]
        return prepare(samples) if prepare is not None else samples

    return prefetched(length_sorted_batches([length_key(r) for r in records], batch_size, "selection.features.batch_size"), load)


def find_decoder_layers(model) -> torch.nn.ModuleList:
    """The language model's decoder layers, looked up along :data:`DECODER_LAYER_PATHS`."""
    for path in DECODER_LAYER_PATHS:
        obj = model
        for name in path.split("."):
            obj = getattr(obj, name, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList) and len(obj) > 0:
            return obj
    raise ValueError(
        f"cannot find the decoder layers of {type(model).__name__}: none of {', '.join(DECODER_LAYER_PATHS)} "
        "is a ModuleList; add this family's path to DECODER_LAYER_PATHS in selection/features/inputs.py"
    )


@contextlib.contextmanager
def capture(modules: Sequence[torch.nn.Module], what: Literal["input", "output"]):
    """Collect one tensor per module from the next forward pass into a list (slot i: ``modules[i]``).

    ``what="input"``: the first positional input (a forward pre-hook), e.g. ``o_proj``'s input, the
    concatenated attention heads. ``what="output"``: the output, its first element when the module
    returns a tuple (decoder layers return ``(hidden, ...)``). Hooks are removed on exit, also on error.
    """
    if what not in ("input", "output"):
        raise ValueError(f"capture: what must be 'input' or 'output', got {what!r}")
    captured: list = [None] * len(modules)

    def keep(slot, value):
        # a pre-hook's positional arguments are always a tuple; an output is one when a layer returns extras
        captured[slot] = value[0] if isinstance(value, tuple) else value

    def register(slot, module):
        if what == "input":
            return module.register_forward_pre_hook(lambda _module, args: keep(slot, args))
        return module.register_forward_hook(lambda _module, _args, output: keep(slot, output))

    handles = [register(i, m) for i, m in enumerate(modules)]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def resolve_layers(layers: Sequence[int], depth: int, key: str = "selection.features.layers") -> list[int]:
    """Check layer indices against the model depth; negative indices count from the end (-1: last)."""
    if not layers:
        raise ValueError(f"{key}: empty; list at least one decoder layer index")
    resolved = []
    for layer in layers:
        index = layer + depth if layer < 0 else layer
        if not 0 <= index < depth:
            raise ValueError(
                f"{key}: layer {layer} does not exist, the model has {depth} decoder layers "
                f"(valid: 0..{depth - 1} or -{depth}..-1); set {key} to layers of this model"
            )
        resolved.append(index)
    return resolved


def with_path(model_cfg, path: str | None):
    """A copy of ``model_cfg`` that loads from ``path`` (unchanged when ``path`` is None)."""
    if path is None or str(path) == str(model_cfg.path):
        return model_cfg
    cfg = copy.deepcopy(model_cfg)
    cfg.path = str(path)
    return cfg


class ModelRunner:
    """A loaded adapter model that encodes samples into batches and runs them (inference only).

    Args:
        model_cfg: ``model`` recipe section (``path``, ``adapter``, ``dtype``, ...).
        max_patches: tiles per image (1: one tile, the cheapest; features do not need dynamic tiling).
    """

    def __init__(self, model_cfg, max_patches: int = 1):
        from finetune.distributed import process_state
        from finetune.models.adapters import get_adapter

        self.adapter = get_adapter(model_cfg.adapter)
        self.model, self.processor = self.adapter.load(model_cfg)
        self.device = process_state().device
        self.model.to(self.device).eval()
        self.max_patches = max_patches
        self.image_token_id = self.adapter.image_token_id(self.model)
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer = tokenizer
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        # Tiles per image: training's rule with this runner's budget (1: one tile, the cheapest).
        self.tiling_cfg = copy.deepcopy(model_cfg)
        self.tiling_cfg.max_dynamic_patch = max_patches
        if hasattr(self.processor, "max_tiles"):  # remote-code families read the budget from the processor
            self.processor.max_tiles = max_patches

    def run_for_hidden_states(self, batch) -> None:
        """Forward pass whose result is read by hooks: skip the LM head over all but one position."""
        import inspect

        kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {}
        self.model(**batch, use_cache=False, **kwargs)

    def encode_with_labels(self, samples: Sequence[Sample]):
        """The training encoding of each sample (``adapter.encode_for_training``, never truncated),
        left-padded into one batch on the model's device; and the (B, T) labels (-100: not supervised)."""
        from transformers import BatchFeature

        rows = [self.adapter.encode_for_training(self.processor, training_record(s), list(s.images), ENCODE_MAX_LENGTH,
                                                 model_cfg=self.tiling_cfg) for s in samples]
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for b, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[b, width - n :] = torch.tensor(row["input_ids"])
            mask[b, width - n :] = 1
            labels[b, width - n :] = torch.tensor(row["labels"])
        batch = {"input_ids": ids, "attention_mask": mask}
        for key in ("pixel_values", "image_flags"):
            parts = [row[key] for row in rows if key in row]
            if parts:
                batch[key] = torch.cat(parts)
        batch = BatchFeature(batch).to(self.device)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
        return batch, labels.to(self.device)

    def encode(self, samples: Sequence[Sample]):
        """``encode_with_labels`` without the labels: the batch the feature backends run."""
        return self.encode_with_labels(samples)[0]


# In cache keys: features and signals made with another encoding are never reused.
ENCODING = "training-v1"
# Selection never truncates a sample (a feature of half a conversation would be another sample's).
ENCODE_MAX_LENGTH = 1 << 20


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, H) over positions where ``mask`` (B, T) is true; zeros where none.

    Selects with ``where`` rather than multiplying, so NaN/inf in padded positions cannot leak in.
    """
    mask3 = mask.unsqueeze(-1)
    total = torch.where(mask3, hidden.float(), torch.zeros((), device=hidden.device)).sum(dim=1)
    return total / mask.sum(dim=1, keepdim=True).clamp(min=1)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1, eps=1e-12)


def nan_rows(array: np.ndarray) -> np.ndarray:
    """Boolean per row: any NaN/inf."""
    return ~np.isfinite(array).all(axis=tuple(range(1, array.ndim)))


def encode_in_length_order(records, data, batch_size: int, features, prepare=None) -> tuple[np.ndarray, dict[str, int]]:
    """Run ``features(samples) -> (tensor (B, D), stats)`` over records in length-sorted batches.

    With ``prepare``, ``features`` receives ``prepare(samples)`` instead, computed ahead in the loader
    thread while the model runs the previous batch (the model's input preparation is CPU work that a
    per-batch loop would otherwise leave the accelerator waiting on).

    Returns rows in record order (float32, non-finite rows zeroed and counted as ``nan_rows``) and
    the summed stats.
    """
    out, totals = None, {}
    for idx, inputs in prefetched_samples(records, data, batch_size, prepare):
        rows, stats = features(inputs)
        rows = rows.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(records), rows.shape[1]), dtype=np.float32)
        out[idx] = rows
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    bad = nan_rows(out)
    out[bad] = np.nan_to_num(out[bad], nan=0.0, posinf=0.0, neginf=0.0)
    return out, {**totals, "nan_rows": int(bad.sum())}


def model_backend_identity(name: str, model_cfg, features_cfg, **extra) -> dict:
    """What decides a model backend's features: its name, checkpoint fingerprint and settings."""
    from selection.features.store import model_fingerprint

    return {
        "backend": name,
        "model": model_fingerprint(model_cfg.path),
        "adapter": model_cfg.adapter,
        "dtype": model_cfg.dtype,
        "layers": list(features_cfg.layers),
        "max_patches": features_cfg.max_patches,
        "encoding": ENCODING,
        **extra,
    }
