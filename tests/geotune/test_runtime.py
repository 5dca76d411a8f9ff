"""The process environment is set in one place (geotune.runtime), defaults only, before any work."""

import os

import pytest
from omegaconf import OmegaConf

from geotune.runtime import configure_process


def _cfg(report_to=("none",), deepspeed=None):
    return OmegaConf.create({"train": {"report_to": list(report_to), "deepspeed": deepspeed}})


def test_defaults_are_set_and_user_values_win(monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    changed = configure_process(_cfg(report_to=["wandb"]))
    assert changed == {"TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline"}
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    monkeypatch.setenv("WANDB_API_KEY", "k")
    monkeypatch.delenv("WANDB_MODE")
    assert configure_process(_cfg(report_to=["wandb"])) == {}
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true" and "WANDB_MODE" not in os.environ


def test_accelerate_deepspeed_on_cpu_without_a_config_is_refused_before_work(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="train.deepspeed=recipes/deepspeed/zero2.json"):
        configure_process(_cfg())


def test_cpu_deepspeed_config_is_checked_and_wired(monkeypatch, tmp_path):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    bad = tmp_path / "ds.json"
    bad.write_text('{"optimizer": {"type": "AdamW"}}')
    with pytest.raises(ValueError, match="optimizer"):
        configure_process(_cfg(deepspeed=str(bad)))
    monkeypatch.delenv("ACCELERATE_TORCH_DEVICE", raising=False)
    good = tmp_path / "ok.json"
    good.write_text('{"zero_optimization": {"stage": 2}}')
    changed = configure_process(_cfg(deepspeed=str(good)))
    assert changed.get("ACCELERATE_TORCH_DEVICE") == "cpu"
    from accelerate.state import PartialState

    assert getattr(PartialState._prepare_backend, "_geotune_cpu_deepspeed", False)
