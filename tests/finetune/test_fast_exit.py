"""exit_now: atexit handlers run, buffered output survives, the exit code is kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_exit_now_runs_atexit_flushes_and_keeps_the_code(tmp_path):
    script = (
        "import atexit, sys\n"
        "from finetune.fast_exit import exit_now\n"
        f"atexit.register(lambda: open(r'{tmp_path / 'atexit'}', 'w').write('ran'))\n"
        "print('buffered', end='')\n"
        "sys.stderr.write('err')\n"
        "exit_now(3)\n"
        "print('never')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert (done.returncode, done.stdout, done.stderr) == (3, "buffered", "err")
    assert (tmp_path / "atexit").read_text() == "ran"


def test_python_m_geotune_exits_with_the_command_code():
    done = subprocess.run([sys.executable, "-m", "geotune", "--version"], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0 and done.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "geotune", "train", "recipe=no_such_recipe"], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert bad.returncode == 2 and "no_such_recipe" in bad.stderr
