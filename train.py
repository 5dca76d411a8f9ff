"""Train one recipe: ``accelerate launch train.py recipe=rs_third [key=value ...]``.

Also runs as ``python train.py ...``, ``torchrun --nproc_per_node 2 train.py ...`` and
``geotune train ...``. Everything happens in ``geotune.experiment.run_experiment``:
recipe → data (mix) → selection manifest → model through its adapter → HF Trainer → save → eval.
"""

from __future__ import annotations

import sys

from geotune.config import RecipeError, load_recipe, parse_overrides
from geotune.experiment import run_experiment


def main(argv: list[str]) -> int:
    try:
        recipe, overrides = parse_overrides(argv)
        cfg = load_recipe(recipe, overrides)
    except RecipeError as err:  # a bad key or value: one line naming it, as `geotune train` prints
        print(f"train.py: {err}", file=sys.stderr)
        return 2
    run_experiment(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
