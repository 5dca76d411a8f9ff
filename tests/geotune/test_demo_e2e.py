"""End to end through the real CLI: a cut-down demo (SynthRS tiny, a few steps) and a sweep."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geotune.demo import VARIANTS

pytestmark = pytest.mark.slow
FAST = ["train.max_steps=3", "eval.limit=12", "train.per_device_batch_size=2"]
BASE_FAST = [arg for o in ("train.max_steps=4", "eval.limit=6", "train.save_steps=2") for arg in ("--base-override", o)]


def _geotune(*args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", WANDB_MODE="offline")
    result = subprocess.run([sys.executable, "-m", "geotune", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_cut_down_demo_reports_every_run_and_benchmark(tmp_path):
    out = _geotune("demo", "--root", str(tmp_path), "--size", "tiny", *BASE_FAST, *FAST, cwd=tmp_path)
    report = tmp_path / "demo" / "report.md"
    assert str(report) in out
    text = report.read_text()
    for name in VARIANTS:
        assert f"| {name} |" in text
        summary = json.loads((tmp_path / "demo" / name / "train_summary.json").read_text())
        assert summary["train_seconds"] > 0
        for bench in ("ucmerced", "aid", "lrben"):
            assert (tmp_path / "demo" / name / "final" / "eval" / f"{bench}.json").exists()
    for column in ("UCM", "AID", "LRBEN avg"):
        assert column in text.splitlines()[next(i for i, line in enumerate(text.splitlines()) if line.startswith("| run"))]
    assert (tmp_path / "demo" / "scores.png").stat().st_size > 1000
    # The runs are LoRA on the base the demo pretrained first (its 4 steps), not on a random-init model.
    base = json.loads((tmp_path / "demo" / "base" / "base_summary.json").read_text())
    assert base["steps"] == 4 and set(base["zero_shot"]) == {"ucmerced", "aid", "lrben"}
    for name in VARIANTS:
        summary = json.loads((tmp_path / "demo" / name / "train_summary.json").read_text())
        assert summary["steps"] == 3 and 0 < summary["trainable_params"] < summary["total_params"]
        config = (tmp_path / "demo" / name / "config.yaml").read_text()
        assert f"path: {tmp_path / 'demo' / 'base' / 'final'}" in config and "mode: lora" in config


def test_sweep_through_cli_writes_one_run_per_value_and_a_summary(tmp_path):
    _geotune("demo", "--root", str(tmp_path), "--size", "tiny", "--variants", "full", *BASE_FAST, *FAST, cwd=tmp_path)
    synth = tmp_path / "demo" / "synthrs"
    _geotune(
        "sweep", "recipe=demo", f"run_dir={tmp_path / 'mix'}", f"model.path={tmp_path / 'demo' / 'base' / 'final'}",
        f"data.datasets.0.path={synth / 'instruct' / 'geochat_style.json'}",
        f"data.datasets.0.image_root={synth / 'instruct'}",
        f"eval.ucmerced_root={synth}", "eval.benchmarks=[ucmerced]", "selection.method=random",
        "selection.keep=0.5", *FAST, "selection.seed=0,1", cwd=tmp_path,
    )
    sweep = tmp_path / "mix" / "sweep"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["selection.seed=0", "selection.seed=1"]
    assert "ucmerced" in (sweep / "summary.md").read_text()
    assert Path(sweep / "summary.json").exists()
