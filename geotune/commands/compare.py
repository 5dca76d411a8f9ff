"""``geotune compare RUN_DIR ...``: a table and plots over run directories (``eval/compare.py``)."""

from __future__ import annotations

import argparse

from eval.compare import compare_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (runs/NAME)")
    parser.add_argument("--out", default="runs/compare", help="output folder for compare.md, compare.html and the plots")


def run(args: argparse.Namespace) -> int:
    path = compare_runs(args.runs, args.out)
    print(path.read_text())
    print(f"written: {path}, {path.parent / 'compare.html'}, {path.parent / 'scores.png'}, {path.parent / 'cost.png'}")
    return 0
