"""Fixtures for eval tests: tiny benchmark layouts and the tiny model loaded once."""

from __future__ import annotations

import eval_layouts as layouts
import pytest


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory):
    """A folder holding UCMerced_LandUse/, AID/, RSVQA_LR/ (text in split files) and GeoChat-Bench/."""
    return layouts.write_all(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="session")
def tiny_loaded(tiny_internvl):
    """``(model, processor, adapter)`` for the tiny InternVL, fp32 on CPU, in eval mode."""
    from omegaconf import OmegaConf

    from finetune.models.adapters import get_adapter

    adapter = get_adapter("internvl_hf")
    model, processor = adapter.load(OmegaConf.create({"path": str(tiny_internvl), "trust_remote_code": False, "dtype": "float32"}))
    model.eval()
    return model, processor, adapter
