"""One retrieval experiment (``train.task: retrieval``), top to bottom: recipe -> data -> selection
manifest -> CLIP + HarMA (or a baseline) -> training with validation on val -> ``<run_dir>/final`` ->
test scores.

Selection works on the train rows (one image-caption pair each) as on instruction records:
``selection.method`` picks rows from the dual encoder's features (``selection.features.backend: clip``),
writes ``<run_dir>/selection/manifest.jsonl`` and its report, and training reads only the kept rows.

``train.py recipe=harma_demo`` reaches this through ``run_experiment``. The run directory has the VLM
path's shape: ``config.yaml``, ``checkpoint-epoch-N/`` (resumed when ``train.resume``), ``runs/``
(tensorboard), ``final/`` (trained weights only, loadable onto ``model.path``), ``train_summary.json``
and ``final/eval/retrieval.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import set_seed

from eval.retrieval import evaluate_retrieval_checkpoint, run_retrieval
from finetune.distributed import process_state
from finetune.files import write_text_atomic
from finetune.models.tiny import build_tiny_clip
from finetune.retrieval.backbone import load_backbone
from finetune.retrieval.data import TrainPairs, pairs_training_data, read_eval_split, read_train_pairs
from finetune.retrieval.model import build_retrieval_model, save_trainable
from finetune.retrieval.training import train_retrieval
from geotune.config import save_resolved
from selection.pipeline import training_records

SUMMARY = "train_summary.json"


def _required(cfg, key: str) -> str:
    value = cfg.harma.get(key)
    if not value:
        raise ValueError(f"harma.{key} is not set: train.task=retrieval needs harma.train_file, harma.val_file, "
                         "harma.test_file and harma.image_root (SynthRS: `geotune synth --out runs/synthrs`, "
                         "then runs/synthrs/SynthRS-RSITMD/)")
    if key.endswith("_file") and not Path(value).is_file():
        raise FileNotFoundError(f"harma.{key}: '{value}' does not exist (SynthRS: `geotune synth --out runs/synthrs`)")
    return value


def read_retrieval_train(cfg) -> TrainPairs:
    """The recipe's train rows (``harma.train_file``), checked, images included; what selection reads."""
    for key in ("train_file", "image_root"):
        _required(cfg, key)
    return read_train_pairs(cfg.harma.train_file, cfg.harma.image_root, int(cfg.harma.max_words))


def selected_pairs(cfg, pairs: TrainPairs) -> tuple[TrainPairs, dict | None]:
    """The rows to train on (all, or those ``selection`` keeps, in manifest order) and what was selected."""
    if not cfg.selection.manifest and cfg.selection.method == "full":
        return pairs, None
    data = pairs_training_data(pairs)
    row = {record.id: i for i, record in enumerate(data.records)}
    kept = [row[record.id] for record in training_records(cfg, data)]
    manifest = cfg.selection.manifest or str(Path(cfg.run_dir) / "selection" / "manifest.jsonl")
    return pairs.subset(kept), {"method": cfg.selection.method, "manifest": manifest, "kept_rows": len(kept),
                                "total_rows": len(pairs)}


def run_retrieval_experiment(cfg, progress: bool = True) -> dict:
    """Train and score one retrieval recipe; returns the training summary (plus ``eval`` when asked)."""
    h = cfg.harma
    run_dir = Path(cfg.run_dir)
    state = process_state()  # under torchrun: every rank runs this; the main one writes
    if state.is_main_process:
        save_resolved(cfg)
    for key in ("train_file", "val_file", "image_root"):
        _required(cfg, key)
    # All annotation errors surface before the model loads.
    pairs = read_retrieval_train(cfg)
    val = read_eval_split(h.val_file, h.image_root, int(h.max_words))
    pairs, selection = selected_pairs(cfg, pairs)
    with state.main_process_first():
        if cfg.model.tiny and not (Path(cfg.model.path) / "config.json").exists():
            build_tiny_clip(cfg.model.path)
    backbone = load_backbone(cfg.model.path, cfg.model.dtype)
    set_seed(int(cfg.seed))  # adapter and LoRA init draw from the global RNG
    model = build_retrieval_model(backbone.clip, h.method, h.share, int(h.bottleneck), int(h.heads),
                                  float(h.temperature), cfg.train.lora, tuple(h.sites))
    summary = train_retrieval(cfg, model, backbone, pairs, run_dir,
                              validate=lambda m: run_retrieval(m, backbone, val, int(h.eval_batch_size)),
                              progress=progress)
    summary.update(train_rows=len(pairs), train_images=len(set(pairs.image_ids)), val_images=len(val.images),
                   selection=selection)
    if state.is_main_process:  # the trained weights are the same on every rank
        final = save_trainable(model, run_dir / "final", {"share": h.share, "bottleneck": int(h.bottleneck),
                                                          "heads": int(h.heads), "sites": list(h.sites),
                                                          "base": str(cfg.model.path)})
        write_text_atomic(run_dir / SUMMARY, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        if list(cfg.eval.benchmarks):
            summary["eval"] = {"retrieval": evaluate_retrieval_checkpoint(cfg, final)}
    state.wait_for_everyone()
    return summary

