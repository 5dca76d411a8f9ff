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


def _counting_loads(monkeypatch, data) -> list:
    """Every ``data.load_image`` call, recorded (the real image is still read)."""
    loads = []
    real = data.load_image
    monkeypatch.setattr(data, "load_image", lambda record, i=0: loads.append(record.id) or real(record, i))
    return loads


def test_each_image_is_read_and_tiled_once_per_run_within_the_pixel_cache(tiny_internvl, tmp_path, monkeypatch):
    """Epoch 2 takes the pixels epoch 1 computed (the same tensors a fresh encode gives) for as many
    samples as ``pixel_cache_bytes`` holds; the others are read again; batches never share the cache's storage."""
    adapter = get_adapter("internvl_hf")
    cfg = library_recipe(f"model.path={tiny_internvl}", "model.adapter=internvl_hf")
    _, processor = adapter.load(cfg.model)
    data = write_colour_set(tmp_path / "colours", per_class=2)
    loads = _counting_loads(monkeypatch, data)
    sizes = [adapter.pixels_for_training(processor, [data.load_image(r)], model_cfg=cfg.model)["pixel_values"].nbytes
             for r in data.records]
    loads.clear()

    whole = SupervisedDataset(data.records, data, processor, adapter, cfg.model, 512, progress=False,
                              pixel_cache_bytes=sum(sizes))
    epochs = [[whole[i] for i in range(len(whole))] for _ in range(2)]
    assert sorted(loads) == sorted(r.id for r in data.records)  # once each, in epoch 1
    for first, second, record in zip(*epochs, whole.records, strict=True):
        fresh = adapter.encode_for_training(processor, record, [data.load_image(record)], 512, model_cfg=cfg.model)
        assert torch.equal(second["pixel_values"], fresh["pixel_values"])
        assert second["input_ids"].tolist() == first["input_ids"].tolist() == fresh["input_ids"]
    batch = DataCollatorForVLM(pad_token_id=0)(epochs[1][:2])
    batch["pixel_values"].zero_()
    assert epochs[1][0]["pixel_values"].abs().sum() > 0  # the cached tensor is untouched

    loads.clear()
    half = SupervisedDataset(data.records, data, processor, adapter, cfg.model, 512, progress=False,
                             pixel_cache_bytes=sizes[0] + sizes[1] + min(sizes) // 2)
    for _ in range(2):
        for i in range(len(half)):
            half[i]
    assert len(loads) == 2 * len(data.records) - 2  # only the first two fit
    half.release_pixel_cache()  # after training, before evaluation
    loads.clear()
    for _ in range(2):
        half[0]
    assert len(loads) == 2  # read again each time, and nothing kept any more


def test_no_pixel_cache_when_off_or_in_a_dataloader_worker(tiny_internvl, tmp_path, monkeypatch):
    """``pixel_cache_bytes=0`` reads every image at every visit; so does a DataLoader worker (HF's workers
    are started again every epoch: what they cached would be lost, so they cache nothing)."""
    adapter = get_adapter("internvl_hf")
    cfg = library_recipe(f"model.path={tiny_internvl}", "model.adapter=internvl_hf")
    _, processor = adapter.load(cfg.model)
    data = write_colour_set(tmp_path / "colours", per_class=1)
    loads = _counting_loads(monkeypatch, data)
    off = SupervisedDataset(data.records, data, processor, adapter, cfg.model, 512, progress=False, pixel_cache_bytes=0)
    for _ in range(2):
        for i in range(len(off)):
            off[i]
    assert len(loads) == 2 * len(data.records)

    loads.clear()
    worker = SupervisedDataset(data.records, data, processor, adapter, cfg.model, 512, progress=False,
                               pixel_cache_bytes=1 << 30)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    for _ in range(2):
        for i in range(len(worker)):
            worker[i]
    assert len(loads) == 2 * len(data.records)
