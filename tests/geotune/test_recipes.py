"""Recipe-specific checks: each real-model recipe matches its published setup, its launch command names
an accelerate config that uses the same DeepSpeed JSON, and the DeepSpeed JSONs resolve under the HF Trainer."""

import json
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from geotune.config import RECIPES_DIR, load_recipe

REPO = RECIPES_DIR.parent
REAL = ["rs_full", "rs_third", "rs_random_third", "rs_coincide", "rs_mix", "minivl_full"]
XCOMPOSER2 = ["rs_full", "rs_third", "rs_random_third", "rs_coincide"]


def command_config(name: str) -> Path:
    first = (RECIPES_DIR / f"{name}.yaml").read_text().splitlines()[0]
    match = re.match(r"# accelerate launch --config_file (\S+) train\.py recipe=" + name + "$", first)
    assert match, f"{name}: first line is not the accelerate command: {first}"
    return REPO / match.group(1)


@pytest.mark.parametrize("name", REAL)
def test_launch_command_uses_the_recipes_deepspeed_json(name):
    accel = yaml.safe_load(command_config(name).read_text())
    cfg = load_recipe(name)
    assert accel["distributed_type"] == "DEEPSPEED" and accel["num_processes"] == 2
    assert accel["deepspeed_config"]["deepspeed_config_file"] == cfg.train.deepspeed
    assert (REPO / cfg.train.deepspeed).exists()


def test_rs_third_is_the_official_xcomposer2_lora_recipe():
    cfg = load_recipe("rs_third")
    assert (cfg.model.adapter, cfg.model.trust_remote_code) == ("xcomposer2", True) and cfg.model.vision_tower_path
    t = cfg.train
    assert (t.mode, t.lora.r, t.lora.alpha, t.lora.dropout) == ("lora", 64, 64, 0.05)
    assert list(t.lora.target_modules) == ["attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2",
                                           "feed_forward.w3"]
    assert t.freeze_vision and t.freeze_projector
    assert (t.learning_rate, t.weight_decay, t.adam_beta2, t.warmup_ratio, t.lr_scheduler) == (5e-5, 0.1, 0.95, 0.01,
                                                                                              "cosine")
    assert (t.max_length, t.bf16, t.gradient_checkpointing) == (4096, True, True)
    assert (t.per_device_batch_size, t.grad_accum, t.deepspeed) == (1, 8, "recipes/deepspeed/zero2.json")
    assert (cfg.selection.method, cfg.selection.keep) == ("adaptive_shift", 0.333)
    assert list(cfg.eval.benchmarks) == ["ucmerced", "aid", "lrben"]


@pytest.mark.parametrize("name", ["rs_full", "rs_random_third", "rs_coincide"])
def test_xcomposer2_comparisons_differ_from_rs_third_only_in_selection(name):
    base, other = (OmegaConf.to_container(load_recipe(n)) for n in ("rs_third", name))
    for cfg in (base, other):
        cfg.pop("selection"), cfg.pop("name"), cfg.pop("run_dir")
    assert other == base


def test_selection_budgets():
    assert load_recipe("rs_full").selection.method == "full"
    rnd = load_recipe("rs_random_third").selection
    assert (rnd.method, rnd.keep) == ("random", 0.333)
    co = load_recipe("rs_coincide").selection
    assert (co.method, co.keep, co.features.backend, list(co.features.layers)) == ("coincide", 0.2, "reference",
                                                                                  [3, 7, 11, 15, 19])


def test_rs_mix_mixes_general_data_and_documents_the_sweep():
    cfg = load_recipe("rs_mix")
    assert {d.kind for d in cfg.data.datasets} == {"domain", "general"} and cfg.mix.general_ratio == 0.25
    assert cfg.model.adapter == "internvl_remote" and "Mini-InternVL" in cfg.model.path
    assert (cfg.train.lora.r, cfg.train.lora.alpha, cfg.train.learning_rate) == (16, 32, 4e-5)
    text = (RECIPES_DIR / "rs_mix.yaml").read_text()
    assert "geotune sweep recipe=rs_mix mix.general_ratio=0,0.25,0.5,0.75" in text


def test_minivl_full_is_the_official_domain_adaptation():
    t = load_recipe("minivl_full").train
    assert t.mode == "full" and not (t.freeze_vision or t.freeze_projector or t.freeze_llm)
    assert (t.learning_rate, t.weight_decay, t.lr_scheduler, t.warmup_ratio) == (1e-5, 0.01, "cosine", 0.03)


@pytest.mark.parametrize("name", REAL)
def test_local_paths_change_with_one_override(name):
    cfg = load_recipe(name, ["model.path=/models/elsewhere"])
    assert cfg.model.path == "/models/elsewhere"
    raw = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    paths = [raw["model"]["path"]] + [d[k] for d in raw["data"]["datasets"] for k in ("path", "image_root")]
    assert all(not p.startswith(("/", "http")) for p in paths), "recipes ship relative local paths"
    assert all(p.startswith("data/") for p in paths[1:])


