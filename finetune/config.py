"""Recipe sections owned by finetune/: model, data, mix and train.

Each field carries its meaning in ``metadata["help"]``; the loader in ``geotune.config`` turns these
dataclasses into an OmegaConf structured schema, so an unknown key or a wrong type fails at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


def config_field(text: str, default: Any = None, factory: Any = None) -> Any:
    """A dataclass field whose help text the CLI and docs show."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


_help = config_field


@dataclass
class ModelConfig:
    path: str = _help("Local checkpoint folder (never downloaded).", "runs/tiny-internvl")
    adapter: str = _help("Model family adapter: internvl_hf | internvl_remote | xcomposer2 | auto.", "internvl_hf")
    trust_remote_code: bool = _help("Run the checkpoint's own modeling code. Off unless the recipe says so.", False)
    dtype: str = _help("Weights dtype: auto | float32 | bfloat16 | float16.", "auto")
    max_dynamic_patch: int = _help("Most 448-px tiles per image (InternVL dynamic tiling).", 6)
    vision_tower_path: Optional[str] = _help("Local CLIP folder for XComposer2's vision tower.", None)
    tiny: bool = _help("Build the tiny random-init model at `path` when it is missing (demo/tests).", False)
    tiny_text: dict[str, Any] = _help(
        "Text-model fields of the tiny model that `tiny` builds (e.g. {hidden_size: 128}); empty: the 2 x 64 default.",
        factory=dict,
    )
    template: Optional[str] = _help(
        "Chat template of remote-code InternVL: Hermes-2 | internlm2-chat | phi3-chat (None: from the checkpoint config).", None
    )
    system_message: Optional[str] = _help("System message of remote-code templates (None: the family's own; '': none).", None)


@dataclass
class DatasetSpec:
    name: str = _help("Dataset name (becomes each record's `source`).", "")
    path: str = _help("Annotation file: LLaVA JSON, InternVL jsonl/meta JSON, XComposer2 JSON, ShareGPT.", "")
    format: str = _help("llava | internvl | internvl_meta | xcomposer2 | sharegpt | auto.", "auto")
    image_root: str = _help("Folder that image paths are relative to.", "")
    kind: str = _help("domain | general (for mix.general_ratio).", "domain")
    sample: float = _help("<1: fraction sampled at random (seeded); >1: repeat count.", 1.0)


@dataclass
class DataConfig:
    datasets: list[DatasetSpec] = _help("Training datasets.", factory=list)
    skip_bad: bool = _help("Drop invalid records (counted by reason in the report) instead of failing.", False)
    check_images: bool = _help("Also open every image at load time (missing/unreadable ones are bad records).", False)
    cache_dir: str = _help("Arrow cache of parsed annotation files.", ".cache/geotune/data")


@dataclass
class MixConfig:
    general_ratio: Optional[float] = _help(
        "Fraction of general samples in the final mix (None: use the datasets as listed).", None
    )
    seed: int = _help("Seed of the mix sampling.", 0)


@dataclass
class LoraConfig:
    r: int = _help("LoRA rank.", 16)
    alpha: int = _help("LoRA alpha.", 32)
    dropout: float = _help("LoRA dropout.", 0.05)
    target_modules: Optional[list[str]] = _help("Override the adapter's per-family LoRA targets.", None)
    vision: bool = _help("Also put LoRA on the vision tower.", False)


@dataclass
class TrainConfig:
    enabled: bool = _help("Run training (false: selection/eval only).", True)
    mode: str = _help("lora | full.", "lora")
    lora: LoraConfig = _help("LoRA settings (mode=lora).", factory=LoraConfig)
    freeze_vision: bool = _help("Freeze the vision tower.", True)
    freeze_projector: bool = _help("Freeze the vision-language projector.", False)
    freeze_llm: bool = _help("Freeze the language model (full mode).", False)
    epochs: float = _help("Training epochs.", 1.0)
    max_steps: int = _help("Stop after this many steps (-1: epochs decide).", -1)
    learning_rate: float = _help("Peak learning rate.", 4e-5)
    weight_decay: float = _help("Weight decay.", 0.0)
    adam_beta2: float = _help("Adam beta2.", 0.999)
    warmup_ratio: float = _help("Warm-up share of the schedule.", 0.03)
    lr_scheduler: str = _help("LR schedule (transformers name).", "cosine")
    per_device_batch_size: int = _help("Micro-batch per device.", 1)
    grad_accum: int = _help("Gradient accumulation steps.", 1)
    max_length: int = _help("Most tokens per sample; longer samples are truncated or dropped (counted).", 4096)
    gradient_checkpointing: bool = _help("Trade compute for activation memory.", False)
    bf16: bool = _help("bf16 mixed precision (GPU only; ignored on CPU).", False)
    group_by_length: bool = _help("Length-grouped sampler to cut padding.", True)
    supervised_logits: bool = _help("LM head and loss only at labelled positions (models taking a boolean "
                                    "logits_to_keep); the same loss in less time and memory.", True)
    too_long: str = _help("Samples over max_length: truncate (text only; image spans are never cut) | drop. Counted.", "truncate")
    num_workers: int = _help("DataLoader worker processes (image decoding and tiling).", 0)
    deepspeed: Optional[str] = _help("DeepSpeed JSON config (recipes/deepspeed/*.json).", None)
    save_steps: int = _help("Checkpoint every N steps.", 500)
    save_total_limit: int = _help("Checkpoints kept.", 2)
    logging_steps: int = _help("Log every N steps.", 10)
    report_to: list[str] = _help("Trackers: tensorboard, wandb (offline unless configured).", factory=lambda: ["tensorboard"])
    resume: bool = _help("Resume from the last checkpoint in run_dir when there is one.", True)
    trainer_args: dict[str, Any] = _help("Extra transformers.TrainingArguments fields, checked by name.", factory=dict)
