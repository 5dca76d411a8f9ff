"""The causal-LM loss with logits only where a label is: the LM head skips every unsupervised position.

Only assistant tokens carry labels (often a one-word answer after hundreds of image and prompt tokens),
yet a model asked for the loss projects *every* position onto the vocabulary and upcasts the whole
``(batch, seq, vocab)`` tensor to fp32. transformers' ``logits_to_keep`` takes a boolean
``(batch, seq)`` mask and returns the hidden states at its ``True`` positions, flattened, before the LM
head; ``GeoTrainer`` passes the mask of positions whose *next* token is labelled and scores those logits
with this loss. The value is the model's own (``ForCausalLMLoss``): summed cross-entropy over the
labelled tokens divided by ``num_items_in_batch`` when the Trainer counts them, else their mean.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from finetune.models.adapters.supervision import IGNORE_INDEX


def next_token_labelled(labels: torch.Tensor) -> torch.Tensor:
    """``(batch, seq)`` bool: positions whose logits predict a labelled token (the shifted label mask)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def supervised_logits_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """HF's causal-LM loss from logits at ``next_token_labelled(labels)`` only (``Trainer.compute_loss_func``).

    ``outputs.logits`` is ``(n_labelled, vocab)`` when the model sliced with the mask, or the usual
    ``(batch, seq, vocab)`` (evaluation, or a model that ignored it), which is sliced here the same way.
    """
    logits = outputs["logits"]
    shifted = labels[:, 1:]
    if logits.dim() == 3:
        logits = logits[:, :-1][shifted != IGNORE_INDEX]
    targets = shifted[shifted != IGNORE_INDEX].to(logits.device)
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    if num_items_in_batch is None:
        return loss / max(targets.numel(), 1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def takes_boolean_logits_to_keep(model) -> bool:
    """Whether ``model`` (unwrapped from peft) slices its hidden states with a boolean ``logits_to_keep``.

    The argument exists since transformers 4.50 but took a ``(batch, seq)`` mask only from 5.x on, together
    with ``modeling_utils.slice_logits_to_keep``; remote code (InternVLChatModel, XComposer2) has neither.
    """
    from transformers import modeling_utils

    if not hasattr(modeling_utils, "slice_logits_to_keep"):
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters

