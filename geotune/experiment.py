"""One experiment, top to bottom: recipe → data → selection manifest → training → save → evaluation.

``train.py``, ``accelerate launch train.py`` and ``geotune train`` all call ``run_experiment``. Under
``torchrun`` / ``accelerate launch`` every rank runs this function: the main rank builds the shared
inputs first (tiny model, data cache) and the others reuse them; selection runs on every rank (each
extracts its feature shards, global rank 0 selects) and evaluation is shared by all ranks.

Who does what: ``finetune`` loads data and trains, ``selection`` writes the manifest, ``eval`` scores
the saved model. This module only decides the order.
"""

from __future__ import annotations

import time
from pathlib import Path

from finetune.data.loader import load_training_data
from finetune.distributed import free_training_state
from finetune.files import write_json_atomic
from finetune.run_dir import claim_run_dir
from finetune.training import SUMMARY, build_trainer, ensure_tiny_model, summarize, training_arguments
from geotune.config import save_resolved
from geotune.retrieval_experiment import run_retrieval_experiment
from geotune.runtime import configure_process
from selection.pipeline import training_records


def last_checkpoint(cfg) -> str | None:
    """The newest ``checkpoint-N`` of the run directory when ``train.resume`` is on."""
    from transformers.trainer_utils import get_last_checkpoint

    run_dir = Path(cfg.run_dir)
    return get_last_checkpoint(str(run_dir)) if cfg.train.resume and run_dir.is_dir() else None


def evaluate(cfg, checkpoint: Path) -> dict:
    """Score the saved model on ``eval.benchmarks``; every rank of the launch answers a share."""
    from eval.api import evaluate_checkpoint

    return evaluate_checkpoint(cfg, checkpoint, shard=True)


def run_experiment(cfg, data=None) -> dict:
    """Run one recipe end to end.

    Args:
        cfg: the recipe (``geotune.config.load_recipe``).
        data: a ``TrainingData`` already loaded (tests); by default the recipe's ``data.datasets``.

    Returns:
        The training summary (``train_summary.json``), plus ``eval`` results when benchmarks are set.
    """
    # 1. The process: environment variables and CPU DeepSpeed wiring, before any library starts.
    configure_process(cfg)
    # One writer per run directory, and no resume of checkpoints a different recipe made.
    with claim_run_dir(cfg):
        if cfg.train.task == "retrieval":  # CLIP-style image-text retrieval (HarMA, docs/harma.md): its own loop
            return run_retrieval_experiment(cfg)
        return _train_and_evaluate(cfg, data)


def _train_and_evaluate(cfg, data) -> dict:
    args = training_arguments(cfg)  # starts the process group under torchrun / accelerate launch
    run_dir = Path(cfg.run_dir)

    # 2. Shared inputs, built once by the main rank: config record, model, data (its Arrow cache).
    with args.main_process_first(desc="tiny model and data"):
        if args.process_index == 0:
            save_resolved(cfg)
        ensure_tiny_model(cfg.model)
        data = load_training_data(cfg) if data is None else data
    # Selection on every rank, outside main_process_first (whose barrier the sharded feature store's own
    # barriers would pair with): each rank extracts its shards, global rank 0 selects, the others wait
    # for the manifest file.
    records = training_records(cfg, data)

    # 3. Training, resumed from the last checkpoint when there is one.
    trainer = build_trainer(cfg, data, records, args)
    resume = last_checkpoint(cfg)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start

    # 4. The model and what the run did.
    trainer.save_model(str(run_dir / "final"))  # peft adapter or full weights (+ processor); gathers ZeRO-3
    summary = summarize(trainer, seconds, resume)
    if args.process_index == 0:
        write_json_atomic(run_dir / SUMMARY, summary, sort_keys=True)

    # 5. Evaluation of the saved model: training state freed first, every rank answers a share.
    if list(cfg.eval.benchmarks):
        free_training_state(trainer)  # the pixel cache too
        summary["eval"] = evaluate(cfg, run_dir / "final")
    trainer.accelerator.wait_for_everyone()
    return summary
