"""benchmarks/peers: equal settings for the three systems and geotune's venv built as the peers' are.

No venv is created and nothing is installed: the commands are checked, not run.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import pytest

PEERS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS_DIR))
import compare  # noqa: E402
import systems  # noqa: E402
import venvs  # noqa: E402


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.mark.parametrize("mode, frozen", [("full", False), ("lora", True)])
def test_every_system_treats_the_projector_alike(tmp_path, mode, frozen):
    s = systems.Setting(mode=mode)
    geotune = systems.geotune_command("python", tmp_path, tmp_path / "d.json", tmp_path, tmp_path / "o", tmp_path, s)
    swift = systems.swift_command(tmp_path / "swift", tmp_path, tmp_path / "d.json", tmp_path / "o", s)
    factory = systems.llamafactory_config(tmp_path, tmp_path / "d.json", tmp_path / "o", s)
    assert f"train.freeze_projector={str(frozen).lower()}" in geotune
    assert _flag(swift, "--freeze_aligner") == str(frozen).lower()
    assert factory["freeze_multi_modal_projector"] is frozen
    # and the vision tower is frozen in all three, whatever the mode
    assert "train.freeze_vision=true" in geotune and _flag(swift, "--freeze_vit") == "true"
    assert factory["freeze_vision_tower"] is True


def test_geotune_venv_is_installed_like_a_peer_then_runs_the_working_tree(tmp_path):
    python = tmp_path / "bin" / "python"
    geotune = venvs.install_commands(python, venvs.GEOTUNE, repo=tmp_path)
    peer = venvs.install_commands(python, "llamafactory", repo=tmp_path)
    assert geotune[0] == peer[0]  # the same torch pins first
    assert geotune[1][:-len(venvs.TORCH) - 1] == peer[1][:-len(venvs.TORCH) - 1]
    assert geotune[1][-len(venvs.TORCH) - 1:] == [str(tmp_path), *venvs.TORCH]  # the repo, no extras
    assert peer[1][-len(venvs.TORCH) - 1:] == [venvs.PEERS["llamafactory"][0], *venvs.TORCH]
    assert geotune[2][-2:] == ["-y", "geotune"] and len(peer) == 2


def test_geotune_venv_is_rebuilt_when_its_dependencies_change(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "geotune"\ndependencies = ["torch>=2.4", "peft"]\n')
    before = venvs.requirement(venvs.GEOTUNE, repo=tmp_path)
    pyproject.write_text('[project]\nname = "geotune"\ndependencies = ["peft", "torch>=2.4"]\n')
    assert venvs.requirement(venvs.GEOTUNE, repo=tmp_path) == before  # order does not matter
    pyproject.write_text('[project]\nname = "geotune"\ndependencies = ["torch>=2.4", "peft", "wandb"]\n')
    assert venvs.requirement(venvs.GEOTUNE, repo=tmp_path) != before
    assert venvs.requirement("ms-swift") == venvs.PEERS["ms-swift"][0]


def test_geotune_trains_with_its_own_venv_unless_told_otherwise(tmp_path):
    own = {venvs.GEOTUNE: tmp_path / "geotune"}
    assert compare.geotune_python(Namespace(geotune_python=None), own) == str(tmp_path / "geotune" / "bin" / "python")
    assert compare.geotune_python(Namespace(geotune_python="/dev/venv/python"), own) == "/dev/venv/python"
