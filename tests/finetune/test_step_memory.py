"""This process's peak resident memory, as run summaries report it (retrieval training, the proxy base)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune.step_memory import peak_rss_mb


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (kB) in MB: the kernel's own figures, read another way."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def test_peak_rss_is_in_mb_and_at_least_what_the_process_holds_now():
    block = np.ones(64 * 2**20 // 8)  # 64 MB, touched: resident now
    peak, resident = peak_rss_mb(), _status_mb("VmRSS")
    assert block.sum() > 0 and resident > 64
    # MB, not KiB or bytes: never below what is resident now, and the kernel's high-water mark bounds it from below
    assert peak >= resident - 1 and peak >= _status_mb("VmHWM") - 1  # 1 MB: reading the file allocates
    assert peak < 4 * max(resident, _status_mb("VmHWM")) + 64  # not KiB read as MB
