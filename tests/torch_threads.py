"""One torch thread per test that trains or runs a tiny model (imported by the conftests that want it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and OpenMP spin-waits make a busy 2-core machine
    several times slower (measured 8x); restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
