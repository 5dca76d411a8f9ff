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


class RecipeError(ValueError):
    """A recipe or override the user can fix; the message names the key (and file) and says how.

    Defined in the base layer so that every package can raise it; ``geotune`` prints it as one line.
    """


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
        "Chat template of remote-code InternVL: Hermes-2 | internlm2-chat | phi3-chat | internvl2_5 (InternVL2.5/3) "
        "(None: from the checkpoint config).", None
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
    check_images: bool = _help("Also decode every image at load time (missing/unreadable ones are bad records).", False)
    bands: Optional[list[int]] = _help(
        "Image bands shown as R, G, B, 1-based (e.g. [3, 2, 1]; one band: grey). None: the first three, or the only one "
        "as grey. Deeper than 8-bit bands are stretched 2nd-98th percentile (finetune/data/images.py).", None)
    cache_dir: str = _help("Arrow cache of parsed annotation files ('': <cache root>/data, see top-level cache_dir).", "")


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
    dropout_masks: str = _help("How LoRA dropout draws its masks on a CPU: sparse (only the dropped positions, as "
                               "geometric gaps: the same distribution, masks 3-4x cheaper there; finetune/sparse_dropout.py) "
                               "| torch (torch.dropout, peft's own). On a GPU both are torch.dropout.", "sparse")
    target_modules: Optional[list[str]] = _help("Override the adapter's per-family LoRA targets.", None)
    vision: bool = _help("Also put LoRA on the vision tower.", False)


@dataclass
class TrainConfig:
    task: str = _help("vlm (instruction tuning of a multimodal LLM) | retrieval (CLIP-style image-text "
                      "retrieval; settings in the `harma` section).", "vlm")
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
    group_by_length: bool = _help(
        "Length-grouped sampler: less padding, but batches of one length band (one task when length follows task); "
        "off by default: random order reached a given held-out loss first (docs/training.md).", False)
    length_megabatch: int = _help(
        "Optimiser steps per mega-batch of the length-grouped sampler: each mega-batch is drawn at random and "
        "sorted by length inside, so batches mix the tasks of one mega-batch (1: random order; 50: HF's, least "
        "padding, but one task per batch when length follows task). docs/training.md has the measurements.", 50)
    supervised_logits: bool = _help("LM head and loss only at labelled positions (models taking a boolean "
                                    "logits_to_keep); the same loss in less time and memory.", True)
    too_long: str = _help("Samples over max_length: truncate (text only; image spans are never cut) | drop. Counted.", "truncate")
    num_workers: int = _help("DataLoader worker processes (image decoding and tiling).", 0)
    pixel_cache_mb: int = _help(
        "Image tensors kept after a sample's first visit, so later epochs neither read nor tile them again "
        "(the same tensors; first come, first kept; none in DataLoader workers; 0: off). docs/performance.md.", 256)
    deepspeed: Optional[str] = _help("DeepSpeed JSON config (recipes/deepspeed/*.json).", None)
    save_steps: int = _help("Checkpoint every N steps.", 500)
    save_total_limit: int = _help("Checkpoints kept.", 2)
    logging_steps: int = _help("Log every N steps.", 10)
    report_to: list[str] = _help("Trackers: tensorboard, wandb (offline unless configured).", factory=lambda: ["tensorboard"])
    resume: Any = _help("true: resume from the last checkpoint in run_dir when there is one, refusing one made by a "
                        "changed recipe (finetune/run_dir.py) | false: start again | force: resume even so.", True)
    trainer_args: dict[str, Any] = _help("Extra transformers.TrainingArguments fields, checked by name.", factory=dict)


@dataclass
class HarmaConfig:
    """Image-text retrieval (``train.task: retrieval``): HarMA or a baseline on a CLIP dual encoder.

    The optimiser and schedule come from ``train`` (learning_rate, weight_decay, adam_beta2, warmup_ratio,
    lr_scheduler, epochs, per_device_batch_size); HarMA's public values are in recipes/harma_rsitmd.yaml.
    """

    method: str = _help("harma | lora (peft on both towers, train.lora) | full | probe (last layer of each "
                        "tower + projections) | zeroshot (no training).", "harma")
    share: str = _help("Shared MMS-adapter: text_only (public code) | both (paper: both towers) | none.", "text_only")
    bottleneck: int = _help("Adapter bottleneck width r (HarMA: 128; the shared adapter uses r/2).", 128)
    heads: int = _help("Attention heads inside the adapters (HarMA: 8).", 8)
    sites: list[str] = _help("Sublayer outputs that get adapters: [mlp] (HarMA) | [mlp, attn] (also each layer's "
                             "self-attention output: an ablation, NOT HarMA as published).", factory=lambda: ["mlp"])
    temperature: float = _help("Initial InfoNCE temperature, a raw learnable scalar (HarMA: 0.07).", 0.07)
    margin: float = _help("Triplet margin (HarMA: 0.2).", 0.2)
    focal_gamma: float = _help("Focal exponent of the triplet weights (HarMA: 2).", 2.0)
    adam_beta1: float = _help("AdamW beta1 (HarMA: 0.9; beta2 is train.adam_beta2).", 0.9)
    train_file: str = _help("Train annotations: flat rows {caption, image, image_id} (RSITMD/RSICD layout).", "")
    val_file: str = _help("Val annotations [{image, caption: [...]}]; picks the best epoch (never test).", "")
    test_file: str = _help("Test annotations [{image, caption: [...]}]; scored by `geotune eval`.", "")
    image_root: str = _help("Folder the annotation image paths are relative to.", "")
    max_words: int = _help("Captions are cut to this many words (HarMA: 30).", 30)
    augment: bool = _help("Train-time RandomResizedCrop(0.5-1) + flip + RandAugment(2, 7).", True)
    randaugment: str = _help("harma (HarMA's own: 2 of its 10 ops, each with p=0.5; HARMA.md section 3) | "
                             "torchvision (transforms.RandAugment(2, 7), its 14 ops).", "harma")
    eval_batch_size: int = _help("Batch size of embedding at validation and test.", 64)
    drop_last: bool = _help("Drop the last incomplete batch (HarMA: true).", True)


