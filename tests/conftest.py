"""Shared fixtures: tiny offline models, built once per test session."""

from __future__ import annotations

import os
import socket

import pytest

# Nothing in the test suite may reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _cache_root(tmp_path_factory, monkeypatch):
    """Every test's caches under one temporary root (finetune.cache), never the user's ~/.cache/geotune."""
    monkeypatch.setenv("GEOTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "geotune-cache"))


@pytest.fixture(scope="session")
def tiny_internvl(tmp_path_factory):
    """Path of a tiny random-init HF-native InternVL checkpoint (64-px tiles, 16 image tokens)."""
    from finetune.models.tiny import build_tiny_internvl

    return build_tiny_internvl(tmp_path_factory.mktemp("models") / "tiny-internvl", seed=0)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """``free_port()`` -> a loopback port nothing listens on now, for each torchrun launch (``--master_port``):
    a fixed port can meet an earlier launch's socket still in TIME_WAIT."""
    return _unused_port
