"""Proxy result: selected vs random vs full, seed by seed, with paired bootstrap intervals.

Two proxies (``--proxy``):

- ``base`` (default, the seed's regime): a base pretrained by geotune (``recipes/proxy_base.yaml``,
  built once under ``ROOT/base`` and reused), LoRA-tuned on the GeoChat-structured SynthRS pool with
  ``recipes/proxy_lora.yaml``. Variants: the learning curve of random subsets (10/20/33/50/100 %, the
  regime check) and every selector of the study. Two protocols (``--protocols``): ``same_epochs`` (the
  seed's: a third of the data takes a third of the steps) and ``equal_steps`` (every subset trains as
  many steps as full data of the same seed; its manifest is reused from ``same_epochs``).
- ``scratch``: the older random-init tiny model trained in full (``recipes/demo.yaml``).

    # the regime check first, then the study
    python benchmarks/proxy_selection.py --seeds 0 --protocols same_epochs \\
        --variants full random_10 random_20 random_third random_50
    python benchmarks/proxy_selection.py --seeds 0 1 2 3 4

Every run lives in ``ROOT/<protocol>/<variant>-seed<N>``; finished runs are reused, so a killed study
resumes. Writes a markdown report (``--out``) and the per-run rows beside it (``.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from eval.stats import bootstrap_mean_ci, paired_differences
from geotune.config import load_recipe
from geotune.variants import finished_with, is_finished

THIRD = 0.333
METRICS = {"UCM": "ucmerced", "AID": "aid", "LRBEN": "lrben"}


def _sel(method: str, keep: float, *options: str) -> list[str]:
    return [f"selection.method={method}", f"selection.keep={keep}", *options]


# COINCIDE hooks both layers of the 2-layer text model (the proxy base, like the tiny one).
_COINCIDE = ("selection.features.backend=reference", "selection.features.layers=[0,1]")
CURVE = {
    "random_10": _sel("random", 0.1), "random_20": _sel("random", 0.2), "random_third": _sel("random", THIRD),
    "random_50": _sel("random", 0.5), "full": _sel("full", 1.0),
}  # fmt: skip
CURVE_SHARE = {"random_10": 0.1, "random_20": 0.2, "random_third": THIRD, "random_50": 0.5, "full": 1.0}
STUDY_BASE = CURVE | {
    "adaptive_shift_high": _sel("adaptive_shift", THIRD, "selection.options.prefer=high"),
    "adaptive_shift_low": _sel("adaptive_shift", THIRD, "selection.options.prefer=low"),
    "adaptive_shift_middle": _sel("adaptive_shift", THIRD, "selection.options.prefer=middle"),
    "coincide_20": _sel("coincide", 0.2, *_COINCIDE),
    "coincide_third": _sel("coincide", THIRD, *_COINCIDE),
    "length": _sel("length", THIRD),
    "perplexity": _sel("perplexity", THIRD),
    "el2n": _sel("el2n", THIRD),
    "semdedup": _sel("semdedup", THIRD),
    "self_sup": _sel("self_sup", THIRD),
}
# Why no selector beats a random third: one axis at a time around adaptive_shift middle (the study's
# best), plus the control that keeps stage 1 alone (cluster_random) and the fix the composition table
# points to (spread_images: adaptive shift keeps whole scenes). Same epochs; added after the study.
_MIDDLE = ("selection.options.prefer=middle",)
ABLATIONS = {
    "cluster_random": _sel("cluster_random", THIRD),
    "adaptive_shift_middle_spread": _sel("adaptive_shift", THIRD, *_MIDDLE, "selection.options.spread_images=true"),
    "cluster_random_spread": _sel("cluster_random", THIRD, "selection.options.spread_images=true"),
    "adaptive_shift_middle_word_dropout": _sel("adaptive_shift", THIRD, *_MIDDLE,
                                               "selection.options.perturbation=text:word_dropout"),
    "adaptive_shift_middle_target": _sel("adaptive_shift", THIRD, *_MIDDLE, "selection.features.backend=target",
                                         "selection.features.layers=[-1]"),
    "adaptive_shift_middle_k180": _sel("adaptive_shift", THIRD, *_MIDDLE, "selection.clusters=180"),
    "adaptive_shift_middle_layer0": _sel("adaptive_shift", THIRD, *_MIDDLE, "selection.options.shift_layers=[0]"),
    "adaptive_shift_middle_k11": _sel("adaptive_shift", THIRD, *_MIDDLE, "selection.clusters=11"),
}
STUDY_BASE |= ABLATIONS
STUDY_SCRATCH = {
    "full": _sel("full", 1.0),
    "adaptive_shift_high": _sel("adaptive_shift", THIRD, "selection.options.prefer=high"),
    "adaptive_shift_low": _sel("adaptive_shift", THIRD, "selection.options.prefer=low"),
    "adaptive_shift_middle": _sel("adaptive_shift", THIRD, "selection.options.prefer=middle"),
    "adaptive_shift_low_patch_mask": _sel("adaptive_shift", THIRD, "selection.options.prefer=low",
                                          "selection.options.perturbation=image:patch_mask"),
    "adaptive_shift_low_word_dropout": _sel("adaptive_shift", THIRD, "selection.options.prefer=low",
                                            "selection.options.perturbation=text:word_dropout"),
    "random_third": _sel("random", THIRD),
    "coincide_20": _sel("coincide", 0.2, *_COINCIDE),
}
PROTOCOLS = ("same_epochs", "equal_steps")


def selection_seconds(run_dir: Path) -> float:
    """Selection wall time of a run (features, signals, select, manifest; 0 without selection)."""
    path = run_dir / "selection" / "timings.json"
    if not path.exists():
        return 0.0
    timings = json.loads(path.read_text())
    return float(sum(v for k, v in timings.items() if "." not in k and k != "report"))


def run_metrics(run_dir: Path) -> dict[str, float]:
    """Scores (UCM, AID, LRBEN and their mean ``avg``), ``train s``, ``select s`` and ``steps`` of a run."""
    out = {}
    for name, bench in METRICS.items():
        path = run_dir / "final" / "eval" / f"{bench}.json"
        if path.exists():
            out[name] = float(json.loads(path.read_text())["score"])
    if len(out) == len(METRICS):
        out["avg"] = statistics.mean(out[m] for m in METRICS)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    out["train s"] = float(summary["train_seconds"])
    out["select s"] = selection_seconds(run_dir)
    out["steps"] = float(summary["steps"])
    return out


TASKS = ("classification", "vqa", "caption", "grounding", "region")


def composition(run_dir: Path, meta: dict[str, dict]) -> dict[str, float] | None:
    """What a run trained on, in % of its records: per task, planted near-duplicates and noise
    (from the pool's sidecar, ``geochat_style_meta.jsonl``); None without a selection manifest."""
    from selection.manifest import read_manifest

    path = run_dir / "selection" / "manifest.jsonl"
    if not path.exists():
        return None
    return composition_of([meta[row["id"]] for row in read_manifest(path)[1]])


def composition_of(kept: list[dict]) -> dict[str, float]:
    share = lambda n: 100.0 * n / max(len(kept), 1)  # noqa: E731
    out = {task: share(sum(m["task"] == task for m in kept)) for task in TASKS}
    out["near-dup"] = share(sum(m["duplicate_of"] is not None for m in kept))
    out["noise"] = share(sum(m["noise"] is not None for m in kept))
    # Distinct scenes per 100 records (a near-duplicate re-draws its original's scene; siblings share one)
    scene = lambda m: m.get("image_of") or m["duplicate_of"] or m["id"]  # noqa: E731
    out["scenes"] = share(len({scene(m) for m in kept}))
    out["classes"] = float(len({(m["dataset"], m["name"]) for m in kept if m["dataset"] != "lr"}))
    return out


def composition_table(root: Path, rows: dict) -> str:
    """Markdown: mean composition over seeds of every variant with a manifest, beside the whole pool's."""
    meta_path = root / "synthrs" / "instruct" / "geochat_style_meta.jsonl"
    meta = {m["id"]: m for m in map(json.loads, meta_path.read_text().splitlines())}
    pool = list(meta.values())
    head = ["variant", *TASKS, "near-dup", "noise", "scenes", "classes"]
    whole = [100.0 * sum(m["task"] == t for m in pool) / len(pool) for t in TASKS]
    whole += [100.0 * sum(m["duplicate_of"] is not None for m in pool) / len(pool),
              100.0 * sum(m["noise"] is not None for m in pool) / len(pool)]
    whole += [composition_of(pool)["scenes"], composition_of(pool)["classes"]]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|",
             "| whole pool | " + " | ".join(f"{v:.1f}" for v in whole) + " |"]
    for variant, by_seed in rows.get("same_epochs", {}).items():
        comps = [c for s in by_seed if (c := composition(root / "same_epochs" / f"{variant}-seed{s}", meta))]
        if comps:
            lines.append(f"| {variant} | " + " | ".join(f"{statistics.mean(c[k] for c in comps):.1f}" for k in head[1:]) + " |")
    return ("What each selector kept (same_epochs, % of its records, mean over seeds; tasks and planted "
            "near-duplicates/noise from the pool's sidecar; `scenes`: distinct scenes per 100 records; "
            "`classes`: UCM/AID classes present, of 51):\n\n" + "\n".join(lines) + "\n")


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def _ci(diffs: list[float]) -> str:
    if not diffs:
        return "—"
    if len(diffs) == 1:
        return f"{diffs[0]:+.1f} (1 seed)"
    mean, low, high = bootstrap_mean_ci(diffs)
    mark = "" if low <= 0.0 <= high else " *"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]{mark}"


