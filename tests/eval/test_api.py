import json

import pytest
import torch

from eval import api
from geotune.commands import eval as cli
from geotune.config import load_recipe


def _cfg(model_path, bench_root, *extra):
    return load_recipe(None, [
        f"model.path={model_path}", "model.dtype=float32", "eval.benchmarks=[ucmerced,lrben]",
        f"eval.ucmerced_root={bench_root}", f"eval.lrben_root={bench_root}", "eval.limit=3", "eval.batch_size=3",
        "eval.max_new_tokens=1", *extra,
    ])


@pytest.fixture(scope="module")
def lora_dir(tiny_internvl, tmp_path_factory):
    """A peft LoRA adapter over the tiny model, with non-zero B so it changes the weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_internvl)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora") / "final"
    peft_model.save_pretrained(out)
    return out


def test_load_checkpoint_applies_a_lora_adapter_to_the_base(tiny_internvl, lora_dir, bench_root):
    cfg = _cfg(tiny_internvl, bench_root)
    base, _, _ = api.load_checkpoint(cfg, tiny_internvl)
    merged, _, _ = api.load_checkpoint(cfg, lora_dir)
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


def test_geotune_eval_cli_with_checkpoint_and_geochat_bench(tiny_internvl, lora_dir, bench_root, capsys):
    overrides = [f"checkpoint={lora_dir}", f"model.path={tiny_internvl}", "model.dtype=float32", "eval.benchmarks=[aid]",
                 f"eval.aid_root={bench_root}", f"eval.geochat_bench_dir={bench_root / 'GeoChat-Bench'}",
                 "eval.max_new_tokens=1", "eval.batch_size=6"]
    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(overrides)) == 0
    result = json.loads((lora_dir / "eval" / "aid.json").read_text())
    assert result["count"] == 6 and result["repairs"]["image_png_to_jpg"] == 6
    assert "aid:" in capsys.readouterr().out


def test_checkpoint_is_taken_out_of_the_overrides():
    assert cli.split_checkpoint(["recipe=demo", "checkpoint=runs/x/final", "eval.limit=5"]) == (
        "runs/x/final", ["recipe=demo", "eval.limit=5"])


def test_unset_root_names_the_recipe_key(tiny_internvl, tmp_path):
    cfg = load_recipe(None, [f"model.path={tiny_internvl}", "eval.benchmarks=[aid]"])
    with pytest.raises(ValueError, match="eval.aid_root"):
        api.evaluate_checkpoint(cfg, tiny_internvl)
