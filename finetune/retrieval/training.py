"""The retrieval training loop: HarMA's optimiser, schedule and losses, one checkpoint per epoch
(resumable), validation on **val** each epoch, the best epoch's weights kept.

One process (CPU or one GPU), or several under ``torchrun`` / ``accelerate launch`` (gloo on CPU, nccl on
GPUs). With W ranks of ``train.per_device_batch_size`` b, every step takes one global batch of W*b rows
of the epoch's permutation (the permutation a one-process run with batch W*b takes), rank r its r-th
slice; HarMA's loss gathers every rank's features (``losses.gather_features``, whose backward sums the
ranks' gradients into the local rows), and the trainable gradients are averaged across ranks, so each
step is the gradient of the global-batch loss: W ranks of b match one process of W*b (tested). The main
rank validates (the score is broadcast) and writes checkpoints; every rank resumes and restores from them.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from finetune.distributed import process_state
from finetune.retrieval.backbone import Backbone, tokenize
from finetune.retrieval.data import PairDataset, TrainPairs, image_transform
from finetune.retrieval.losses import harma_loss
from finetune.retrieval.model import (
    RetrievalModel,
    load_trainable,
    parameter_counts,
    save_trainable,
    trainable_parameters,
)
from finetune.step_memory import peak_rss_mb

log = logging.getLogger(__name__)
STATE = "training_state.pt"
_CHECKPOINT = re.compile(r"checkpoint-epoch-(\d+)$")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """HarMA's grouping: no decay on names with ``bias`` or ``norm``; gates and ``temp`` are decayed."""
    decay, no_decay = [], []
    for name, param in trainable_parameters(model).items():
        (no_decay if "bias" in name or "norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float,
                    betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW (eps 1e-8) over ``parameter_groups``: what ``train_retrieval`` steps with."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, betas=betas, eps=1e-8)


def train_step(model: RetrievalModel, optimizer: torch.optim.Optimizer, pixels: torch.Tensor, input_ids: torch.Tensor,
               ids: torch.Tensor, margin: float, gamma: float, world: int = 1) -> dict[str, torch.Tensor]:
    """One optimiser step on one batch: both towers, HarMA's loss, backward, gradients averaged over
    ``world`` ranks, step. Returns the loss terms; the gradients stay on the parameters until the next step."""
    out = harma_loss(model.encode_images(pixels), model.encode_texts(input_ids), model.temp, ids, margin, gamma)
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    if world > 1:  # the optimizer's groups hold every trainable parameter: no walk over the model at each step
        average_gradients([param for group in optimizer.param_groups for param in group["params"]], world)
    optimizer.step()
    return out


def last_checkpoint(run_dir: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in run_dir.glob("checkpoint-epoch-*")
             if (m := _CHECKPOINT.search(p.name)) and (p / STATE).is_file()]
    return max(found)[1] if found else None


def _collate(backbone: Backbone):
    def collate(batch):
        pixels, captions, ids = zip(*batch, strict=True)
        input_ids = tokenize(backbone.tokenizer, list(captions), backbone.context_length)
        return torch.stack(pixels), input_ids, torch.tensor(ids, dtype=torch.long)
    return collate


def rank_batches(n: int, batch: int, world: int, rank: int, generator: torch.Generator,
                 drop_last: bool) -> list[list[int]]:
    """Rank ``rank``'s batches of one epoch: slice ``rank`` of each global batch of ``batch * world`` rows of
    ``torch.randperm(n, generator)`` (with ``world == 1``, RandomSampler's order batched)."""
    order = torch.randperm(n, generator=generator).tolist()
    size = batch * world
    starts = range(0, n - size + 1 if drop_last else n, size)
    return [order[g + rank * batch:g + (rank + 1) * batch] for g in starts]


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Mean of every trainable gradient over the ranks (the loss is the same global-batch loss on each)."""
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad)
        param.grad.div_(world)


def _validate_on_main(validate, model, state) -> dict:
    """The main rank's val scores, broadcast to every rank (the weights are the same on all)."""
    scores = [validate(model) if state.is_main_process else None]
    if state.num_processes > 1:
        dist.broadcast_object_list(scores, src=0)
    return scores[0]


def _tracker(run_dir: Path, report_to):
    if "tensorboard" not in list(report_to):
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir / "runs"))


