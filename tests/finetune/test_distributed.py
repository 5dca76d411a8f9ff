"""DeepSpeed on CPU: the configs geotune accepts (two ranks matching one process: tests/geotune/test_distributed_training.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.distributed import check_cpu_config

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_config_refuses_deepspeed_optimizer(tmp_path):
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 2}}))
    with pytest.raises(ValueError, match="torch AdamW"):
        check_cpu_config(str(config))
    check_cpu_config(str(ROOT / "recipes/deepspeed/zero3.json"))


def test_free_training_state_drops_the_model_and_the_pixel_cache():
    from types import SimpleNamespace

    from finetune.distributed import free_training_state

    released = []
    dataset = SimpleNamespace(release_pixel_cache=lambda: released.append(True))
    trainer = SimpleNamespace(accelerator=SimpleNamespace(free_memory=lambda: None), model=object(),
                              optimizer=object(), train_dataset=dataset)
    free_training_state(trainer)
    assert trainer.model is None and trainer.optimizer is None and released == [True]
    free_training_state(SimpleNamespace(accelerator=SimpleNamespace(free_memory=lambda: None)))  # no dataset: fine
