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


def test_lora_dropout_masks_sparse_by_default_and_learns_as_torch_dropout(tiny_internvl, colour_data, tmp_path):
    """``train.lora.dropout_masks``: sparse (default) swaps peft's dropout on every LoRA layer for
    ``SparseDropout``, torch keeps peft's ``nn.Dropout``; at dropout 0.1 both learn, to the same loss."""
    from finetune.sparse_dropout import SparseDropout

    runs = {}
    for masks in ("sparse", "torch"):
        cfg = recipe(tiny_internvl, tmp_path / masks, "train.mode=lora", "train.learning_rate=1e-2",
                     "train.lora.dropout=0.1", f"train.lora.dropout_masks={masks}")
        trainer = build_trainer(cfg, colour_data)
        layers = [m for m in trainer.model.modules() if hasattr(m, "lora_A")]
        kinds = {type(m.lora_dropout["default"]) for m in layers}
        assert kinds == ({SparseDropout} if masks == "sparse" else {torch.nn.Dropout}), kinds
        losses, changed, trainable = train_and_compare(cfg, colour_data)
        assert_learns(losses, changed, trainable, min_drop=0.5)
        runs[masks] = losses
    assert runs["sparse"] != runs["torch"]  # other masks...
    late = {k: sum(v[-5:]) / 5 for k, v in runs.items()}
    assert abs(late["sparse"] - late["torch"]) < 0.05 * late["torch"], late  # ...the same learning


def test_clipping_the_trainable_parameters_equals_hfs_clip_over_all(tiny_internvl, colour_data, tmp_path):
    """GeoTrainer._clip_grad_norm lists the trainable parameters once; HF walks model.parameters() each step.
    Same norm, same clipped gradients (max_grad_norm small enough to clip)."""
    from transformers import Trainer

    cfg = recipe(tiny_internvl, tmp_path / "run", "train.mode=lora", "train.lora.dropout=0.1",
                 "train.trainer_args={max_grad_norm: 0.001}")
    trainer = build_trainer(cfg, colour_data)
    model = trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.compute_loss(model, batch).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(p.requires_grad for n, p in model.named_parameters() if n in grads)
    ours = trainer._clip_grad_norm(model)
    clipped = {n: p.grad.clone() for n, p in model.named_parameters() if n in grads}
    for n, p in model.named_parameters():
        if n in grads:
            p.grad = grads[n].clone()
    hf = Trainer._clip_grad_norm(trainer, model)
    assert float(ours) == float(hf) > 0.001
    assert all(torch.equal(clipped[n], p.grad) for n, p in model.named_parameters() if n in grads)
    assert len(trainer._trainable_params) == sum(p.requires_grad for p in model.parameters())
