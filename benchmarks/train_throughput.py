"""Training throughput: geotune's loop vs a plain HF Trainer baseline, same tiny model, same pool.

geotune: ``GeoTrainer`` (length-grouped sampler over precomputed lengths) + ``DataCollatorForVLM``.
baseline: ``transformers.Trainer`` as it comes (random order) + pad-to-longest (the same collator).
Both train the tiny InternVL with LoRA on the SynthRS instruction pool, same samples, same steps;
tokens/s counts real (non-pad) tokens. Runs alternate; medians over repeats; ratio in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import transformers

from finetune.experiment import build_trainer
from finetune.models.tiny import build_tiny_internvl
from geotune.config import load_recipe


class CountingCollator:
    """Wraps a collator and counts real tokens and padded slots of every batch it makes."""

    def __init__(self, collate):
        self.collate, self.tokens, self.slots = collate, 0, 0

    def __call__(self, samples):
        batch = self.collate(samples)
        self.tokens += int(batch["attention_mask"].sum())
        self.slots += batch["attention_mask"].numel()
        return batch


def recipe(work: Path, steps: int, batch: int, max_patches: int):
    pool = work / "synthrs" / "instruct"
    text = f"""
model: {{path: {work / 'tiny'}, adapter: internvl_hf, max_dynamic_patch: {max_patches}}}
data:
  datasets:
    - {{name: instruct, path: {pool / 'geochat_style.json'}, format: llava, image_root: {pool}}}
  cache_dir: {work / 'cache'}
train: {{max_steps: {steps}, per_device_batch_size: {batch}, report_to: [none], logging_steps: 1000,
        save_steps: 100000, learning_rate: 1e-3, warmup_ratio: 0}}
"""
    path = work / "bench.yaml"
    path.write_text(text)
    return path


def run_once(recipe_path: Path, work: Path, grouped: bool, seed: int) -> dict:
    cfg = load_recipe(str(recipe_path), [f"run_dir={work / 'run'}", f"seed={seed}", "train.resume=false"])
    trainer = build_trainer(cfg)
    counter = CountingCollator(trainer.data_collator)
    if grouped:
        trainer.data_collator = counter
    else:  # the plain HF Trainer on the same model, dataset and pad-to-longest collator
        trainer = transformers.Trainer(model=trainer.model, args=trainer.args, train_dataset=trainer.train_dataset,
                                       data_collator=counter)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": counter.tokens / seconds, "padding": 1 - counter.tokens / counter.slots,
            "seconds": seconds, "tokens": counter.tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-patches", type=int, default=6, help="InternVL dynamic tiling budget")
    parser.add_argument("--work", default=None, help="folder for the tiny model and SynthRS (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geotune-bench-"))
    transformers.logging.set_verbosity_error()
    if not (work / "tiny" / "config.json").exists():
        build_tiny_internvl(work / "tiny")
    from geotune.synth import write_synthrs

    write_synthrs(work / "synthrs", seed=0, size="small")
    path = recipe(work, args.steps, args.batch, args.max_patches)
    results = {"geotune": [], "hf_baseline": []}
    for r in range(args.repeats):
        for name, grouped in (("hf_baseline", False), ("geotune", True)):
            results[name].append(run_once(path, work, grouped, seed=r))
    print(f"\ntiny InternVL (LoRA), SynthRS instruct pool, {args.steps} steps x batch {args.batch}, "
          f"max_dynamic_patch {args.max_patches}, median of {args.repeats}")
    print(f"{'loop':<12} {'tokens/s':>10} {'padding':>8} {'seconds':>8}")
    med = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        m = med[name]
        print(f"{name:<12} {m['tokens_per_s']:>10.0f} {m['padding']:>8.1%} {m['seconds']:>8.2f}")
    print(f"speed-up (geotune / baseline tokens/s): {med['geotune']['tokens_per_s'] / med['hf_baseline']['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
