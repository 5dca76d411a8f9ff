"""``geotune tiny-model --out DIR``: write a tiny random-init checkpoint, offline (``finetune/models/tiny.py``)."""

from __future__ import annotations

import argparse

from finetune.models.tiny import FAMILIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", choices=sorted(FAMILIES), default="internvl-hf")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None,
                        help="tile size in pixels (default: 64 for internvl-hf, 32 for clip; small is fast on CPU)")
    parser.add_argument("--width", type=int, default=None,
                        help="clip only: both towers' width, a multiple of 32, with ViT-B's proportions (MLP 4x, "
                             "32-d heads); default: text 32, vision 48")


def run(args: argparse.Namespace) -> int:
    size = {} if args.image_size is None else {"image_size": args.image_size}
    if args.width is not None:
        if args.family != "clip":
            raise SystemExit(f"geotune tiny-model: --width is for --family clip, not {args.family}")
        size["width"] = args.width
    path = FAMILIES[args.family](args.out, seed=args.seed, **size)
    print(f"wrote tiny {args.family} checkpoint to {path}")
    return 0
