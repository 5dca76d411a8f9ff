"""LoRA dropout on a CPU that draws only the dropped positions, not a random number per element.

peft applies ``nn.Dropout(p)`` to the input of every LoRA layer, and on a CPU ``torch.dropout`` draws one
Mersenne-Twister number per element (about 3 ns each): in the peer benchmark's LoRA run that is 3.7 s of
24 s, more than the base layers' matrix products (docs/performance.md, ``benchmarks/lora_dropout_cost.py``).
A Bernoulli(p) mask is the same thing as its dropped positions, and the gaps between successive dropped
positions of an i.i.d. Bernoulli(p) sequence are i.i.d. geometric(p) on {1, 2, ...}. ``SparseDropout``
draws those gaps (numpy's SFC64 stream, from exponentials, double precision), about p x n numbers
instead of n, zeroes the positions they land on and scales the rest by 1 / (1 - p), as ``torch.dropout``
does: the same distribution of outputs, a different random stream. It keeps the dropped positions
(int64, 0.4 bytes per element at p = 0.05) for the backward pass instead of a mask.

Reproducibility: the stream of each call is seeded by one number drawn from torch's global generator, so
``torch.manual_seed`` / ``transformers.set_seed`` fix the masks and a resumed run (HF restores torch's
RNG state from the checkpoint) draws the masks of the uninterrupted one. Anywhere but a CPU tensor
(a GPU's ``torch.dropout`` is a fused Philox kernel) it calls ``torch.dropout``.
"""

from __future__ import annotations

import numpy as np
import torch

SEED_RANGE = 2**63 - 1


def dropped_positions(n: int, p: float, rng: np.random.Generator, chunk: int | None = None) -> np.ndarray:
    """Sorted positions in ``range(n)`` of an i.i.d. Bernoulli(p) sequence's ones, from geometric gaps drawn
    ``chunk`` at a time (default: enough to cover ``range(n)`` but once in millions of calls).

    A gap is ``1 + floor(E / -log(1 - p))`` with E standard exponential: P(gap > k) = (1 - p)^k, the
    geometric law exactly, from numpy's ziggurat exponentials (twice as fast as ``Generator.geometric``,
    which takes a logarithm per draw).
    """
    if n <= 0 or p <= 0:
        return np.empty(0, dtype=np.int64)
    if p >= 1:
        return np.arange(n, dtype=np.int64)
    mean = n * p
    chunk = chunk or int(mean + 6 * (mean * (1 - p)) ** 0.5) + 16
    per_exponential = -1.0 / np.log1p(-p)

    def gaps() -> np.ndarray:
        drawn = (rng.standard_exponential(chunk) * per_exponential).astype(np.int64)  # floor: E >= 0
        drawn += 1
        return np.cumsum(drawn, out=drawn)

    # The first gap counts from position -1: P(position 0 is dropped) = P(gap = 1) = p.
    positions = gaps() - 1
    while positions[-1] < n:
        positions = np.concatenate([positions, positions[-1] + gaps()])
    return positions[: np.searchsorted(positions, n)]


class _SparseDropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
        dropped = torch.from_numpy(dropped_positions(x.numel(), p, np.random.Generator(np.random.SFC64(seed))))
        out = (x * (1.0 / (1.0 - p))).contiguous()  # positions count in row-major order, forward and backward
        out.view(-1).index_fill_(0, dropped, 0)
        ctx.p = p
        ctx.save_for_backward(dropped)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (dropped,) = ctx.saved_tensors
        grad_in = (grad * (1.0 / (1.0 - ctx.p))).contiguous()
        grad_in.view(-1).index_fill_(0, dropped, 0)
        return grad_in, None, None


class SparseDropout(torch.nn.Module):
    """``nn.Dropout(p)`` with the masks drawn as dropped positions on a CPU (module docstring)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or not x.is_floating_point() or self.p == 1:
            return torch.nn.functional.dropout(x, self.p, True)
        seed = int(torch.randint(SEED_RANGE, (1,)).item())  # from torch's global generator: seeded, resumable
        return _SparseDropoutFunction.apply(x, self.p, seed)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_sparse_dropout(model: torch.nn.Module, masks: str | None = "sparse") -> int:
    """Swap the ``nn.Dropout`` modules of peft's LoRA layers (``lora_dropout``) for ``SparseDropout``, unless
    ``masks`` (``train.lora.dropout_masks``; None: the default, sparse) is ``torch``.

    Returns:
        How many were swapped (0 with ``masks: torch``, or with ``lora_dropout: 0``, where peft uses
        ``nn.Identity``).
    """
    if (masks or "sparse") != "sparse":
        return 0
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if type(dropout) is torch.nn.Dropout:
                dropouts[name] = SparseDropout(dropout.p)
                swapped += 1
    return swapped
