"""DataCollatorForVLM on exact tiny tensors; SupervisedDataset tokenises each record once."""

from __future__ import annotations

import pytest
import torch
from colours import write_colour_set
from recipe_sections import library_recipe

from finetune.collator import DataCollatorForVLM, SupervisedDataset
from finetune.data.records import Record
from finetune.models.adapters import get_adapter
from finetune.models.adapters import supervision as sv


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


@pytest.mark.parametrize("family", ["internvl_hf", "internvl_remote"])
def test_each_record_is_tokenised_once_and_samples_equal_a_fresh_encode(family, request, tmp_path, monkeypatch):
    """The length pass's ids/labels are reused by ``__getitem__`` (they did not depend on pixels): two
    epochs of ``__getitem__`` tokenise nothing more, and every sample is what a full encode gives."""
    path = request.getfixturevalue("tiny_internvl" if family == "internvl_hf" else "standin_internvl")
    adapter = get_adapter(family)
    cfg = library_recipe(f"model.path={path}", f"model.adapter={family}",
                         *(["model.trust_remote_code=true"] if family == "internvl_remote" else []))
    _, processor = adapter.load(cfg.model)
    data = write_colour_set(tmp_path / "colours", per_class=2)
    data.records.append(Record(id="text", images=[], source="colours", task="caption", conversations=[
        {"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "red"}]))
    calls = []
    real = sv.tokenize_pieces
    monkeypatch.setattr(sv, "tokenize_pieces", lambda *a, **k: calls.append(1) or real(*a, **k))

    dataset = SupervisedDataset(data.records, data, processor, adapter, cfg.model, 512, progress=False)
    samples = [dataset[i] for _ in range(2) for i in range(len(dataset))]

    assert len(dataset) == len(data.records) == len(calls)  # once per record, in the length pass
    for i, sample in enumerate(samples[: len(dataset)]):
        record = dataset.records[i]
        images = [data.load_image(record, k) for k in range(len(record.images))]
        fresh = adapter.encode_for_training(processor, record, images, 512, model_cfg=cfg.model)
        assert sample.keys() == fresh.keys() - {"truncated"}
        assert sample["input_ids"].tolist() == fresh["input_ids"] and sample["labels"].tolist() == fresh["labels"]
        assert sample["input_ids"].dtype == sample["labels"].dtype == torch.long
        assert len(sample["input_ids"]) == dataset.lengths[i]
        for key in fresh.keys() - {"input_ids", "labels", "truncated"}:
            assert torch.equal(sample[key], fresh[key]), key
