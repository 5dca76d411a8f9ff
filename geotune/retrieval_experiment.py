"""One retrieval experiment (``train.task: retrieval``), top to bottom: recipe -> data -> CLIP + HarMA
(or a baseline) -> training with validation on val -> ``<run_dir>/final`` -> test scores.

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
from finetune.files import write_text_atomic
from finetune.models.tiny import build_tiny_clip
from finetune.retrieval.backbone import load_backbone
from finetune.retrieval.data import read_eval_split, read_train_pairs
from finetune.retrieval.model import build_retrieval_model, save_trainable
from finetune.retrieval.training import train_retrieval
from geotune.config import save_resolved

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


def run_retrieval_experiment(cfg, progress: bool = True) -> dict:
    """Train and score one retrieval recipe; returns the training summary (plus ``eval`` when asked)."""
    h = cfg.harma
    run_dir = Path(cfg.run_dir)
    save_resolved(cfg)
    for key in ("train_file", "val_file", "image_root"):
        _required(cfg, key)
    # All annotation errors surface before the model loads.
    pairs = read_train_pairs(h.train_file, h.image_root, int(h.max_words))
    val = read_eval_split(h.val_file, h.image_root, int(h.max_words))
    if cfg.model.tiny and not (Path(cfg.model.path) / "config.json").exists():
        build_tiny_clip(cfg.model.path)
    backbone = load_backbone(cfg.model.path, cfg.model.dtype)
    set_seed(int(cfg.seed))  # adapter and LoRA init draw from the global RNG
    model = build_retrieval_model(backbone.clip, h.method, h.share, int(h.bottleneck), int(h.heads),
                                  float(h.temperature), cfg.train.lora)
    summary = train_retrieval(cfg, model, backbone, pairs, run_dir,
                              validate=lambda m: run_retrieval(m, backbone, val, int(h.eval_batch_size)),
                              progress=progress)
    summary.update(train_rows=len(pairs), train_images=len(set(pairs.image_ids)), val_images=len(val.images))
    final = save_trainable(model, run_dir / "final", {"share": h.share, "bottleneck": int(h.bottleneck),
                                                      "heads": int(h.heads), "base": str(cfg.model.path)})
    write_text_atomic(run_dir / SUMMARY, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    if list(cfg.eval.benchmarks):
        summary["eval"] = {"retrieval": evaluate_retrieval_checkpoint(cfg, final)}
    return summary

