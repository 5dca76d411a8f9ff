"""Train one recipe: ``accelerate launch train.py recipe=rs_third [key=value ...]``.

Also runs as ``python train.py ...``, ``torchrun --nproc_per_node 2 train.py ...`` and
``geotune train ...``. Everything happens in ``geotune.experiment.run_experiment``:
recipe → data (mix) → selection manifest → model through its adapter → HF Trainer → save → eval.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run the recipe; a mistake the user can fix (recipe key, bad record, selection budget, busy or
    changed run_dir) is one line on stderr and exit code 2, as with ``geotune``, not a traceback."""
    # Imported here, not at the top: run as a script, the __main__ block below loads them with the
    # collector paused (finetune.fast_start); a module-level import would run before it could.
    from finetune.data.validate import BadRecordError
    from finetune.run_dir import RunDirError
    from geotune.config import RecipeError, load_recipe, parse_overrides
    from geotune.experiment import run_experiment
    from selection.budget import SelectionError

    try:
        recipe, overrides = parse_overrides(argv)
        cfg = load_recipe(recipe, overrides)
        run_experiment(cfg)
    except (RecipeError, BadRecordError, SelectionError, RunDirError) as err:
        print(f"train.py: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from finetune.fast_exit import exit_now
    from finetune.fast_start import collector_paused_then_frozen

    with collector_paused_then_frozen():
        import geotune.experiment  # noqa: F401  (torch, transformers, peft: loaded once, then frozen)
    exit_now(main(sys.argv[1:]))
