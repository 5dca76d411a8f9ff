"""HarMA vs its baselines on SynthRS-RSITMD, one table: zero-shot, last-layer probe, LoRA (peft, both
towers), full fine-tuning, HarMA (share text_only, both; r=24). Trainable parameters, train time per
epoch, peak RSS, val-selected test mR.

    # HarMA's regime (docs/harma.md): a 128-wide CLIP pretrained on a disjoint all-class corpus, each
    # method's learning rate chosen on val over two seeds:
    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/harma_baselines.py --images 120,60,100 --width 128 \
        --pretrain-corpus 1000,100 --pretrain-epochs 10 --pretrain-lr 1e-3 --epochs 10 --seeds 0,1 --sweep \
        --methods zero-shot,lora,full,harma,harma_both,harma_both_r24 --lrs lora=3e-3,1e-2,3e-2 \
        full=3e-4,1e-3,3e-3 harma=3e-3,1e-2,3e-2 harma_both=3e-3,1e-2,3e-2,1e-1 harma_both_r24=1e-2,3e-2,1e-1 \
        --work runs/harma-bench
    # earlier: the default 32/48-wide CLIP pretrained on 4 of the 8 classes:
    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/harma_baselines.py --images 120,60,100 --epochs 12 \
        --pretrain-epochs 8 --pretrain-classes 4 --seeds 0,1 --sweep --methods zero-shot,lora,full,harma

Every run is its own process (peak RSS is per process) on the same tiny CLIP and the same data, through
``run_retrieval_experiment`` (the code ``train.py recipe=harma_demo`` runs). Rounds alternate the
methods; times are medians over rounds, with each method's ratio to full fine-tuning taken within a
round. mR is the test score of the epoch chosen on val. With ``--rounds`` every round repeats seed 0
(mR does not vary; the rounds only repeat the timing); with ``--seeds`` round k trains with seed k
(adapter init, batch order, augmentations; the data stay the same), so mR varies too. With ``--sweep``
each method trains at every learning rate of ``SWEEP`` (or ``--lrs``) and the table keeps, per method,
the rate with the highest mean best-val mR over the seeds: test scores are never looked at to choose.
Without ``--pretrain-epochs`` the backbone is random-init (what each method learns from scratch, not
HarMA's setting). With it, every method starts from a tiny CLIP fully fine-tuned first: on
``--pretrain-corpus`` (all classes, images disjoint from the fine-tuning set, captions in other words, as
HarMA-geo starts from GeoRSCLIP), or else on a SynthRS draw of ``--pretrain-classes`` classes. The corpus
renames half the classes (``--pretrain-names renamed``, the default) or names them all as the fine-tuning
captions do (``same``). The base is cached per setting (``pretrained_base``). ``harma_both_attn`` is an
ablation, not HarMA: share=both's adapters also on each self-attention output (``harma.sites``).
``--tables-from`` prints the tables of several invocations' results.json together. See docs/harma.md.
"""

from __future__ import annotations

import argparse
import hashlib
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
    # On the 128-wide CLIP, r=24 trains 3.9 % of the parameters, HarMA's share on ViT-B/32 (3.8 %); r=16 trains 2.4 %.
    "HarMA share=both r=24": ["harma.method=harma", "harma.share=both", "harma.bottleneck=24", "harma.heads=4",
                              "train.learning_rate=3e-2"],
    # An ablation of ours, NOT HarMA as published: share=both's adapters also on each self-attention output.
    "share=both + attn adapters (NOT HarMA)": ["harma.method=harma", "harma.share=both", "harma.sites=[mlp,attn]",
                                               "train.learning_rate=3e-2"],
}
# --methods names a row by a short key.
SHORT = {"zero-shot": "zero-shot", "probe": "probe (last layer)", "lora": "LoRA r=8 (both towers)",
         "full": "full fine-tuning", "harma": "HarMA share=text_only", "harma_both": "HarMA share=both",
         "harma_both_r24": "HarMA share=both r=24", "harma_both_attn": "share=both + attn adapters (NOT HarMA)"}
# --sweep: the learning rates tried per method, around the best of the 5-epoch search (a rate at each side).
SWEEP = {
    "probe (last layer)": [1e-2, 3e-2],
    "LoRA r=8 (both towers)": [1e-2, 3e-2],
    "full fine-tuning": [5e-4, 2e-3, 5e-3],
    "HarMA share=text_only": [1e-2, 3e-2, 1e-1],
    "HarMA share=both": [1e-2, 3e-2, 1e-1],
}


