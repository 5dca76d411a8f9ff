"""Training throughput: geotune's loop vs a plain HF Trainer baseline, same model, same pool.

geotune: ``GeoTrainer`` (length-grouped sampler over precomputed lengths, logits at labelled positions
only) + ``DataCollatorForVLM``.
baseline: ``transformers.Trainer`` as it comes (random order, logits everywhere) + pad-to-longest (the
same collator). The ``geotune-all-logits`` row switches ``train.supervised_logits`` off: the sampler alone.
Both train a tiny InternVL (``--model tiny|small``) with LoRA on the SynthRS instruction pool, same
samples, same steps; tokens/s counts real (non-pad) tokens. Runs alternate; medians over repeats;
ratio in the same run.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py --steps 40 --repeats 3

(one torch thread: on a shared 2-core machine OpenMP spin-waits make 2 threads several times slower.)
The ``geotune+Nw`` row adds ``train.num_workers=N`` (image decoding and tiling in DataLoader workers).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import transformers

from finetune.data.loader import load_training_data
from finetune.models.tiny import build_tiny_internvl
from finetune.training import build_trainer
from geotune.config import load_recipe


class TokenCounter:
    """Counts real tokens and padded slots of every training forward (a forward pre-hook, main process)."""

    def __init__(self, model):
        self.tokens, self.slots = 0, 0
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None and module.training:
            self.tokens += int(mask.sum())
            self.slots += mask.numel()


# Text models of the InternVL built for the benchmark (vision tower and tokenizer as in the tests).
TEXT_MODELS = {
    "tiny": None,
    # LM head : decoder FLOPs about 1 : 3, as in the Qwen2-0.5B of Mini-InternVL-1B / InternVL2-1B (the
    # embedding rows past the tokenizer's 600 are never input, as in checkpoints with padded vocabularies)
    "small": dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=2, tie_word_embeddings=False, vocab_size=4096),
}


def recipe(work: Path, model_dir: Path, steps: int, batch: int, max_patches: int):
    pool = work / "synthrs" / "instruct"
    text = f"""
model: {{path: {model_dir}, adapter: internvl_hf, max_dynamic_patch: {max_patches}}}
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


def run_once(recipe_path: Path, work: Path, grouped: bool, seed: int, overrides: tuple = ()) -> dict:
    cfg = load_recipe(str(recipe_path), [f"run_dir={work / 'run'}", f"seed={seed}", "train.resume=false",
                                         f"train.group_by_length={str(grouped).lower()}", *overrides])
    trainer = build_trainer(cfg, load_training_data(cfg))
    counter = TokenCounter(trainer.model)
    if not grouped:  # the plain HF Trainer on the same model, dataset and pad-to-longest collator
        trainer = transformers.Trainer(model=trainer.model, args=trainer.args, train_dataset=trainer.train_dataset,
                                       data_collator=trainer.data_collator)
    compute = time_training_steps(trainer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": counter.tokens / seconds, "padding": 1 - counter.tokens / counter.slots,
            "seconds": seconds, "tokens": counter.tokens, "compute_s": compute[0]}


def time_training_steps(trainer) -> list[float]:
    """``[seconds]`` spent in ``training_step`` (forward, loss, backward), filled in as the trainer runs:
    the part of the loop that padding and logits change; data loading and the optimizer are outside it."""
    spent, step = [0.0], trainer.training_step

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    trainer.training_step = timed
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-patches", type=int, default=6, help="InternVL dynamic tiling budget")
    parser.add_argument("--workers", type=int, default=1,
                        help="DataLoader workers of the extra 'geotune+workers' row (images decoded beside the model)")
    parser.add_argument("--model", choices=sorted(TEXT_MODELS), default="tiny",
                        help="tiny: the test model (2 x 64-wide layers, per-op overhead dominates a step); "
                             "small: 4 x 256-wide layers, where a step's cost follows its tokens as on real models")
    parser.add_argument("--work", default=None, help="folder for the model and SynthRS (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geotune-bench-"))
    transformers.logging.set_verbosity_error()
    model_dir = work / args.model
    if not (model_dir / "config.json").exists():
        build_tiny_internvl(model_dir, text_overrides=TEXT_MODELS[args.model])
    from geotune.synth import write_synthrs

    write_synthrs(work / "synthrs", seed=0, size="small")
    path = recipe(work, model_dir, args.steps, args.batch, args.max_patches)
    loops = [("hf_baseline", False, ()), ("geotune", True, ()),
             ("geotune-all-logits", True, ("train.supervised_logits=false",))]
    if args.workers:
        workers = (f"train.num_workers={args.workers}",)
        loops += [(f"hf_baseline+{args.workers}w", False, workers), (f"geotune+{args.workers}w", True, workers)]
    results = {name: [] for name, _, _ in loops}
    for r in range(args.repeats):
        for name, grouped, overrides in loops:
            results[name].append(run_once(path, work, grouped, seed=r, overrides=overrides))
    print(f"\n{args.model} InternVL (LoRA), SynthRS instruct pool, {args.steps} steps x batch {args.batch}, "
          f"max_dynamic_patch {args.max_patches}, median of {args.repeats}")
    print(f"{'loop':<18} {'tokens/s':>10} {'padding':>8} {'seconds':>8} {'vs baseline':>12} "
          f"{'paired':>8} {'step s':>8} {'step ratio':>11}")
    med = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        m, base = med[name], med["hf_baseline"]
        ratio = m["tokens_per_s"] / base["tokens_per_s"]
        # forward + backward only: tokens per second of training_step time, same tokens in every loop
        step_ratio = (m["tokens"] / m["compute_s"]) / (base["tokens"] / base["compute_s"])
        # median over repeats of this loop's tokens/s over the baseline's in the same repeat: runs of one
        # repeat are back to back, so a slow stretch of a shared machine hits both sides of the ratio
        paired = statistics.median(run["tokens_per_s"] / ref["tokens_per_s"]
                                   for run, ref in zip(runs, results["hf_baseline"], strict=True))
        print(f"{name:<18} {m['tokens_per_s']:>10.0f} {m['padding']:>8.1%} {m['seconds']:>8.2f} {ratio:>11.2f}x "
              f"{paired:>7.2f}x {m['compute_s']:>8.2f} {step_ratio:>10.2f}x")


if __name__ == "__main__":
    main()
