"""benchmarks/peers: equal settings for the three systems and geotune's venv built as the peers' are.

No venv is created and nothing is installed: the commands are checked, not run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


def _run(system, round_, wall, rss, accuracy=50.0, mode="full"):
    # losses stamped at 10 s and 40 s; the loop took 35 s, so it began at 5 s
    return {"system": system, "mode": mode, "round": round_, "wall_s": wall, "train_s": 35.0, "cpu_s": wall / 2,
            "peak_rss_gb": rss, "losses": [(10.0, 2.0), (40.0, 1.0)],
            "accuracy": {b: accuracy for b in compare.BENCHMARKS}}


def test_phases_split_the_wall_time_around_the_training_loop():
    assert compare.phases(_run("geotune", 0, wall=50.0, rss=1.0)) == (5.0, 10.0)


def test_ratios_pair_runs_of_the_same_round():
    results = [_run("geotune", 0, 50.0, 1.0), _run("ms-swift", 0, 100.0, 1.0),
               _run("geotune", 1, 90.0, 1.2), _run("ms-swift", 1, 100.0, 1.0),
               _run("ms-swift", 2, 100.0, 1.0)]  # geotune's round 2 missing: no pair
    assert compare.paired_ratios(results, "full", "ms-swift", "wall_s") == [0.5, 0.9]
    assert compare.paired_ratios(results, "full", "ms-swift", "peak_rss_gb") == [1.0, 1.2]
    assert compare.paired_ratios(results, "lora", "ms-swift", "wall_s") == []


def test_goal_needs_time_rss_and_accuracy_in_every_round():
    results = [_run("geotune", 0, 50.0, 1.0), _run("llamafactory", 0, 100.0, 1.1),
               _run("geotune", 1, 55.0, 1.0, accuracy=40.0), _run("llamafactory", 1, 100.0, 1.1)]
    assert compare.accuracy_reached(results, "full", "llamafactory") == "1/2"
    row = next(line for line in compare.goal_table(results).splitlines() if line.startswith("| full | llamafactory"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "0.53 (0.50, 0.55)"  # wall: median of the paired ratios, each round's after it
    assert cells[-3:] == ["1/2", "not met", "met"]  # fast enough but accuracy not reached in round 1
    results[2]["accuracy"] = results[0]["accuracy"]
    row = next(line for line in compare.goal_table(results).splitlines() if line.startswith("| full | llamafactory"))
    assert row.rstrip(" |").endswith("2/2 | met | met")


@pytest.mark.parametrize("mode, weights", [("lora", "bfloat16"), ("full", "float32")])
def test_bf16_is_the_same_precision_in_all_three(tmp_path, mode, weights):
    """bf16 autocast everywhere, trainable weights fp32 everywhere (systems.py, "Precision"); ms-swift's
    fp16 default for an fp32 or fp16 --torch_dtype written off."""
    s = systems.Setting(mode=mode, bf16=True)
    geotune = systems.geotune_command("python", tmp_path, tmp_path / "d.json", tmp_path, tmp_path / "o", tmp_path, s)
    swift = systems.swift_command(tmp_path / "swift", tmp_path, tmp_path / "d.json", tmp_path / "o", s)
    factory = systems.llamafactory_config(tmp_path, tmp_path / "d.json", tmp_path / "o", s)
    assert "train.bf16=true" in geotune and f"model.dtype={weights}" in geotune
    assert (_flag(swift, "--bf16"), _flag(swift, "--fp16"), _flag(swift, "--torch_dtype")) == ("true", "false", weights)
    assert factory["bf16"] is True and factory["fp16"] is False


def test_fp32_is_written_out_for_every_system(tmp_path):
    s = systems.Setting(mode="lora")
    geotune = systems.geotune_command("python", tmp_path, tmp_path / "d.json", tmp_path, tmp_path / "o", tmp_path, s)
    swift = systems.swift_command(tmp_path / "swift", tmp_path, tmp_path / "d.json", tmp_path / "o", s)
    factory = systems.llamafactory_config(tmp_path, tmp_path / "d.json", tmp_path / "o", s)
    assert "train.bf16=false" in geotune and "model.dtype=float32" in geotune  # not "auto" (bf16 on a GPU)
    assert (_flag(swift, "--bf16"), _flag(swift, "--fp16"), _flag(swift, "--torch_dtype")) == ("false", "false", "float32")
    assert factory["bf16"] is False and factory["fp16"] is False


def test_a_gpu_run_builds_every_command_with_bf16_and_one_visible_gpu(tmp_path):
    args = Namespace(geotune_python=None, work=tmp_path, device="cuda", bf16=True)
    venvs_ = {name: tmp_path / name for name in compare.SYSTEMS}
    data = [tmp_path / "pool.json", tmp_path / "pool_abs.json"]
    s = systems.Setting(mode="lora", bf16=args.bf16)
    out = tmp_path / "runs" / "x"
    geotune = compare.system_command("geotune", s, args, tmp_path / "tiny", data, venvs_, out)
    swift = compare.system_command("ms-swift", s, args, tmp_path / "tiny", data, venvs_, out)
    factory = compare.system_command("llamafactory", s, args, tmp_path / "tiny", data, venvs_, out)
    assert geotune[0] == str(tmp_path / "geotune" / "bin" / "python") and "train.bf16=true" in geotune
    assert swift[0] == str(tmp_path / "ms-swift" / "bin" / "swift") and _flag(swift, "--bf16") == "true"
    assert factory[:2] == [str(tmp_path / "llamafactory" / "bin" / "llamafactory-cli"), "train"]
    assert "bf16: true" in Path(factory[2]).read_text()
    assert compare.run_environment("cuda", {})["CUDA_VISIBLE_DEVICES"] == "0"
    assert compare.run_environment("cuda", {"CUDA_VISIBLE_DEVICES": "3"})["CUDA_VISIBLE_DEVICES"] == "3"
    assert compare.run_environment("cpu", {"CUDA_VISIBLE_DEVICES": "0"})["CUDA_VISIBLE_DEVICES"] == ""


def test_settings_a_system_would_change_silently_are_refused():
    with pytest.raises(ValueError, match="LLaMA-Factory 0.9.5 has no fp32 training on a GPU"):
        compare.check_device_settings("cuda", False, list(compare.SYSTEMS))
    compare.check_device_settings("cuda", False, ["geotune", "ms-swift"])  # without it, fp32 on a GPU is fine
    with pytest.raises(ValueError, match="--bf16 needs --device cuda"):
        compare.check_device_settings("cpu", True, ["geotune"])
    done = subprocess.run([sys.executable, str(PEERS_DIR / "compare.py"), "--work", "/nonexistent", "--device", "cuda"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 2 and "add --bf16" in done.stderr  # before any venv or data is made


def test_gpu_memory_counts_the_run_s_processes_only():
    query = "4242, 1200\n4243, 300\n999, 5000\n[Not Supported], 7\n"
    assert compare.gpu_memory_mib(query, {4242, 4243}) == 1500
    assert compare.gpu_memory_mib("", {4242}) == 0


def test_the_memory_poller_keeps_polling_rss_with_or_without_nvidia_smi():
    poller = compare.PeakMemory(os.getpid(), gpu=True)
    poller.start()
    time.sleep(0.7)
    poller.running = False
    poller.join(timeout=5)
    assert poller.peak[0] > 0 and poller.peak_gpu_mib == 0  # this process holds no GPU memory