def parse_lrs(items: list[str]) -> dict[str, list[float]]:
    """``--lrs lora=3e-3,1e-2 full=1e-3``: learning rates to sweep by method (short names), replacing ``SWEEP``'s."""
    out = {}
    for item in items:
        key, _, rates = item.partition("=")
        if key not in SHORT or not rates:
            raise SystemExit(f"--lrs {item!r}: expected METHOD=LR,LR,... with METHOD one of {', '.join(SHORT)}")
        out[SHORT[key]] = [float(r) for r in rates.split(",")]
    return out


def variants(name: str, sweep: bool, rates: dict[str, list[float]] = SWEEP) -> list[tuple[str | None, list[str]]]:
    """``(learning rate or None, overrides)`` for each run of a method (one, or its ``rates``)."""
    base = METHODS[name]
    if not sweep or name not in rates:
        lr = next((o.split("=")[1] for o in base if o.startswith("train.learning_rate=")), None)
        return [(lr, base)]
    fixed = [o for o in base if not o.startswith("train.learning_rate=")]
    return [(f"{lr:g}", [*fixed, f"train.learning_rate={lr:g}"]) for lr in rates[name]]


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


# This process and its children import this checkout's packages, not an installed copy of geotune elsewhere.
ROOT = str(Path(__file__).resolve().parents[1])
PYTHONPATH = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
sys.path.insert(0, ROOT)


