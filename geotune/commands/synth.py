"""``geotune synth``: write SynthRS (synthetic remote-sensing benchmarks in the real layouts)."""

from __future__ import annotations

import argparse
import sys
import time

from geotune.synth.build import DEFAULT_IMAGE_SIZE, SIZES, SynthError, write_synthrs
from geotune.synth.pool import DEFAULT_TASK_SHARES, PoolOptions


def _task_shares(text: str) -> dict[str, float]:
    """``classification=0.4,vqa=0.3,...`` -> dict."""
    try:
        pairs = [item.split("=") for item in text.split(",") if item]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected task=share,... (tasks: {', '.join(DEFAULT_TASK_SHARES)}): {err}") from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PoolOptions()
    parser.add_argument("--out", required=True, help="Output folder (e.g. runs/synthrs).")
    parser.add_argument("--seed", type=int, default=0, help="Master seed (default 0).")
    parser.add_argument("--size", choices=list(SIZES), default="small",
                        help="tiny (tests), small (the demo, default), medium (measurements).")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help=f"Image side in pixels (default {DEFAULT_IMAGE_SIZE}).")
    parser.add_argument("--published-defects", action="store_true",
                        help="Write GeoChat-Bench with its published defects (aid ground truth and paths, lrben "
                             "without ground truth), to test the eval fixers.")
    parser.add_argument("--pool-records", type=int, default=None, help="Pool size (default: the size preset's).")
    parser.add_argument("--duplicate-share", type=float, default=defaults.duplicate_share,
                        help=f"Share of near-duplicate pool records (default {defaults.duplicate_share}).")
    parser.add_argument("--noise-share", type=float, default=defaults.noise_share,
                        help=f"Share of noisy pool records (default {defaults.noise_share}).")
    parser.add_argument("--class-zipf", type=float, default=defaults.class_zipf,
                        help=f"Long tail of pool classes: weight ∝ 1/rank**z (default {defaults.class_zipf}).")
    parser.add_argument("--task-shares", type=_task_shares, default=None,
                        help="Pool task mix, e.g. classification=0.4,vqa=0.3,caption=0.12,grounding=0.1,region=0.08.")
    parser.add_argument("--instructions-per-image", type=int, default=defaults.instructions_per_image,
                        help="Pool records that share one image, each another task, as in GeoChat_Instruct "
                             f"(default {defaults.instructions_per_image}).")
    parser.add_argument("--pretrain-records", type=int, default=0,
                        help="Also write the proxy base's pretraining corpus (pretrain/corpus.json) with this "
                             "many records: captions and questions about scenes of every class, in phrasings "
                             "the pool and benchmarks do not use (default 0: none).")
    parser.add_argument("--force", action="store_true", help="Replace a non-empty --out.")


def run(args: argparse.Namespace) -> int:
    try:
        pool = PoolOptions(
            records=args.pool_records or SIZES[args.size].pool_records,
            task_shares=args.task_shares or dict(DEFAULT_TASK_SHARES),
            class_zipf=args.class_zipf,
            duplicate_share=args.duplicate_share,
            noise_share=args.noise_share,
            instructions_per_image=args.instructions_per_image,
        )
        start = time.perf_counter()
        summary = write_synthrs(args.out, seed=args.seed, size=args.size, image_size=args.image_size,
                                published_defects=args.published_defects, pool=pool, force=args.force,
                                progress=True, pretrain_records=args.pretrain_records)
    except (SynthError, ValueError) as err:
        print(f"geotune synth: {err}", file=sys.stderr)
        return 2
    c = summary["counts"]
    p = c["pool"]
    print(f"SynthRS ({args.size}, seed {args.seed}) in {args.out} [{time.perf_counter() - start:.1f} s]")
    print(f"  UCMerced {c['ucmerced_images']} images | AID {c['aid_images']} | RSVQA-LR {c['rsvqa_lr_images']} "
          f"images, {c['lrben_test_questions']} active test questions")
    print(f"  pool {p['records']} records: tasks {p['tasks']}, {p['duplicates']} near-duplicates, noise {p['noise']}")
    print(f"  general {c['general']['train']} train / {c['general']['test']} test")
    if "pretrain" in c:
        print(f"  pretraining corpus {c['pretrain']}")
    return 0
