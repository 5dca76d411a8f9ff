"""``geotune sweep recipe=NAME key=v1,v2,...``: one run per value, then a summary (``geotune/sweep.py``)."""

from __future__ import annotations

import argparse

from geotune.config import add_recipe_arguments, parse_overrides
from geotune.sweep import run_sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    recipe, overrides = parse_overrides(args.overrides)
    path = run_sweep(recipe, overrides)
    print(f"sweep summary: {path}")
    return 0
