"""Tiny InternVL, LoRA and full: the loss falls, every trainable parameter moves, frozen ones do not (a run
resumed from its checkpoint: tests/geotune/test_experiment_resume.py)."""

from __future__ import annotations

import torch
from colours import colour_training
from recipe_sections import library_recipe

from finetune.training import build_trainer


def recipe(model_path, run_dir, *overrides):
    return library_recipe(*colour_training(model_path, run_dir, *overrides))


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


def test_gradient_checkpointing_with_lora_still_trains(tiny_internvl, colour_data, tmp_path):
    cfg = recipe(tiny_internvl, tmp_path / "run", "train.mode=lora", "train.learning_rate=1e-2",
                 "train.gradient_checkpointing=true", "train.max_steps=2")
    trainer = build_trainer(cfg, colour_data)
    assert trainer.model.get_base_model().model.language_model.gradient_checkpointing
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert all(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if "lora_B" in n)
