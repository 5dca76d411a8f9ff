import json

import pytest

from geotune.config import RecipeError
from geotune.sweep import run_sweep, split_sweep_overrides, sweep_points


def test_split_keeps_lists_and_finds_swept_keys():
    fixed, swept = split_sweep_overrides(["train.epochs=2", "eval.benchmarks=[aid,lrben]", "mix.general_ratio=0,0.25"])
    assert fixed == ["train.epochs=2", "eval.benchmarks=[aid,lrben]"]
    assert swept == {"mix.general_ratio": ["0", "0.25"]}
    assert sweep_points({"a": ["1", "2"], "b": ["x", "y"]}) == [
        {"a": "1", "b": "x"}, {"a": "1", "b": "y"}, {"a": "2", "b": "x"}, {"a": "2", "b": "y"}
    ]


def test_nothing_to_sweep_is_an_error():
    with pytest.raises(RecipeError, match="nothing to sweep"):
        split_sweep_overrides(["train.epochs=2"])


def test_bad_value_fails_before_any_run(tmp_path):
    calls = []
    with pytest.raises(RecipeError, match="mix.general_ratio"):
        run_sweep("demo", [f"run_dir={tmp_path}", "mix.general_ratio=0,lots"], run_one=calls.append)
    assert calls == []


def _fake_run(cfg):
    """Stands in for a training run: writes what a finished run leaves behind."""
    from pathlib import Path

    run_dir = Path(cfg.run_dir)
    (run_dir / "final" / "eval").mkdir(parents=True)
    ratio = cfg.mix.general_ratio
    (run_dir / "final" / "eval" / "ucmerced.json").write_text(json.dumps({"accuracy": 50 - 10 * ratio, "n": 20}))
    (run_dir / "train_summary.json").write_text(json.dumps({"train_seconds": 1.0 + ratio, "samples_seen": 10}))


def test_sweep_writes_one_run_per_value_a_summary_and_plots(tmp_path):
    summary = run_sweep("demo", [f"run_dir={tmp_path}", "mix.general_ratio=0,0.25,0.5"], run_one=_fake_run)
    sweep_dir = tmp_path / "sweep"
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == [
        "mix.general_ratio=0", "mix.general_ratio=0.25", "mix.general_ratio=0.5"
    ]
    rows = json.loads((sweep_dir / "summary.json").read_text())
    assert [r["metrics"]["ucmerced.accuracy"] for r in rows] == [50.0, 47.5, 45.0]
    text = summary.read_text()
    assert "| mix.general_ratio |" in text and "47.5" in text
    assert (sweep_dir / "ucmerced.accuracy.png").stat().st_size > 1000


def test_finished_points_are_not_run_again(tmp_path):
    run_sweep("demo", [f"run_dir={tmp_path}", "mix.general_ratio=0,0.5"], run_one=_fake_run)
    calls = []
    run_sweep("demo", [f"run_dir={tmp_path}", "mix.general_ratio=0,0.5,0.75"], run_one=lambda cfg: (calls.append(cfg.mix.general_ratio), _fake_run(cfg)))
    assert calls == [0.75]
