"""Separate virtual environments for the three systems, installed by this script, never committed.

Each system gets a fresh venv built the same way: torch and torchvision at the versions geotune's venv
has (``pip`` takes them from the local wheels or its cache), then the system's package at a pinned
version, torch kept. geotune included: its venv holds geotune's runtime dependencies only (no dev or
test extras), so that no system's peak RSS counts library pages of another's tools. The shared dev
venv maps more of them (`import torch; from transformers import Trainer`: 1,080 MB resident there,
889 MB in a fresh venv, same wheels). geotune itself is uninstalled again after its dependencies are
in: ``python -m geotune`` run from the repository imports the working tree's code, never a stale copy.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
TORCH = ("torch==2.14.1", "torchvision==0.29.1")
PEERS = {
    # name: (pip requirement, console script)
    "ms-swift": ("ms-swift==4.6.0", "swift"),
    "llamafactory": ("llamafactory==0.9.5", "llamafactory-cli"),
}
GEOTUNE = "geotune"


def requirement(name: str, repo: Path = REPO) -> str:
    """What the venv of ``name`` is built from; the marker file records it, so a change reinstalls."""
    if name != GEOTUNE:
        return PEERS[name][0]
    dependencies = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    digest = hashlib.sha256("\n".join(sorted(dependencies)).encode()).hexdigest()[:12]
    return f"{GEOTUNE} runtime dependencies {digest}"


def install_commands(python: Path, name: str, repo: Path = REPO) -> list[list[str]]:
    """The pip commands that fill a fresh venv whose interpreter is ``python``: the same for every system."""
    pip = [str(python), "-m", "pip"]
    package = str(repo) if name == GEOTUNE else PEERS[name][0]
    commands = [[*pip, "install", "-q", *TORCH], [*pip, "install", "-q", package, *TORCH]]
    if name == GEOTUNE:  # keep the dependencies, run the working tree
        commands.append([*pip, "uninstall", "-q", "-y", GEOTUNE])
    return commands


def ensure_venv(root: Path, name: str, log=print) -> Path:
    """``root/name`` with torch and the system installed (a marker file makes a second call free)."""
    venv = root / name
    marker = venv / ".installed"
    wanted = requirement(name)
    if marker.exists() and marker.read_text().strip() == wanted:
        return venv
    if not (venv / "bin" / "python").exists():
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for command in install_commands(venv / "bin" / "python", name):
        log(f"{name}: {' '.join(command[3:])}")
        subprocess.run(command, check=True)
    marker.write_text(wanted + "\n")
    return venv


def console_script(venv: Path, name: str) -> Path:
    return venv / "bin" / PEERS[name][1]


if __name__ == "__main__":
    root = Path(sys.argv[1])
    for system in sys.argv[2:] or [GEOTUNE, *PEERS]:
        print(ensure_venv(root, system))
