"""``geotune export RUN --out DIR [--merge]``: ship a trained run (``finetune/export.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finetune.export import (
    ExportError,
    export_copy,
    export_merged,
    find_checkpoint,
    find_run_config,
    model_config,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="run directory (uses final/) or checkpoint folder")
    parser.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    parser.add_argument("--merge", action="store_true", help="fold a LoRA adapter into the base weights (checked)")
    parser.add_argument("--base", default=None, help="base checkpoint folder (default: model.path of the run)")
    parser.add_argument("--rtol", type=float, default=None,
                        help="allowed max |logit diff| relative to max |logit| (default 1e-4 fp32, 2e-2 bf16/fp16)")


def run(args: argparse.Namespace) -> int:
    source, out = Path(args.source), Path(args.out)
    try:
        checkpoint = find_checkpoint(source)
        run_cfg = find_run_config(source, checkpoint)
        model_cfg = model_config(run_cfg, args.base)
        is_adapter = (checkpoint / "adapter_config.json").exists()
        if args.merge and is_adapter:
            report = export_merged(checkpoint, out, model_cfg, args.rtol)
            print(f"merged {checkpoint} into {report['base']} -> {out} ({report['dtype']}, max |logit diff| "
                  f"{report['max_abs_logit_diff']:.2e} <= {report['tolerance']:.2e})")
            return 0
        if args.merge:
            print(f"{checkpoint} holds full weights, not an adapter: nothing to merge, copying")
        export_copy(checkpoint, out, model_cfg)
        print(f"exported {checkpoint} -> {out} (see {out / 'README.md'})")
        return 0
    except ExportError as err:
        print(f"geotune export: {err}", file=sys.stderr)
        return 2
