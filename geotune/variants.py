"""Run a list of experiments, reusing the finished ones: the loop behind demo, sweep and the proxy study.

A run counts as finished when its ``train_summary.json`` exists (written after training, before
evaluation results are needed by anyone), so a killed demo, sweep or study resumes where it stopped.
A finished run is reused only for the recipe that made it: when the ``config.yaml`` beside it differs in a
key that changes what is trained (``finetune.run_dir.changes_from_saved``), it is refused with the keys,
never silently reported as the result of the new recipe (e.g. an older demo's runs in ``runs/demo``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

FINISHED_MARKER = "train_summary.json"


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / FINISHED_MARKER).exists()


def finished_with(cfg) -> bool:
    """Whether ``cfg.run_dir`` holds a finished run of this recipe.

    Raises:
        RunDirError: it holds a finished run of another recipe (the changed keys, and what to do).
    """
    from finetune.run_dir import RunDirError, changes_from_saved

    run_dir = Path(cfg.run_dir)
    if not is_finished(run_dir):
        return False
    changes = changes_from_saved(cfg)
    if changes:
        raise RunDirError(f"{run_dir} holds a finished run of another recipe ({run_dir / 'config.yaml'}); changed: "
                          f"{'; '.join(changes)}. Its results would be reported as this recipe's: delete "
                          "the folder, or use another run_dir (or --root)")
    return True


def run_variants(planned: Iterable[tuple[str, object]], run_one: Callable | None = None, tag: str = "run") -> list[Path]:
    """Run each ``(name, cfg)`` whose ``cfg.run_dir`` is not finished; returns every run directory in order.

    Args:
        planned: names and loaded recipes; load them all before calling, so a bad value fails before
            the first run starts rather than hours later.
        run_one: ``cfg -> summary`` (default ``geotune.experiment.run_experiment``).
        tag: the prefix of the progress lines (``[demo]``, ``[sweep]``).
    """
    if run_one is None:
        from geotune.experiment import run_experiment as run_one
    run_dirs = []
    for name, cfg in planned:
        run_dir = Path(cfg.run_dir)
        run_dirs.append(run_dir)
        if finished_with(cfg):
            print(f"[{tag}] {name}: finished earlier, reusing {run_dir}", flush=True)
            continue
        print(f"[{tag}] {name} -> {run_dir}", flush=True)
        run_one(cfg)
    return run_dirs
