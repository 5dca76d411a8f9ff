"""One experiment, top to bottom: recipe → data → manifest → model → Trainer → save → eval.

``train.py`` and ``geotune train`` both call ``run_experiment``. Under ``torchrun`` / ``accelerate
launch`` every rank runs this; the main rank builds shared artefacts first (tiny model, selection
manifest) and the others reuse them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from finetune import distributed

SUMMARY = "train_summary.json"


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (tmp + ``os.replace``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def ensure_tiny_model(model_cfg) -> None:
    """Build the tiny random-init checkpoint at ``model.path`` when the recipe asks and it is missing."""
    if model_cfg.tiny and not (Path(model_cfg.path) / "config.json").exists():
        from finetune.models.tiny import build_tiny_internvl

        build_tiny_internvl(model_cfg.path, text_overrides=dict(model_cfg.tiny_text or {}))


def training_records(cfg, data) -> list:
    """The records to train on: all of them, or those the selection manifest keeps (in its order)."""
    manifest = cfg.selection.manifest
    if not manifest and cfg.selection.method != "full":
        from selection.pipeline import run_selection

        manifest = run_selection(cfg, data)
    if not manifest:
        return list(data.records)
    from selection.manifest import read_manifest

    _, rows = read_manifest(manifest)
    by_id = {record.id: record for record in data.records}
    missing = [row["id"] for row in rows if row["id"] not in by_id]
    if missing:
        raise ValueError(
            f"{manifest}: {len(missing)} manifest ids are not in the training data (first: '{missing[0]}'); "
            "the manifest was made for other data: delete it to select again, or fix selection.manifest"
        )
    return [by_id[row["id"]] for row in rows]


def training_arguments(cfg):
    """``TrainingArguments`` from the recipe's ``train`` section (``train.trainer_args`` checked by name)."""
    from transformers import TrainingArguments

    t = cfg.train
    report_to = [r for r in t.report_to if r != "none"] or "none"
    if "wandb" in list(t.report_to) and not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")  # never reach a server unless the user configured one
    kwargs = dict(
        output_dir=str(cfg.run_dir), num_train_epochs=float(t.epochs), max_steps=int(t.max_steps),
        learning_rate=float(t.learning_rate), weight_decay=float(t.weight_decay), adam_beta2=float(t.adam_beta2),
        warmup_steps=float(t.warmup_ratio), lr_scheduler_type=t.lr_scheduler,
        per_device_train_batch_size=int(t.per_device_batch_size), gradient_accumulation_steps=int(t.grad_accum),
        bf16=bool(t.bf16) and torch.cuda.is_available(), save_steps=int(t.save_steps),
        save_total_limit=int(t.save_total_limit), logging_steps=int(t.logging_steps), report_to=report_to,
        seed=int(cfg.seed), remove_unused_columns=False, dataloader_num_workers=int(t.num_workers),
        deepspeed=t.deepspeed, save_safetensors=True,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning needs a GPU; without one torch warns per epoch
    )
    kwargs.update(distributed.training_argument_overrides(t.deepspeed))
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    for key, value in dict(t.trainer_args).items():
        if key not in known:
            raise ValueError(f"train.trainer_args.{key}: not a transformers.TrainingArguments field")
        kwargs[key] = value
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    return TrainingArguments(**kwargs)


def prepare_model(adapter, model, train_cfg):
    """Gradient checkpointing, then LoRA (per-family targets) or full fine-tuning with freeze flags."""
    from finetune.lora import apply_lora

    if train_cfg.gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs (LoRA) without enable_input_require_grads.
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.24's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model.config, "use_cache"):
            model.config.use_cache = False
    if train_cfg.mode == "lora":
        targets = adapter.lora_targets(model, train_cfg.lora, train_llm=not train_cfg.freeze_llm)
        return apply_lora(model, targets, adapter.model_parts(model), train_cfg)
    if train_cfg.mode == "full":
        adapter.apply_freeze(model, train_cfg)
        return model
    raise ValueError(f"train.mode: '{train_cfg.mode}' is not one of lora, full")


def _pad_id(processor) -> int:
    tok = getattr(processor, "tokenizer", processor)
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def _summed(trainer, values: list[int]) -> list[int]:
    tensor = torch.tensor(values, dtype=torch.long, device=trainer.args.device)
    return [int(v) for v in trainer.accelerator.reduce(tensor, reduction="sum").tolist()]


