"""Prediction files: append-as-you-go jsonl that a killed eval resumes from.

Rows are GeoChat's output format plus what rescoring needs:
``{"question_id", "image", "question", "answer", "ground_truth", "category"}``. A kill can cut the last
line short; reading drops such a line (counted) and the runner rewrites the file without it.
Under ``accelerate launch`` each process appends to ``<name>.rank<R>.jsonl`` and the main process
merges them into the main file when all are done.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from finetune.files import write_jsonl_atomic


def read_predictions(path: str | Path) -> tuple[list[dict], int]:
    """``(rows, n_bad_lines)``; a missing file is ``([], 0)``. Bad lines are only tolerated last."""
    path = Path(path)
    if not path.exists():
        return [], 0
    lines = path.read_text(encoding="utf-8").splitlines()
    rows, bad = [], 0
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if line_no != len(lines):
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg}); delete the line to resume") from err
            bad += 1  # the line a kill cut short
    return rows, bad


def rank_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.rank*.jsonl"))


def read_all_predictions(path: Path) -> tuple[dict[str, dict], int]:
    """Rows of the main file and any per-rank files, by question id (first row wins)."""
    by_id, bad = {}, 0
    for file in [path, *rank_files(path)]:
        rows, n_bad = read_predictions(file)
        bad += n_bad
        for row in rows:
            by_id.setdefault(str(row["question_id"]), row)
    return by_id, bad


def merge_rank_files(path: Path, keep_ids: Iterable[str]) -> dict[str, dict]:
    """Fold per-rank files into ``path`` (atomically, in ``keep_ids`` order), then delete them."""
    by_id, _ = read_all_predictions(path)
    order = [qid for qid in keep_ids if qid in by_id]
    rest = [qid for qid in by_id if qid not in set(order)]
    write_jsonl_atomic(path, [by_id[q] for q in order + rest])
    for file in rank_files(path):
        file.unlink()
    return by_id

