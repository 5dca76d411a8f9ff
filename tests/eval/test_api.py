"""eval.api: a checkpoint (full or a LoRA over its base) loaded and scored, results beside it
(`geotune eval`: tests/geotune/commands/test_eval_command.py)."""

import json

import pytest
import torch
from recipe_sections import library_recipe

from eval import api
from eval.config import EvalConfig, check_values

EVAL = {"eval": (EvalConfig, check_values)}


def _cfg(model_path, bench_root, *extra):
    return library_recipe(
        f"model.path={model_path}", "model.dtype=float32", "eval.benchmarks=[ucmerced,lrben]",
        f"eval.ucmerced_root={bench_root}", f"eval.lrben_root={bench_root}", "eval.limit=3", "eval.batch_size=3",
        "eval.max_new_tokens=1", *extra, sections=EVAL,
    )


def test_load_checkpoint_applies_a_lora_adapter_to_the_base(tiny_internvl, tiny_lora, bench_root):
    cfg = _cfg(tiny_internvl, bench_root)
    base, _, _ = api.load_checkpoint(cfg, tiny_internvl)
    merged, _, _ = api.load_checkpoint(cfg, tiny_lora)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    base_w, merged_w = dict(base.named_parameters())[name], dict(merged.named_parameters())[name]
    assert base_w.shape == merged_w.shape and not torch.equal(base_w, merged_w)
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_evaluate_checkpoint_writes_results_beside_a_full_checkpoint(tiny_internvl, bench_root, tmp_path):
    import shutil

    ckpt = tmp_path / "final"
    shutil.copytree(tiny_internvl, ckpt)
    results = api.evaluate_checkpoint(_cfg(tiny_internvl, bench_root), ckpt)
    assert set(results) == {"ucmerced", "lrben"}
    assert results["ucmerced"]["count"] == 3 and results["lrben"]["count"] == 3
    for name in ("ucmerced.json", "ucmerced.predictions.jsonl", "ucmerced.confusion.png", "lrben.json", "summary.json"):
        assert (ckpt / "eval" / name).exists(), name
    summary = json.loads((ckpt / "eval" / "summary.json").read_text())
    assert summary == {"ucmerced": results["ucmerced"]["score"], "lrben": results["lrben"]["score"]}


def test_unset_root_names_the_recipe_key(tiny_internvl, tmp_path):
    cfg = library_recipe(f"model.path={tiny_internvl}", "eval.benchmarks=[aid]", sections=EVAL)
    with pytest.raises(ValueError, match="eval.aid_root"):
        api.evaluate_checkpoint(cfg, tiny_internvl)
