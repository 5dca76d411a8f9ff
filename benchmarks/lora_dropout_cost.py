"""What peft's LoRA dropout costs on a CPU, at the peer benchmark's tiny size and at a real model's size.

In the peer benchmark's LoRA run (docs/performance.md) a sampling profile puts 3.7 s of geotune's 24 s in
``torch.dropout``: peft draws a fresh Bernoulli mask over every LoRA layer's input, and on a CPU the
random numbers cost more than the tiny model's matrix products. This script measures that share where it
matters, one peft-wrapped ``nn.Linear`` (LoRA r=16, alpha 32) forward + backward with ``lora_dropout``
0.05 against 0 (peft then uses ``nn.Identity``), alternated in paired rounds, medians:

- ``tiny``: the benchmark's text layers (8 x 300 tokens, 64 -> 64);
- ``qwen2-0.5b q_proj`` / ``down_proj``: the language model of InternVL2-1B / Mini-InternVL-1B
  (896 -> 896, 4864 -> 896), one 2,048-token sequence.

It also times a candidate mask source that is *not* in geotune: 16-bit thresholds from numpy's SFC64
stream (``numpy_stream_dropout``), to size what a faster generator could save.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lora_dropout_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from peft import LoraConfig, get_peft_model

SHAPES = {  # name: (batch, tokens, in_features, out_features)
    "tiny": (8, 300, 64, 64),
    "qwen2-0.5b q_proj": (1, 2048, 896, 896),
    "qwen2-0.5b down_proj": (1, 2048, 4864, 896),
}


def lora_linear(in_features: int, out_features: int, dropout: float) -> torch.nn.Module:
    """One frozen ``nn.Linear`` with a LoRA adapter (r=16, alpha 32), as peft builds it for a model."""
    torch.manual_seed(0)
    base = torch.nn.Sequential()
    base.add_module("proj", torch.nn.Linear(in_features, out_features, bias=False))
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules=["proj"])
    return get_peft_model(base, config).train()


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
    1/65536 of 1 - p): a candidate, measured here only."""
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
    """Paired rounds of dropout 0.05 vs 0 at one shape; medians of the per-round figures."""
    batch, tokens, fan_in, fan_out = shape
    x = torch.randn(batch, tokens, fan_in)
    with_dropout, without = lora_linear(fan_in, fan_out, 0.05), lora_linear(fan_in, fan_out, 0.0)
    rng = np.random.Generator(np.random.SFC64(0))
    rows = {"with": [], "without": [], "torch_mask": [], "numpy_mask": []}
    for _ in range(rounds):
        rows["with"].append(seconds_per_step(with_dropout, x, repeats))
        rows["without"].append(seconds_per_step(without, x, repeats))
        rows["torch_mask"].append(seconds_per_mask(lambda: torch.nn.functional.dropout(x, 0.05, True), repeats))
        rows["numpy_mask"].append(seconds_per_mask(lambda: numpy_stream_dropout(x, 0.05, rng), repeats))
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    return {
        "ms_with_dropout": round(med["with"], 3), "ms_without": round(med["without"], 3),
        "dropout_share": round(1 - med["without"] / med["with"], 3),
        "ms_torch_dropout": round(med["torch_mask"], 3), "ms_numpy_stream": round(med["numpy_mask"], 3),
        "numpy_over_torch": round(med["numpy_mask"] / med["torch_mask"], 2),
    }


def table(results: dict[str, dict]) -> str:
    lines = ["| layer (tokens x in -> out) | fwd+bwd ms, dropout 0.05 | dropout 0 | dropout's share | "
             "torch.dropout ms | numpy SFC64 mask ms | numpy / torch |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        b, t, i, o = SHAPES[name]
        lines.append(f"| {name} ({b * t} x {i} -> {o}) | {r['ms_with_dropout']} | {r['ms_without']} | "
                     f"{r['dropout_share']:.0%} | {r['ms_torch_dropout']} | {r['ms_numpy_stream']} | "
                     f"{r['numpy_over_torch']} |")
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
