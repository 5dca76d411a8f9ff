"""train.warmup_ratio reaches the learning-rate schedule as a ratio of the optimiser steps."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from packaging.version import Version
from recipe_sections import library_recipe

from finetune.training import training_arguments

ROOT = Path(__file__).resolve().parents[2]


def test_transformers_floor_reads_a_float_warmup_steps_as_a_ratio():
    # transformers 4.x has an int `warmup_steps` (0.01 -> 0.01 steps, i.e. no warmup) and a separate
    # `warmup_ratio`; 5.x reads a float in [0, 1) as the ratio. geotune passes the ratio as a float.
    floor = re.search(r'"transformers>=([0-9.]+)', (ROOT / "pyproject.toml").read_text()).group(1)
    assert Version(floor) >= Version("5.0")


@pytest.mark.parametrize(("ratio", "steps", "warmup"), [(0.1, 100, 10), (0.01, 318, 4), (0.0, 50, 0)])
def test_warmup_ratio_schedule(tmp_path, ratio, steps, warmup):
    cfg = library_recipe(f"run_dir={tmp_path}", f"train.warmup_ratio={ratio}", "train.lr_scheduler=linear",
                         "train.learning_rate=1e-3", "train.report_to=[none]")
    args = training_arguments(cfg)
    assert args.get_warmup_steps(steps) == warmup == math.ceil(ratio * steps)
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(steps),
                              num_training_steps=steps)
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    if warmup:
        assert lrs[0] == 0.0 and lrs[warmup // 2] == pytest.approx(1e-3 * (warmup // 2) / warmup)
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == warmup  # the peak right after warmup
