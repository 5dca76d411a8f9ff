"""``geotune plan recipe=NAME``: per-GPU memory estimate of a recipe and a verdict (``finetune/planner.py``)."""

from __future__ import annotations

import argparse
import json

from finetune.planner import FRAGMENTATION, GIB, Plan, plan_recipe, suggestions, trainable_split
from geotune.config import add_recipe_arguments, recipe_from_args


def describe(plan: Plan) -> dict[str, str]:
    s = plan.setup
    trainable, frozen = trainable_split(s)
    shard = f" / {s.gpus} GPUs" if s.zero_stage else ""
    return {
        "weights": f"{(trainable + frozen) / 1e9:.2f}B params x {s.weight_bytes} B" + (shard if s.zero_stage == 3 else ""),
        "gradients": f"{trainable / 1e6:.1f}M trainable" + (shard if s.zero_stage >= 2 else ""),
        "optimizer": "fp32 master + Adam m, v" + (" (on CPU)" if s.offload_optimizer else shard),
        "zero3_gathered": "biggest module gathered (ZeRO-3)",
        "activations_llm": f"{s.spec.llm.layers} layers x {s.batch}x{s.seq} tokens x {s.spec.llm.hidden}"
        + (" (checkpointed)" if s.gradient_checkpointing else ""),
        "activations_vision": f"{s.tiles} tile(s) x {s.spec.vision.positions} ViT tokens",
        "recomputed_layer": "one layer's activations, recomputed in backward",
        "logits_loss": f"{s.batch}x{s.seq} tokens" + (f" x {s.labelled_share:.0%} labelled" if s.labelled_share < 1 else "")
        + f" x {s.spec.llm.vocab} vocab, fp32 loss",
        "not_alive_together": "freed before the others peak (see docs/planner.md)",
        "deepspeed_buffers": "ZeRO reduce / gather buckets",
        "cuda_context_nccl": "per process",
        "fragmentation": f"{FRAGMENTATION:.0%} of the dynamic part",
    }


def print_plan(plan: Plan, cfg, tips: list[tuple[str, float, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = plan.setup
    trainable, _ = trainable_split(s)
    title = (f"{cfg.name}: {s.spec.name} ({s.spec.params() / 1e9:.2f}B, {trainable / 1e6:.1f}M trainable), {s.mode}, "
             f"ZeRO-{s.zero_stage}{' offload' if s.offload_optimizer else ''}, {s.gpus} GPUs, "
             f"{s.image_tokens} image tokens/sample")
    table = Table(title=title, title_justify="left")
    table.add_column("component")
    table.add_column("GiB/GPU", justify="right")
    table.add_column("from")
    what = describe(plan)
    for name, value in plan.components.items():
        if abs(value) >= 0.005 * GIB:
            table.add_row(name, f"{value / GIB:.2f}", what.get(name, ""))
    table.add_row("[bold]total[/bold]", f"[bold]{plan.total / GIB:.2f}[/bold]", f"of {plan.capacity_gib:g} GiB")
    console = Console()
    console.print(table)
    colour = {"fits": "green", "tight": "yellow", "does not fit": "red"}[plan.verdict]
    console.print(f"verdict for {s.gpus} x {plan.capacity_gib:g} GB: [{colour}]{plan.verdict}[/{colour}]")
    for note in plan.notes:
        console.print(f"note: {note}")
    if plan.verdict != "fits":
        for change, gib, verdict in tips:
            console.print(f"  with {change}: {gib:.1f} GiB ({verdict})")


def add_arguments(parser: argparse.ArgumentParser) -> None:

    add_recipe_arguments(parser)
    parser.add_argument("--gpus", type=int, default=2, help="data-parallel GPUs (ZeRO shards over them)")
    parser.add_argument("--gpu-mem", type=float, default=24.0, help="GiB per GPU")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="plan for this many tokens per sample (default: train.max_length, the worst case)")
    parser.add_argument("--labelled-share", type=float, default=None,
                        help="share of tokens that carry labels (run summary: labelled_share); with "
                             "train.supervised_logits only those get logits (default: every token, the worst case)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:

    cfg = recipe_from_args(args)
    plan = plan_recipe(cfg, args.gpus, args.gpu_mem, args.seq_len, args.labelled_share)
    tips = (suggestions(cfg, plan, args.gpus, args.gpu_mem, args.seq_len, args.labelled_share)
            if plan.verdict != "fits" else [])
    if args.json:
        out = plan.to_json() | {"recipe": cfg.name, "suggestions": [
            {"overrides": c, "total_gib": round(g, 3), "verdict": v} for c, g, v in tips]}
        print(json.dumps(out, indent=2))
    else:
        print_plan(plan, cfg, tips)
    return 0
