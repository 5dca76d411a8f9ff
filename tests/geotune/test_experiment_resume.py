"""A run killed after a checkpoint and started again reproduces the uninterrupted run: losses, learning
rates, the summary's counts and (full mode) the weights. ``run_experiment`` finds the checkpoint and resumes."""

from __future__ import annotations

import json

import pytest
import torch
from colours import colour_training
from transformers import TrainerCallback

from finetune.training import build_trainer
from geotune.config import load_recipe
from geotune.experiment import run_experiment


class StopAfter(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def recipe(model_path, run_dir, *overrides):
    return load_recipe(None, colour_training(model_path, run_dir, *overrides))


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_resume_reproduces_the_uninterrupted_run(tiny_internvl, colour_data, tmp_path, mode):
    common = ("train.max_steps=8", "train.save_steps=4", "train.learning_rate=5e-3", "train.lr_scheduler=cosine",
              "train.warmup_ratio=0.25", "train.lora.dropout=0.1", "train.per_device_batch_size=2", f"train.mode={mode}")
    full = run_experiment(recipe(tiny_internvl, tmp_path / "a", *common), data=colour_data)
    # The same run, killed after step 4 (checkpoint-4 on disk), then started again.
    run_b = tmp_path / "b"
    interrupted = build_trainer(recipe(tiny_internvl, run_b, *common), colour_data)
    interrupted.add_callback(StopAfter(4))
    interrupted.train()
    assert not (run_b / "checkpoint-8").exists()
    resumed = run_experiment(recipe(tiny_internvl, run_b, *common), data=colour_data)
    assert resumed["resumed_from"].endswith("checkpoint-4")
    assert resumed["steps"] == 8
    state = json.loads((run_b / "checkpoint-8" / "trainer_state.json").read_text())
    losses_b = [e["loss"] for e in state["log_history"] if "loss" in e]
    lrs_a = [e["learning_rate"] for e in json.loads((tmp_path / "a" / "checkpoint-8" / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    lrs_b = [e["learning_rate"] for e in state["log_history"] if "loss" in e]
    assert losses_b == pytest.approx(full["losses"], abs=1e-5)  # full mode: the resumed half starts from step 4's weights
    assert lrs_b == pytest.approx(lrs_a)
    # the summary counts the whole run, not only the part after the restart
    for key in ("samples_seen", "tokens", "padded_slots"):
        assert resumed[key] == full[key], key
    weights = "adapter_model.safetensors" if mode == "lora" else "model.safetensors"
    assert (run_b / "final" / weights).exists()
    if mode == "full":
        from safetensors.torch import load_file

        a, b = load_file(tmp_path / "a" / "final" / weights), load_file(run_b / "final" / weights)
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
