"""DataCollatorForVLM on exact tiny tensors."""

from __future__ import annotations

import torch

from finetune.collator import DataCollatorForVLM


def test_pads_right_and_concatenates_tiles():
    a = {"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([-100, 6, 7]),
         "pixel_values": torch.full((2, 3, 2, 2), 1.0), "image_flags": torch.tensor([1, 1])}
    b = {"input_ids": torch.tensor([8]), "labels": torch.tensor([8]),
         "pixel_values": torch.full((1, 3, 2, 2), 2.0), "image_flags": torch.tensor([0])}
    batch = DataCollatorForVLM(pad_token_id=0)([a, b])
    assert set(batch) == {"input_ids", "labels", "attention_mask", "pixel_values", "image_flags"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["pixel_values"].shape == (3, 3, 2, 2)
    assert batch["pixel_values"][:, 0, 0, 0].tolist() == [1.0, 1.0, 2.0]
    assert batch["image_flags"].tolist() == [1, 1, 0]


def test_text_only_batch_has_no_pixels_and_multiple_of_padding():
    samples = [{"input_ids": [1, 2], "labels": [-100, 2]}, {"input_ids": [3, 4, 5], "labels": [3, 4, 5]}]
    batch = DataCollatorForVLM(pad_token_id=9, pad_to_multiple_of=4)(samples)
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["input_ids"].tolist() == [[1, 2, 9, 9], [3, 4, 5, 9]]
    assert batch["labels"].tolist() == [[-100, 2, -100, -100], [3, 4, 5, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
