"""Bad images stop a run before step 1, naming file:line, or with data.skip_bad are skipped and counted."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from bad_files import write_png_header
from PIL import Image
from recipe_sections import library_recipe

from finetune.collator import SupervisedDataset
from finetune.data.loader import load_training_data
from finetune.data.validate import BadRecordError
from finetune.models.adapters import get_adapter

QUESTION = "<image>\nWhat colour is the image?"


@pytest.fixture(scope="module")
def processor_and_adapter(tiny_internvl):
    adapter = get_adapter("internvl_hf")
    _, processor = adapter.load(library_recipe(f"model.path={tiny_internvl}").model)
    return processor, adapter


BAD = ("missing", "empty", "fifo", "truncated_jpeg", "truncated_png", "bomb", "symlink_out")
REASONS = {"missing": "missing_image", "empty": "empty_image", "fifo": "not_a_file", "truncated_jpeg": "unreadable_image",
           "truncated_png": "unreadable_image", "bomb": "image_too_large", "symlink_out": "path_escape"}


def _write_set(tmp_path, bad: tuple[str, ...]):
    """One good record (line 3 of a.json) then one record per bad image kind, each on its own line."""
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (40, 40), (200, 20, 20)).save(root / "good.png")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    noise.save(tmp_path / "full.jpg", quality=95)
    noise.save(tmp_path / "full.png")
    for name, suffix in (("truncated_jpeg", "jpg"), ("truncated_png", "png")):
        data = (tmp_path / f"full.{suffix}").read_bytes()
        (root / f"{name}.{suffix}").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    os.mkfifo(root / "fifo.png")
    write_png_header(root / "bomb.png", 20000, 20000)
    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "elsewhere" / "secret.png")
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    files = {"missing": "missing.png", "empty": "empty.png", "fifo": "fifo.png", "truncated_jpeg": "truncated_jpeg.jpg",
             "truncated_png": "truncated_png.png", "bomb": "bomb.png", "symlink_out": "linked/secret.png"}
    rows = [{"id": "good", "image": "good.png", "conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": "red"}]}]
    rows += [{"id": kind, "image": files[kind], "conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": "red"}]}
             for kind in bad]
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path, root


def _dataset(tmp_path, processor_and_adapter, bad, skip_bad):
    path, root = _write_set(tmp_path, bad)
    cfg = library_recipe(f"data.datasets=[{{name: a, path: '{path}', image_root: '{root}'}}]",
                         f"data.cache_dir={tmp_path / 'cache'}", f"data.skip_bad={str(skip_bad).lower()}")
    data = load_training_data(cfg)
    processor, adapter = processor_and_adapter
    outcome = {}

    def build():  # in a thread so that a FIFO that blocks fails the test instead of hanging it
        try:
            outcome["dataset"] = SupervisedDataset(data.records, data, processor, adapter, cfg.model, 512, progress=False,
                                                   skip_bad=skip_bad)
        except Exception as err:  # noqa: BLE001  (handed to the test below)
            outcome["error"] = err

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(timeout=900)
    assert outcome, "the length pass hung"
    return path, outcome


def test_every_bad_image_kind_is_skipped_and_counted_with_skip_bad(tmp_path, processor_and_adapter):
    _, outcome = _dataset(tmp_path, processor_and_adapter, BAD, skip_bad=True)
    dataset = outcome["dataset"]
    assert [r.id for r in dataset.records] == ["good"]
    counted = {}
    for kind in BAD:
        counted[REASONS[kind]] = counted.get(REASONS[kind], 0) + 1
    assert dict(dataset.skipped) == counted


@pytest.mark.parametrize("kind", BAD)
def test_without_skip_bad_a_bad_image_stops_before_step_1_naming_file_and_line(tmp_path, processor_and_adapter, kind):
    path, outcome = _dataset(tmp_path, processor_and_adapter, (kind,), skip_bad=False)
    error = outcome.get("error")
    assert isinstance(error, BadRecordError), outcome
    assert str(error).startswith(f"{path}:2: record '{kind}': image ")
    assert "data.skip_bad=true" in str(error)
