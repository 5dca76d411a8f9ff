import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from finetune.data.records import Record
from selection.features.inputs import ModelRunner, sample_from_record
from selection.signals import answer_losses, answer_token_mask, distance, loss_scores, shift_scores


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
]


@pytest.fixture
def model_cfg(tiny_internvl):
    return SimpleNamespace(path=str(tiny_internvl), adapter="internvl_hf", trust_remote_code=False, dtype="float32")


def test_shift_scores_shape_sign_and_cache(model_cfg, tmp_path):
    opts = {"cache_dir": str(tmp_path), "batch_size": 2, "shard_size": 3, "prefer": "high"}
    computed = []
    shift = shift_scores(RECORDS, SeededImages(), model_cfg, opts, on_shard_done=computed.append)
    assert shift.shape == (5,) and shift.dtype == np.float32 and computed == [0, 1]
    assert np.all(shift[[0, 1, 2, 4]] > 0)
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


def test_answer_token_mask_on_left_padded_rows():
    attention = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    assert answer_token_mask(attention, [2, 3]).int().tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]]


def test_loss_scores_equal_hf_loss_on_answer_tokens_only(model_cfg, tmp_path):
    scores = loss_scores(RECORDS, SeededImages(), model_cfg, cache_root=str(tmp_path), batch_size=3)
    assert set(scores) == {"loss", "el2n"}
    assert all(v.shape == (5,) and np.all(np.isfinite(v)) for v in scores.values())
    assert np.all(scores["el2n"] > 0) and np.all(scores["el2n"] < np.sqrt(2))
    # reference: HF's own loss with labels = answer tokens (+ end of turn) only, one sample at a time
    runner = ModelRunner(model_cfg)
    for i in (0, 2, 3):
        sample = sample_from_record(RECORDS[i], SeededImages())
        batch = runner.encode([sample])
        n_answer = runner.answer_lengths([sample])[0]
        labels = torch.full_like(batch["input_ids"], -100)
        labels[:, -n_answer:] = batch["input_ids"][:, -n_answer:]
        with torch.inference_mode():
            want = runner.model(**batch, labels=labels).loss.item()
        assert scores["loss"][i] == pytest.approx(want, rel=1e-4)
        loss, el2n, mismatched = answer_losses(runner, [sample])
        assert mismatched == 0 and loss.item() == pytest.approx(want, rel=1e-4)


def test_signal_cache_defaults_to_the_cache_root_not_the_current_folder(model_cfg, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GEOTUNE_CACHE", str(tmp_path / "root"))
    loss_scores(RECORDS[:2], SeededImages(), model_cfg)
    assert [p.name.split("-")[0] for p in (tmp_path / "root" / "signals").iterdir()] == ["loss"]
    assert list(elsewhere.iterdir()) == []