@pytest.mark.parametrize("stage", ["zero2", "zero3", "zero3_offload"])
def test_deepspeed_json_resolves_under_the_hf_trainer(stage, tiny_internvl):
    """Every "auto" is filled by transformers; no optimizer section (torch AdamW, no fused/CPU-Adam op build)."""
    from types import SimpleNamespace

    from transformers import AutoConfig, TrainingArguments
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    path = RECIPES_DIR / "deepspeed" / f"{stage}.json"
    raw = json.loads(path.read_text())
    assert "optimizer" not in raw and "scheduler" not in raw
    model = SimpleNamespace(config=AutoConfig.from_pretrained(tiny_internvl))  # only its hidden size is read
    try:
        args = TrainingArguments(output_dir="/tmp/geotune-ds-test", deepspeed=str(path), per_device_train_batch_size=1,
                                 gradient_accumulation_steps=8, report_to=[])
        ds = args.hf_deepspeed_config
        ds.trainer_config_finalize(args, model, num_training_steps=10)
    finally:
        unset_hf_deepspeed_config()  # a live ZeRO-3 config would make later from_pretrained calls shard
    assert "auto" not in json.dumps(ds.config)
    assert ds.config["zero_optimization"]["reduce_bucket_size"] == model.config.text_config.hidden_size ** 2
    assert ds.is_zero3() == stage.startswith("zero3") and ds.is_offload() == stage.endswith("offload")
    assert ds.config["gradient_accumulation_steps"] == 8


def test_cpu_dry_run_config_is_two_deepspeed_processes_without_use_cpu():
    """accelerate skips DeepSpeed when use_cpu is set; finetune.distributed wires CPU ranks instead."""
    accel = yaml.safe_load((RECIPES_DIR / "accelerate" / "cpu_2proc.yaml").read_text())
    assert accel["use_cpu"] is False and accel["num_processes"] == 2 and accel["distributed_type"] == "DEEPSPEED"
    config = REPO / accel["deepspeed_config"]["deepspeed_config_file"]
    from finetune.distributed import check_cpu_config

    check_cpu_config(str(config))  # no optimizer section, no pinned memory


def test_rs_coincide_uses_the_official_kmeans_seed():
    assert load_recipe("rs_coincide").selection.seed == 1234


def test_two_node_config_is_zero2_over_two_machines():
    accel = yaml.safe_load((RECIPES_DIR / "accelerate" / "zero2_2node.yaml").read_text())
    assert accel["num_machines"] == 2 and accel["num_processes"] % 2 == 0 and accel["distributed_type"] == "DEEPSPEED"
    assert accel["deepspeed_config"]["deepspeed_config_file"] == "recipes/deepspeed/zero2.json"
    assert {"main_process_ip", "main_process_port", "machine_rank"} <= set(accel)


@pytest.mark.parametrize("name", ["harma_rsitmd", "harma_rsicd"])
def test_harma_recipes_carry_the_public_hyper_parameters(name):
    """seekerhuang/HarMA configs/Retrieval_{rsitmd,rsicd}_geo.yaml + optim.py + scheduler.py (HARMA.md section 3)."""
    cfg = load_recipe(name)
    t, h = cfg.train, cfg.harma
    assert t.task == "retrieval" and h.method == "harma" and h.share == "text_only"
    assert (t.learning_rate, t.weight_decay, h.adam_beta1, t.adam_beta2) == (4e-6, 0.04, 0.9, 0.98)
    assert (t.lr_scheduler, t.warmup_ratio, t.epochs, t.per_device_batch_size) == ("linear", 0.1, 80, 428)
    assert (h.bottleneck, h.heads, h.temperature, h.margin, h.focal_gamma, h.max_words) == (128, 8, 0.07, 0.2, 2.0, 30)
    assert h.drop_last and h.augment and not t.bf16 and list(cfg.eval.benchmarks) == ["retrieval"]
    raw = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    paths = [raw["model"]["path"]] + [raw["harma"][k] for k in ("train_file", "val_file", "test_file", "image_root")]
    assert all(not p.startswith(("/", "http")) for p in paths), "recipes ship relative local paths"


def test_harma_demo_is_a_tiny_cpu_run_on_synthrs():
    cfg = load_recipe("harma_demo")
    assert cfg.train.task == "retrieval" and cfg.model.tiny and cfg.harma.train_file.startswith("runs/synthrs/")
    assert cfg.harma.bottleneck <= 32 and cfg.train.epochs <= 20


def test_proxy_base_pretrains_a_tiny_model_in_full():
    cfg = load_recipe("proxy_base")
    assert cfg.model.tiny and cfg.model.tiny_text.hidden_size > 64  # a little larger than the tiny default
    assert (cfg.train.mode, cfg.train.freeze_vision, cfg.selection.method) == ("full", False, "full")
    assert cfg.data.datasets[0].path.endswith("pretrain/corpus.json")


@pytest.mark.parametrize("name", ["proxy_lora", "proxy_lora_random_third"])
def test_proxy_lora_recipes_are_the_seeds_regime(name):
    cfg = load_recipe(name)
    t = cfg.train
    assert t.mode == "lora" and t.freeze_vision and not t.lora.vision and 1 <= t.epochs <= 3
    assert cfg.data.datasets[0].path.endswith("instruct/geochat_style.json")
    assert (cfg.selection.method, cfg.selection.keep) == (("full", 1.0) if name == "proxy_lora" else ("random", 0.333))
