"""The selection manifest: the one file training reads.

``<run_dir>/selection/manifest.jsonl``: the first line is a header JSON object, then one row per kept
record, in record order: ``{"id", "cluster", "score", "rank_in_cluster"}``. The header holds the
config hash, seed, method, budget, ``n_total`` / ``n_kept`` and counts per cluster / task / source
(total and kept). Timings live in ``timings.json`` beside it, so the same inputs give a byte-identical
manifest. Written atomically (tmp file + ``os.replace``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetune.files import write_text_atomic
from selection.budget import Selection

FORMAT = "geotune.selection.manifest/1"
ROW_KEYS = ("id", "cluster", "score", "rank_in_cluster")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names file:line."""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _counts(values: Sequence[Any] | None, kept: np.ndarray) -> dict[str, dict[str, int]] | None:
    if values is None:
        return None
    values = [str(v) for v in values]
    total = Counter(values)
    kept_counts = Counter(values[i] for i in kept)
    return {k: {"total": total[k], "kept": kept_counts.get(k, 0)} for k in sorted(total)}


def build_header(
    selection: Selection,
    *,
    n_total: int,
    method: str,
    seed: int,
    budget: float,
    config_hash: str,
    tasks: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The header object (JSON-able, no timings)."""
    clusters = None
    if selection.all_clusters is not None and (selection.all_clusters >= 0).all():
        clusters = _counts(selection.all_clusters.tolist(), selection.indices)
    return {
        "format": FORMAT,
        "method": method,
        "seed": int(seed),
        "budget": float(budget),
        "config_hash": config_hash,
        "n_total": int(n_total),
        "n_kept": len(selection),
        "options": options or {},
        "info": selection.info,
        "counts": {
            "cluster": clusters,
            "task": _counts(tasks, selection.indices),
            "source": _counts(sources, selection.indices),
        },
        "timings_file": "timings.json",
    }


def manifest_rows(selection: Selection, ids: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"id": ids[i], "cluster": int(c), "score": round(float(s), 8) if np.isfinite(s) else None, "rank_in_cluster": int(r)}
        for i, c, s, r in zip(selection.indices.tolist(), selection.cluster, selection.score, selection.rank_in_cluster, strict=True)
    ]


def write_manifest(path: Path, header: dict[str, Any], rows: Sequence[dict[str, Any]]) -> Path:
    """Write header + rows as JSON lines, atomically; returns ``path``."""
    lines = [_dumps(header)] + [_dumps(row) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n", fsync=True)
    return Path(path)


def read_manifest(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a manifest: ``(header, rows)``.

    Raises:
        ManifestError: missing file, bad JSON, missing keys, duplicate ids or a row count that does
            not match the header, naming ``file:line``.
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found (run `geotune select recipe=...` first)")
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ManifestError(f"{path}:1: empty manifest (expected a header line)")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}:1: header is not JSON: {err}") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ManifestError(f"{path}:1: not a geotune manifest header (expected format '{FORMAT}')")
    rows, seen = [], set()
    for lineno, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{lineno}: not JSON: {err}") from err
        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise ManifestError(f"{path}:{lineno}: row lacks {', '.join(missing)}")
        if row["id"] in seen:
            raise ManifestError(f"{path}:{lineno}: duplicate id '{row['id']}'")
        seen.add(row["id"])
        rows.append(row)
    if "n_kept" in header and header["n_kept"] != len(rows):
        raise ManifestError(f"{path}: header says n_kept={header['n_kept']} but the file has {len(rows)} rows (truncated?)")
    return header, rows
