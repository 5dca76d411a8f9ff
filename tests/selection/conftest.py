"""Synthetic features and records for selection tests."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.data.records import Record


def clustered_features(n: int, k: int, dim: int, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit-ish rows around ``k`` random centres (fp16) and their true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.arange(n) % k
    x = centres[labels] + noise * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), labels


def make_records(n: int) -> list[Record]:
    tasks = ("classification", "vqa", "caption")
    return [
        Record(
            id=f"r{i:04d}",
            images=[f"img{i}.png"],
            conversations=[{"from": "human", "value": "<image>\nWhat is this? " + "word " * (i % 7)},
                           {"from": "gpt", "value": "a scene " * (1 + i % 3)}],
            source="synth_a" if i % 4 else "synth_b",
            task=tasks[i % 3],
        )
        for i in range(n)
    ]


@pytest.fixture
def clustered():
    """``clustered(n, k, dim, seed=0, noise=0.05) -> (features fp16, labels)``."""
    return clustered_features


@pytest.fixture
def records():
    """``records(n) -> list[Record]`` with three tasks and two sources."""
    return make_records


@pytest.fixture(scope="session")
def explorer_run(tmp_path_factory):
    """A real small selection run: the pool above loaded by the data loader, ``self_sup`` on MiniLM text
    features in 4 clusters, half kept; returns ``(run_dir, data)`` (report.html under run_dir/selection)."""
    from explorer_pool import write_small_pool
    from recipe_sections import library_recipe

    from finetune.data.loader import load_training_data
    from selection.config import SelectionConfig, check_values
    from selection.pipeline import run_selection

    root = tmp_path_factory.mktemp("explorer")
    pool = write_small_pool(root / "pool")
    cfg = library_recipe(f"run_dir={root / 'run'}", f"data.datasets=[{{name: small, path: '{pool}'}}]",
                         "selection.method=self_sup", "selection.keep=0.5", "selection.clusters=4",
                         "selection.features.backend=text", f"selection.features.cache_dir={root / 'features'}",
                         sections={"selection": (SelectionConfig, check_values)})
    data = load_training_data(cfg)
    run_selection(cfg, data)
    return root / "run", data
