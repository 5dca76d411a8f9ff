"""``geotune select recipe=NAME [key=value ...]``: write ``<run_dir>/selection/manifest.jsonl``."""

from __future__ import annotations

import argparse
import sys

from geotune.config import add_recipe_arguments, recipe_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--force", action="store_true", help="select again even if a manifest with the same config exists")


def run(args: argparse.Namespace) -> int:
    from finetune.data.loader import load_training_data
    from finetune.retrieval.data import pairs_training_data
    from geotune.retrieval_experiment import read_retrieval_train
    from selection.budget import SelectionError
    from selection.manifest import ManifestError, read_manifest
    from selection.pipeline import run_selection

    cfg = recipe_from_args(args)
    try:
        # train.task=retrieval: the train rows (one image-caption pair each) are the records
        retrieval = cfg.train.task == "retrieval"
        data = pairs_training_data(read_retrieval_train(cfg)) if retrieval else load_training_data(cfg)
        path = run_selection(cfg, data, force=args.force)
        header, _ = read_manifest(path)
    except (SelectionError, ManifestError) as err:
        print(f"geotune select: {err}", file=sys.stderr)
        return 2
    print(f"{header['method']}: kept {header['n_kept']} of {header['n_total']} records -> {path}")
    return 0
