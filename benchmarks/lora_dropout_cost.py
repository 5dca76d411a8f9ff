"""What LoRA dropout costs on a CPU, peft's and geotune's, at the peer benchmark's tiny size and at a real size.

In the peer benchmark's LoRA run (docs/performance.md) a sampling profile put 3.7 s of geotune's 24 s in
``torch.dropout``: peft draws a fresh Bernoulli mask over every LoRA layer's input, and on a CPU the
random numbers cost more than the tiny model's matrix products. geotune now draws only the dropped
positions (``finetune.sparse_dropout.SparseDropout``, ``train.lora.dropout_masks: sparse``). This script
measures one peft-wrapped ``nn.Linear`` (LoRA r=16, alpha 32) forward + backward with ``lora_dropout``
0.05 (peft's ``nn.Dropout``, and the same layer with ``SparseDropout``) against 0 (peft's
``nn.Identity``), alternated in paired rounds, medians:

- ``tiny``: the benchmark's text layers (8 x 300 tokens, 64 -> 64);
- ``qwen2-0.5b q_proj`` / ``down_proj``: the language model of InternVL2-1B / Mini-InternVL-1B
  (896 -> 896, 4864 -> 896), one 2,048-token sequence.

It also times the masks alone: ``torch.dropout``, ``SparseDropout`` and a rejected candidate, 16-bit
thresholds from numpy's SFC64 stream (``numpy_stream_dropout``: a random number per element still, and
no faster at 10M elements).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lora_dropout_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from peft import LoraConfig, get_peft_model

from finetune.sparse_dropout import SparseDropout, use_sparse_dropout

SHAPES = {  # name: (batch, tokens, in_features, out_features)
    "tiny": (8, 300, 64, 64),
    "qwen2-0.5b q_proj": (1, 2048, 896, 896),
    "qwen2-0.5b down_proj": (1, 2048, 4864, 896),
}


def lora_linear(in_features: int, out_features: int, dropout: float, sparse: bool = False) -> torch.nn.Module:
    """One frozen ``nn.Linear`` with a LoRA adapter (r=16, alpha 32), as peft builds it for a model; with
    ``sparse``, its dropout swapped for ``SparseDropout`` as ``finetune.lora.apply_lora`` does."""
    torch.manual_seed(0)
    base = torch.nn.Sequential()
    base.add_module("proj", torch.nn.Linear(in_features, out_features, bias=False))
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules=["proj"])
    model = get_peft_model(base, config).train()
    if sparse:
        use_sparse_dropout(model)
    return model


def seconds_per_step(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward (the gradient reaches the adapter only)."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(x).sum().backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])  # the first call warms the allocator


def numpy_stream_dropout(x: torch.Tensor, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Dropout whose mask is ``uint16 < round((1 - p) * 65536)`` drawn from numpy's stream (keep rate within
    1/65536 of 1 - p): the rejected candidate, measured here only."""
    keep = np.frombuffer(rng.bytes(2 * x.numel()), dtype=np.uint16) < round((1 - p) * 65536)
    return x * torch.from_numpy(keep).view_as(x) * (1 / (1 - p))


def seconds_per_mask(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def measure(shape: tuple[int, int, int, int], rounds: int, repeats: int) -> dict:
    """Paired rounds of dropout 0.05 (peft's, geotune's) vs 0 at one shape; medians of the per-round figures."""
    batch, tokens, fan_in, fan_out = shape
    x = torch.randn(batch, tokens, fan_in)
    layers = {"with": lora_linear(fan_in, fan_out, 0.05), "sparse": lora_linear(fan_in, fan_out, 0.05, sparse=True),
              "without": lora_linear(fan_in, fan_out, 0.0)}
    sparse = SparseDropout(0.05).train()
    rng = np.random.Generator(np.random.SFC64(0))
    masks = {"torch_mask": lambda: torch.nn.functional.dropout(x, 0.05, True), "sparse_mask": lambda: sparse(x),
             "numpy_mask": lambda: numpy_stream_dropout(x, 0.05, rng)}
    rows = {k: [] for k in [*layers, *masks]}
    for _ in range(rounds):
        for key, layer in layers.items():
            rows[key].append(seconds_per_step(layer, x, repeats))
        for key, fn in masks.items():
            rows[key].append(seconds_per_mask(fn, repeats))
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    return {
        "ms_with_dropout": round(med["with"], 3), "ms_sparse": round(med["sparse"], 3),
        "ms_without": round(med["without"], 3),
        "dropout_share": round(1 - med["without"] / med["with"], 3),
        "sparse_share": round(1 - med["without"] / med["sparse"], 3),
        "ms_torch_dropout": round(med["torch_mask"], 3), "ms_sparse_dropout": round(med["sparse_mask"], 3),
        "ms_numpy_stream": round(med["numpy_mask"], 3),
        "sparse_over_torch": round(med["sparse_mask"] / med["torch_mask"], 2),
        "numpy_over_torch": round(med["numpy_mask"] / med["torch_mask"], 2),
    }


def table(results: dict[str, dict]) -> str:
    lines = ["| layer (tokens x in -> out) | fwd+bwd ms: peft dropout 0.05 | SparseDropout 0.05 | dropout 0 | "
             "share of the step: peft's / sparse | mask ms: torch.dropout | SparseDropout | numpy SFC64 | "
             "sparse / torch | numpy / torch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        b, t, i, o = SHAPES[name]
        lines.append(f"| {name} ({b * t} x {i} -> {o}) | {r['ms_with_dropout']} | {r['ms_sparse']} | "
                     f"{r['ms_without']} | {r['dropout_share']:.0%} / {r['sparse_share']:.0%} | "
                     f"{r['ms_torch_dropout']} | {r['ms_sparse_dropout']} | {r['ms_numpy_stream']} | "
                     f"{r['sparse_over_torch']} | {r['numpy_over_torch']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round and case")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated names of SHAPES")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the peer benchmark's setting (OMP_NUM_THREADS=1)
    results = {name: measure(SHAPES[name], args.rounds, args.repeats) for name in args.shapes.split(",")}
    print(table(results))
    return results


if __name__ == "__main__":
    main()
