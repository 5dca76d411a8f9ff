"""Run by the multiprocess tests under ``torchrun``: the colour set on the tiny InternVL, a few steps.

Usage: ``torchrun --nproc_per_node N tests/geotune/ds_worker.py DATA_DIR MODEL RUN_DIR [key=value ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: colours
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's packages, not an installed copy

from colours import write_colour_set  # noqa: E402

from geotune.config import load_recipe  # noqa: E402
from geotune.experiment import run_experiment  # noqa: E402


def main(data_dir: str, model: str, run_dir: str, *overrides: str) -> None:
    data = write_colour_set(Path(data_dir))
    cfg = load_recipe(None, [
        f"model.path={model}", f"run_dir={run_dir}", "seed=0", "train.max_steps=4", "train.logging_steps=1",
        "train.report_to=[none]", "train.warmup_ratio=0", "train.learning_rate=5e-3", "train.lora.r=8",
        "train.lora.alpha=16", "train.lora.dropout=0.0", "train.save_steps=2", *overrides,
    ])
    run_experiment(cfg, data=data)


if __name__ == "__main__":
    main(*sys.argv[1:])
