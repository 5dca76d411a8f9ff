"""Records → supervised samples (``SupervisedDataset``) → padded batches (``DataCollatorForVLM``)."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import torch
from tqdm.auto import tqdm

from finetune.data.images import ImageError
from finetune.data.loader import SKIP_HINT
from finetune.data.validate import BadRecordError
from finetune.models.adapters.supervision import IGNORE_INDEX, SkipSample


class SupervisedDataset(torch.utils.data.Dataset):
    """Training samples encoded on demand, with exact lengths known up front.

    The constructor runs a *length pass*: each record is laid out with its images' sizes only (the
    image header, no decoding, no tiling), which gives its exact token count, so the length-grouped
    sampler has lengths before step 1 and over-long or malformed records are dropped and counted
    before training starts. Where the adapter computes image tensors apart (``pixels_for_training``:
    ids do not depend on pixels), the length pass's ids and labels are kept (int32) and ``__getitem__``
    only loads and tiles the images: each record is tokenised once per run, not once per epoch plus once.
    Images get the cheap checks of ``finetune.data.images.check_image``
    (missing, FIFO, empty, too large, truncated): a bad one stops the run naming its file:line, or
    with ``skip_bad`` (``data.skip_bad``) is dropped and counted under its reason. Pixels are computed in ``__getitem__`` (in DataLoader workers).
    Pixel cache (``pixel_cache_bytes``, recipe ``train.pixel_cache_mb``; adapters with
    ``pixels_for_training`` only): the image tensors of a sample are kept after its first visit while
    they fit in the budget, so a later epoch neither reads nor tiles its images again (the same tensors:
    nothing in them is random). First come, first kept; never in a DataLoader worker, which HF starts
    again every epoch. The collator concatenates tiles into a new tensor, so a batch never shares the
    cache's storage.

    Attributes:
        records: the records kept, in order.
        lengths: their token counts (image tokens included).
        skipped: ``{reason: count}`` of records dropped.
        truncated: how many kept records were cut to ``max_length`` (text only).
    """

    def __init__(self, records, data, processor, adapter, model_cfg, max_length: int, too_long: str = "truncate",
                 progress: bool = True, skip_bad: bool = False, pixel_cache_bytes: int = 0):
        if too_long not in ("truncate", "drop"):
            raise ValueError(f"train.too_long: '{too_long}' is not one of truncate, drop")
        self.data, self.processor, self.adapter, self.model_cfg = data, processor, adapter, model_cfg
        self.max_length, self.too_long = int(max_length), too_long
        self.records, self.lengths, self.skipped, self.truncated = [], [], Counter(), 0
        self._pixels = getattr(adapter, "pixels_for_training", None)
        ids, labels = array("i"), array("i")  # all kept records' tokens end to end (one buffer, not 2 per record)
        for record in tqdm(records, desc="length pass", disable=not progress, mininterval=2):
            try:
                sizes = [self._image_size(record, i, skip_bad) for i in range(len(record.images))]
                encoded = self._encode(record, sizes)
            except SkipSample as skip:
                self.skipped[skip.reason] += 1
                continue
            self.records.append(record)
            self.lengths.append(len(encoded["input_ids"]))
            if self._pixels is not None:
                ids.extend(encoded["input_ids"])
                labels.extend(encoded["labels"])
            self.truncated += bool(encoded["truncated"])
        self._ids, self._labels = torch.tensor(ids, dtype=torch.int32), torch.tensor(labels, dtype=torch.int32)
        self._starts = [0, *accumulate(self.lengths)] if self._pixels is not None else []
        self._pixel_cache: dict[int, dict[str, torch.Tensor]] = {}
        self._pixel_cache_left = int(pixel_cache_bytes)

    def _image_size(self, record, i: int, skip_bad: bool) -> tuple[int, int]:
        """The image's size after the cheap checks (``images.check_image``): a bad image stops the run here,
        before step 1, naming the record's file:line, or with ``data.skip_bad`` is skipped and counted."""
        try:
            return self.data.image_size(record, i)
        except ImageError as err:
            if skip_bad:
                raise SkipSample(err.reason, f"{record.where}: {err}") from err
            raise BadRecordError(f"{record.where}: {err}\n  -> {SKIP_HINT}") from err

    def _encode(self, record, images) -> dict:
        return self.adapter.encode_for_training(
            self.processor, record, images, self.max_length, model_cfg=self.model_cfg, too_long=self.too_long
        )

    def __len__(self) -> int:
        return len(self.records)

    def _images(self, record) -> list:
        return [self.data.load_image(record, i) for i in range(len(record.images))]

    def _pixels_of(self, index: int) -> dict[str, torch.Tensor]:
        """The sample's image tensors: from the pixel cache, else computed (and kept while they fit)."""
        cached = self._pixel_cache.get(index)
        if cached is not None:
            return cached
        pixels = self._pixels(self.processor, self._images(self.records[index]), model_cfg=self.model_cfg)
        size = sum(t.nbytes for t in pixels.values())
        if size <= self._pixel_cache_left and torch.utils.data.get_worker_info() is None:
            self._pixel_cache[index] = pixels
            self._pixel_cache_left -= size
        return pixels

    def release_pixel_cache(self) -> None:
        """Free the pixel cache and keep nothing more (training is over: evaluation wants the memory)."""
        self._pixel_cache, self._pixel_cache_left = {}, 0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._pixels is not None:
            span = slice(self._starts[index], self._starts[index + 1])
            return {**self._pixels_of(index), "input_ids": self._ids[span].long(), "labels": self._labels[span].long()}
        record = self.records[index]
        encoded = self._encode(record, self._images(record))
        sample = {k: v for k, v in encoded.items() if k != "truncated"}
        sample["input_ids"] = torch.tensor(sample["input_ids"], dtype=torch.long)
        sample["labels"] = torch.tensor(sample["labels"], dtype=torch.long)
        return sample


