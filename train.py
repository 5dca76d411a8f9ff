"""Train one recipe: ``accelerate launch train.py recipe=rs_third [key=value ...]``.

Also runs as ``python train.py ...``, ``torchrun --nproc_per_node 2 train.py ...`` and
``geotune train ...``. Everything happens in ``finetune.experiment.run_experiment``:
recipe → data (mix) → selection manifest → model through its adapter → HF Trainer → save → eval.
"""

from __future__ import annotations

import sys

from finetune.experiment import run_experiment
from geotune.config import load_recipe, parse_overrides


def main(argv: list[str]) -> int:
    recipe, overrides = parse_overrides(argv)
    cfg = load_recipe(recipe, overrides)
    run_experiment(cfg)
    return 0


if __name__ == "__main__":
    from finetune.fast_exit import exit_now

    exit_now(main(sys.argv[1:]))
