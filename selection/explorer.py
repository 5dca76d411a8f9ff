"""``<run_dir>/selection/report.html``: what a selector kept and dropped, cluster by cluster, in a browser.

One page that opens offline from disk (no CDN, no server): the CSS and JS of ``selection/explorer_page/``
are inlined, the data is embedded as JSON, and thumbnails (downscaled copies, never the originals) lie in
``report_assets/thumbs/`` beside the page. The page shows the overview (pool, kept, budget, method, seed,
timings, the report's PNG plots), the clusters sortable by size / kept share / mean score, and per cluster
its kept and dropped samples side by side with score, task, class, question / answer snippet, record id and
the annotation file:line it came from; filters by task and class, and a text search.

Bounded for big pools: the page embeds one summary per cluster plus a seeded sample of at most
``per_cluster`` kept and ``per_cluster`` dropped records per cluster, fewer per cluster when there are many
clusters (``max_samples`` in all; when even one each is too many, only the largest clusters get samples and
the page says so). A 318k-record pool in 5,000 clusters gives a page of a few MB.

Selectors that do not cluster (random, length...) are shown as one group of all records.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetune.data.records import IMAGE_TOKEN, Record
from finetune.files import write_text_atomic
from finetune.html_page import embed_json, fill_template, read_package_text, write_thumbnails
from selection.budget import Selection

ASSETS = "report_assets"
TEXT_CHARS = 300  # question / answer snippet length in the page
CLASS_KEYS = ("class", "label", "category")  # record fields that name a class, first found wins


def record_class(record: Record) -> str | None:
    """The class a record is about: an annotation field (``class``/``label``/``category``), else the answer of
    a classification record (lower case, no final full stop); None when the record carries none."""
    for key in CLASS_KEYS:
        value = record.extra.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if record.task == "classification":
        answer = record.answer.strip().rstrip(".").strip().lower()
        return answer[:60] or None
    return None


def _snippet(text: str) -> str:
    text = re.sub(r"\s+", " ", text.replace(IMAGE_TOKEN, " ")).strip()
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _codes(values: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
    """Sorted distinct names and each value's code (-1 for None)."""
    names = sorted({v for v in values if v is not None})
    where = {name: i for i, name in enumerate(names)}
    return names, np.array([where[v] if v is not None else -1 for v in values], dtype=np.int64)


def _counts_by_group(groups: np.ndarray, codes: np.ndarray, kept: np.ndarray, k: int, n_codes: int) -> list[dict]:
    """Per group ``{code: [total, kept]}`` for the codes present (records with code -1 left out). Sparse:
    memory grows with the (group, code) pairs present, not with groups x codes."""
    has = codes >= 0
    flat = groups[has] * n_codes + codes[has]
    pairs, total = np.unique(flat, return_counts=True)
    kept_pairs, kept_total = np.unique(flat[kept[has]], return_counts=True)
    kept_of = dict(zip(kept_pairs.tolist(), kept_total.tolist(), strict=True))
    out: list[dict] = [{} for _ in range(k)]
    for pair, count in zip(pairs.tolist(), total.tolist(), strict=True):
        out[pair // n_codes][pair % n_codes] = [count, kept_of.get(pair, 0)]
    return out


def sample_per_cluster(groups: np.ndarray, kept: np.ndarray, scores: np.ndarray, per_side: int,
                       sampled_groups: np.ndarray, seed: int) -> list[int]:
    """Record indices shown in the page: per group in ``sampled_groups`` a seeded sample of at most
    ``per_side`` kept and ``per_side`` dropped records, each side by score, highest first."""
    rng = np.random.default_rng(seed)
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], np.arange(int(groups.max()) + 2))
    chosen: list[int] = []
    for g in sampled_groups.tolist():
        members = order[starts[g]:starts[g + 1]]
        for side in (members[kept[members]], members[~kept[members]]):
            if len(side) > per_side:
                side = rng.choice(side, size=per_side, replace=False)
            ranked = side[np.argsort(-np.nan_to_num(scores[side], nan=-np.inf), kind="stable")]
            chosen.extend(ranked.tolist())
    return chosen


