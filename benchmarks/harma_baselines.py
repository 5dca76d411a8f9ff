"""HarMA vs its baselines on SynthRS-RSITMD, one table: zero-shot, last-layer probe, LoRA (peft, both
towers), full fine-tuning, HarMA (share text_only, both). Trainable parameters, train time per epoch,
peak RSS, val-selected test mR.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/harma_baselines.py --images 120,60,100 --epochs 5 \
        --pretrain-epochs 8 --pretrain-classes 4 --rounds 2

Every run is its own process (peak RSS is per process) on the same tiny CLIP and the same data, through
``run_retrieval_experiment`` (the code ``train.py recipe=harma_demo`` runs). Rounds alternate the
methods; times are medians over rounds, with each method's ratio to full fine-tuning taken within a
round. mR is the test score of the epoch chosen on val (it does not vary between rounds: same seed).
Without ``--pretrain-epochs`` the backbone is random-init (what each method learns from scratch, not
HarMA's setting); with it, every method starts from a tiny CLIP retrieval-tuned on a narrower SynthRS
draw, as HarMA-geo starts from GeoRSCLIP. See docs/harma.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Learning rates: each method's best on val among those tried (docs/harma.md lists them): probe and LoRA
# {2e-3, 1e-2}, full {5e-4, 2e-3}, HarMA {2e-3, 1e-2, 3e-2}; HarMA's public lrs also differ per backbone.
METHODS = {  # row -> recipe overrides
    "zero-shot": ["harma.method=zeroshot"],
    "probe (last layer)": ["harma.method=probe", "train.learning_rate=1e-2"],
    "LoRA r=8 (both towers)": ["harma.method=lora", "train.lora.r=8", "train.lora.alpha=16", "train.lora.dropout=0.0",
                               "train.learning_rate=1e-2"],
    "full fine-tuning": ["harma.method=full", "train.learning_rate=2e-3"],
    "HarMA share=text_only": ["harma.method=harma", "harma.share=text_only", "train.learning_rate=3e-2"],
    "HarMA share=both": ["harma.method=harma", "harma.share=both", "train.learning_rate=3e-2"],
}


def one_run(args) -> None:
    """Child process: one experiment, its summary and test scores as JSON on stdout's last line."""
    from geotune.config import load_recipe
    from geotune.retrieval_experiment import run_retrieval_experiment

    overrides = json.loads(args.one)
    cfg = load_recipe("harma_demo", overrides)
    summary = run_retrieval_experiment(cfg, progress=False)
    keep = ("trainable_params", "total_params", "trainable_share", "train_seconds", "seconds_per_epoch",
            "peak_rss_mb", "best_epoch", "steps")
    print(json.dumps({**{k: summary.get(k) for k in keep}, "test": summary["eval"]["retrieval"],
                      "val": summary["val"]}))


def export_pretrained(args) -> None:
    """Child process: the fully fine-tuned CLIP of run ``args.export[0]`` as a plain CLIP folder ``args.export[1]``."""
    import shutil

    from finetune.retrieval.backbone import load_backbone
    from finetune.retrieval.model import build_retrieval_model, load_trainable

    run_dir, base, out = (Path(p) for p in args.export)
    backbone = load_backbone(base)
    model = build_retrieval_model(backbone.clip, "full")
    load_trainable(model, run_dir / "final")
    model.clip.save_pretrained(out)
    backbone.tokenizer.save_pretrained(out)
    shutil.copy(base / "preprocessor_config.json", out / "preprocessor_config.json")


