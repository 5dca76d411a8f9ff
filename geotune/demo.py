"""`geotune demo` (what `make demo` runs): the embedded default, end to end on CPU.

Builds the tiny InternVL and SynthRS (``small``), then trains four runs of the ``demo`` recipe —
full data, adaptive-shift 1/3, random 1/3 and COINCIDE 20 % — evaluates each on the UCMerced, AID
and LRBEN layouts, and writes ``runs/demo/report.md`` comparing them. Finished runs are reused, so a
killed demo resumes.
"""

from __future__ import annotations

import time
from pathlib import Path

from eval.compare import compare_runs
from finetune.files import write_text_atomic
from geotune.config import load_recipe
from geotune.variants import run_variants

# name -> overrides of recipes/demo.yaml. COINCIDE hooks both layers of the 2-layer tiny model.
VARIANTS: dict[str, list[str]] = {
    "full": ["selection.method=full", "selection.keep=1.0"],
    "adaptive_shift_third": ["selection.method=adaptive_shift", "selection.keep=0.333"],
    "random_third": ["selection.method=random", "selection.keep=0.333"],
    "coincide_20": [
        "selection.method=coincide",
        "selection.keep=0.2",
        "selection.features.backend=reference",
        "selection.features.layers=[0,1]",
    ],
}


def prepare_inputs(root: Path, size: str, seed: int) -> None:
    """Tiny model and SynthRS under ``root`` (skipped when already there)."""
    from finetune.models.tiny import build_tiny_internvl
    from geotune.synth import write_synthrs

    if not (root / "tiny-internvl" / "config.json").exists():
        print("[demo] building the tiny InternVL checkpoint")
        build_tiny_internvl(root / "tiny-internvl", seed=seed)
    if not (root / "synthrs" / "instruct" / "geochat_style.json").exists():
        print(f"[demo] writing SynthRS ({size})")
        write_synthrs(root / "synthrs", seed=seed, size=size)


def run_demo(root: Path = Path("runs"), size: str = "small", seed: int = 0, variants: list[str] | None = None,
             extra: list[str] | None = None) -> Path:
    """Run the demo and return the report path."""
    start = time.perf_counter()
    prepare_inputs(root, size, seed)
    demo_dir = root / "demo"
    common = [
        f"model.path={root / 'tiny-internvl'}",
        f"data.datasets.0.path={root / 'synthrs' / 'instruct' / 'geochat_style.json'}",
        f"data.datasets.0.image_root={root / 'synthrs' / 'instruct'}",
        f"eval.ucmerced_root={root / 'synthrs'}",
        f"eval.aid_root={root / 'synthrs'}",
        f"eval.lrben_root={root / 'synthrs'}",
        f"seed={seed}",
    ] + list(extra or [])
    planned = [(name, load_recipe("demo", common + VARIANTS[name] + [f"run_dir={demo_dir / name}"]))
               for name in variants or list(VARIANTS)]
    run_dirs = run_variants(planned, tag="demo")
    table = compare_runs(run_dirs, demo_dir)
    report = write_report(demo_dir, table, time.perf_counter() - start, size)
    print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {report}")
    return report


def write_report(demo_dir: Path, table: Path, seconds: float, size: str) -> Path:
    """``report.md``: what was run, then the comparison table and plots of ``geotune compare``."""
    runs = "\n".join(f"- `{name}`: `{' '.join(overrides)}`" for name, overrides in VARIANTS.items())
    text = (
        "# geotune demo: tiny InternVL on SynthRS\n\n"
        f"SynthRS `{size}`, a random-init tiny InternVL trained on CPU; wall time {seconds:.0f} s.\n"
        "Scores of a tiny model on synthetic data measure the pipeline, not a real model.\n\n"
        f"Runs (overrides of `recipes/demo.yaml`):\n{runs}\n\n"
        "Browse: [compare.html](compare.html) (confusion matrices, answers that differ) and each run's\n"
        "`selection/report.html` (kept and dropped samples per cluster).\n\n"
        + table.read_text().split("\n", 2)[2]
    )
    return write_text_atomic(demo_dir / "report.md", text)
