"""The proxy's pretraining + LoRA path end to end on a tiny SynthRS: base built once, reused, LoRA on it."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

import geotune.experiment
from geotune.config import load_recipe
from geotune.experiment import run_experiment
from geotune.proxy import ensure_base, lora_overrides

TINY = {"size": "tiny", "pool_records": 40, "instructions_per_image": 3, "pretrain_records": 24}
FAST = ["train.per_device_batch_size=4", "eval.limit=4", "eval.max_new_tokens=4", "train.logging_steps=1"]


def test_base_is_pretrained_once_then_lora_tunes_it(tmp_path, monkeypatch):
    root = tmp_path / "proxy"
    base = ensure_base(root, overrides=[*FAST, "train.epochs=1"], synth=TINY)
    assert base["steps"] == 6 and base["records"] == 24 and base["peak_rss_mb"] > 0
    assert set(base["zero_shot"]) == {"ucmerced", "aid", "lrben"}
    init = load_file(root / "base-init" / "model.safetensors")
    trained = load_file(root / "base" / "final" / "model.safetensors")
    moved = [k for k in init if not (init[k] == trained[k]).all()]
    assert any("vision_tower" in k for k in moved) and any("language_model" in k for k in moved)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached base was trained again")

    monkeypatch.setattr(geotune.experiment, "run_experiment", no_training)
    assert ensure_base(root, synth=TINY) == base
    monkeypatch.undo()

    run_dir = tmp_path / "lora"
    cfg = load_recipe("proxy_lora_random_third", lora_overrides(root) + [*FAST, "train.max_steps=2", f"run_dir={run_dir}"])
    summary = run_experiment(cfg)
    assert summary["records_selected"] == round(0.333 * 40) and summary["steps"] == 2
    assert 0 < summary["trainable_params"] < summary["total_params"] / 5
    adapter = json.loads((run_dir / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(root / "base" / "final")
    assert all("language_model" in m or "vision" not in m for m in adapter["target_modules"])
    assert set(summary["eval"]) == {"ucmerced", "aid", "lrben"}


@pytest.mark.parametrize("name", ["proxy_lora", "proxy_lora_random_third"])
def test_lora_recipes_read_the_base_built_by_proxy_base(name):
    assert load_recipe(name).model.path == load_recipe("proxy_base").run_dir + "/final"