def run_child(overrides: list[str], flag: str = "--one") -> dict:
    out = subprocess.run([sys.executable, __file__, flag, *([json.dumps(overrides)] if flag == "--one" else overrides)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": PYTHONPATH})
    if out.returncode:
        raise RuntimeError(f"run {overrides} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) if flag == "--one" else {}


PRETRAIN_NAMES = ("renamed", "same")  # --pretrain-names


def pretrain_class_words(names: str) -> dict[str, str]:
    """The corpus's words for the classes (``--pretrain-names``). ``renamed``: half the classes by another name
    ("cropland" for farmland); ``same``: every class by its fine-tuning name (only templates and quadrant words
    differ, a milder shift)."""
    from geotune.synth.retrieval import PRETRAIN_CLASS_WORDS

    if names not in PRETRAIN_NAMES:
        raise SystemExit(f"--pretrain-names {names!r}: expected one of {', '.join(PRETRAIN_NAMES)}")
    return dict(PRETRAIN_CLASS_WORDS) if names == "renamed" else {}


def init_name(args) -> str:
    return "tiny-clip" if args.width is None else f"tiny-clip-w{args.width}"


def base_names(args, sizes: tuple[int, int, int]) -> tuple[str, str]:
    """``(corpus, base)`` folder names of a pretrained base: every setting, and a hash of the corpus's wording.

    The wording is the templates, quadrant words and class words (``--pretrain-names``), so new captions make
    a new corpus and base. ``renamed`` (the default) hashes exactly what it did before the option existed,
    so its cached bases keep their names.
    """
    from geotune.synth.retrieval import PRETRAIN_QUADRANTS, PRETRAIN_TEMPLATES

    if args.pretrain_corpus:
        words = pretrain_class_words(args.pretrain_names)
        wording = hashlib.sha256(repr((PRETRAIN_TEMPLATES, PRETRAIN_QUADRANTS, words)).encode()).hexdigest()[:6]
        corpus = f"corpus{args.pretrain_corpus.replace(',', 'x')}-{wording}"
    else:
        corpus = f"draw{sizes[0]}-{args.pretrain_classes}cls"
    return corpus, f"pretrained-{init_name(args)}-{corpus}-e{args.pretrain_epochs}-lr{args.pretrain_lr:g}"


def pretrained_base(args, cache: Path, sizes: tuple[int, int, int], fixed: list[str]) -> Path:
    """The backbone every method starts from, built once per setting under ``cache`` and reused.

    Random-init without ``--pretrain-epochs``. With ``--pretrain-corpus`` it is fully fine-tuned on the
    pretraining corpus (all classes, disjoint images, other captions: HarMA's GeoRSCLIP regime); otherwise
    on another SynthRS draw (seed 1) with ``--pretrain-classes`` of the 8 classes (the earlier proxy). The
    folder name holds every setting, so a changed setting builds a new base; same setting, same bytes.
    """
    from finetune.models.tiny import build_tiny_clip
    from geotune.synth.retrieval import PRETRAIN_FOLDER, write_synthrs_rsitmd, write_synthrs_rsitmd_pretrain

    init = cache / init_name(args)
    if not (init / "config.json").exists():
        build_tiny_clip(init, width=args.width)
    if not args.pretrain_epochs:
        return init
    corpus, name = base_names(args, sizes)
    out = cache / name
    if (out / "config.json").exists():
        print(f"pretrained base: {out} (cached)", flush=True)
        return out
    if args.pretrain_corpus:
        n_train, n_val = (int(x) for x in args.pretrain_corpus.split(","))
        pre = cache / f"pretrain-{corpus}" / PRETRAIN_FOLDER
        if not (pre / "val.json").exists():
            write_synthrs_rsitmd_pretrain(pre.parent, seed=0, split_sizes={"train": n_train, "val": n_val}, image_size=32,
                                          class_words=pretrain_class_words(args.pretrain_names))
        files = {"train": pre / "train.json", "val": pre / "val.json", "test": pre / "val.json"}  # its own val, twice
    else:
        pre = cache / f"pretrain-{corpus}" / "SynthRS-RSITMD"
        if not (pre / "test.json").exists():
            write_synthrs_rsitmd(pre.parent, seed=1, split_sizes=dict(zip(("train", "val", "test"), sizes, strict=True)),
                                 image_size=32, n_classes=args.pretrain_classes)
        files = {k: pre / f"{k}.json" for k in ("train", "val", "test")}
    run_dir = cache / f"{out.name}-run"
    result = run_child([f"harma.{k}_file={v}" for k, v in files.items()] + fixed + [
        f"harma.image_root={pre}", f"model.path={init}", "harma.method=full", f"train.learning_rate={args.pretrain_lr:g}",
        f"train.epochs={args.pretrain_epochs}", f"run_dir={run_dir}"])
    tmp = out.with_name(out.name + ".tmp")
    run_child([str(run_dir), str(init), str(tmp)], flag="--export")
    tmp.rename(out)
    curve = ", ".join(f"{v['mR']:.1f}" for v in result["val"])
    print(f"pretrained base: {out}: {result['seconds_per_epoch']} s/epoch, its val mR by epoch {curve}", flush=True)
    return out


def best_val(run: dict) -> float:
    return max(v["mR"] for v in run["val"])


def choose(runs_by_lr: dict[str, list[dict]]) -> str:
    """The learning rate with the highest mean best-val mR over seeds (ties: the first tried).

    Rates are compared on the same runs: the first ``k`` of each, ``k`` the fewest any rate has (a third
    seed run later at the chosen rate only does not change the choice). Means are rounded to 1e-9 first:
    equal sums added in another order differ in the last float digits, and that is a tie.
    """
    k = min(len(runs) for runs in runs_by_lr.values())
    return max(runs_by_lr, key=lambda lr: round(statistics.mean(best_val(r) for r in runs_by_lr[lr][:k]), 9))


def merge_results(parts: list[dict[str, dict[str, list[dict]]]]) -> dict[str, dict[str, list[dict]]]:
    """``results.json`` of several invocations as one: per method and rate, the runs in the order given."""
    merged: dict[str, dict[str, list[dict]]] = {}
    for part in parts:
        for name, by_lr in part.items():
            for lr, runs in by_lr.items():
                merged.setdefault(name, {}).setdefault(lr, []).extend(runs)
    return merged


def seeded(runs: list[dict]) -> list[tuple[int, dict]]:
    """``(seed, run)``; results written before runs recorded their seed count 0, 1, ... in order."""
    return [(r.get("seed", i), r) for i, r in enumerate(runs)]


def lr_label(lr: str | None) -> str:
    return "-" if lr in (None, "null", "None") else lr  # zero-shot has no rate (JSON writes its key as "null")


def seed_table(results: dict[str, dict[str, list[dict]]]) -> str:
    """Test mR per seed at each method's val-chosen rate, its mean, and its difference to full FT, paired by seed."""
    rate = {name: choose(by_lr) for name, by_lr in results.items()}
    chosen = {name: results[name][lr] for name, lr in rate.items()}
    full = {seed: r["test"]["mR"] for seed, r in seeded(chosen.get("full fine-tuning", []))}
    full_mean = statistics.mean(full.values()) if full else None
    lines = ["| method | lr (val) | seeds | test mR per seed | mean | vs full FT (means) | difference to full FT per seed "
             "| best val mR (mean) |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, runs in chosen.items():
        tests = [r["test"]["mR"] for r in runs]
        mean = statistics.mean(tests)
        vs = "-" if full_mean is None else ("0" if name == "full fine-tuning" else f"{mean - full_mean:+.2f}")
        diffs = [f"{r['test']['mR'] - full[seed]:+.2f}" for seed, r in seeded(runs) if seed in full]
        lines.append(f"| {name} | {lr_label(rate[name])} | {', '.join(str(seed) for seed, _ in seeded(runs))} | "
                     f"{' / '.join(f'{t:.2f}' for t in tests)} | {mean:.2f} | {vs} | "
                     f"{' / '.join(diffs) if diffs and name != 'full fine-tuning' else '-'} | "
                     f"{statistics.mean(best_val(r) for r in runs):.2f} |")
    return "\n".join(lines)


def tables(results: dict[str, dict[str, list[dict]]], sweep: bool) -> str:
    text = table(results) + "\n\nTest mR per seed at the val-chosen rates\n\n" + seed_table(results) + "\n"
    if sweep:
        text += "\nLearning rates tried (chosen: bold, highest mean best-val mR)\n\n" + sweep_table(results) + "\n"
    return text


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    """One row per method at its val-chosen learning rate; time ratios to full FT paired within a seed."""
    chosen = {name: by_lr[choose(by_lr)] for name, by_lr in results.items()}
    full = chosen.get("full fine-tuning")
    lines = ["| method | trainable params | trainable share | s / epoch (median) | time vs full FT | peak RSS MB | "
             "lr (val) | best val mR | best val epoch | test mR per seed | test mR (mean) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, runs in chosen.items():
        r = runs[0]
        per_epoch = statistics.median(x["seconds_per_epoch"] or 0 for x in runs)
        ratios = [x["seconds_per_epoch"] / f["seconds_per_epoch"] for x, f in zip(runs, full or [], strict=False)
                  if x["seconds_per_epoch"] and f["seconds_per_epoch"]]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        rss = statistics.median(x["peak_rss_mb"] for x in runs)
        tests = [x["test"]["mR"] for x in runs]
        lines.append(f"| {name} | {r['trainable_params']:,} | {100 * r['trainable_share']:.1f} % | {per_epoch:.2f} | "
                     f"{ratio} | {rss:.0f} | {lr_label(choose(results[name]))} | "
                     f"{statistics.mean(best_val(x) for x in runs):.2f} | "
                     f"{', '.join(str(x['best_epoch'] or '-') for x in runs)} | "
                     f"{' / '.join(f'{t:.2f}' for t in tests)} | {statistics.mean(tests):.2f} |")
    return "\n".join(lines)


def sweep_table(results: dict[str, dict[str, list[dict]]]) -> str:
    """Best-val mR of every learning rate tried (the choice is made here, on val only)."""
    lines = ["| method | learning rate | best val mR per seed | mean | best val epoch per seed |", "|---|---:|---:|---:|---:|"]
    for name, by_lr in results.items():
        if len(by_lr) < 2:
            continue
        for lr, runs in by_lr.items():
            mark = "**" if lr == choose(by_lr) else ""
            lines.append(f"| {name} | {mark}{lr}{mark} | {' / '.join(f'{best_val(r):.2f}' for r in runs)} | "
                         f"{statistics.mean(best_val(r) for r in runs):.2f} | "
                         f"{', '.join(str(r['best_epoch']) for r in runs)} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--export", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--pretrain-epochs", type=int, default=0,
                        help="first fully fine-tune the random-init CLIP this many epochs on another SynthRS draw "
                             "(seed 1), and start every method from it: HarMA's setting, a retrieval-tuned backbone")
    parser.add_argument("--pretrain-classes", type=int, default=4,
                        help="classes of the pretraining draw (of 8): the target then holds classes the backbone "
                             "has never seen, a domain shift to adapt to")
    parser.add_argument("--pretrain-corpus", default=None,
                        help="train,val images of the pretraining corpus (all classes, images disjoint from the "
                             "fine-tuning set, captions in other words); without it, --pretrain-classes' SynthRS draw")
    parser.add_argument("--pretrain-names", default="renamed", choices=PRETRAIN_NAMES,
                        help="with --pretrain-corpus: renamed (half the classes by other names, as before) or same "
                             "(every class by its fine-tuning name; only templates and quadrant words differ)")
    parser.add_argument("--tables-from", nargs="+", default=None, metavar="RESULTS_JSON",
                        help="no runs: the tables of these results.json files merged (each method's runs in file "
                             "order, e.g. the seed-0,1 sweep and then seed 2 at the chosen rates)")
    parser.add_argument("--pretrain-lr", type=float, default=5e-4, help="learning rate of the pretraining (full FT)")
    parser.add_argument("--width", type=int, default=None,
                        help="tiny CLIP width, both towers (geotune tiny-model --width); default text 32, vision 48")
    parser.add_argument("--cache", default=None, help="folder of the built backbones, reused across runs (default: --work)")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of seed 0 (timing only); see --seeds")
    parser.add_argument("--seeds", default=None, help="training seeds, one round each (e.g. 0,1); overrides --rounds")
    parser.add_argument("--sweep", action="store_true", help="try each method's SWEEP learning rates, keep the best on val")
    parser.add_argument("--lrs", nargs="*", default=[], metavar="METHOD=LR,LR",
                        help="with --sweep: these rates for these methods instead of SWEEP's (e.g. full=3e-4,1e-3,3e-3)")
    parser.add_argument("--methods", default=",".join(k for k in SHORT if k != "harma_both_attn"),
                        help=f"rows to run, of: {', '.join(SHORT)} (default: all but harma_both_attn, an ablation)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--images", default="160,40,80", help="SynthRS-RSITMD images: train,val,test")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.one:
        one_run(args)
        return 0
    if args.export:
        export_pretrained(args)
        return 0
    if args.tables_from:
        text = tables(merge_results([json.loads(Path(f).read_text()) for f in args.tables_from]), sweep=True)
        print(text)
        if args.out:
            Path(args.out).write_text(text)
        return 0
    rates = {**SWEEP, **parse_lrs(args.lrs)}  # a bad --lrs fails here, before any run
    from geotune.synth.retrieval import write_synthrs_rsitmd

    work = Path(args.work or tempfile.mkdtemp(prefix="harma-bench-"))
    train, val, test = (int(x) for x in args.images.split(","))
    data = work / "SynthRS-RSITMD"
    if not (data / "test.json").exists():
        write_synthrs_rsitmd(work, seed=0, split_sizes={"train": train, "val": val, "test": test}, image_size=32)
    fixed = ["train.report_to=[]", "train.resume=false"]
    base = pretrained_base(args, Path(args.cache or work), (train, val, test), fixed)
    common = [f"harma.{k}_file={data / (k + '.json')}" for k in ("train", "val", "test")]
    common += [f"harma.image_root={data}", f"model.path={base}", f"train.epochs={args.epochs}", *fixed]
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [0] * args.rounds
    names = [SHORT[key] for key in args.methods.split(",")]
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in names}
    for round_, seed in enumerate(seeds):
        for name in names:
            for lr, overrides in variants(name, args.sweep, rates):
                run_dir = work / "runs" / f"{list(METHODS).index(name)}-{lr}-{round_}"
                result = {**run_child(common + overrides + [f"seed={seed}", f"run_dir={run_dir}"]), "seed": seed}
                results[name].setdefault(lr, []).append(result)
                (work / "results.json").write_text(json.dumps(results, indent=1))  # after each run: a cut run keeps its rows
                print(f"round {round_ + 1} (seed {seed}): {name} lr {lr}: best val mR {best_val(result):.2f} "
                      f"(epoch {result['best_epoch']}), {result['seconds_per_epoch']} s/epoch", flush=True)
    clip = "a tiny CLIP" if args.width is None else f"a {args.width}-wide tiny CLIP"
    if not args.pretrain_epochs:
        start = f"{clip}, random-init"
    elif args.pretrain_corpus:
        names = ("class names as in fine-tuning" if args.pretrain_names == "same" else "4 of 8 classes renamed")
        start = (f"{clip} fully fine-tuned {args.pretrain_epochs} epochs (lr {args.pretrain_lr:g}) on the pretraining "
                 f"corpus ({args.pretrain_corpus.replace(',', '/')} train/val images, all 8 classes, disjoint images, "
                 f"other captions, {names})")
    else:
        start = (f"{clip} fully fine-tuned {args.pretrain_epochs} epochs on another SynthRS draw (seed 1, "
                 f"{args.pretrain_classes} of the 8 classes)")
    text = (f"SynthRS-RSITMD {train}/{val}/{test} images (train/val/test), every method from {start}, "
            f"{args.epochs} epochs, batch 32, seeds {','.join(map(str, seeds))}, one CPU thread\n\n"
            + tables(results, args.sweep))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