def _prune(run_dir: Path, keep: int) -> None:
    found = sorted((int(m.group(1)), p) for p in run_dir.glob("checkpoint-epoch-*") if (m := _CHECKPOINT.search(p.name)))
    for _, path in found[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def train_retrieval(cfg, model: RetrievalModel, backbone: Backbone, pairs: TrainPairs, run_dir: str | Path,
                    validate: Callable[[RetrievalModel], dict] | None = None, progress: bool = True) -> dict:
    """Train ``model`` on ``pairs`` as the recipe says; returns the summary (``train_summary.json``).

    Args:
        cfg: the recipe (``train`` for optimiser/schedule/batch/epochs, ``harma`` for loss and data).
        model: from ``build_retrieval_model``; what it marks trainable is what trains.
        backbone: tokenizer, image size and statistics of the checkpoint.
        pairs: training rows.
        run_dir: checkpoints ``checkpoint-epoch-N/`` (resumed when ``train.resume``), ``best/``, ``runs/``.
        validate: ``model -> {"mR": ...}`` on the val split, called after every epoch; the epoch with
            the highest mR is restored at the end. None: the last epoch is kept.
    """
    t, h = cfg.train, cfg.harma
    run_dir = Path(run_dir)
    state = process_state()  # under torchrun: the process group (gloo on CPU)
    world, rank = state.num_processes, state.process_index
    device = state.device
    model.to(device)
    batch = int(t.per_device_batch_size)
    if batch * world < 2:
        raise ValueError("train.per_device_batch_size must be at least 2 for contrastive retrieval (HarMA: 214)")
    if world > 1 and not h.drop_last:  # every rank's slice must be full: the feature gather needs equal sizes
        raise ValueError(f"harma.drop_last=false with {world} ranks: a short last batch cannot be split evenly; "
                         "set harma.drop_last=true (HarMA's setting) or run in one process")
    size = batch * world
    per_epoch = len(pairs) // size if h.drop_last else math.ceil(len(pairs) / size)
    if per_epoch == 0:
        raise ValueError(f"{len(pairs)} training rows make no full batch of train.per_device_batch_size={batch} "
                         f"x {world} rank(s)")
    epochs = math.ceil(float(t.epochs)) if model.method != "zeroshot" else 0
    total = int(t.max_steps) if int(t.max_steps) > 0 else epochs * per_epoch
    epochs = min(epochs, math.ceil(total / per_epoch))
    counts = parameter_counts(model)
    summary = {"method": model.method, "share": h.share, **counts, "world_size": world, "steps": 0, "samples_seen": 0,
               "losses": [],
               "val": [], "best_epoch": None, "resumed_from": None, "train_seconds": 0.0, "text_tokens": 0}
    if epochs == 0 or counts["trainable_params"] == 0:
        return _finish(summary, validate, model, state)
    optimizer = build_optimizer(model, float(t.learning_rate), float(t.weight_decay),
                                (float(h.adam_beta1), float(t.adam_beta2)))
    from transformers import get_scheduler

    scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=math.ceil(float(t.warmup_ratio) * total),
                              num_training_steps=total)
    start_epoch, best = 0, None
    resume = last_checkpoint(run_dir) if t.resume and run_dir.is_dir() else None
    if resume is not None:  # every rank: the checkpoint folder is on a filesystem all of them see
        saved = torch.load(resume / STATE, weights_only=True)
        load_trainable(model, resume)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        start_epoch, best = int(saved["epoch"]), saved["best"]
        for key in ("steps", "samples_seen", "losses", "val", "best_epoch", "train_seconds", "text_tokens"):
            summary[key] = saved["summary"][key]
        summary["resumed_from"] = str(resume)
    dataset = PairDataset(pairs, image_transform(backbone.image_size, backbone.mean, backbone.std, train=True,
                                                 augment=bool(h.augment), randaugment=str(h.randaugment)))
    pad_id = backbone.tokenizer.pad_token_id
    writer = _tracker(run_dir, t.report_to) if state.is_main_process else None
    model.train()
    loss = summary.get("final_loss")
    for epoch in range(start_epoch, epochs):
        # Per-epoch seeds: order and augmentations of epoch e are the same whether or not the run resumed.
        # The order is one permutation for all ranks; the augmentations differ per rank.
        torch.manual_seed(int(cfg.seed) * 1000 + epoch + 7919 * rank)
        order = torch.Generator().manual_seed(int(cfg.seed) * 1000 + epoch)
        batches = rank_batches(len(dataset), batch, world, rank, order, bool(h.drop_last))
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=_collate(backbone), num_workers=int(t.num_workers))
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for pixels, input_ids, ids in bar:
            if summary["steps"] >= total:
                break
            out = train_step(model, optimizer, pixels.to(device), input_ids.to(device), ids.to(device),
                             float(h.margin), float(h.focal_gamma), world)
            scheduler.step()
            summary["steps"] += 1
            summary["samples_seen"] += len(ids) * world
            summary["text_tokens"] += int((input_ids != pad_id).sum()) if pad_id is not None else input_ids.numel()
            loss = out["loss"].item()
            bar.set_postfix(loss=f"{loss:.4f}")
            if summary["steps"] % max(1, int(t.logging_steps)) == 0 or summary["steps"] == 1:
                summary["losses"].append(round(loss, 6))
                if writer:
                    for key in ("loss", "itc", "tri"):
                        writer.add_scalar(f"train/{key}", out[key].item(), summary["steps"])
                    writer.add_scalar("train/learning_rate", scheduler.get_last_lr()[0], summary["steps"])
                    writer.add_scalar("train/temperature", model.temp.item(), summary["steps"])
        summary["train_seconds"] += time.perf_counter() - start
        summary["final_loss"] = loss
        if validate is not None:
            scores = _validate_on_main(validate, model, state)
            summary["val"].append({"epoch": epoch + 1, **scores})
            if writer:
                writer.add_scalar("val/mR", scores["mR"], summary["steps"])
            if best is None or scores["mR"] > best:
                best, summary["best_epoch"] = float(scores["mR"]), epoch + 1
                if state.is_main_process:
                    save_trainable(model, run_dir / "best", {"epoch": epoch + 1, "val_mR": best})
        if state.is_main_process:  # the weights are the same on every rank
            checkpoint = run_dir / f"checkpoint-epoch-{epoch + 1}"
            save_trainable(model, checkpoint, {"epoch": epoch + 1})
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                        "best": best, "summary": {k: summary[k] for k in ("steps", "samples_seen", "losses", "val",
                                                  "best_epoch", "train_seconds", "text_tokens")}}, checkpoint / STATE)
            _prune(run_dir, int(t.save_total_limit))
        if summary["steps"] >= total:
            break
    if writer:
        writer.close()
    state.wait_for_everyone()  # best/ is written before any rank reads it
    if summary["best_epoch"] is not None:
        load_trainable(model, run_dir / "best")
    summary["epochs_run"] = epochs
    summary["seconds_per_epoch"] = round(summary["train_seconds"] / max(1, epochs), 3)
    return _finish(summary, None, model, state)


def _finish(summary: dict, validate, model, state) -> dict:
    if validate is not None:  # nothing was trained: the backbone's own val score
        summary["val"].append({"epoch": 0, **_validate_on_main(validate, model, state)})
    seconds = summary["train_seconds"]
    summary["train_seconds"] = round(seconds, 3)
    summary.setdefault("final_loss", summary["losses"][-1] if summary["losses"] else None)
    summary["tokens_per_second"] = round(summary["text_tokens"] / seconds, 2) if seconds else 0.0
    summary["peak_rss_mb"] = peak_rss_mb()
    return summary
