"""One writer per run directory and feature-cache entry; a changed recipe is not resumed silently."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finetune.run_dir import OWNER_NAME, RunDirError, claim_run_dir, exclusive
from geotune.config import load_recipe
from geotune.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from finetune.run_dir import exclusive
with exclusive(sys.argv[1], "run directory"):
    print("held", flush=True)
    time.sleep(900)  # until the test kills it
"""


def _holder(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (a training in progress)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "--pretend-training"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _wait_for(condition, seconds: float = 900) -> None:
    deadline = time.monotonic() + seconds  # only catches a hang
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_second_run_in_a_busy_run_dir_fails_naming_the_other_process(tmp_path, colour_data):
    run_dir = tmp_path / "run"
    other = _holder(run_dir)
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


SELECT = """
import sys, time
import numpy as np
from selection.features.store import run_sharded

def compute(lo, hi):
    time.sleep(0.5)
    return np.full((hi - lo, 3), 7.0), {}

run_sharded(__import__("pathlib").Path(sys.argv[1]), 8, 2, compute)
print("done", flush=True)
"""


def test_two_selections_on_one_feature_cache_entry_wait_and_reuse(tmp_path):
    from selection.features.store import run_sharded

    entry = tmp_path / "cache" / "text-abc"
    other = subprocess.Popen([sys.executable, "-c", SELECT, str(entry)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (entry / OWNER_NAME).exists() or other.poll() is not None)
        calls = []

        def compute(lo, hi):
            calls.append((lo, hi))
            return np.full((hi - lo, 3), 1.0), {}

        values = run_sharded(entry, 8, 2, compute)
        assert calls == [] and values.shape == (8, 3) and float(values.min()) == float(values.max()) == 7.0
        assert other.wait(timeout=900) == 0 and other.stdout.read().strip() == "done"
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_exclusive_without_wait_is_refused_and_with_wait_blocks_until_free(tmp_path):
    folder = tmp_path / "entry"
    other = _holder(folder)
    try:
        with pytest.raises(RunDirError, match=rf"cache {folder} is in use by pid {other.pid}"):
            with exclusive(folder, "cache"):
                pass
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    with exclusive(folder, "cache", wait=True):
        assert (folder / OWNER_NAME).exists()


def test_recipe_changes_lists_what_changes_training_only():
    from finetune.run_dir import recipe_changes

    saved = {"train": {"learning_rate": 1e-3, "logging_steps": 10, "mode": "full"}, "eval": {"limit": 5},
             "data": {"datasets": [{"path": "a.json"}]}}
    current = {"train": {"learning_rate": 1e-3, "logging_steps": 1, "mode": "full"}, "eval": {"limit": 50},
               "data": {"datasets": [{"path": "a.json"}, {"path": "b.json"}], "bands": None}}
    # logging and eval may change; a key the saved recipe predates (data.bands) is not a change; a dataset is
    assert recipe_changes(saved, current) == ["data.datasets.len: 1 -> 2"]
    assert recipe_changes(saved, saved) == []
