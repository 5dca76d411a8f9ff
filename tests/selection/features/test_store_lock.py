"""Two selections on one feature-cache entry: the second waits for the first's lock (finetune.run_dir.exclusive)
and reuses its shards instead of computing them again."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from finetune.run_dir import OWNER_NAME
from selection.features.store import run_sharded

ROOT = Path(__file__).resolve().parents[3]


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
