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