def summarize(trainer, seconds: float, resumed_from: str | None) -> dict:
    """What ``train_summary.json`` holds: time, samples, steps, tokens, padding, loss, what was skipped."""
    data, records, dataset = (trainer.experiment[k] for k in ("data", "records", "dataset"))
    tokens, slots, samples, labelled = _summed(
        trainer, [trainer.token_counts[k] for k in ("tokens", "slots", "samples", "labelled")])
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    from finetune.lora import trainable_summary

    return {
        "train_seconds": round(seconds, 3),
        "steps": trainer.state.global_step,
        "samples_seen": samples,
        "tokens": tokens,
        "padded_slots": slots,
        "padding_share": round(1 - tokens / slots, 4) if slots else 0.0,
        # what `geotune plan --labelled-share` wants: with supervised_logits only these tokens get logits
        "labelled_share": round(labelled / tokens, 4) if tokens else 0.0,
        "supervised_logits": trainer.supervised_logits,
        "tokens_per_second": round(tokens / seconds, 2) if seconds else 0.0,
        "final_loss": losses[-1] if losses else None,
        "losses": losses,
        "records_in_pool": len(data.records),
        "records_selected": len(records),
        "samples_kept": len(dataset),
        "truncated": dataset.truncated,
        "skipped": {"data": dict(getattr(data, "skipped", {}) or {}), "encode": dict(dataset.skipped)},
        "world_size": trainer.args.world_size,
        "resumed_from": resumed_from,
        **trainable_summary(trainer.model),
    }


def build_trainer(cfg, data=None):
    """Everything up to ``trainer.train()``: data, manifest, model (LoRA/full), dataset, ``GeoTrainer``.

    Args:
        cfg: the recipe (``geotune.config.load_recipe``).
        data: a ``TrainingData`` already loaded (tests); by default ``load_training_data(cfg)``.

    Returns:
        The trainer; ``trainer.experiment`` holds ``data``, ``records`` and ``dataset``.
    """
    from transformers import set_seed

    from finetune.collator import DataCollatorForVLM, SupervisedDataset
    from finetune.models.adapters import get_adapter
    from finetune.trainer import GeoTrainer
    from geotune.config import save_resolved

    # Samples are tokenised a few short pieces at a time: the tokenizers thread pool only adds wake-ups
    # that compete with the model's threads (100 batches of the throughput benchmark load in 1.0 s
    # without it, 1.5-2.1 s with it), and DataLoader workers would disable it after forking anyway.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    distributed.prepare_environment(cfg.train.deepspeed)
    args = training_arguments(cfg)  # initialises the process group under torchrun / accelerate
    with args.main_process_first(desc="tiny model, data and selection"):
        if args.process_index == 0:
            save_resolved(cfg)
        ensure_tiny_model(cfg.model)
        if data is None:
            from finetune.data.loader import load_training_data

            data = load_training_data(cfg)
        records = training_records(cfg, data)
    adapter = get_adapter(cfg.model.adapter)
    set_seed(int(cfg.seed))  # LoRA init draws from the global RNG: same seed, same run, same on every rank
    model, processor = adapter.load(cfg.model)
    dataset = SupervisedDataset(records, data, processor, adapter, cfg.model, cfg.train.max_length,
                                cfg.train.too_long, progress=args.process_index == 0)
    if not len(dataset):
        raise ValueError(f"no training samples left (skipped: {dict(dataset.skipped)}); check data.datasets")
    model = prepare_model(adapter, model, cfg.train)
    trainer = GeoTrainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorForVLM(_pad_id(processor)),
                         processing_class=processor, adapter=adapter, length_grouped=bool(cfg.train.group_by_length),
                         supervised_logits=bool(cfg.train.supervised_logits))
    trainer.experiment = {"data": data, "records": records, "dataset": dataset}
    return trainer


def run_experiment(cfg, data=None) -> dict:
    """Run one recipe end to end; returns the training summary (plus ``eval`` results when asked)."""
    from transformers.trainer_utils import get_last_checkpoint

    run_dir = Path(cfg.run_dir)
    trainer = build_trainer(cfg, data)
    resume = get_last_checkpoint(str(run_dir)) if cfg.train.resume and run_dir.is_dir() else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    trainer.save_model(str(run_dir / "final"))  # peft adapter or full weights (+ processor); gathers ZeRO-3
    summary = summarize(trainer, seconds, resume)
    if trainer.args.process_index == 0:
        write_json(run_dir / SUMMARY, summary)
        if list(cfg.eval.benchmarks):
            from eval.api import evaluate_checkpoint

            summary["eval"] = evaluate_checkpoint(cfg, run_dir / "final")
    trainer.accelerator.wait_for_everyone()
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from geotune.config import add_recipe_arguments

    add_recipe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from geotune.config import recipe_from_args

    summary = run_experiment(recipe_from_args(args))
    print(json.dumps({k: summary[k] for k in ("steps", "train_seconds", "final_loss", "tokens_per_second")}))
    return 0
