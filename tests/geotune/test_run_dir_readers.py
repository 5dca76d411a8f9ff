"""`geotune compare` and `geotune sweep` read a run directory that a real (tiny) run wrote."""

from __future__ import annotations

import json

import pytest
from colours import write_colour_set

from eval.compare import collect_run
from geotune.sweep import flat_metrics


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, tiny_internvl):
    """adaptive_shift selection (timings with select.<stage> entries) and two LoRA steps on the colours."""
    from geotune.config import load_recipe
    from geotune.experiment import run_experiment

    root = tmp_path_factory.mktemp("real-run")
    data = write_colour_set(root / "images", per_class=4)
    cfg = load_recipe(None, [
        f"model.path={tiny_internvl}", f"run_dir={root / 'run'}", "selection.method=adaptive_shift", "selection.keep=0.5",
        "selection.clusters=2", "selection.features.backend=reference", "selection.features.layers=[0,1]",
        f"selection.features.cache_dir={root / 'cache'}", f"selection.options.cache_dir={root / 'signals'}",
        "train.max_steps=2", "train.per_device_batch_size=2", "train.report_to=[none]", "train.save_steps=100",
        "eval.benchmarks=[]",
    ])
    run_experiment(cfg, data=data)
    return root / "run"


def test_compare_counts_each_selection_stage_once(real_run):
    timings = json.loads((real_run / "selection" / "timings.json").read_text())
    assert {"select", "select.cluster", "select.keep_per_cluster"} <= set(timings)
    stages = sum(v for k, v in timings.items() if "." not in k)  # features, signals, select, manifest, report
    row = collect_run(real_run, [])
    assert row["selection_seconds"] == pytest.approx(stages)
    assert row["samples_seen"] == 4 and row["kept"] == 6


def test_sweep_reads_the_samples_the_summary_writes(real_run):
    summary = json.loads((real_run / "train_summary.json").read_text())
    metrics = flat_metrics(real_run)
    assert metrics["train.samples_seen"] == summary["samples_seen"] == 4
    assert metrics["train.train_seconds"] == summary["train_seconds"]
