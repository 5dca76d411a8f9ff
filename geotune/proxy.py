"""The proxy in the seed's regime: a base model pretrained by geotune, then LoRA-tuned on the pool.

The seed fine-tunes a *pretrained* VLM with LoRA for one epoch on a redundant instruction pool. The
proxy copies that shape at CPU scale:

1. ``prepare_synthrs``: SynthRS with the GeoChat-structured pool (several instructions per image,
   near-duplicates, label noise, a long class tail) and the pretraining corpus
   (``geotune/synth/pretrain.py``), disjoint from the pool and the benchmarks.
2. ``ensure_base``: ``recipes/proxy_base.yaml`` trains a random-init InternVL on the corpus, once;
   the result (``<root>/base/final``) is reused by every later call, with its wall time, peak RSS and
   zero-shot scores in ``<root>/base/base_summary.json``. A killed pretraining resumes from its last
   checkpoint.
3. ``lora_overrides``: what every ``recipes/proxy_lora*.yaml`` run needs to find the base and the data
   under ``root``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from finetune.files import write_json_atomic
from finetune.step_memory import peak_rss_mb
from geotune import experiment
from geotune.config import load_recipe
from geotune.synth import PoolOptions, write_synthrs

# Frozen with the proxy (docs/results.md says when): changing any of them is a new proxy.
PROXY_SYNTH = {"size": "small", "pool_records": 3000, "instructions_per_image": 4, "duplicate_share": 0.3,
               "pretrain_records": 12000}
BASE_SUMMARY = "base_summary.json"


def prepare_synthrs(root: Path, seed: int = 0, synth: dict | None = None) -> Path:
    """SynthRS of the proxy under ``root/synthrs`` (reused when already written with these options)."""
    s = dict(PROXY_SYNTH, **(synth or {}))
    pool = PoolOptions(records=s["pool_records"], instructions_per_image=s["instructions_per_image"],
                       duplicate_share=s.get("duplicate_share", PoolOptions.duplicate_share))
    write_synthrs(root / "synthrs", seed=seed, size=s["size"], pool=pool, pretrain_records=s["pretrain_records"])
    return root / "synthrs"


def data_overrides(root: Path) -> list[str]:
    """Benchmark roots of the proxy's SynthRS (every proxy recipe evaluates on them)."""
    return [f"eval.{b}_root={root / 'synthrs'}" for b in ("ucmerced", "aid", "lrben")]


def base_overrides(root: Path) -> list[str]:
    corpus = root / "synthrs" / "pretrain"
    return [f"model.path={root / 'base-init'}", f"data.datasets.0.path={corpus / 'corpus.json'}",
            f"data.datasets.0.image_root={corpus}", f"run_dir={root / 'base'}", *data_overrides(root)]


def lora_overrides(root: Path) -> list[str]:
    """Overrides that point a ``proxy_lora*`` recipe at the base and the pool under ``root``."""
    pool = root / "synthrs" / "instruct"
    return [f"model.path={root / 'base' / 'final'}", f"data.datasets.0.path={pool / 'geochat_style.json'}",
            f"data.datasets.0.image_root={pool}", *data_overrides(root)]


def ensure_base(root: Path, seed: int = 0, recipe: str = "proxy_base", overrides: list[str] | None = None,
                synth: dict | None = None) -> dict:
    """Pretrain the proxy base once (``recipe``) and return its summary; reused when it exists.

    ``synth`` replaces entries of ``PROXY_SYNTH`` (tests draw a tiny SynthRS).

    Returns:
        ``base_summary.json``: ``path`` (the checkpoint), ``pretrain_seconds`` (training only),
        ``wall_seconds`` (with zero-shot eval), ``peak_rss_mb``, ``steps``, ``final_loss`` and
        ``zero_shot`` (headline score per benchmark).
    """
    summary_path = root / "base" / BASE_SUMMARY
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    prepare_synthrs(root, seed, synth)
    cfg = load_recipe(recipe, base_overrides(root) + [f"seed={seed}", *(overrides or [])])
    start = time.perf_counter()
    result = experiment.run_experiment(cfg)  # looked up here: tests replace it to prove the base is reused
    summary = {
        "path": str(root / "base" / "final"),
        "pretrain_seconds": result["train_seconds"],
        "wall_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": peak_rss_mb(),
        "resumed_from": result["resumed_from"],
        "steps": result["steps"],
        "final_loss": result["final_loss"],
        "records": result["records_selected"],
        "zero_shot": {name: r["score"] for name, r in result.get("eval", {}).items()},
    }
    write_json_atomic(summary_path, summary)
    return summary


def ensure_pool_redundancy(root: Path) -> dict:
    """Near-duplicate measure of the proxy's pool (``geotune/synth/redundancy.py``), cached beside it."""
    from geotune.synth.redundancy import pool_redundancy

    path = root / "pool_redundancy.json"
    if path.exists():
        return json.loads(path.read_text())
    pool = root / "synthrs" / "instruct"
    result = pool_redundancy(pool / "geochat_style.json", pool)
    meta = [json.loads(line) for line in (pool / "geochat_style_meta.jsonl").read_text().splitlines()]
    result["planted_duplicates"] = sum(m["duplicate_of"] is not None for m in meta)
    result["noise"] = sum(m["noise"] is not None for m in meta)
    write_json_atomic(path, result)
    return result
