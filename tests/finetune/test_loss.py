"""Logits at labelled positions only: the same loss and gradients as the model's own, in training too."""

from __future__ import annotations

import pytest
import torch
from test_training import recipe
from transformers.loss.loss_utils import ForCausalLMLoss

from finetune.loss import next_token_labelled, supervised_logits_loss, takes_boolean_logits_to_keep
from finetune.models.adapters.supervision import IGNORE_INDEX
from finetune.training import build_trainer


def hand_labels():
    labels = torch.full((2, 6), IGNORE_INDEX)
    labels[0, 3:5] = torch.tensor([7, 8])  # answer in the middle, padding after
    labels[1, 5] = 9  # one-token answer at the end
    return labels


def test_next_token_labelled_is_the_shifted_label_mask():
    assert next_token_labelled(hand_labels()).tolist() == [
        [False, False, True, True, False, False],
        [False, False, False, False, True, False],
    ]


@pytest.mark.parametrize("num_items", [None, 5])
def test_equals_hf_causal_lm_loss_on_full_and_sliced_logits(num_items):
    labels = hand_labels()
    logits = torch.randn(2, 6, 11, generator=torch.Generator().manual_seed(0))
    expected = ForCausalLMLoss(logits, labels, vocab_size=11, num_items_in_batch=num_items)
    full = supervised_logits_loss({"logits": logits}, labels, num_items)
    sliced = supervised_logits_loss({"logits": logits[next_token_labelled(labels)]}, labels, num_items)
    assert full.item() == pytest.approx(expected.item(), rel=1e-6)
    assert sliced.item() == pytest.approx(expected.item(), rel=1e-6)


def test_no_labelled_token_gives_zero_not_nan():
    logits = torch.randn(2, 6, 11, requires_grad=True)
    loss = supervised_logits_loss({"logits": logits[:0, 0]}, torch.full((2, 6), IGNORE_INDEX))
    assert loss.item() == 0.0


def one_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return {k: v for k, v in batch.items()}


def test_tiny_internvl_same_loss_and_gradients_with_fewer_logits(tiny_internvl, colour_data, tmp_path):
    trainer = build_trainer(recipe(tiny_internvl, tmp_path / "run", "train.mode=full"), colour_data)
    model = trainer.model
    assert trainer.supervised_logits and takes_boolean_logits_to_keep(model)
    batch = one_batch(trainer)
    keep = next_token_labelled(batch["labels"])
    assert 0 < keep.sum() < keep.numel() / 4  # answers are a small share of every sequence

    def loss_and_grads(loss):
        model.zero_grad()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full_loss, full_grads = loss_and_grads(model(**batch).loss)
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"}, logits_to_keep=keep)
    assert outputs.logits.shape == (int(keep.sum()), model.config.text_config.vocab_size)
    sliced_loss, sliced_grads = loss_and_grads(supervised_logits_loss(outputs, batch["labels"]))
    assert sliced_loss == pytest.approx(full_loss, rel=1e-5)
    assert full_grads.keys() == sliced_grads.keys() and len(full_grads) > 10
    for name, grad in full_grads.items():
        torch.testing.assert_close(sliced_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_training_losses_match_the_full_logits_run(tiny_internvl, colour_data, tmp_path, grad_accum):
    runs = {}
    for on in (True, False):
        cfg = recipe(tiny_internvl, tmp_path / f"run-{on}", "train.max_steps=4", "train.learning_rate=1e-2",
                     f"train.grad_accum={grad_accum}", f"train.supervised_logits={str(on).lower()}")
        trainer = build_trainer(cfg, colour_data)
        assert trainer.supervised_logits is on
        trainer.train()
        runs[on] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        # GeoTrainer counts the parameters once for the FLOP total; HF's figure: 6 x input slots x params
        params = trainer.model.num_parameters(exclude_embeddings=True)
        assert trainer.state.total_flos == 6 * trainer.token_counts["slots"] * params
    assert len(runs[True]) == 4
    assert runs[True] == pytest.approx(runs[False], rel=1e-4)
