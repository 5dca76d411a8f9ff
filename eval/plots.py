"""PNG plots for eval reports: the confusion matrix of a classification benchmark, and compare bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from finetune.files import save_figure_atomic  # noqa: E402


def _save(fig, path: Path) -> Path:
    return save_figure_atomic(fig, path, dpi=110, bbox_inches="tight")


def plot_confusion(labels: Sequence[str], matrix, path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: truth, columns: prediction; the last column ``(other)``)."""
    counts = np.asarray(matrix, dtype=float)
    rows = labels[: counts.shape[0]]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.32 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the class")
    return _save(fig, path)


def plot_bars(values: Mapping[str, Mapping[str, float | None]], path, ylabel: str, title: str = "",
              ymax: float | None = None) -> Path:
    """Grouped bars: ``values[group][run]`` (None: no bar). One group per benchmark or cost."""
    groups = list(values)
    runs = list(dict.fromkeys(run for group in groups for run in values[group]))
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(groups) * max(1, len(runs)) / 2 + 2), 3.6))
    for k, run in enumerate(runs):
        xs = [g + (k - (len(runs) - 1) / 2) * width for g in range(len(groups))]
        points = [(x, values[group].get(run)) for x, group in zip(xs, groups, strict=True)]
        points = [(x, y) for x, y in points if y is not None]
        if not points:  # nothing measured for this run: say so in the legend instead of an empty entry
            ax.plot([], [], " ", label=f"{run}: no data")
            continue
        bars = ax.bar([x for x, _ in points], [y for _, y in points], width, label=run, color=f"C{k % 10}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    top = max([v for group in groups for v in values[group].values() if v is not None] + [0.0])
    ax.set_ylim(0, ymax if ymax is not None else (top * 1.15 or 1.0))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if runs:
        ax.legend(fontsize=7)
    return _save(fig, path)