def _avg_by_seed(by_seed: dict) -> dict:
    return {s: r["avg"] for s, r in by_seed.items() if "avg" in r}


def diffs_vs_random_third(variants: dict) -> dict[str, list[float]]:
    """Per variant of one protocol: its avg minus random 1/3's, seed by seed (random 1/3 itself: none)."""
    reference = _avg_by_seed(variants.get("random_third", {}))
    return {variant: paired_differences(_avg_by_seed(by_seed), reference) if variant != "random_third" else []
            for variant, by_seed in variants.items()}


def report(rows: dict, seeds: list[int], epochs: float) -> str:
    """Markdown: per protocol, mean ± std per benchmark, % of full, paired difference vs random 1/3, cost."""
    parts = []
    full = rows.get("same_epochs", {}).get("full", {})
    full_avg = _avg_by_seed(full)
    full_train = statistics.mean(r["train s"] for r in full.values()) if full else None
    epoch_s = full_train / epochs if full_train else None
    for protocol, variants in rows.items():
        diffs_of = diffs_vs_random_third(variants)
        head = ["variant", "seeds", *METRICS, "avg", "% of full", "Δavg vs random 1/3 [95% CI]", "steps",
                "train s", "select s", "select / full epoch", "cost / full"]
        lines = [f"### Protocol `{protocol}`\n", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for variant, by_seed in variants.items():
            runs = list(by_seed.values())
            if not runs:  # not run yet (a study in progress)
                continue
            avg = _avg_by_seed(by_seed)
            share = [100.0 * avg[s] / full_avg[s] for s in sorted(set(avg) & set(full_avg))]
            diffs = diffs_of[variant]
            select = [r["select s"] for r in runs]
            cost = [(r["train s"] + r["select s"]) / full_train for r in runs] if full_train else []
            cells = [variant, str(len(runs)), *(_fmt([r[m] for r in runs if m in r]) for m in METRICS),
                     _fmt(list(avg.values())), _fmt(share), _ci(diffs), _fmt([r["steps"] for r in runs]),
                     _fmt([r["train s"] for r in runs]), _fmt(select),
                     f"{100 * statistics.mean(select) / epoch_s:.1f} %" if epoch_s else "—",
                     f"{100 * statistics.mean(cost):.0f} %" if cost else "—"]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return (f"Seeds {seeds}. Scores in %, mean ± std over seeds; `avg` = mean of UCM, AID, LRBEN; `% of full` "
            "per seed against full data of the same seed (same_epochs). Δavg: paired difference against random "
            "1/3 of the same seed and protocol, mean and 95 % percentile-bootstrap interval over seeds (* = the "
            "interval excludes 0; with one seed there is no interval). `cost / full`: (train + selection) / "
            "full-data train time; times on a shared 2-core CPU, indicative only.\n\n" + "\n\n".join(parts) + "\n")


CLIP_POINTS = 15.0  # the forest plot's x axis stops here; worse variants are written at its edge


def forest_plot(rows: dict, path: Path) -> Path | None:
    """PNG: every variant's paired Δavg against random 1/3 with its 95 % interval, one panel per
    protocol, sorted by the mean; variants with fewer than two seeds are left out (no interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for protocol, variants in rows.items():
        points = [(variant, len(diffs), *bootstrap_mean_ci(diffs))
                  for variant, diffs in diffs_vs_random_third(variants).items() if len(diffs) > 1]
        if points:
            panels.append((protocol, sorted(points, key=lambda p: p[2])))
    if not panels:
        return None
    height = max(len(points) for _, points in panels) * 0.32 + 1.2
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), height), squeeze=False)
    for ax, (protocol, points) in zip(axes[0], panels, strict=True):
        y = range(len(points))
        means = [p[2] for p in points]
        ax.errorbar(means, y, xerr=[[p[2] - p[3] for p in points], [p[4] - p[2] for p in points]],
                    fmt="o", color="tab:blue", ecolor="tab:gray", capsize=3)
        ax.axvline(0.0, color="black", lw=0.8)
        # A collapse (EL2N: -60) would squeeze every close call into a pixel: clip, and write its value.
        left = max(min(p[3] for p in points) - 1.0, -CLIP_POINTS)
        ax.set_xlim(left=left, right=max(p[4] for p in points) + 1.0)
        for row, p in enumerate(points):
            if p[3] < left:
                ax.annotate(f"◄ {p[2]:+.1f} [{p[3]:+.1f}, {p[4]:+.1f}]", (left, row), xytext=(4, 4),
                            textcoords="offset points", fontsize=7, color="tab:red")
        ax.set_yticks(list(y), [f"{p[0]} ({p[1]} seeds)" for p in points], fontsize=8)
        ax.set_xlabel("Δ avg vs random 1/3 (points, paired, 95 % CI)")
        ax.set_title(f"protocol {protocol}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_study(args, on_run=None) -> dict:
    from geotune.experiment import run_experiment
    from geotune.proxy import ensure_base, ensure_pool_redundancy, lora_overrides

    root = Path(args.root)
    base = ensure_base(root)
    print(f"[proxy] base {base['path']}: zero-shot {base['zero_shot']}", flush=True)
    redundancy = ensure_pool_redundancy(root)
    common = lora_overrides(root) + list(args.overrides)
    rows: dict = {p: {v: {} for v in args.variants} for p in args.protocols}
    # Seed-major, so that a study cut short holds every variant for the seeds it finished.
    for seed in args.seeds:
        for protocol in args.protocols:
            for variant in args.variants:
                run_dir = root / protocol / f"{variant}-seed{seed}"
                extra = [f"seed={seed}", f"selection.seed={seed}"]
                if protocol == "equal_steps":
                    full_dir = root / "same_epochs" / f"full-seed{seed}"
                    if args.report_only and not is_finished(full_dir):
                        continue
                    if variant == "full":
                        run_dir = full_dir  # full data is the same run
                    else:
                        steps = json.loads((full_dir / "train_summary.json").read_text())["steps"]
                        extra.append(f"train.max_steps={steps}")
                        manifest = root / "same_epochs" / f"{variant}-seed{seed}" / "selection" / "manifest.jsonl"
                        if manifest.exists():  # same selector, seed and base: the same subset
                            extra.append(f"selection.manifest={manifest}")
                if args.report_only and not is_finished(run_dir):
                    continue
                cfg = load_recipe(args.recipe, common + STUDY_BASE[variant] + extra + [f"run_dir={run_dir}"])
                if not finished_with(cfg):  # a finished run of another recipe is refused, not reused
                    print(f"[proxy] {protocol} {variant} seed {seed}", flush=True)
                    run_experiment(cfg)
                rows[protocol][variant][seed] = metrics = run_metrics(run_dir)
                if protocol == "equal_steps" and not metrics["select s"]:  # its subset was selected once, there
                    metrics["select s"] = selection_seconds(root / "same_epochs" / f"{variant}-seed{seed}")
                if on_run is not None:  # the report so far, so that a study cut short still has one
                    on_run({"base": base, "pool_redundancy": redundancy, "rows": rows})
    return {"base": base, "pool_redundancy": redundancy, "rows": rows}


def run_scratch(args) -> dict:
    from geotune.demo import prepare_inputs
    from geotune.experiment import run_experiment

    root = Path(args.root)
    prepare_inputs(root, args.size, seed=0)
    common = [
        f"model.path={root / 'tiny-internvl'}",
        f"data.datasets.0.path={root / 'synthrs' / 'instruct' / 'geochat_style.json'}",
        f"data.datasets.0.image_root={root / 'synthrs' / 'instruct'}",
        *(f"eval.{b}_root={root / 'synthrs'}" for b in ("ucmerced", "aid", "lrben")),
        *args.overrides,
    ]
    rows: dict = {"same_epochs": {v: {} for v in args.variants}}
    for seed in args.seeds:
        for variant in args.variants:
            run_dir = root / f"{variant}-seed{seed}"
            cfg = load_recipe("demo", common + STUDY_SCRATCH[variant] + [
                f"seed={seed}", f"selection.seed={seed}", f"run_dir={run_dir}"])
            if not finished_with(cfg):
                print(f"[proxy] {variant} seed {seed}", flush=True)
                run_experiment(cfg)
            rows["same_epochs"][variant][seed] = run_metrics(run_dir)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", choices=["base", "scratch"], default="base")
    parser.add_argument("--root", default=None, help="default runs/proxy (base) or runs/proxy-scratch")
    parser.add_argument("--recipe", default="proxy_lora", help="LoRA recipe of the base proxy")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium"], help="SynthRS (scratch)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--variants", nargs="*", default=None, help="default: every variant of the proxy")
    parser.add_argument("--out", default=None, help="markdown report (default ROOT/results.md)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the finished runs")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = parser.parse_args()
    study = STUDY_BASE if args.proxy == "base" else STUDY_SCRATCH
    args.variants = args.variants or list(study)
    unknown = [v for v in args.variants if v not in study]
    if unknown:
        parser.error(f"unknown variant(s) {unknown} for --proxy {args.proxy}; choose from {list(study)}")
    if args.proxy == "base" and "equal_steps" in args.protocols and "full" not in args.variants:
        args.variants = ["full", *args.variants]  # equal steps are full data's steps
    args.root = args.root or ("runs/proxy" if args.proxy == "base" else "runs/proxy-scratch")
    epoch_override = [o for o in args.overrides if o.startswith("train.epochs=")]
    epochs = float(load_recipe(args.recipe if args.proxy == "base" else "demo", epoch_override).train.epochs)
    out = Path(args.out or Path(args.root) / "results.md")

    def write(result: dict) -> str:
        text = report(result["rows"], args.seeds, epochs)
        if args.proxy == "base":
            text += "\n" + composition_table(Path(args.root), result["rows"])
        if "base" in result:
            b = result["base"]
            text = (f"Base: {b['path']}, pretrained in {b['pretrain_seconds']:.0f} s (peak RSS {b['peak_rss_mb']:.0f} MB), "
                    f"zero-shot {json.dumps(b['zero_shot'])}. Pool near-duplicates: "
                    f"{json.dumps(result['pool_redundancy'])}.\n\n" + text)
        if forest_plot(result["rows"], out.with_suffix(".png")):
            text += f"\n![paired differences against random 1/3]({out.with_suffix('.png').name})\n"
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        return text

    # a report after every run, so that a study cut short still has one (not when only reporting)
    on_run = None if args.report_only else write
    result = run_study(args, on_run=on_run) if args.proxy == "base" else run_scratch(args)
    print(write(result))


if __name__ == "__main__":
    main()
