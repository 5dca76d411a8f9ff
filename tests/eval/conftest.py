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


@pytest.fixture(scope="session")
def remote_checkpoints(tmp_path_factory):
    """Stand-in remote-code checkpoints: ``{name: (adapter, path)}``; InternVL with Qwen2 and with InternLM2."""
    from finetune.models.standins import build_standin_internvl_chat, build_standin_xcomposer2

    root = tmp_path_factory.mktemp("standins")
    return {
        "internvl_remote": ("internvl_remote", build_standin_internvl_chat(root / "internvl-qwen2", llm="qwen2")),
        "internvl_remote_internlm2": ("internvl_remote",
                                      build_standin_internvl_chat(root / "internvl-internlm2", llm="internlm2")),
        "xcomposer2": ("xcomposer2", build_standin_xcomposer2(root / "xcomposer2")),
    }
