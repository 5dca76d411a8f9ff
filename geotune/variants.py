"""Run a list of experiments, reusing the finished ones: the loop behind demo, sweep and the proxy study.

A run counts as finished when its ``train_summary.json`` exists (written after training, before
evaluation results are needed by anyone), so a killed demo, sweep or study resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

FINISHED_MARKER = "train_summary.json"


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / FINISHED_MARKER).exists()


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
        if is_finished(run_dir):
            print(f"[{tag}] {name}: finished earlier, reusing {run_dir}", flush=True)
            continue
        print(f"[{tag}] {name} -> {run_dir}", flush=True)
        run_one(cfg)
    return run_dirs
