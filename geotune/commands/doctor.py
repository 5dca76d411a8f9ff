"""``geotune doctor CHECKPOINT``: does a checkpoint load, train a step and generate (``finetune/doctor.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finetune.doctor import FAMILIES, Report, detect_family, diagnose


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, help="local checkpoint folder")
    parser.add_argument("--adapter", default="auto", choices=("auto", *FAMILIES),
                        help="model family (auto: from config.json; remote_lm: a bare remote causal LM)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow the checkpoint's own modeling code (recipe key model.trust_remote_code)")
    parser.add_argument("--vision-tower-path", default=None,
                        help="local CLIP folder for XComposer2's vision tower (recipe key model.vision_tower_path)")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--template", default=None,
                        help="chat template of remote-code InternVL (recipe key model.template; default: config.json's)")
    parser.add_argument("--max-new-tokens", type=int, default=4, help="tokens of the greedy generation check")


def run(args: argparse.Namespace) -> int:
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").exists():
        print(f"geotune doctor: no checkpoint at '{model_dir}' (config.json missing)", file=sys.stderr)
        return 2
    family = detect_family(model_dir) if args.adapter == "auto" else args.adapter
    report = Report(lines=[f"geotune doctor {model_dir} (adapter {family})"])
    try:
        diagnose(model_dir, family, args, report)
    except Exception as err:  # every failure becomes a reason line and a non-zero exit, never a traceback
        report.check(False, "checkpoint loads and runs", f"{type(err).__name__}: {err}")
    print("\n".join(report.lines))
    if report.failures:
        print(f"FAILED ({len(report.failures)}): " + "; ".join(report.failures), file=sys.stderr)
        return 1
    print("OK: loads, trains a step and generates")
    return 0
