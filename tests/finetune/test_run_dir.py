"""One writer per run directory or cache entry; a changed recipe is not resumed silently (what a run makes of
them: tests/geotune/test_experiment_run_dir.py; the feature cache's: tests/selection/features/test_store_lock.py)."""

from __future__ import annotations

import signal

import pytest
from lock_holder import holder

from finetune.run_dir import OWNER_NAME, RunDirError, exclusive


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
