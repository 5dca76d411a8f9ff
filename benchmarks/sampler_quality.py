"""Sampler quality: padding, held-out loss curve, eval accuracy and wall time to a target loss, per sampler.

Tokens per second is the wrong target when it costs accuracy. In the SynthRS pool a sample's length
follows its task type, so a length-grouped batch holds one task; this measures what that does to
learning, against random order and against mega-batches of a few steps (sorted by length only inside
each, so batches mix the tasks drawn together):

    random     HF's order (``train.group_by_length=false``)
    mixed-N    ``train.length_megabatch=N``: N optimiser steps per mega-batch
    grouped    ``train.length_megabatch=50`` (HF's ``LengthGroupedSampler`` size; geotune's old default)

Full fine-tuning of the tiny InternVL on the SynthRS small instruction pool, a held-out share of it
scored (token-weighted loss over the answers, the same records for every run) every ``--eval-every``
steps with the clock stopped; after training, UCMerced / AID / LRBEN accuracy of the saved model
(``eval.api.evaluate_checkpoint``). Runs of one repeat go back to back in rotating order, one seed per
repeat (paired).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/sampler_quality.py --repeats 2

``--target`` (held-out loss) defaults to the highest final held-out loss among the samplers (medians),
so every sampler reaches it; the table gives the training seconds each needed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers

from finetune.collator import SupervisedDataset
from finetune.data.loader import load_training_data
from finetune.models.adapters.supervision import IGNORE_INDEX
from finetune.models.tiny import build_tiny_internvl
from finetune.training import build_trainer
from geotune.config import load_recipe


def sampler_overrides(name: str) -> list[str]:
    if name == "random":
        return ["train.group_by_length=false"]
    if name == "grouped":
        return ["train.group_by_length=true", "train.length_megabatch=50"]
    if name.startswith("mixed-"):
        return ["train.group_by_length=true", f"train.length_megabatch={int(name.split('-', 1)[1])}"]
    raise SystemExit(f"--samplers: unknown '{name}' (random, grouped, mixed-N)")


def split_pool(pool: Path, work: Path, held_out: int, seed: int = 0) -> tuple[Path, Path]:
    """``train.json`` and ``heldout.json`` (the pool's records, ``held_out`` of them drawn with ``seed``)."""
    rows = json.loads((pool / "geochat_style.json").read_text())
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:held_out])
    paths = work / "train.json", work / "heldout.json"
    paths[0].write_text(json.dumps([r for i, r in enumerate(rows) if i not in held]))
    paths[1].write_text(json.dumps([r for i, r in enumerate(rows) if i in held]))
    return paths


def write_recipe(work: Path, model_dir: Path, synthrs: Path, train_json: Path, args) -> Path:
    pool = synthrs / "instruct"
    path = work / "sampler_quality.yaml"
    path.write_text(f"""
model: {{path: {model_dir}, adapter: internvl_hf}}
cache_dir: {work / 'cache'}
data:
  datasets:
    - {{name: instruct, path: {train_json}, format: llava, image_root: {pool}}}
train: {{mode: {args.mode}, epochs: {args.epochs}, per_device_batch_size: {args.batch}, learning_rate: {args.lr},
        warmup_ratio: 0, report_to: [none], logging_steps: 1, save_steps: 100000}}
eval: {{benchmarks: [ucmerced, aid, lrben], ucmerced_root: {synthrs}, aid_root: {synthrs}, lrben_root: {synthrs},
       limit: {args.eval_limit}}}
""")
    return path


class HeldOutLoss(transformers.TrainerCallback):
    """Token-weighted loss over the held-out answers every ``every`` steps and at the end, with the
    training clock stopped; ``curve`` = ``[(training seconds, step, loss)]``."""

    def __init__(self, dataset, collator, every: int):
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=16, collate_fn=collator)
        self.every, self.curve, self.paused, self.start = every, [], 0.0, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            elapsed = time.perf_counter() - self.start - self.paused
            begin = time.perf_counter()
            self.curve.append((round(elapsed, 3), state.global_step, self.score(model)))
            self.paused += time.perf_counter() - begin

    @torch.no_grad()
    def score(self, model) -> float:
        model.eval()
        total, count = 0.0, 0
        for batch in self.loader:
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += float(model(**batch).loss) * n
            count += n
        model.train()
        return total / count


