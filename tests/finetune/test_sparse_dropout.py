"""finetune/sparse_dropout.py against what it replaces: the masks are i.i.d. Bernoulli(p) (the joint law of
short masks, the share on long ones), kept values are torch.dropout's to the bit, the gradient is the
mask's, torch's seed fixes the masks, and only peft's LoRA dropout modules are swapped."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from finetune.sparse_dropout import SparseDropout, dropped_positions, use_sparse_dropout


def five_sigma(count: int, draws: int, prob: float) -> bool:
    return abs(count - draws * prob) <= 5 * (draws * prob * (1 - prob)) ** 0.5


@pytest.mark.parametrize("chunk", [None, 1])  # chunk=1: the masks come from the loop that draws more gaps
def test_short_masks_have_the_joint_law_of_iid_bernoulli(chunk):
    """All 2^4 masks of length 4 at p = 0.3 with probability p^k (1-p)^(4-k): position 0 included, no
    correlation between neighbours, no drift along the sequence."""
    p, n, draws = 0.3, 4, 40_000
    rng = np.random.Generator(np.random.SFC64(7))
    seen = Counter(tuple(dropped_positions(n, p, rng, chunk=chunk).tolist()) for _ in range(draws))
    for k in range(n + 1):
        for pattern in itertools.combinations(range(n), k):
            assert five_sigma(seen[pattern], draws, p**k * (1 - p) ** (n - k)), (pattern, seen[pattern])
    assert sum(seen.values()) == draws  # nothing else (no position >= n, none twice)


def test_long_masks_drop_p_of_the_positions_and_stay_in_range():
    rng = np.random.Generator(np.random.SFC64(0))
    positions = dropped_positions(2_000_000, 0.05, rng)
    assert five_sigma(len(positions), 2_000_000, 0.05)
    assert positions[0] >= 0 and positions[-1] < 2_000_000 and np.all(np.diff(positions) > 0)
    assert len(dropped_positions(10, 0.0, rng)) == 0 and dropped_positions(3, 1.0, rng).tolist() == [0, 1, 2]
    assert len(dropped_positions(0, 0.5, rng)) == 0


def test_kept_values_are_torch_dropouts_to_the_bit_and_the_gradient_is_the_masks():
    torch.manual_seed(0)
    x = torch.randn(8, 50, 64, requires_grad=True)
    dropout = SparseDropout(0.05).train()
    out = dropout(x)
    reference = torch.nn.functional.dropout(x.detach(), 0.05, True)
    kept, kept_by_torch = out != 0, reference != 0
    both = kept & kept_by_torch
    assert both.sum() > 0.85 * x.numel()
    assert torch.equal(out[both], reference[both])  # the same scale, computed the same way
    weights = torch.randn_like(x)
    (out * weights).sum().backward()
    assert torch.equal(x.grad, torch.where(kept, weights * (1 / 0.95), torch.zeros_like(weights)))


def test_non_contiguous_inputs_drop_the_same_positions_forward_and_backward():
    torch.manual_seed(1)
    x = torch.randn(64, 32).t().requires_grad_(True)  # strides (1, 32)
    out = SparseDropout(0.3).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad == 0, out == 0)
    assert torch.equal(out[out != 0], (x * (1 / 0.7))[out != 0].detach())


def test_torch_seed_fixes_the_masks_and_each_call_draws_a_new_one():
    x = torch.randn(4, 100)
    dropout = SparseDropout(0.2).train()
    torch.manual_seed(3)
    first, second = dropout(x), dropout(x)
    torch.manual_seed(3)
    assert torch.equal(dropout(x), first) and torch.equal(dropout(x), second)
    assert not torch.equal(first == 0, second == 0)


def test_identity_in_eval_and_at_zero_and_torch_dropout_off_the_cpu():
    x = torch.randn(3, 5)
    assert SparseDropout(0.5).eval()(x) is x
    assert SparseDropout(0.0).train()(x) is x
    on_meta = SparseDropout(0.5).train()(torch.empty(3, 5, device="meta"))  # a GPU's path: torch.dropout
    assert on_meta.device.type == "meta" and on_meta.shape == (3, 5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        SparseDropout(1.5)


def peft_model(dropout: float):
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 4))
    return get_peft_model(base, LoraConfig(r=2, lora_alpha=4, lora_dropout=dropout, target_modules=["0", "2"]))


def test_only_pefts_lora_dropouts_are_swapped_and_eval_outputs_do_not_change():
    model = peft_model(0.05)
    x = torch.randn(5, 8)
    before = model.eval()(x)
    assert use_sparse_dropout(model) == 2
    swapped = [m for m in model.modules() if isinstance(m, SparseDropout)]
    assert len(swapped) == 2 and all(m.p == 0.05 for m in swapped)
    assert sum(type(m) is torch.nn.Dropout for m in model.modules()) == 1  # the model's own stays
    assert torch.equal(model.eval()(x), before)
    assert model.train().training and all(m.training for m in swapped)
    assert use_sparse_dropout(peft_model(0.0)) == 0  # peft's nn.Identity at dropout 0
    kept = peft_model(0.05)
    assert use_sparse_dropout(kept, "torch") == 0 and use_sparse_dropout(kept, None) == 2  # None: the default


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_recomputes_the_same_masks(reentrant):
    """Checkpointing runs the forward again in backward; torch restores its RNG state for that, and the
    masks' seed is drawn from it, so the recomputed masks are the first ones: the gradients equal those
    of the run without checkpointing (a different mask would give other, silently wrong, gradients)."""
    layer = torch.nn.Linear(16, 16)
    dropout = SparseDropout(0.3).train()

    def block(x):
        return layer(dropout(x)).tanh().sum(-1)

    x = torch.randn(4, 16)
    grads = []
    for checkpointed in (False, True):
        layer.zero_grad()
        torch.manual_seed(5)
        inputs = x.clone().requires_grad_(True)
        if checkpointed:
            out = torch.utils.checkpoint.checkpoint(block, inputs, use_reentrant=reentrant)
        else:
            out = block(inputs)
        out.sum().backward()
        grads.append((inputs.grad.clone(), layer.weight.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
