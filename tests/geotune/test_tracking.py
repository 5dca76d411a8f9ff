"""Tracking: TensorBoard by default, wandb in offline mode with no account; both write a run."""

from __future__ import annotations

import train


def test_tensorboard_and_offline_wandb_both_write_a_run(colour_recipe, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_root"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb_root").mkdir()
    recipe = colour_recipe(
        train="{max_steps: 2, per_device_batch_size: 2, report_to: [tensorboard, wandb], logging_steps: 1, save_steps: 10}"
    )
    run_dir = tmp_path / "run"
    assert train.main([f"recipe={recipe}", f"run_dir={run_dir}"]) == 0
    assert list((run_dir / "runs").rglob("events.out.tfevents.*"))
    offline_runs = list((tmp_path / "wandb_root").rglob("offline-run-*"))
    assert offline_runs and any(p.suffix == ".wandb" for run in offline_runs for p in run.iterdir())
