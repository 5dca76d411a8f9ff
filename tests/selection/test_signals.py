import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from finetune.data.records import Record
from selection.features.inputs import ModelRunner, sample_from_record
from selection.signals import answer_losses, distance, loss_scores, shift_scores


class SeededImages:
    """Stand-in for TrainingData: a seeded random RGB image per image path."""

    def image_path(self, record, i=0):
        return Path("/virtual") / record.images[i]

    def load_image(self, record, i=0):
        rng = np.random.default_rng(zlib.crc32(record.images[i].encode()))
        return Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))


def make(i, question, answer, image=True):
    prefix = "<image>\n" if image else ""
    convs = [{"from": "human", "value": prefix + question}, {"from": "gpt", "value": answer}]
    return Record(f"s{i}", [f"s{i}.png"] if image else [], convs, "synth")


RECORDS = [
    make(0, "Is there a road?", "yes"),
    make(1, "How many small buildings are there?", "3"),
    make(2, "Describe the image in detail.", "The image shows roads and trees seen from above."),
    make(3, "What is the capital of France?", "Paris.", image=False),
    make(4, "Is it a rural or an urban area?", "rural"),
    Record("s5", ["s5.png"], [{"from": "human", "value": "<image>\nIs there a lake?"}, {"from": "gpt", "value": "yes"},
                              {"from": "human", "value": "Where is it?"}, {"from": "gpt", "value": "north"}], "synth"),
]


@pytest.fixture
def model_cfg(tiny_internvl):
    return SimpleNamespace(path=str(tiny_internvl), adapter="internvl_hf", trust_remote_code=False, dtype="float32")


def test_shift_scores_shape_sign_and_cache(model_cfg, tmp_path):
    opts = {"cache_dir": str(tmp_path), "batch_size": 2, "shard_size": 3, "prefer": "high"}
    computed = []
    shift = shift_scores(RECORDS, SeededImages(), model_cfg, opts, on_shard_done=computed.append)
    assert shift.shape == (6,) and shift.dtype == np.float32 and computed == [0, 1]
    assert np.all(shift[[0, 1, 2, 4, 5]] > 0)
    assert shift[3] == 0  # image noise cannot move a text-only sample
    again = shift_scores(RECORDS, SeededImages(), model_cfg, opts, on_shard_done=computed.append)
    assert computed == [0, 1] and np.array_equal(shift, again)


@pytest.mark.parametrize("dist", ["l2", "cosine"])
def test_identity_perturbation_gives_zero_shift(model_cfg, tmp_path, dist):
    opts = {"cache_dir": str(tmp_path), "perturbation": "identity", "distance": dist}
    shift = shift_scores(RECORDS, SeededImages(), model_cfg, opts)
    np.testing.assert_allclose(shift, 0.0, atol=1e-5)
    assert np.all(shift >= 0)


def test_text_perturbation_moves_text_only_samples_and_options_are_checked(model_cfg, tmp_path):
    opts = {"cache_dir": str(tmp_path), "perturbation": "text:word_shuffle", "distance": "cosine"}
    shift = shift_scores(RECORDS, SeededImages(), model_cfg, opts)
    assert shift[3] > 0 and np.all(shift >= 0)
    with pytest.raises(ValueError, match="selection.options.distance"):
        shift_scores(RECORDS, SeededImages(), model_cfg, {"distance": "manhattan"})


def test_distance_hand_computed():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    assert distance(a, b, "l2").item() == pytest.approx(5.0)
    assert distance(a, b, "cosine").item() == pytest.approx(1.0)


def test_loss_scores_equal_hf_loss_on_answer_tokens_only(model_cfg, tmp_path):
    scores = loss_scores(RECORDS, SeededImages(), model_cfg, cache_root=str(tmp_path), batch_size=3)
    assert set(scores) == {"loss", "el2n"}
    assert all(v.shape == (6,) and np.all(np.isfinite(v)) for v in scores.values())
    assert np.all(scores["el2n"] > 0) and np.all(scores["el2n"] < np.sqrt(2))
    # reference: HF's own loss on training's encoding and labels (the adapter's encode_for_training), one at a time
    runner = ModelRunner(model_cfg)
    for i in (0, 2, 3, 5):
        sample = sample_from_record(RECORDS[i], SeededImages())
        images = list(sample.images)
        row = runner.adapter.encode_for_training(runner.processor, RECORDS[i], images, 4096, model_cfg=runner.tiling_cfg)
        batch = {"input_ids": torch.tensor([row["input_ids"]]), "attention_mask": torch.ones(1, len(row["input_ids"]), dtype=torch.long)}
        if "pixel_values" in row:
            batch["pixel_values"] = row["pixel_values"]
        with torch.inference_mode():
            want = runner.model(**batch, labels=torch.tensor([row["labels"]])).loss.item()
        assert scores["loss"][i] == pytest.approx(want, rel=1e-4)
        loss, el2n = answer_losses(runner, [sample])
        assert loss.item() == pytest.approx(want, rel=1e-4)


def test_selection_encodes_samples_as_training_does(model_cfg):
    """Every turn, the family's template and end-of-turn token: not the first question/answer + eos."""
    from finetune.models.adapters import get_adapter

    runner = ModelRunner(model_cfg)
    adapter = get_adapter(model_cfg.adapter)
    batch = runner.encode([sample_from_record(r, SeededImages()) for r in RECORDS])
    for b, record in enumerate(RECORDS):
        images = [SeededImages().load_image(record, i) for i in range(len(record.images))]
        want = adapter.encode_for_training(runner.processor, record, images, 4096, model_cfg=runner.tiling_cfg)["input_ids"]
        row = batch["input_ids"][b][batch["attention_mask"][b].bool()].tolist()
        assert row == want, record.id
    text = runner.tokenizer.decode(batch["input_ids"][5][batch["attention_mask"][5].bool()])
    assert "Where is it?" in text and "north" in text  # the second exchange of the multi-turn record


def test_nan_shift_stays_nan_and_is_counted(model_cfg, tmp_path, monkeypatch):
    """A forward pass that gives NaN must not turn into shift 0, which `prefer: low` would keep first."""
    import json

    import selection.signals as signals

    real = signals.distance

    def nan_for_the_first_row(a, b, kind):  # a numerically failed sample (e.g. an fp16 overflow) per batch
        d = real(a, b, kind)
        d[0] = float("nan")
        return d

    monkeypatch.setattr(signals, "distance", nan_for_the_first_row)
    opts = {"cache_dir": str(tmp_path), "batch_size": 8, "shard_size": 8}
    shift = shift_scores(RECORDS, SeededImages(), model_cfg, opts)
    assert np.isnan(shift).sum() == 1  # one batch of 6: one failed row, not a shift of 0
    entry = next(tmp_path.glob("shift-*"))
    assert json.loads((entry / "report.json").read_text())["nan_rows"] == 1


def test_signal_cache_defaults_to_the_cache_root_not_the_current_folder(model_cfg, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GEOTUNE_CACHE", str(tmp_path / "root"))
    loss_scores(RECORDS[:2], SeededImages(), model_cfg)
    assert [p.name.split("-")[0] for p in (tmp_path / "root" / "signals").iterdir()] == ["loss"]
    assert list(elsewhere.iterdir()) == []
