"""A tiny record pool with images drawn by numpy, and a stand-in for ``TrainingData``."""

from __future__ import annotations

import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from finetune.data.records import Record
from selection.config import FeaturesConfig

QUESTIONS = ["Is there a road?", "How many small buildings are there?", "Describe the image in detail.",
             "Classify the given image in one of the following classes. Classes: forest, river, beach."]
ANSWERS = ["yes", "3", "The image shows a scene with roads, houses and trees seen from above.", "forest"]


class InMemoryData:
    """What selection reads of ``TrainingData``: ``image_path`` and ``load_image`` (a seeded RGB image)."""

    def __init__(self, records, size=(40, 56)):
        self.records, self.size = records, size

    def image_path(self, record, i=0) -> Path:
        return Path("/virtual") / record.images[i]

    def load_image(self, record, i=0) -> Image.Image:
        rng = np.random.default_rng(zlib.crc32(record.images[i].encode()))
        return Image.fromarray(rng.integers(0, 256, (*self.size, 3), dtype=np.uint8))


def make_records(n: int, text_only: tuple[int, ...] = ()) -> list[Record]:
    records = []
    for i in range(n):
        q, a = QUESTIONS[i % len(QUESTIONS)], ANSWERS[i % len(ANSWERS)]
        images = [] if i in text_only else [f"img{i}.png"]
        prefix = "" if i in text_only else "<image>\n"
        convs = [{"from": "human", "value": prefix + q}, {"from": "gpt", "value": a}]
        records.append(Record(id=f"r{i}", images=images, conversations=convs, source="synth"))
    return records


@pytest.fixture
def pool():
    records = make_records(10, text_only=(7,))
    return records, InMemoryData(records)


@pytest.fixture
def model_cfg(tiny_internvl):
    return SimpleNamespace(path=str(tiny_internvl), adapter="internvl_hf", trust_remote_code=False, dtype="float32")


@pytest.fixture
def features_cfg(tmp_path):
    def make(backend="reference", **kw):
        kw.setdefault("layers", [0, 1])
        kw.setdefault("batch_size", 4)
        kw.setdefault("shard_size", 4)
        return FeaturesConfig(backend=backend, cache_dir=str(tmp_path / "cache"), **kw)

    return make
