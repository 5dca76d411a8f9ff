"""DeepSpeed ZeRO-2/3 on two CPU processes (gloo) match one process; a ZeRO-3 checkpoint holds a loadable LoRA.

Each rank runs the whole experiment (``ds_worker.py``: ``run_experiment`` under torchrun, as
``accelerate launch train.py`` does), so these live with the app's tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "ds_worker.py"


def launch(tmp_path, tiny_internvl, name, nproc, *overrides, port):
    run_dir = tmp_path / name
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
           str(port), str(WORKER), str(tmp_path / "data"),
           str(tiny_internvl), str(run_dir), *overrides]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)  # a hang, not slowness
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((run_dir / "train_summary.json").read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_internvl, free_port):
    return launch(tmp_path_factory.mktemp("one"), tiny_internvl, "one", 1, "train.per_device_batch_size=4",
                  port=free_port())


@pytest.mark.multiprocess
@pytest.mark.parametrize("stage", [2, 3])
def test_two_cpu_ranks_match_one_process(stage, one_process, tmp_path, tiny_internvl, free_port):
    two = launch(tmp_path, tiny_internvl, f"zero{stage}", 2, "train.per_device_batch_size=2",
                 f"train.deepspeed={ROOT}/recipes/deepspeed/zero{stage}.json", port=free_port())
    assert two["world_size"] == 2 and two["steps"] == 4
    assert two["samples_seen"] == one_process["samples_seen"] == 16
    assert two["losses"] == pytest.approx(one_process["losses"], abs=2e-3)
    assert two["trainable_params"] == one_process["trainable_params"]
    if stage == 3:
        assert_zero3_checkpoint_holds_a_loadable_lora(tmp_path / "zero3", tiny_internvl)


def assert_zero3_checkpoint_holds_a_loadable_lora(run_dir, tiny_internvl):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    checkpoint = run_dir / "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").exists() and any(checkpoint.glob("global_step*"))
    base = AutoModelForImageTextToText.from_pretrained(tiny_internvl)
    model = PeftModel.from_pretrained(base, checkpoint)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.numel() > 0 for p in lora_b) and any(p.abs().sum() > 0 for p in lora_b)
    assert all(torch.isfinite(p).all() for p in lora_b)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_zero3_resume_on_two_cpu_ranks_reproduces_the_losses(tmp_path, tiny_internvl, free_port):
    import shutil

    args = ("train.per_device_batch_size=2", f"train.deepspeed={ROOT}/recipes/deepspeed/zero3.json",
            "train.lora.dropout=0.1")
    full = launch(tmp_path, tiny_internvl, "run", 2, *args, port=free_port())
    run_dir = tmp_path / "run"
    shutil.rmtree(run_dir / "checkpoint-4")  # killed after checkpoint-2
    shutil.rmtree(run_dir / "final")
    resumed = launch(tmp_path, tiny_internvl, "run", 2, *args, port=free_port())
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["steps"] == 4
    state = json.loads((run_dir / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["loss"] for e in state["log_history"] if "loss" in e] == pytest.approx(full["losses"], abs=1e-6)
