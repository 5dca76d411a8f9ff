"""``geotune train recipe=NAME [key=value ...]``: one experiment, the same as ``train.py``."""

from __future__ import annotations

import argparse
import json

from geotune.config import add_recipe_arguments, recipe_from_args
from geotune.experiment import run_experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    summary = run_experiment(recipe_from_args(args))
    print(json.dumps({k: summary[k] for k in ("steps", "train_seconds", "final_loss", "tokens_per_second")}))
    return 0
