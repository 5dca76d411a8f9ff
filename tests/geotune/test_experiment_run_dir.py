"""A run claims its run directory before any work, and does not resume a checkpoint a changed recipe made
(the locks and the recipe comparison themselves: tests/finetune/test_run_dir.py)."""

from __future__ import annotations

import json
import signal
import socket

import pytest
from lock_holder import holder

from finetune.run_dir import OWNER_NAME, RunDirError, claim_run_dir
from geotune.config import load_recipe
from geotune.experiment import run_experiment


def test_second_run_in_a_busy_run_dir_fails_naming_the_other_process(tmp_path, colour_data):
    run_dir = tmp_path / "run"
    other = holder(run_dir)
    try:
        cfg = load_recipe(None, [f"run_dir={run_dir}", "model.path=/nonexistent"])
        with pytest.raises(RunDirError) as err:
            run_experiment(cfg, data=colour_data)  # refused before the model (which does not exist) is touched
        message = str(err.value)
        assert f"run directory {run_dir} is in use by pid {other.pid} on {socket.gethostname()}" in message
        assert "--pretend-training" in message and "another run_dir" in message
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    # A killed holder leaves no stale lock: the kernel released it.
    with claim_run_dir(cfg):
        assert json.loads((run_dir / OWNER_NAME).read_text())["pid"] != other.pid
    assert not (run_dir / OWNER_NAME).exists()


def _recipe(model, run_dir, *overrides):
    return load_recipe(None, [
        f"model.path={model}", f"run_dir={run_dir}", "seed=0", "train.max_steps=2", "train.save_steps=2",
        "train.per_device_batch_size=2", "train.report_to=[none]", "train.learning_rate=5e-3", "train.mode=full",
        *overrides,
    ])


def test_resume_with_a_changed_recipe_is_refused_unless_forced(tiny_internvl, colour_data, tmp_path):
    run_dir = tmp_path / "run"
    first = run_experiment(_recipe(tiny_internvl, run_dir), data=colour_data)
    assert first["steps"] == 2 and (run_dir / "checkpoint-2").is_dir()
    saved = (run_dir / "config.yaml").read_text()
    with pytest.raises(RunDirError) as err:
        run_experiment(_recipe(tiny_internvl, run_dir, "train.learning_rate=1e-2", "train.mode=lora"), data=colour_data)
    message = str(err.value)
    assert "train.learning_rate: 0.005 -> 0.01" in message and "train.mode: 'full' -> 'lora'" in message
    assert "train.resume=force" in message
    assert (run_dir / "config.yaml").read_text() == saved  # not overwritten by the refused run
    # train.resume=force accepts the change; then what does not change the weights may differ.
    forced = run_experiment(_recipe(tiny_internvl, run_dir, "train.max_steps=3", "train.resume=force"), data=colour_data)
    assert forced["resumed_from"].endswith("checkpoint-2") and forced["steps"] == 3
    again = run_experiment(_recipe(tiny_internvl, run_dir, "train.max_steps=3", "train.logging_steps=1",
                                   "train.save_total_limit=5"), data=colour_data)
    assert again["resumed_from"].endswith("checkpoint-3")
