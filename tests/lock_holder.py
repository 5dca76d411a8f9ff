"""Another process holding a folder's lock (``finetune.run_dir.exclusive``): a training in progress."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from finetune.run_dir import exclusive
with exclusive(sys.argv[1], "run directory"):
    print("held", flush=True)
    time.sleep(900)  # until the test kills it
"""


def holder(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (a training in progress)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "--pretend-training"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc
