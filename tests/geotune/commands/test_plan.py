"""`geotune plan` and the plans of the shipped recipes (the planner's maths: tests/finetune/test_planner.py)."""

import json
from pathlib import Path

import pytest

from finetune.planner import lora_params, plan_recipe
from geotune.cli import main
from geotune.config import RECIPES_DIR, RecipeError, load_recipe

SHIPPED = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_recipe_has_a_plan(name):
    cfg = load_recipe(name)
    if cfg.train.task == "retrieval":  # a CLIP dual encoder: refused by name, never a made-up number
        with pytest.raises(RecipeError, match="train.task=retrieval: the planner models multimodal LLM"):
            plan_recipe(cfg)
        return
    if cfg.model.path.startswith("runs/") and not cfg.model.tiny:  # another recipe's output (the proxy base)
        if not (Path(cfg.model.path) / "config.json").exists():  # resolved as the planner does
            with pytest.raises(RecipeError, match="has no config.json .* point model.path at the checkpoint folder"):
                plan_recipe(cfg)
            return
    plan = plan_recipe(cfg)
    assert plan.verdict in ("fits", "tight", "does not fit") and plan.total > 0


def test_recipe_plans_by_family():
    xc = plan_recipe(load_recipe("rs_third"))
    assert xc.setup.image_tokens == 1225 and xc.setup.zero_stage == 2
    assert xc.setup.lora_targets == ["attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2",
                                     "feed_forward.w3"]
    # r x (in + out) over the five InternLM2-7B projections, 32 layers.
    assert lora_params(xc.setup.spec, xc.setup.lora_targets, 64) == 32 * 64 * (10240 + 8192 + 3 * 18432)
    mini = plan_recipe(load_recipe("rs_mix"))
    assert mini.setup.image_tokens == 7 * 256 and mini.verdict == "fits"  # 6 tiles + thumbnail
    assert plan_recipe(load_recipe("minivl_full")).verdict == "fits"
    zero3 = plan_recipe(load_recipe("minivl_full", ["train.deepspeed=recipes/deepspeed/zero3.json"]))
    assert zero3.verdict == "does not fit"
    assert plan_recipe(load_recipe("rs_third"), seq_len=1536).verdict in ("fits", "tight")


def test_cli_json_and_suggestions(capsys):
    assert main(["plan", "recipe=minivl_full", "train.deepspeed=recipes/deepspeed/zero3.json", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "does not fit" and out["recipe"] == "minivl_full"
    assert out["total_gib"] == pytest.approx(sum(out["per_gpu_gib"].values()), abs=0.01)
    assert any("zero3_offload" in s["overrides"] and s["verdict"] == "fits" for s in out["suggestions"])
    assert main(["plan", "recipe=rs_mix"]) == 0
    assert "verdict for 2 x 24 GB: fits" in capsys.readouterr().out


def test_cli_labelled_share_shrinks_only_the_logits(capsys):
    def plan(*args):
        assert main(["plan", "recipe=rs_third", *args, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    worst, answers = plan(), plan("--labelled-share", "0.05")
    assert any("--labelled-share" in note for note in worst["notes"])
    assert answers["per_gpu_gib"]["logits_loss"] == pytest.approx(0.05 * worst["per_gpu_gib"]["logits_loss"], abs=0.01)
    assert answers["per_gpu_gib"]["weights"] == worst["per_gpu_gib"]["weights"]
    off = plan("train.supervised_logits=false", "--labelled-share", "0.05")  # every position gets logits then
    assert off["per_gpu_gib"]["logits_loss"] == worst["per_gpu_gib"]["logits_loss"]
    with pytest.raises(RecipeError, match="labelled-share"):
        plan_recipe(load_recipe("rs_third"), labelled_share=1.5)
    with pytest.raises(RecipeError, match="labelled-share"):  # refused even where it would not count
        plan_recipe(load_recipe("rs_third", ["train.supervised_logits=false"]), labelled_share=0)


def test_tiny_recipe_plans_with_its_own_text_model():
    """proxy_base widens the tiny model's text part (model.tiny_text): the plan must see 128, not 64."""
    assert plan_recipe(load_recipe("proxy_base")).setup.spec.llm.hidden == 128
    assert plan_recipe(load_recipe("demo")).setup.spec.llm.hidden == 64