@dataclass
class DataCollatorForVLM:
    """Pads a list of samples into one batch (right padding: training only).

    Input, per sample (dict):
        ``input_ids``: LongTensor (L_i,); ``labels``: LongTensor (L_i,), ``-100`` where not supervised;
        optional ``pixel_values``: FloatTensor (T_i, 3, H, W), one row per tile;
        optional ``image_flags``: LongTensor (T_i,), 1 for a real tile, 0 for a text-only dummy tile;
        any other tensor (e.g. Qwen2-VL's ``image_grid_thw`` (n_i, 3)) is per image/tile, like ``pixel_values``.

    Output (dict of tensors):
        ``input_ids``: (B, L) padded with ``pad_token_id``, L = longest L_i (rounded up to
        ``pad_to_multiple_of``); ``labels``: (B, L) padded with ``-100``; ``attention_mask``: (B, L),
        1 on real tokens; ``pixel_values``: (sum T_i, 3, H, W), samples' tiles concatenated in order
        (absent when no sample has any); ``image_flags``: (sum T_i,) concatenated (absent likewise);
        other keys likewise concatenated along dim 0.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(s["input_ids"]) for s in samples)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": torch.full((len(samples), longest), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(samples), longest), IGNORE_INDEX, dtype=torch.long),
            "attention_mask": torch.zeros((len(samples), longest), dtype=torch.long),
        }
        for row, sample in enumerate(samples):
            n = len(sample["input_ids"])
            batch["input_ids"][row, :n] = torch.as_tensor(sample["input_ids"])
            batch["labels"][row, :n] = torch.as_tensor(sample["labels"])
            batch["attention_mask"][row, :n] = 1
        image_keys = sorted({k for s in samples for k in s} - {"input_ids", "labels"})
        for key in image_keys:
            parts = [s[key] for s in samples if s.get(key) is not None]
            if parts:
                batch[key] = torch.cat(parts, dim=0)
        return batch
