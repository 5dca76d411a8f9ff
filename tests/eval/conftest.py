"""Fixtures for eval tests: the tiny model loaded once (the benchmark layouts, ``bench_root``, are in
tests/conftest.py: the app's tests use them too)."""

from __future__ import annotations

import pytest


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
