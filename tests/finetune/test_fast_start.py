"""Start-up without full collections: a command's imports run with the cyclic collector paused, then frozen."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.fast_start import collector_paused_then_frozen

REPO = Path(__file__).resolve().parents[2]

# Runs an entry point (`python -m geotune train` or `python train.py`) with recipe=no_such_recipe in this
# interpreter: the train command's modules (torch, transformers, peft) are imported, then the recipe is
# refused; atexit writes what the collector did (exit_now runs atexit handlers).
ENTRY = """
import atexit, gc, json, runpy, sys
how, target = sys.argv[2], sys.argv[3]
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "stop" and info["generation"] == 2 else None)
def report(path=sys.argv[1]):
    with open(path, "w") as f:
        json.dump({"full_collections": len(full), "frozen": gc.get_freeze_count(), "enabled": gc.isenabled(),
                   "torch": "torch" in sys.modules}, f)
atexit.register(report)
if how == "module":
    sys.argv = ["geotune", "train", "recipe=no_such_recipe"]
    runpy.run_module(target, run_name="__main__")
else:
    sys.argv = [target, "recipe=no_such_recipe"]
    runpy.run_path(target, run_name="__main__")
"""


@pytest.mark.parametrize("how, target", [("module", "geotune"), ("path", "train.py")])
def test_entry_points_load_the_train_command_without_a_full_collection(tmp_path, how, target):
    """Importing the train command made ~430k objects; the collector walked all of them again every time
    they grew by a quarter (9 full collections, 1.8 s CPU before step 1 of a 38 s LoRA run,
    docs/performance.md "Start-up"). ``train.py`` (what ``accelerate launch`` runs) imported them at the
    top of the file, before its ``__main__`` block could pause anything."""
    report = tmp_path / "gc.json"
    done = subprocess.run([sys.executable, "-c", ENTRY, str(report), how, target], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 2 and "no_such_recipe" in done.stderr, done.stderr[-2000:]
    seen = json.loads(report.read_text())
    assert seen["torch"]  # the heavy imports did happen
    assert seen["full_collections"] == 0
    assert seen["frozen"] > 100_000  # the modules' objects: never walked again
    assert seen["enabled"]  # and the collector is back on for the run itself


def test_the_collector_comes_back_on_after_an_error_and_stays_off_if_it_was():
    try:
        try:
            with collector_paused_then_frozen():
                assert not gc.isenabled()
                raise ImportError("a command module that fails to import")
        except ImportError:
            pass
        assert gc.isenabled() and gc.get_freeze_count() > 0  # frozen even so: the objects made so far stay
        gc.unfreeze()
        gc.disable()
        with collector_paused_then_frozen():
            pass
        assert not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()
        gc.unfreeze()  # this test process goes on collecting as before
