"""``compare.html`` beside compare.md: the runs side by side in a browser, offline from disk.

The page (CSS and JS of ``eval/compare_page/`` inlined, data embedded as JSON, thumbnails in
``compare_assets/thumbs/``) shows the metrics table, bars per benchmark, samples seen / training time /
selection cost, the per-class confusion matrices of every run side by side, and the questions two runs
answer differently (image, question, ground truth, every run's answer), at most ``max_disagreements`` per
benchmark, in the order of the first run's predictions file.

Per run and benchmark it reads ``<run>/final/eval/<bench>.json`` (``confusion``) and
``<run>/final/eval/<bench>.predictions.jsonl`` (``question_id``, ``image``, ``question``, ``answer``,
``ground_truth``); either may be missing. Answers are compared after GeoChat's normalisation (the
headline metric's), so "River." and "river" agree.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from eval.metrics import get_normalizer
from eval.predictions import read_predictions
from finetune.data.records import IMAGE_TOKEN
from finetune.files import write_text_atomic
from finetune.html_page import embed_json, fill_template, read_package_text, write_thumbnails

ASSETS = "compare_assets"
TEXT_CHARS = 400


def _snippet(text) -> str:
    text = re.sub(r"\s+", " ", str(text or "").replace(IMAGE_TOKEN, " ")).strip()
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _bench_result(path: Path, notes: list[str]) -> dict:
    if not path.exists():
        return {}
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        notes.append(f"{path}: unreadable ({err})")
        return {}
    return result if isinstance(result, dict) else {}


def _predictions(path: Path, notes: list[str]) -> dict[str, dict]:
    try:
        rows, bad = read_predictions(path)
    except (OSError, ValueError) as err:
        notes.append(f"{path}: unreadable ({err}); its answers are left out")
        return {}
    if bad:
        notes.append(f"{path}: {bad} cut-short last line left out")
    return {str(row["question_id"]): row for row in rows if isinstance(row, dict) and "question_id" in row}


def disagreements(predictions: list[dict[str, dict]], limit: int) -> tuple[list[dict], int]:
    """Questions answered by two or more runs whose normalised answers differ.

    Args:
        predictions: per run, question id -> prediction row.
        limit: most questions returned (the total is counted anyway).

    Returns:
        ``(items, total)``; each item has ``question_id``, ``question``, ``ground_truth``, ``image`` (the
        source path, for thumbnailing), ``answers`` and ``correct`` (per run; None where a run has no answer
        or no ground truth is known).
    """
    normalize = get_normalizer("geochat")
    order = list(dict.fromkeys(qid for by_id in predictions for qid in by_id))
    items, total = [], 0
    for qid in order:
        rows = [by_id.get(qid) for by_id in predictions]
        answered = [normalize(str(row.get("answer", ""))) for row in rows if row is not None]
        if len(answered) < 2 or len(set(answered)) < 2:
            continue
        total += 1
        if len(items) >= limit:
            continue
        first = next(row for row in rows if row is not None)
        truth = next((row.get("ground_truth") for row in rows if row is not None and row.get("ground_truth") is not None), None)
        items.append({
            "question_id": qid, "question": _snippet(first.get("question")),
            "ground_truth": None if truth is None else _snippet(truth), "image": first.get("image"),
            "answers": [None if row is None else _snippet(row.get("answer")) for row in rows],
            "correct": [None if row is None or truth is None else normalize(str(row.get("answer", ""))) == normalize(str(truth))
                        for row in rows],
        })
    return items, total


def compare_page_data(run_dirs: list[str | Path], rows: list[dict], notes: list[str], columns: list[tuple[str, str]],
                      benches: tuple[str, ...], *, max_disagreements: int = 40) -> dict:
    """The JSON the page embeds (disagreement items still carry their source ``image`` paths)."""
    from tqdm.auto import tqdm

    runs = [row["run"] for row in rows]
    per_bench = {}
    steps = tqdm([(bench, Path(run)) for bench in benches for run in run_dirs], desc="compare: reading evaluations",
                 unit=" files", disable=len(run_dirs) * len(benches) < 12)
    results: dict[str, list[dict]] = {bench: [] for bench in benches}
    predictions: dict[str, list[dict]] = {bench: [] for bench in benches}
    for bench, run in steps:
        results[bench].append(_bench_result(run / "final" / "eval" / f"{bench}.json", notes))
        predictions[bench].append(_predictions(run / "final" / "eval" / f"{bench}.predictions.jsonl", notes))
    for bench in benches:
        items, total = disagreements(predictions[bench], max_disagreements)
        confusion = [r.get("confusion") if isinstance(r.get("confusion"), dict) else None for r in results[bench]]
        per_bench[bench] = {
            "scores": [row.get(bench) for row in rows],
            "confusion": confusion,
            "answered": [len(p) for p in predictions[bench]],
            "disagreements": items, "disagreements_total": total,
        }
    return {"runs": runs, "columns": [list(c) for c in columns], "rows": rows, "benches": per_bench,
            "notes": notes, "max_disagreements": max_disagreements}


def write_compare_html(out_dir: str | Path, run_dirs: list[str | Path], rows: list[dict], notes: list[str],
                       columns: list[tuple[str, str]], benches: tuple[str, ...], *, max_disagreements: int = 40,
                       thumb_size: int = 160) -> Path:
    """Write ``compare.html`` and ``compare_assets/`` into ``out_dir``; returns the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = compare_page_data(run_dirs, rows, list(notes), columns, benches, max_disagreements=max_disagreements)
    items = [item for bench in benches for item in data["benches"][bench]["disagreements"]]
    sources = [item.pop("image") for item in items]
    sources = [src if src and Path(src).is_file() else None for src in sources]
    thumbs, unreadable = write_thumbnails(sources, out, ASSETS, size=thumb_size, desc="compare thumbnails")
    for item, thumb in zip(items, thumbs, strict=True):
        item["thumb"] = thumb
    if unreadable:
        data["notes"].append(f"{unreadable} question images could not be read; shown without a thumbnail")
    page = fill_template(
        read_package_text("eval", "compare_page/compare.html"),
        title=html.escape("geotune compare: " + ", ".join(data["runs"])),
        css=read_package_text("eval", "compare_page/compare.css"),
        js=read_package_text("eval", "compare_page/compare.js"),
        data=embed_json(data),
    )
    return write_text_atomic(out / "compare.html", page)
