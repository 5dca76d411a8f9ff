"""``geotune demo`` (what ``make demo`` runs): the embedded default, end to end on CPU (``geotune/demo.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from geotune.demo import VARIANTS, run_demo


def _variant_list(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="runs", help="where the model, SynthRS and runs go")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium"], help="SynthRS size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=_variant_list, help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    parser.add_argument("--base-override", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the base's pretraining (recipes/demo_base.yaml); repeatable")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every LoRA run")


def run(args: argparse.Namespace) -> int:
    run_demo(Path(args.root), size=args.size, seed=args.seed, variants=args.variants, extra=args.overrides,
             base_extra=args.base_override)
    return 0
