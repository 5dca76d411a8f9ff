"""Tiny InternVL, LoRA and full: the loss falls, every trainable parameter moves, frozen ones do not; resume."""

from __future__ import annotations

import json

import pytest
import torch
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
    return load_recipe(None, [
        f"model.path={model_path}", f"run_dir={run_dir}", "seed=0", "train.max_steps=20",
        "train.per_device_batch_size=4", "train.logging_steps=1", "train.report_to=[none]", "train.warmup_ratio=0",
        "train.lr_scheduler=constant", "train.save_steps=1000", "train.lora.r=8", "train.lora.alpha=16",
        "train.lora.dropout=0.0", *overrides,
    ])


def train_and_compare(cfg, data):
    trainer = build_trainer(cfg, data)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    changed = {n: not torch.equal(before[n], p.detach()) for n, p in trainer.model.named_parameters()}
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    return losses, changed, trainable


def assert_learns(losses, changed, trainable, min_drop):
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < losses[0] - min_drop, losses
    assert trainable and all(changed[n] for n in trainable), [n for n in trainable if not changed[n]]
    assert not any(changed[n] for n in changed if n not in trainable), [n for n in changed if changed[n] and n not in trainable]


def test_lora_learns_colours_and_only_lora_and_projector_move(tiny_internvl, colour_data, tmp_path):
    cfg = recipe(tiny_internvl, tmp_path / "run", "train.mode=lora", "train.learning_rate=1e-2")
    losses, changed, trainable = train_and_compare(cfg, colour_data)
    # LoRA cannot grow the frozen, tied 0.02-std embeddings of a random tiny model: logits stay within
    # ~|e|·sqrt(d) ≈ 1.3 of each other, so the loss floor is ~5 nats (full mode goes below 2).
    assert_learns(losses, changed, trainable, min_drop=0.5)
    assert all("lora_" in n or "multi_modal_projector" in n for n in trainable)
    assert not any("vision_tower" in n and "lora_" in n for n in trainable)


def test_full_mode_trains_llm_and_projector_vision_frozen(tiny_internvl, colour_data, tmp_path):
    cfg = recipe(tiny_internvl, tmp_path / "run", "train.mode=full", "train.learning_rate=3e-3")
    losses, changed, trainable = train_and_compare(cfg, colour_data)
    assert_learns(losses, changed, trainable, min_drop=3.0)
    assert any("language_model" in n for n in trainable) and any("multi_modal_projector" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)


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


def test_gradient_checkpointing_with_lora_still_trains(tiny_internvl, colour_data, tmp_path):
    cfg = recipe(tiny_internvl, tmp_path / "run", "train.mode=lora", "train.learning_rate=1e-2",
                 "train.gradient_checkpointing=true", "train.max_steps=2")
    trainer = build_trainer(cfg, colour_data)
    assert trainer.model.get_base_model().model.language_model.gradient_checkpointing
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert all(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if "lora_B" in n)
