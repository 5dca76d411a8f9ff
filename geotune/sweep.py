"""`geotune sweep recipe=NAME key=v1,v2,...`: one ordinary run per value, then a summary.

Each value runs sequentially as a normal run directory ``<run_dir>/sweep/<key>=<value>``; a value whose
run already finished (``train_summary.json`` present) is not run again, so a killed sweep resumes.
The summary (``summary.md``, ``summary.json`` and one PNG per metric against the swept value) is
written to ``<run_dir>/sweep/``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from finetune.files import write_text_atomic
from geotune.config import RecipeError, load_recipe
from geotune.variants import run_variants


def split_sweep_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Separate fixed overrides from swept ones (``key=a,b,c``; ``key=[a,b]`` stays a list value)."""
    fixed, swept = [], {}
    for item in overrides:
        key, value = item.split("=", 1)
        if "," in value and not value.lstrip().startswith("["):
            values = [v.strip() for v in value.split(",")]
            if any(not v for v in values):
                raise RecipeError(f"sweep values for '{key}' contain an empty entry: '{value}'")
            swept[key] = values
        else:
            fixed.append(item)
    if not swept:
        raise RecipeError("nothing to sweep: give one key with comma-separated values, e.g. mix.general_ratio=0,0.25,0.5")
    return fixed, swept


def sweep_points(swept: dict[str, list[str]]) -> list[dict[str, str]]:
    """The cartesian product of the swept values, in the order given."""
    keys = list(swept)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(swept[k] for k in keys))]


def point_dirname(point: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items()).replace("/", "_")


def flat_metrics(run_dir: Path) -> dict[str, float]:
    """Numeric results of one run: ``<bench>.<metric>`` from ``final/eval/*.json``, plus training time."""
    metrics: dict[str, float] = {}
    for path in sorted((run_dir / "final" / "eval").glob("*.json")):
        data = json.loads(path.read_text())
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{path.stem}.{key}"] = float(value)
    summary = run_dir / "train_summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        for key in ("train_seconds", "samples_seen", "final_loss"):  # the keys finetune's summarize() writes
            if isinstance(data.get(key), (int, float)):
                metrics[f"train.{key}"] = float(data[key])
    return metrics


def write_summary(sweep_dir: Path, rows: list[dict]) -> Path:
    """``summary.md`` + ``summary.json`` + one PNG per metric (metric against the first swept key)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0]["point"]) if rows else []
    metric_names = sorted({m for r in rows for m in r["metrics"]})
    (sweep_dir / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| " + " | ".join(keys + metric_names) + " |", "|" + "---|" * (len(keys) + len(metric_names))]
    for r in rows:
        cells = [r["point"][k] for k in keys] + [
            f"{r['metrics'][m]:.4g}" if m in r["metrics"] else "—" for m in metric_names
        ]
        lines.append("| " + " | ".join(cells) + " |")
    plots = []
    for metric in metric_names:
        xs = [r["point"][keys[0]] for r in rows if metric in r["metrics"]]
        ys = [r["metrics"][metric] for r in rows if metric in r["metrics"]]
        fig, ax = plt.subplots(figsize=(5, 3.2))
        try:
            ax.plot([float(x) for x in xs], ys, marker="o")
        except ValueError:  # non-numeric sweep values: categorical axis
            ax.plot(xs, ys, marker="o")
        ax.set_xlabel(keys[0])
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = f"{metric.replace('/', '_')}.png"
        fig.savefig(sweep_dir / name, dpi=120)
        plt.close(fig)
        plots.append(f"![{metric}]({name})")
    text = "# Sweep summary\n\n" + "\n".join(lines) + "\n\n" + "\n".join(plots) + "\n"
    return write_text_atomic(sweep_dir / "summary.md", text)


def run_sweep(recipe: Optional[str], overrides: list[str], run_one: Optional[Callable] = None) -> Path:
    """Run every point of the sweep and write the summary; returns the summary path.

    Args:
        recipe: recipe name or path.
        overrides: ``key=value`` overrides; those with comma-separated values are swept.
        run_one: ``cfg -> None`` that runs one experiment (default ``geotune.experiment.run_experiment``).
    """
    fixed, swept = split_sweep_overrides(overrides)
    base = load_recipe(recipe, fixed)
    sweep_dir = Path(base.run_dir) / "sweep"
    # Load every point's config first: a bad value fails now, not after hours of earlier points.
    planned = []
    for point in sweep_points(swept):
        run_dir = sweep_dir / point_dirname(point)
        point_overrides = fixed + [f"{k}={v}" for k, v in point.items()] + [f"run_dir={run_dir}"]
        planned.append((point, run_dir, load_recipe(recipe, point_overrides)))
    run_variants([(point_dirname(point), cfg) for point, _, cfg in planned], run_one, tag="sweep")
    rows = [{"point": point, "run_dir": str(run_dir), "metrics": flat_metrics(run_dir)} for point, run_dir, _ in planned]
    return write_summary(sweep_dir, rows)
