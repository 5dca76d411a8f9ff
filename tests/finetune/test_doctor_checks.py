"""finetune/doctor.py's checks that need no checkpoint (the whole doctor: tests/geotune/commands/test_doctor.py)."""

from __future__ import annotations

import torch

from finetune.doctor import dummy_image, generations_agree


def test_dummy_image_is_deterministic():
    first, second = dummy_image(32), dummy_image(32)
    assert first.size == (32, 32) and list(first.getdata()) == list(second.getdata())
    assert torch.tensor(list(first.getdata())).float().std() > 10


def test_generations_agree_tolerates_only_near_ties():
    steps = [torch.tensor([0.0, 5.0, 5.00001]), torch.tensor([1.0, 0.0, 0.0])]
    assert generations_agree([1, 0], [1, 0], steps, torch.float32) == (True, "")
    ok, detail = generations_agree([1, 0], [2, 0], steps, torch.float32)
    assert ok and "near-tie" in detail
    ok, detail = generations_agree([0, 0], [2, 0], steps, torch.float32)
    assert not ok and detail.startswith("step 0: cached picks 0, uncached 2")
