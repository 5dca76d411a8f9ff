"""The command line of each system for one run, with every setting that differs by default written out.

Equal settings (``Setting``): the same tiny InternVL, the same ShareGPT file, full fine-tuning or LoRA
(r 16, alpha 32, dropout 0.05, the language model's linear layers), epochs, batch, learning rate, cosine
schedule, no warm-up, no weight decay, AdamW betas (0.9, 0.999), fp32, seed, 512 tokens, vision tower
frozen, projector trained in full fine-tuning and frozen in LoRA (``Setting.freeze_projector``), no
gradient checkpointing, one process, no DataLoader workers, a loss
logged every step, no tracker.

Silent defaults that would otherwise differ (each one set below, on the line that sets it):
- ms-swift: gradient accumulation chosen automatically (to reach a total batch of 16), weight decay
  0.1, Adam beta2 0.95, gradient checkpointing on, the aligner (projector) frozen, a model check that
  needs the hub (``--check_model false`` keeps it offline), a 1% validation split.
- LLaMA-Factory: the template's own system prompt (``default_system: ""`` removes it, as geotune's
  template has none), the projector frozen (``freeze_multi_modal_projector``); the vision tower frozen
  in full fine-tuning (``freeze_vision_tower``, as geotune's ``train.freeze_vision``).
- geotune: warm-up 3% is its default; set to 0 here. Its sampler default is random order, as the peers'.

The projector in LoRA: left alone, each system treats it differently: geotune trains it fully (peft
``modules_to_save``, 45,440 trainable parameters on the tiny model), ms-swift with ``--freeze_aligner
false`` puts LoRA on its two linears (37,888), LLaMA-Factory keeps it frozen even with
``freeze_multi_modal_projector: false`` (32,768: its ``lora_target: all`` always leaves the projector
out, ``find_all_linear_modules`` in 0.9.5). Frozen is the one setting all three
reach with their own documented switch, so LoRA here tunes the language model's linear layers only.

Precision (``Setting.bf16``). fp32 (the CPU runs): weights and maths in fp32 in all three. ms-swift
turns ``--torch_dtype float32`` into fp16 mixed precision by default (``_init_mixed_precision``: a no-op
on a CPU, where accelerate enables no autocast, but fp16 autocast on a GPU), hence ``--fp16 false
--bf16 false`` written out. LLaMA-Factory 0.9.5 has no fp32 training on a GPU: without ``bf16``/``fp16``
it loads the model in the dtype it infers (``infer_optim_dtype``: fp16 for an fp32 checkpoint), so a
GPU comparison runs bf16 (``compare.py --device cuda --bf16``). bf16: bf16 autocast in all three
(``train.bf16``, ``--bf16 true``, ``bf16: true``) and the trainable weights in fp32 in all three: LoRA
on a bf16 base model (peft keeps the adapters in fp32; LLaMA-Factory loads the base in bf16 whatever
is asked), full fine-tuning from fp32 weights (LLaMA-Factory loads bf16 and casts the trainable
parameters to fp32, ``cast_trainable_params_to_fp32``; its frozen vision tower stays bf16, the other
two keep it in fp32).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Setting:
    mode: str  # full | lora
    epochs: float = 2
    batch: int = 8
    lr: float = 1e-3
    seed: int = 42
    max_length: int = 512
    bf16: bool = False  # bf16 autocast (a GPU run); False: fp32 throughout (module doc, "Precision")

    @property
    def freeze_projector(self) -> bool:
        """Full fine-tuning trains the projector in all three; LoRA freezes it in all three (module doc)."""
        return self.mode == "lora"

    @property
    def weights_dtype(self) -> str:
        """The dtype the model is loaded in: bf16 only for LoRA under bf16 (module doc, "Precision")."""
        return "bfloat16" if self.bf16 and self.mode == "lora" else "float32"


def geotune_command(python: str, model: Path, data: Path, image_root: Path, out: Path, cache: Path,
                    s: Setting) -> list[str]:
    return [python, "-m", "geotune", "train", f"model.path={model}", f"run_dir={out}", f"cache_dir={cache}",
            f"data.datasets=[{{name: pool, path: '{data}', format: sharegpt, image_root: '{image_root}'}}]",
            f"train.mode={s.mode}",
            f"train.epochs={s.epochs}", f"train.per_device_batch_size={s.batch}", f"train.learning_rate={s.lr}",
            "train.grad_accum=1", "train.weight_decay=0", "train.adam_beta2=0.999", "train.warmup_ratio=0",
            "train.lr_scheduler=cosine", f"train.max_length={s.max_length}", "train.freeze_vision=true",
            f"train.freeze_projector={str(s.freeze_projector).lower()}", "train.gradient_checkpointing=false", "train.lora.r=16",
            f"model.dtype={s.weights_dtype}", f"train.bf16={str(s.bf16).lower()}",
            "train.lora.alpha=32", "train.lora.dropout=0.05", "train.logging_steps=1", "train.report_to=[none]",
            "train.save_steps=1000000", "train.resume=false", f"seed={s.seed}", "train.num_workers=0"]


def swift_command(swift: Path, model: Path, data: Path, out: Path, s: Setting) -> list[str]:
    return [str(swift), "sft", "--model", str(model), "--check_model", "false", "--dataset", str(data),
            "--tuner_type", s.mode, "--output_dir", str(out), "--add_version", "false",
            "--num_train_epochs", str(s.epochs), "--per_device_train_batch_size", str(s.batch),
            "--gradient_accumulation_steps", "1",  # default: 16 / (batch x devices), rounded up
            "--learning_rate", str(s.lr), "--lr_scheduler_type", "cosine", "--warmup_ratio", "0",
            "--weight_decay", "0",  # default 0.1
            "--adam_beta2", "0.999",  # default 0.95
            "--gradient_checkpointing", "false",  # default true
            "--freeze_vit", "true",
            # default: aligner frozen in full; with "false" in LoRA it gets LoRA on its linears
            "--freeze_aligner", str(s.freeze_projector).lower(),
            "--split_dataset_ratio", "0",  # default: 1% held out for evaluation
            "--torch_dtype", s.weights_dtype, "--seed", str(s.seed), "--data_seed", str(s.seed),
            "--fp16", "false",  # default: true for an fp32 or fp16 --torch_dtype (fp16 autocast on a GPU)
            "--bf16", str(s.bf16).lower(),
            "--max_length", str(s.max_length), "--lora_rank", "16", "--lora_alpha", "32", "--lora_dropout", "0.05",
            "--target_modules", "all-linear", "--logging_steps", "1", "--report_to", "none",
            # "no" would save nothing at all: the model of the last epoch is the one scored
            "--save_strategy", "epoch", "--save_only_model", "true", "--save_total_limit", "1",
            "--dataloader_num_workers", "0", "--dataset_num_proc", "1"]


def llamafactory_config(model: Path, data: Path, out: Path, s: Setting) -> dict:
    """The YAML (as a dict) for ``llamafactory-cli train``; ``data`` is registered in a dataset_info.json."""
    return {
        "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": s.mode,
        "freeze_vision_tower": True,
        "freeze_multi_modal_projector": s.freeze_projector,  # default: frozen (true) in full fine-tuning too
        "lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.05, "lora_target": "all",
        "dataset": "geotune_pool", "dataset_dir": str(data.parent), "template": "intern_vl",
        "default_system": "",  # default: the template's InternVL system prompt
        "cutoff_len": s.max_length, "overwrite_cache": True, "preprocessing_num_workers": 1,
        "output_dir": str(out), "overwrite_output_dir": True, "logging_steps": 1, "save_strategy": "no",
        "report_to": "none", "per_device_train_batch_size": s.batch, "gradient_accumulation_steps": 1,
        "learning_rate": s.lr, "num_train_epochs": s.epochs, "lr_scheduler_type": "cosine", "warmup_ratio": 0.0,
        "weight_decay": 0.0, "adam_beta2": 0.999, "bf16": s.bf16, "fp16": False, "seed": s.seed,
        "dataloader_num_workers": 0, "plot_loss": False, "gradient_checkpointing": False,
    }


def llamafactory_dataset_info(data: Path) -> dict:
    return {"geotune_pool": {"file_name": data.name, "formatting": "sharegpt",
                             "columns": {"messages": "messages", "images": "images"},
                             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                      "assistant_tag": "assistant"}}}


def write_llamafactory(model: Path, data: Path, out: Path, s: Setting) -> Path:
    (data.parent / "dataset_info.json").write_text(json.dumps(llamafactory_dataset_info(data), indent=1))
    path = out.with_suffix(".yaml")
    import yaml

    path.write_text(yaml.safe_dump(llamafactory_config(model, data, out, s), sort_keys=False))
    return path