def explorer_data(selection: Selection, header: dict[str, Any], timings: dict[str, float], records: Sequence[Record],
                  *, origin: Callable[[Record], str | None] | None = None, plots: dict[str, str | None] | None = None,
                  per_cluster: int = 24, max_samples: int = 6000, seed: int = 0) -> tuple[dict, list[int]]:
    """The JSON the page embeds and the record indices of its samples (in the order of ``data["samples"]``)."""
    n = len(records)
    kept = np.zeros(n, dtype=bool)
    kept[selection.indices] = True
    clustered = selection.all_clusters is not None and len(selection.all_clusters) == n and n and selection.all_clusters.min() >= 0
    groups = np.asarray(selection.all_clusters, dtype=np.int64) if clustered else np.zeros(n, dtype=np.int64)
    k = int(groups.max()) + 1 if n else 0
    if selection.all_scores is not None:
        scores = np.asarray(selection.all_scores, dtype=np.float64)
    else:  # only the kept records have a score
        scores = np.full(n, np.nan)
        scores[selection.indices] = np.asarray(selection.score, dtype=np.float64)
    task_names, task_codes = _codes([r.task or "unknown" for r in records])
    class_names, class_codes = _codes([record_class(r) for r in records])

    size = np.bincount(groups, minlength=k)
    kept_size = np.bincount(groups[kept], minlength=k)
    finite = np.isfinite(scores)
    score_sum = np.bincount(groups[finite], weights=scores[finite], minlength=k)
    score_n = np.bincount(groups[finite], minlength=k)
    nonempty = np.flatnonzero(size)
    per_side = max(1, min(per_cluster, max_samples // max(1, 2 * len(nonempty))))
    by_size = nonempty[np.argsort(-size[nonempty], kind="stable")]
    sampled_groups = np.sort(by_size[: max(1, max_samples // 2)]) if len(nonempty) else nonempty
    shown = sample_per_cluster(groups, kept, scores, per_side, sampled_groups, seed) if n else []

    tasks_by_group = _counts_by_group(groups, task_codes, kept, k, max(1, len(task_names)))
    classes_by_group = _counts_by_group(groups, class_codes, kept, k, max(1, len(class_names))) if class_names else [{}] * k
    sampled = set(sampled_groups.tolist())
    clusters = [{
        "id": int(g) if clustered else -1, "size": int(size[g]), "kept": int(kept_size[g]),
        "mean_score": round(float(score_sum[g] / score_n[g]), 6) if score_n[g] else None,
        "tasks": tasks_by_group[g], "classes": classes_by_group[g], "sampled": g in sampled,
    } for g in nonempty.tolist()]
    samples = []
    for i in shown:
        record = records[i]
        score = float(scores[i])
        samples.append({
            "id": record.id, "cluster": int(groups[i]) if clustered else -1, "kept": bool(kept[i]),
            "score": round(score, 6) if math.isfinite(score) else None,
            "task": int(task_codes[i]), "class": int(class_codes[i]), "source": record.source,
            "question": _snippet(record.prompt), "answer": _snippet(record.answer),
            "origin": origin(record) if origin else None, "thumb": None,
        })
    overview = {
        "method": header["method"], "n_total": int(header["n_total"]), "n_kept": int(header["n_kept"]),
        "budget": header["budget"], "seed": header["seed"], "config_hash": header.get("config_hash"),
        "options": header.get("options") or {}, "info": header.get("info") or {},
        "timings": {stage: round(float(s), 3) for stage, s in timings.items()},
        "plots": {title: png for title, png in (plots or {}).items() if png},
        "clustered": bool(clustered), "n_clusters": len(nonempty),
    }
    limits = {"per_side": per_side, "sampled_clusters": len(sampled_groups), "max_samples": max_samples,
              "per_cluster": per_cluster}
    data = {"overview": overview, "tasks": task_names, "classes": class_names, "clusters": clusters,
            "samples": samples, "limits": limits}
    return data, shown


def write_explorer(out_dir: str | Path, selection: Selection, header: dict[str, Any], timings: dict[str, float],
                   records: Sequence[Record], *, image_path: Callable[[Record], Path | None] | None = None,
                   origin: Callable[[Record], str | None] | None = None, plots: dict[str, str | None] | None = None,
                   per_cluster: int = 24, max_samples: int = 6000, seed: int = 0, thumb_size: int = 128) -> Path:
    """Write ``report.html`` and its ``report_assets/`` into ``out_dir``; returns the page's path.

    Args:
        selection, header, timings: what the pipeline wrote into the manifest and timings.json.
        records: the pool, in the order the selection indexes.
        image_path: a record's first image file (None: no image); None: no thumbnails at all.
        origin: a record's ``"annotation file:line"``; None: not shown.
        plots: report.md's plots, title -> PNG name in ``out_dir`` (None: not made).
        per_cluster, max_samples: sample bounds (see the module docstring).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, shown = explorer_data(selection, header, timings, records, origin=origin, plots=plots,
                                per_cluster=per_cluster, max_samples=max_samples, seed=seed)
    sources = []
    for i in shown:
        record = records[i]
        try:
            sources.append(image_path(record) if image_path and record.images else None)
        except ValueError:  # a path that escapes the image root: no thumbnail, counted below
            sources.append(None)
    thumbs, unreadable = write_thumbnails(sources, out, ASSETS, size=thumb_size, desc="report thumbnails")
    for sample, thumb in zip(data["samples"], thumbs, strict=True):
        sample["thumb"] = thumb
    data["overview"]["thumbnails"] = {"written": sum(t is not None for t in thumbs), "unreadable": unreadable,
                                      "without_image": sum(s is None for s in sources)}
    page = fill_template(
        read_package_text("selection", "explorer_page/explorer.html"),
        title=html.escape(f"Selection: {header['method']} — kept {header['n_kept']} of {header['n_total']}"),
        css=read_package_text("selection", "explorer_page/explorer.css"),
        js=read_package_text("selection", "explorer_page/explorer.js"),
        data=embed_json(data),
    )
    path = out / "report.html"
    write_text_atomic(path, page)
    return path
