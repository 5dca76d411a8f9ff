"""Separate virtual environments for the peer systems, installed by this script, never committed.

Each peer gets its own venv (its pins must not touch geotune's): torch and torchvision at the versions
geotune's venv has (``pip`` takes them from the local wheels when they are there), then the peer's
package from PyPI at a pinned version.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TORCH = ("torch==2.14.1", "torchvision==0.29.1")
PEERS = {
    # name: (pip requirement, console script)
    "ms-swift": ("ms-swift==4.6.0", "swift"),
    "llamafactory": ("llamafactory==0.9.5", "llamafactory-cli"),
}


def ensure_venv(root: Path, name: str, log=print) -> Path:
    """``root/name`` with torch and the peer installed (a marker file makes a second call free)."""
    venv = root / name
    marker = venv / ".installed"
    requirement = PEERS[name][0]
    if marker.exists() and marker.read_text().strip() == requirement:
        return venv
    if not (venv / "bin" / "python").exists():
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    log(f"{name}: installing {' '.join(TORCH)}")
    subprocess.run([*pip, *TORCH], check=True)
    log(f"{name}: installing {requirement} (torch kept)")
    subprocess.run([*pip, requirement, *TORCH], check=True)
    marker.write_text(requirement + "\n")
    return venv


def console_script(venv: Path, name: str) -> Path:
    return venv / "bin" / PEERS[name][1]


if __name__ == "__main__":
    root = Path(sys.argv[1])
    for peer in sys.argv[2:] or PEERS:
        print(ensure_venv(root, peer))
