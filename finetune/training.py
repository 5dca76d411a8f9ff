"""Training one recipe's model on given records: ``TrainingArguments``, LoRA or full, ``GeoTrainer``, summary.

The base layer of a run: it knows nothing of selection, evaluation or the recipe loader. The app
(``geotune/experiment.py``) decides which records to train on and calls ``build_trainer``; the process
environment (``geotune/runtime.py``) is set before any of this runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from finetune import distributed

SUMMARY = "train_summary.json"


def ensure_tiny_model(model_cfg) -> None:
    """Build the tiny random-init checkpoint at ``model.path`` when the recipe asks and it is missing."""
    if model_cfg.tiny and not (Path(model_cfg.path) / "config.json").exists():
        from finetune.models.tiny import build_tiny_internvl

        build_tiny_internvl(model_cfg.path, text_overrides=dict(model_cfg.tiny_text or {}))


def training_arguments(cfg):
    """``TrainingArguments`` from the recipe's ``train`` section (``train.trainer_args`` checked by name)."""
    from transformers import TrainingArguments

    t = cfg.train
    report_to = [r for r in t.report_to if r != "none"] or "none"
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


def pad_token_id(processor) -> int:
    """The collator's padding id: the tokenizer's pad token, else its end-of-sequence token."""
    tok = getattr(processor, "tokenizer", processor)
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def _summed(trainer, values: list[int]) -> list[int]:
    tensor = torch.tensor(values, dtype=torch.long, device=trainer.args.device)
    return [int(v) for v in trainer.accelerator.reduce(tensor, reduction="sum").tolist()]


def summarize(trainer, seconds: float, resumed_from: str | None) -> dict:
    """What ``train_summary.json`` holds: time, samples, steps, tokens, padding, loss, what was skipped."""
    data, records, dataset = (trainer.experiment[k] for k in ("data", "records", "dataset"))
    keys = ("tokens", "slots", "samples", "labelled")
    tokens, slots, samples, labelled, tokens_before = _summed(
        trainer, [trainer.token_counts[k] for k in keys] + [trainer.resumed_counts["tokens"]])
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
        "tokens_per_second": round((tokens - tokens_before) / seconds, 2) if seconds else 0.0,  # this run's
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


def build_trainer(cfg, data, records=None, args=None):
    """Model (LoRA/full) and dataset of ``records``, wrapped in a ``GeoTrainer``; nothing is trained yet.

    Args:
        cfg: the recipe (``geotune.config.load_recipe``).
        data: the loaded ``TrainingData`` (``finetune.data.loader.load_training_data``).
        records: the records to train on, in order (default: every record of ``data``).
        args: ``TrainingArguments`` already built (default: ``training_arguments(cfg)``, which starts the
            process group under ``torchrun`` / ``accelerate launch``).

    Returns:
        The trainer; ``trainer.experiment`` holds ``data``, ``records`` and ``dataset``.
    """
    from transformers import set_seed

    from finetune.collator import DataCollatorForVLM, SupervisedDataset
    from finetune.models.adapters import get_adapter
    from finetune.trainer import GeoTrainer

    args = training_arguments(cfg) if args is None else args
    records = list(data.records) if records is None else records
    adapter = get_adapter(cfg.model.adapter)
    set_seed(int(cfg.seed))  # LoRA init draws from the global RNG: same seed, same run, same on every rank
    model, processor = adapter.load(cfg.model)
    dataset = SupervisedDataset(records, data, processor, adapter, cfg.model, cfg.train.max_length,
                                cfg.train.too_long, progress=args.process_index == 0, skip_bad=bool(cfg.data.skip_bad),
                                pixel_cache_bytes=int(cfg.train.pixel_cache_mb) << 20)
    if not len(dataset):
        raise ValueError(f"no training samples left (skipped: {dict(dataset.skipped)}); check data.datasets")
    model = prepare_model(adapter, model, cfg.train)
    trainer = GeoTrainer(model=model, args=args, train_dataset=dataset,
                         data_collator=DataCollatorForVLM(pad_token_id(processor)), processing_class=processor,
                         adapter=adapter, length_grouped=bool(cfg.train.group_by_length),
                         length_megabatch=int(cfg.train.length_megabatch),
                         supervised_logits=bool(cfg.train.supervised_logits))
    trainer.experiment = {"data": data, "records": records, "dataset": dataset}
    return trainer