def run_child(overrides: list[str], flag: str = "--one") -> dict:
    out = subprocess.run([sys.executable, __file__, flag, *([json.dumps(overrides)] if flag == "--one" else overrides)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise RuntimeError(f"run {overrides} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) if flag == "--one" else {}


def table(results: dict[str, list[dict]]) -> str:
    full = results["full fine-tuning"]
    lines = ["| method | trainable params | trainable share | s / epoch (median) | time vs full FT | peak RSS MB | "
             "best val epoch | test R@1 i2t / t2i | test mR |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, runs in results.items():
        r = runs[0]
        per_epoch = statistics.median(x["seconds_per_epoch"] or 0 for x in runs)
        ratios = [x["seconds_per_epoch"] / f["seconds_per_epoch"] for x, f in zip(runs, full, strict=True)
                  if x["seconds_per_epoch"] and f["seconds_per_epoch"]]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        rss = statistics.median(x["peak_rss_mb"] for x in runs)
        t = r["test"]
        lines.append(f"| {name} | {r['trainable_params']:,} | {100 * r['trainable_share']:.1f} % | {per_epoch:.2f} | "
                     f"{ratio} | {rss:.0f} | {r['best_epoch'] or '-'} | {t['i2t_r1']:.1f} / {t['t2i_r1']:.1f} | "
                     f"{t['mR']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--export", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--pretrain-epochs", type=int, default=0,
                        help="first fully fine-tune the random-init CLIP this many epochs on another SynthRS draw "
                             "(seed 1), and start every method from it: HarMA's setting, a retrieval-tuned backbone")
    parser.add_argument("--pretrain-classes", type=int, default=4,
                        help="classes of the pretraining draw (of 8): the target then holds classes the backbone "
                             "has never seen, a domain shift to adapt to")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--images", default="160,40,80", help="SynthRS-RSITMD images: train,val,test")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args()
    if args.one:
        one_run(args)
        return 0
    if args.export:
        export_pretrained(args)
        return 0
    from geotune.synth.retrieval import write_synthrs_rsitmd

    work = Path(args.work or tempfile.mkdtemp(prefix="harma-bench-"))
    train, val, test = (int(x) for x in args.images.split(","))
    data = work / "SynthRS-RSITMD"
    if not (data / "test.json").exists():
        write_synthrs_rsitmd(work, seed=0, split_sizes={"train": train, "val": val, "test": test}, image_size=32)
    base = work / "tiny-clip"
    fixed = ["train.report_to=[]", "train.resume=false"]
    if args.pretrain_epochs:
        pre = work / "pretrain" / "SynthRS-RSITMD"
        if not (pre / "test.json").exists():
            write_synthrs_rsitmd(pre.parent, seed=1, split_sizes={"train": train, "val": val, "test": test}, image_size=32,
                                 n_classes=args.pretrain_classes)
        pre_files = [f"harma.{k}_file={pre / (k + '.json')}" for k in ("train", "val", "test")]
        run_child(pre_files + fixed + [f"harma.image_root={pre}", f"model.path={base}", "harma.method=full",
                                       "train.learning_rate=5e-4", f"train.epochs={args.pretrain_epochs}",
                                       f"run_dir={work / 'pretrain-run'}"])
        run_child([str(work / "pretrain-run"), str(base), str(work / "pretrained-clip")], flag="--export")
        base = work / "pretrained-clip"
    common = [f"harma.{k}_file={data / (k + '.json')}" for k in ("train", "val", "test")]
    common += [f"harma.image_root={data}", f"model.path={base}", f"train.epochs={args.epochs}", *fixed]
    results: dict[str, list[dict]] = {name: [] for name in METHODS}
    for round_ in range(args.rounds):
        for name, overrides in METHODS.items():
            run_dir = work / "runs" / f"{list(METHODS).index(name)}-{round_}"
            results[name].append(run_child(common + overrides + [f"run_dir={run_dir}"]))
            print(f"round {round_ + 1}: {name}: test mR {results[name][-1]['test']['mR']:.2f}, "
                  f"{results[name][-1]['seconds_per_epoch']} s/epoch", flush=True)
    start = (f"a tiny CLIP fully fine-tuned {args.pretrain_epochs} epochs on another SynthRS draw (seed 1, "
             f"{args.pretrain_classes} of the 8 classes)"
             if args.pretrain_epochs else "a tiny random-init CLIP")
    text = (f"SynthRS-RSITMD {train}/{val}/{test} images (train/val/test), every method from {start}, "
            f"{args.epochs} epochs, batch 32, {args.rounds} rounds, one CPU thread\n\n" + table(results) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
