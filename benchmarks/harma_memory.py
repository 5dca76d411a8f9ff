"""Memory and time of HarMA's training steps against full fine-tuning and LoRA, at ViT-B/32 size, on CPU.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/harma_memory.py --steps 3 --batch 32 \
        --out runs/harma-memory.md

Each method runs in its own process (``--child``), on the public ViT-B/32 CLIP built from its config
with random weights (``vit_b32_clip_config``, the same seed for every method), for ``--steps`` steps of
one fixed batch (``--batch`` images of 224x224 and as many 77-token captions). A step is the training
loop's own (``finetune.retrieval.training.train_step``: both towers, HarMA's loss, backward, AdamW over
``parameter_groups``). Methods: full fine-tuning, LoRA r=8 on q/k/v/out of both towers (as
``harma_baselines.py``), HarMA r=128 with share=text_only and share=both.

Reported per method: trainable parameters and their share; bytes of the parameters, of the gradients
after the last step and of the optimiser state (every tensor AdamW keeps, computed from the tensors);
the process's peak RSS (``ru_maxrss``); its RSS once the model, optimiser and batch are built, the peak
while training (the kernel's peak is reset after the build) and the difference, which is what training
adds (gradients, AdamW state, activations, autograd buffers); seconds per step (median) with the loss of
every step beside it. Ratios are to full fine-tuning. The parent imports no torch, so the children's
``ru_maxrss`` (which Linux carries over a fork + exec) is their own. ``--size tiny`` runs the same on the
2-layer test CLIP in seconds.

On a GPU activations are kept in other places and sizes (kernels, allocator caching), so CPU RSS stands
for host memory only; the parameter, gradient and optimiser bytes are the same on any device.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

METHODS = {  # key -> (row, build_retrieval_model arguments)
    "full": ("full fine-tuning", {"method": "full"}),
    "lora": ("LoRA r=8 (both towers)", {"method": "lora"}),
    "harma": ("HarMA share=text_only", {"method": "harma", "share": "text_only"}),
    "harma_both": ("HarMA share=both", {"method": "harma", "share": "both"}),
}
SIZES = {  # size -> (HarMA bottleneck, heads): the public r=128, 8 heads; the tiny CLIP's r=16, 2 heads
    "vit-b-32": (128, 8),
    "tiny": (16, 2),
}
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None}  # harma_baselines.py's LoRA row
MIB = 2 ** 20


def clip_config(size: str):
    from finetune.models.tiny import tiny_clip_config
    from finetune.retrieval.backbone import vit_b32_clip_config

    if size == "vit-b-32":
        return vit_b32_clip_config()
    return tiny_clip_config(vocab_size=64, eos_token_id=63, bos_token_id=62, pad_token_id=0)


def fixed_batch(config, batch: int, seed: int = 0):
    """``batch`` random images and captions (start, 5-25 random tokens, end, padding 0 to the context), ids 0..batch-1."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    size, text = config.vision_config.image_size, config.text_config
    pixels = torch.randn(batch, 3, size, size, generator=generator)
    input_ids = torch.zeros(batch, text.max_position_embeddings, dtype=torch.long)
    low, high = 1, min(text.bos_token_id, text.eos_token_id)
    for row in range(batch):
        words = torch.randint(low, high, (int(torch.randint(5, 26, (1,), generator=generator)),), generator=generator)
        input_ids[row, :len(words) + 2] = torch.cat([torch.tensor([text.bos_token_id]), words,
                                                     torch.tensor([text.eos_token_id])])
    return pixels, input_ids, torch.arange(batch)


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` and with it
    ``ru_maxrss``), so that the next reading is the peak since now. False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(key: str, size: str, steps: int, batch: int, lr: float, seed: int = 0) -> dict:
    """Build the model of ``key`` on ``size``, run ``steps`` training steps on one batch; the figures of the row."""
    import time
    from types import SimpleNamespace

    import torch
    from train_memory import _status_mib  # benchmarks/, beside this file
    from transformers import CLIPModel

    from finetune.retrieval.model import build_retrieval_model, parameter_counts
    from finetune.retrieval.training import build_optimizer, train_step
    from finetune.step_memory import peak_rss_mb

    config = clip_config(size)
    bottleneck, heads = SIZES[size]
    torch.manual_seed(seed)  # the same backbone for every method
    clip = CLIPModel(config)
    model = build_retrieval_model(clip, bottleneck=bottleneck, heads=heads, lora_cfg=SimpleNamespace(**LORA),
                                  **METHODS[key][1])
    model.train()
    optimizer = build_optimizer(model, lr, 0.04, (0.9, 0.98))  # HarMA's weight decay and betas
    pixels, input_ids, ids = fixed_batch(config, batch, seed)
    rss_built, build_peak = _status_mib("VmRSS"), peak_rss_mb()
    training_peak_only = reset_peak_rss()
    seconds, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        out = train_step(model, optimizer, pixels, input_ids, ids, margin=0.2, gamma=2.0)
        seconds.append(time.perf_counter() - start)
        losses.append(out["loss"].item())
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    return {"key": key, "method": METHODS[key][0], **parameter_counts(model),
            "trainable_tensors": len(trainable),
            "param_bytes": tensor_bytes(params),
            "grad_bytes": tensor_bytes(p.grad for p in params if p.grad is not None),
            "optimizer_bytes": tensor_bytes(v for state in optimizer.state.values() for v in state.values()
                                            if torch.is_tensor(v)),
            "peak_rss_mib": max(build_peak, peak_rss_mb()), "rss_built_mib": round(rss_built, 1),
            "training_peak_rss_mib": peak_rss_mb() if training_peak_only else None,
            "seconds": [round(s, 3) for s in seconds], "losses": [round(v, 6) for v in losses]}


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.3f}" if value is not None and base else "-"


def table(rows: list[dict]) -> str:
    """One markdown row per method; ratios to the full fine-tuning row (``-`` without one)."""
    full = next((r for r in rows if r["key"] == "full"), None)

    def added(r):
        return None if r["training_peak_rss_mib"] is None else r["training_peak_rss_mib"] - r["rss_built_mib"]

    lines = ["| method | trainable params | trainable share | params MiB | grads MiB | optimizer MiB | "
             "grads + optimizer vs full FT | peak RSS MiB | peak RSS vs full FT | RSS after build MiB | "
             "peak RSS in training MiB | added by training MiB | added vs full FT | s / step (median) | "
             "time vs full FT | loss per step |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        state = r["grad_bytes"] + r["optimizer_bytes"]
        per_step = statistics.median(r["seconds"])
        base = {} if full is None else {
            "state": full["grad_bytes"] + full["optimizer_bytes"], "rss": full["peak_rss_mib"], "added": added(full),
            "time": statistics.median(full["seconds"])}
        lines.append(
            f"| {r['method']} | {r['trainable_params']:,} | {100 * r['trainable_share']:.2f} % | "
            f"{r['param_bytes'] / MIB:.1f} | {r['grad_bytes'] / MIB:.1f} | {r['optimizer_bytes'] / MIB:.1f} | "
            f"{_ratio(state, base.get('state'))} | {r['peak_rss_mib']:.0f} | {_ratio(r['peak_rss_mib'], base.get('rss'))} | "
            f"{r['rss_built_mib']:.0f} | {_mib(r['training_peak_rss_mib'])} | {_mib(added(r))} | "
            f"{_ratio(added(r), base.get('added'))} | {per_step:.2f} | {_ratio(per_step, base.get('time'))} | "
            f"{', '.join(f'{v:.4f}' for v in r['losses'])} |")
    return "\n".join(lines)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


ROOT = str(Path(__file__).resolve().parents[1])  # the children import this checkout's packages


def run_child(key: str, args) -> dict:
    spec = json.dumps({"key": key, "size": args.size, "steps": args.steps, "batch": args.batch, "lr": args.lr})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
    # The timeout catches a hang, not slowness: a ViT-B/32 method takes about 3 minutes on a loaded CPU.
    out = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True, env=env,
                         timeout=3600)
    if out.returncode:
        raise RuntimeError(f"{key} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=sorted(SIZES), default="vit-b-32")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"of: {', '.join(METHODS)}")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-5, help="the same for every method (AdamW, wd 0.04, betas 0.9/0.98)")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(spec["key"], spec["size"], spec["steps"], spec["batch"], spec["lr"])))
        return 0
    keys = args.methods.split(",")
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: {', '.join(unknown)} not among {', '.join(METHODS)}")
    rows = []
    for key in keys:
        rows.append(run_child(key, args))
        print(f"{key}: {rows[-1]['seconds']} s, losses {rows[-1]['losses']}, peak RSS {rows[-1]['peak_rss_mib']} MiB",
              flush=True)
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    size = "ViT-B/32 CLIP" if args.size == "vit-b-32" else "tiny CLIP (2 layers per tower)"
    text = (f"{size}, random init (the same for every method), one batch of {args.batch} images and "
            f"{args.batch} captions of 77 tokens, {args.steps} steps, AdamW lr {args.lr:g}, fp32, CPU, "
            f"OMP_NUM_THREADS={threads}, one process per method\n\n" + table(rows) + "\n")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
