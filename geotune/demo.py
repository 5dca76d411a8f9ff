"""`geotune demo` (what `make demo` runs): the embedded default, end to end on CPU, in the seed's regime.

The seed fine-tunes a *pretrained* VLM with LoRA; so does the demo, at CPU scale (the proxy of issue 16,
``geotune/proxy.py``, made smaller):

1. SynthRS with a GeoChat-structured pool and a pretraining corpus disjoint from it (``DEMO_SYNTH``);
2. a base pretrained by geotune on that corpus (``recipes/demo_base.yaml``), built once under
   ``<root>/demo/base`` and reused;
3. four LoRA runs of ``recipes/demo_lora.yaml`` on the base — full data, adaptive-shift 1/3, random 1/3
   and COINCIDE 20 % — each evaluated on the UCMerced, AID and LRBEN layouts, and
   ``<root>/demo/report.md`` comparing them.

Finished runs (and the base) are reused, so a killed demo resumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from eval.compare import compare_runs
from finetune.files import write_text_atomic
from geotune.config import load_recipe
from geotune.proxy import ensure_base, lora_overrides
from geotune.variants import run_variants

# name -> overrides of recipes/demo_lora.yaml. COINCIDE hooks both layers of the 2-layer base.
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
# SynthRS of the demo per --size: the proxy's structure (4 instructions per image, 30 % near-duplicates,
# a pretraining corpus), smaller than the proxy's so that base + four runs fit in minutes.
DEMO_SYNTH = {
    "tiny": {"size": "tiny", "pool_records": 60, "instructions_per_image": 4, "duplicate_share": 0.3,
             "pretrain_records": 48},
    "small": {"size": "small", "pool_records": 1500, "instructions_per_image": 4, "duplicate_share": 0.3,
              "pretrain_records": 8000},
    "medium": {"size": "medium", "pool_records": 3000, "instructions_per_image": 4, "duplicate_share": 0.3,
               "pretrain_records": 12000},
}


def run_demo(root: Path = Path("runs"), size: str = "small", seed: int = 0, variants: list[str] | None = None,
             extra: list[str] | None = None, base_extra: list[str] | None = None) -> Path:
    """Run the demo and return the report path.

    ``extra``: overrides of every LoRA run; ``base_extra``: overrides of the base's pretraining.
    """
    start = time.perf_counter()
    demo_dir = root / "demo"
    print(f"[demo] SynthRS ({size}) and the pretrained base under {demo_dir} (reused when there)", flush=True)
    base = ensure_base(demo_dir, seed, recipe="demo_base", overrides=base_extra, synth=DEMO_SYNTH[size])
    print(f"[demo] base: {base['steps']} steps in {base['pretrain_seconds']:.0f} s, zero-shot {base['zero_shot']}",
          flush=True)
    common = lora_overrides(demo_dir) + [f"seed={seed}", f"selection.seed={seed}", *(extra or [])]
    planned = [(name, load_recipe("demo_lora", common + VARIANTS[name] + [f"run_dir={demo_dir / name}"]))
               for name in variants or list(VARIANTS)]
    run_dirs = run_variants(planned, tag="demo")
    table = compare_runs(run_dirs, demo_dir)
    report = write_report(demo_dir, table, time.perf_counter() - start, size, base)
    print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {report}")
    return report


def write_report(demo_dir: Path, table: Path, seconds: float, size: str, base: dict) -> Path:
    """``report.md``: what was run, the base, then the comparison table and plots of ``geotune compare``."""
    runs = "\n".join(f"- `{name}`: `{' '.join(overrides)}`" for name, overrides in VARIANTS.items())
    zero_shot = ", ".join(f"{k} {v:.1f}" for k, v in base["zero_shot"].items())
    text = (
        "# geotune demo: a pretrained base, LoRA, on SynthRS\n\n"
        f"SynthRS `{size}` ({json.dumps(DEMO_SYNTH[size])}); wall time {seconds:.0f} s.\n"
        f"Base (`recipes/demo_base.yaml`, pretrained by geotune on a disjoint corpus): {base['steps']} steps in "
        f"{base['pretrain_seconds']:.0f} s; zero-shot {zero_shot}.\n"
        "Scores of a tiny model on synthetic data measure the pipeline, not a real model.\n\n"
        f"LoRA runs (overrides of `recipes/demo_lora.yaml`):\n{runs}\n\n"
        "Browse: [compare.html](compare.html) (confusion matrices, answers that differ) and each run's\n"
        "`selection/report.html` (kept and dropped samples per cluster).\n\n"
        + table.read_text().split("\n", 2)[2]
    )
    return write_text_atomic(demo_dir / "report.md", text)
