"""``<run_dir>/selection/report.md`` with PNG plots of what a selector kept.

Plots: cluster sizes (total vs kept), kept share per cluster / task / source, score distributions
of kept vs dropped records, and a 2-D PCA projection of (a seeded sample of) the features coloured by
kept. Plots whose input is missing (no clusters, no scores, no features) are skipped and the report
says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetune.files import save_figure_atomic, write_text_atomic
from selection.budget import Selection


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    return save_figure_atomic(fig, path, dpi=100, bbox_inches="tight").name


def _has_clusters(selection: Selection) -> bool:
    return selection.all_clusters is not None and len(selection.all_clusters) > 0 and selection.all_clusters.min() >= 0


def plot_cluster_sizes(selection: Selection, out: Path) -> str | None:
    if not _has_clusters(selection):
        return None
    plt = _pyplot()
    k = int(selection.all_clusters.max()) + 1 if len(selection.all_clusters) else 0
    total = np.sort(np.bincount(selection.all_clusters, minlength=k))[::-1]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(total, bins=min(50, max(5, k)), color="tab:blue")
    ax.set(title=f"Cluster sizes ({k} clusters)", xlabel="records in cluster", ylabel="clusters")
    return _save(fig, out / "cluster_sizes.png")


def _share(values: Sequence[Any], kept: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = sorted({str(v) for v in values})
    where = {name: i for i, name in enumerate(names)}
    codes = np.array([where[str(v)] for v in values], dtype=np.int64)
    total = np.bincount(codes, minlength=len(names))
    kept_counts = np.bincount(codes[kept], minlength=len(names))
    return names, total, kept_counts


def plot_kept_share(selection: Selection, tasks, sources, out: Path) -> str | None:
    panels = []
    if _has_clusters(selection):
        k = int(selection.all_clusters.max()) + 1 if len(selection.all_clusters) else 0
        total = np.bincount(selection.all_clusters, minlength=k)
        kept = np.bincount(selection.all_clusters[selection.indices], minlength=k)
        panels.append(("cluster", kept[total > 0] / total[total > 0]))
    for name, values in (("task", tasks), ("source", sources)):
        if values is not None:
            names, total, kept = _share(values, selection.indices)
            panels.append((name, (names, kept / np.maximum(total, 1))))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, (name, data) in zip(axes[0], panels, strict=True):
        if name == "cluster":
            ax.hist(data, bins=20, range=(0, 1), color="tab:green")
            ax.set(title="Kept share per cluster", xlabel="kept / cluster size", ylabel="clusters")
        else:
            labels, share = data
            ax.bar(range(len(labels)), share, color="tab:orange")
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
            ax.set(title=f"Kept share per {name}", ylabel="kept / total", ylim=(0, 1))
    return _save(fig, out / "kept_share.png")


def plot_scores(selection: Selection, n: int, out: Path) -> str | None:
    if selection.all_scores is None:
        return None
    plt = _pyplot()
    kept = np.zeros(n, dtype=bool)
    kept[selection.indices] = True
    scores = selection.all_scores
    fig, ax = plt.subplots(figsize=(7, 3.5))
    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=40) if finite.any() else 10
    ax.hist(scores[finite & ~kept], bins=bins, alpha=0.6, label="dropped", color="tab:gray")
    ax.hist(scores[finite & kept], bins=bins, alpha=0.6, label="kept", color="tab:red")
    ax.set(title="Score distribution", xlabel="score", ylabel="records")
    ax.legend()
    return _save(fig, out / "scores.png")


def plot_projection(selection: Selection, features, n: int, sample: int, seed: int, out: Path) -> str | None:
    if features is None or n < 3:
        return None
    from sklearn.decomposition import PCA

    from selection.cluster import sample_rows

    m = min(n, sample)
    rng_rows = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    x = sample_rows(features, m, seed) if m < n else np.asarray(features, dtype=np.float32)
    xy = PCA(n_components=2, random_state=seed).fit_transform(np.nan_to_num(x))
    kept = np.isin(rng_rows if m < n else np.arange(n), selection.indices)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(xy[~kept, 0], xy[~kept, 1], s=4, c="tab:gray", alpha=0.5, label="dropped")
    ax.scatter(xy[kept, 0], xy[kept, 1], s=4, c="tab:red", alpha=0.7, label="kept")
    ax.set(title=f"Features, PCA 2-D ({m} of {n} records)", xlabel="PC1", ylabel="PC2")
    ax.legend(markerscale=3)
    return _save(fig, out / "projection.png")


def write_plots(out_dir: Path, selection: Selection, n: int, *, features=None, tasks: Sequence[str] | None = None,
                sources: Sequence[str] | None = None, sample: int = 5000, seed: int = 0) -> dict[str, str | None]:
    """Write the PNGs into ``out_dir``; returns title -> PNG name (None for a plot without its input)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "Cluster sizes": plot_cluster_sizes(selection, out),
        "Kept share": plot_kept_share(selection, tasks, sources, out),
        "Scores, kept vs dropped": plot_scores(selection, n, out),
        "Feature projection": plot_projection(selection, features, n, sample, seed, out),
    }


def write_report(
    out_dir: Path,
    selection: Selection,
    header: dict[str, Any],
    timings: dict[str, float],
    *,
    features=None,
    tasks: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    sample: int = 5000,
    seed: int = 0,
    plots: dict[str, str | None] | None = None,
) -> Path:
    """Write ``report.md`` (and the PNGs, unless ``plots`` from :func:`write_plots` is given); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = header["n_total"]
    if plots is None:
        plots = write_plots(out, selection, n, features=features, tasks=tasks, sources=sources, sample=sample, seed=seed)
    lines = [
        f"# Selection report: {header['method']}",
        "",
        f"- kept **{header['n_kept']}** of {n} records (budget `{header['budget']}`, seed {header['seed']})",
        f"- config hash `{header['config_hash']}`",
        "- look at the kept and dropped records, cluster by cluster: [report.html](report.html)",
        *([f"- **{header['info']['nan_scores']} records had a NaN/inf score** (a failed forward pass): ranked "
           f"last, {header['info']['nan_kept']} of them kept"] if header["info"].get("nan_scores") else []),
        f"- options `{header['options']}`; {', '.join(f'{k}={v}' for k, v in sorted(header['info'].items())) or 'no extra info'}",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {seconds:.2f} |" for stage, seconds in timings.items()],
        "",
    ]
    for name in ("task", "source"):
        counts = header["counts"].get(name)
        if counts:
            lines += [f"| {name} | total | kept | share |", "|---|---|---|---|"]
            lines += [f"| {k} | {v['total']} | {v['kept']} | {v['kept'] / max(v['total'], 1):.3f} |" for k, v in counts.items()]
            lines.append("")
    for title, png in plots.items():
        lines += [f"## {title}", "", f"![{title}]({png})" if png else "_not available for this selector_", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