TRAIN_MODES = ("lora", "full")
DROPOUT_MASKS = ("sparse", "torch")  # train.lora.dropout_masks (finetune/lora.apply_lora)
TRAIN_TASKS = ("vlm", "retrieval")
RETRIEVAL_ADAPTERS = ("clip",)  # CLIP-family dual encoders (finetune/retrieval)
RANDAUGMENTS = ("harma", "torchvision")  # harma.randaugment (finetune/retrieval/data.image_transform)
HARMA_SITES = ("mlp", "attn")  # harma.sites (finetune/retrieval/adapters.SITES is this tuple)


def harma_sites_problem(sites) -> str | None:
    """What is wrong with a ``harma.sites`` value, or None: the recipe check and ``HarmaAdapters`` both ask."""
    sites = list(sites)
    if not sites or len(set(sites)) != len(sites) or not set(sites) <= set(HARMA_SITES):
        return f"harma.sites: {sites} must be a non-empty list of distinct sites of {', '.join(HARMA_SITES)} (HarMA: [mlp])"
    return None

# model.adapter values of train.task=vlm, each a module in finetune/models/adapters (ADAPTERS there maps them;
# a test keeps the two equal). Named here so that checking a recipe does not import torch (~2 s).
VLM_ADAPTERS = ("auto", "internvl_hf", "internvl_remote", "xcomposer2")


def check_values(cfg: Any) -> list[str]:
    """Problems with the values of ``model``, ``data`` and ``train`` that no amount of work can fix,
    each naming its key; run by ``geotune.config.load_recipe`` so they fail before any data is read."""
    from finetune.data.images import check_bands

    problems = []
    t = cfg.train
    adapters = RETRIEVAL_ADAPTERS if t.task == "retrieval" else VLM_ADAPTERS
    if cfg.model.adapter not in adapters:
        problems.append(f"model.adapter: unknown adapter '{cfg.model.adapter}' for train.task={t.task}; "
                        f"choose from: {', '.join(sorted(adapters))}")
    if cfg.harma.randaugment not in RANDAUGMENTS:
        problems.append(f"harma.randaugment: '{cfg.harma.randaugment}' is not one of {', '.join(RANDAUGMENTS)}")
    if problem := harma_sites_problem(cfg.harma.sites):
        problems.append(problem)
    if t.task not in TRAIN_TASKS:
        problems.append(f"train.task: '{t.task}' is not one of {', '.join(TRAIN_TASKS)}")
    if t.mode not in TRAIN_MODES:
        hint = " (4-bit QLoRA is not supported: use lora, with bf16 on a GPU)" if t.mode == "qlora" else ""
        problems.append(f"train.mode: '{t.mode}' is not one of {', '.join(TRAIN_MODES)}{hint}")
    if t.lora.dropout_masks not in DROPOUT_MASKS:
        problems.append(f"train.lora.dropout_masks: '{t.lora.dropout_masks}' is not one of {', '.join(DROPOUT_MASKS)}")
    if t.too_long not in ("truncate", "drop"):
        problems.append(f"train.too_long: '{t.too_long}' is not one of truncate, drop")
    for key in ("per_device_batch_size", "grad_accum", "max_length", "save_steps", "logging_steps"):
        if int(t[key]) < 1:
            problems.append(f"train.{key}: must be >= 1, got {t[key]}")
    if int(t.pixel_cache_mb) < 0:
        problems.append(f"train.pixel_cache_mb: must be >= 0 (0: off), got {t.pixel_cache_mb}")
    if not float(t.learning_rate) > 0:
        problems.append(f"train.learning_rate: must be > 0, got {t.learning_rate}")
    if int(t.max_steps) <= 0 and not float(t.epochs) > 0:
        problems.append(f"train.epochs: must be > 0 when train.max_steps is not set, got {t.epochs}")
    if t.resume not in (True, False, "force"):
        problems.append(f"train.resume: {t.resume!r} is not one of true, false, force")
    try:
        check_bands(cfg.data.bands)
    except ValueError as err:
        problems.append(str(err))
    return problems
