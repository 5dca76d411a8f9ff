"""Run by test_distributed_selection.py under ``torchrun``: a training run that selects with adaptive
shift first (the headline path), then selection alone with the other model-based selectors, on N ranks.

Usage: ``torchrun --nproc_per_node N tests/geotune/select_worker.py RECIPE RUN_ROOT CACHE [key=value ...]``;
selector M writes ``RUN_ROOT/M/selection/manifest.jsonl``, features and signals are cached under CACHE.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's packages, not an installed copy

from finetune.data.loader import load_training_data  # noqa: E402
from geotune.config import load_recipe  # noqa: E402
from geotune.experiment import run_experiment  # noqa: E402
from selection.pipeline import run_selection  # noqa: E402

METHODS = ("adaptive_shift", "coincide", "perplexity")
SHARD_SIZE = 3  # 24 records: 8 shards, 4 per rank


def method_overrides(method: str, run_dir: Path, cache: Path) -> list[str]:
    """The recipe overrides of one selector's run: its run_dir, caches and (adaptive shift) signal shards."""
    out = [f"run_dir={run_dir}", f"selection.method={method}", f"selection.features.cache_dir={cache / 'features'}"]
    if method == "adaptive_shift":
        out += [f"selection.options.cache_dir={cache / 'signals'}", f"selection.options.shard_size={SHARD_SIZE}",
                "selection.options.batch_size=2"]
    return out


def main(recipe: str, run_root: str, cache: str, *overrides: str) -> None:
    # The headline path first: selection inside training (nothing cached), then training on the manifest.
    first = METHODS[0]
    run_experiment(load_recipe(recipe, [*method_overrides(first, Path(run_root) / first, Path(cache)),
                                        "train.max_steps=2", *overrides]))
    for method in METHODS[1:]:
        cfg = load_recipe(recipe, [*method_overrides(method, Path(run_root) / method, Path(cache)), *overrides])
        run_selection(cfg, load_training_data(cfg))


if __name__ == "__main__":
    main(*sys.argv[1:])
