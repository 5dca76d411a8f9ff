"""One writer per run directory and feature-cache entry; a changed recipe is not resumed silently (what a run
makes of them: tests/geotune/test_experiment_run_dir.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lock_holder import holder

from finetune.run_dir import OWNER_NAME, RunDirError, exclusive

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(condition, seconds: float = 900) -> None:
    deadline = time.monotonic() + seconds  # only catches a hang
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


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
    other = holder(folder)
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
