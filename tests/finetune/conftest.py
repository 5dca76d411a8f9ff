"""Fixtures for training tests: a tiny learnable colour set, stand-in remote-code checkpoints."""

from __future__ import annotations

import pytest
from colours import write_colour_set


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and OpenMP spin-waits make a busy 2-core machine
    several times slower (measured 8x); restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def colour_data(tmp_path):
    return write_colour_set(tmp_path / "colours")


@pytest.fixture(scope="session")
def standin_internvl(tmp_path_factory):
    """A tiny stand-in ``InternVLChatModel`` checkpoint (remote code + auto_map), Qwen2 / Hermes-2."""
    from finetune.models.standins import build_standin_internvl_chat

    return build_standin_internvl_chat(tmp_path_factory.mktemp("standins") / "internvl-chat", seed=0)


@pytest.fixture(scope="session")
def standin_xcomposer2(tmp_path_factory):
    """A tiny stand-in InternLM-XComposer2-VL checkpoint (remote code + auto_map)."""
    from finetune.models.standins import build_standin_xcomposer2

    return build_standin_xcomposer2(tmp_path_factory.mktemp("standins") / "xcomposer2", seed=0)