def run_once(recipe: Path, heldout_json: Path, work: Path, sampler: str, seed: int, args) -> dict:
    run_dir = work / f"run-{sampler}-{seed}"
    cfg = load_recipe(str(recipe), [f"run_dir={run_dir}", f"seed={seed}", "train.resume=false", *sampler_overrides(sampler)])
    trainer = build_trainer(cfg, load_training_data(cfg))
    held_cfg = load_recipe(str(recipe), [f"data.datasets.0.path={heldout_json}"])
    held_data = load_training_data(held_cfg)
    held = SupervisedDataset(held_data.records, held_data, trainer.processing_class, trainer.adapter, cfg.model,
                             cfg.train.max_length, progress=False)
    callback = HeldOutLoss(held, trainer.data_collator, args.eval_every)
    trainer.add_callback(callback)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    counts = trainer.token_counts
    result = {"sampler": sampler, "seed": seed, "train_seconds": callback.curve[-1][0],
              "padding": 1 - counts["tokens"] / counts["slots"], "curve": callback.curve,
              "mean_train_loss": statistics.fmean(losses), "train_losses": losses,
              "final_heldout": callback.curve[-1][2]}
    if args.eval_limit:
        from eval.api import evaluate_checkpoint

        trainer.save_model(str(run_dir / "final"))
        scores = evaluate_checkpoint(cfg, run_dir / "final")
        result["accuracy"] = {bench: scores[bench]["score"] for bench in scores}
    return result


def seconds_to(curve, target: float) -> float | None:
    return next((s for s, _, loss in curve if loss <= target), None)


def report(results: list[dict], samplers: list[str], target: float | None) -> str:
    by = {s: [r for r in results if r["sampler"] == s] for s in samplers}
    med = {s: statistics.median(r["final_heldout"] for r in runs) for s, runs in by.items()}
    target = target if target is not None else max(med.values())
    lines = [f"target held-out loss {target:.3f}; medians over {len(by[samplers[0]])} paired seeds",
             f"{'sampler':<10} {'padding':>8} {'train s':>8} {'mean train loss':>16} {'final held-out':>15} "
             f"{'s to target':>12} {'ucmerced':>9} {'aid':>6} {'lrben':>6}"]
    for s, runs in by.items():
        to_target = [seconds_to(r["curve"], target) for r in runs]
        reached = [t for t in to_target if t is not None]
        acc = {b: statistics.median(r["accuracy"][b] for r in runs) if "accuracy" in runs[0] else float("nan")
               for b in ("ucmerced", "aid", "lrben")}
        lines.append(
            f"{s:<10} {statistics.median(r['padding'] for r in runs):>8.1%} "
            f"{statistics.median(r['train_seconds'] for r in runs):>8.1f} "
            f"{statistics.median(r['mean_train_loss'] for r in runs):>16.3f} {med[s]:>15.3f} "
            f"{(f'{statistics.median(reached):.1f}' if len(reached) == len(runs) else f'{len(reached)}/{len(runs)} reach'):>12} "
            f"{acc['ucmerced']:>9.3f} {acc['aid']:>6.3f} {acc['lrben']:>6.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="random,mixed-4,grouped")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--mode", choices=("full", "lora"), default="full")
    parser.add_argument("--held-out", type=int, default=160, help="pool records kept out of training and scored")
    parser.add_argument("--eval-every", type=int, default=25, help="steps between held-out scores")
    parser.add_argument("--eval-limit", type=int, default=100, help="questions per benchmark (0: no accuracy)")
    parser.add_argument("--target", type=float, default=None, help="held-out loss to reach (default: see above)")
    parser.add_argument("--work", default=None, help="folder for the model, SynthRS and runs (default: a temp dir)")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    work = Path(args.work or tempfile.mkdtemp(prefix="geotune-sampler-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "tiny"
    if not (model_dir / "config.json").exists():
        build_tiny_internvl(model_dir)
    from geotune.synth import write_synthrs

    write_synthrs(work / "synthrs", seed=0, size="small")
    train_json, heldout_json = split_pool(work / "synthrs" / "instruct", work, args.held_out)
    recipe = write_recipe(work, model_dir, work / "synthrs", train_json, args)
    samplers = args.samplers.split(",")
    results = []
    log = work / "sampler_quality.jsonl"
    for seed in range(args.repeats):
        rotated = samplers[seed % len(samplers):] + samplers[: seed % len(samplers)]
        for sampler in rotated:
            result = run_once(recipe, heldout_json, work, sampler, seed, args)
            results.append(result)
            with log.open("a") as f:
                f.write(json.dumps(result) + "\n")
            print(f"{sampler} seed {seed}: {result['train_seconds']:.1f} s, padding {result['padding']:.1%}, "
                  f"held-out {result['final_heldout']:.3f}", flush=True)
    print(f"\ntiny InternVL ({args.mode}), SynthRS small pool minus {args.held_out} held out, {args.epochs:g} epochs x "
          f"batch {args.batch}, lr {args.lr:g}; runs in {log}")
    print(report(results, samplers, args.target))


if __name__ == "__main__":
    main()
