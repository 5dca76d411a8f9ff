"""``geotune compare RUN_DIR...``: one markdown table and bar plots across runs.

Per run it reads what the other stages leave behind, each piece optional (a missing or unreadable one
shows as "—" and is named in the notes under the table, never a crash):

- ``<run>/train_summary.json``: ``train_seconds``, ``samples_seen``, ``records_selected`` / ``records_in_pool``;
- ``<run>/selection/manifest.jsonl`` (header line): ``method``, ``n_kept`` / ``n_total``;
- ``<run>/selection/timings.json``: selection cost (``total_seconds`` / ``total`` if present, else the sum of
  its stages; ``select.<stage>`` entries are parts of ``select`` and are not added again);
- ``<run>/final/eval/<bench>.json``: each benchmark's ``score`` (LRBEN: also per type).

Writes ``<out>/compare.md``, ``<out>/scores.png``, ``<out>/cost.png`` and ``<out>/compare.html`` (with
``compare_assets/``: confusion matrices side by side and the answers where runs disagree, see
``eval.compare_html``) (default ``runs/compare``).
"""

from __future__ import annotations

import json
from pathlib import Path

from finetune.files import write_json_atomic, write_text_atomic

DASH = "—"
BENCHES = ("ucmerced", "aid", "lrben")
LRBEN_TYPES = ("presence", "comp", "rural_urban", "count")


def _read_json(path: Path, notes: list[str]):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        notes.append(f"{path}: unreadable ({err}); shown as {DASH}")
        return None


def _manifest_header(path: Path, notes: list[str]):
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.readline())
    except (OSError, json.JSONDecodeError) as err:
        notes.append(f"{path}:1: unreadable header ({err}); shown as {DASH}")
        return None


def selection_seconds(timings) -> float | None:
    """Selection cost in seconds from ``timings.json`` (see the module docstring)."""
    if not isinstance(timings, dict):
        return None
    for key in ("total_seconds", "total", "seconds"):
        if isinstance(timings.get(key), (int, float)):
            return float(timings[key])
    numbers = [v for k, v in timings.items()
               if "." not in k and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(sum(numbers)) if numbers else None


def collect_run(run_dir: str | Path, notes: list[str]) -> dict:
    """Everything the table shows for one run; absent pieces are None."""
    run = Path(run_dir)
    if not run.is_dir():
        notes.append(f"{run}: not a directory")
    summary = _read_json(run / "train_summary.json", notes) or {}
    header = _manifest_header(run / "selection" / "manifest.jsonl", notes) or {}
    timings = _read_json(run / "selection" / "timings.json", notes)
    row = {
        "run": run.name or str(run),
        "method": header.get("method"),
        "kept": header.get("n_kept", summary.get("records_selected")),
        "pool": header.get("n_total", summary.get("records_in_pool")),
        "samples_seen": summary.get("samples_seen"),
        "train_seconds": summary.get("train_seconds"),
        "selection_seconds": selection_seconds(timings),
    }
    for bench in BENCHES:
        result = _read_json(run / "final" / "eval" / f"{bench}.json", notes) or {}
        row[bench] = result.get("score")
        if bench == "lrben":
            per_type = result.get("per_type") or {}
            for kind in LRBEN_TYPES:
                row[f"lrben_{kind}"] = (per_type.get(kind) or {}).get("accuracy")
    return row


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS = [
    ("run", "run"), ("method", "selection"), ("kept", "kept"), ("pool", "pool"), ("samples_seen", "samples seen"),
    ("train_seconds", "train s"), ("selection_seconds", "selection s"), ("ucmerced", "UCM"), ("aid", "AID"),
    ("lrben", "LRBEN avg"), ("lrben_presence", "presence"), ("lrben_comp", "comp"),
    ("lrben_rural_urban", "rural/urban"), ("lrben_count", "count"),
]


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of ``rows`` (from :func:`collect_run`); missing values are "—"."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(key), 1 if key.endswith("seconds") else 2) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path = "runs/compare") -> Path:
    """Write the table and plots for ``run_dirs`` into ``out_dir``; returns the markdown path."""
    from tqdm.auto import tqdm

    from eval.compare_html import write_compare_html
    from eval.plots import plot_bars

    notes: list[str] = []
    rows = [collect_run(run, notes) for run in tqdm(run_dirs, desc="compare: reading runs", unit=" runs",
                                                      disable=len(run_dirs) < 8)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores = {bench: {r["run"]: r[bench] for r in rows} for bench in BENCHES}
    costs = {what: {r["run"]: r[key] for r in rows} for what, key in
             (("train", "train_seconds"), ("selection", "selection_seconds"))}
    plot_bars(scores, out / "scores.png", "score (%)", "benchmark scores", ymax=100.0)
    plot_bars(costs, out / "cost.png", "seconds", "training and selection time")
    text = "# geotune compare\n\n" + markdown_table(rows) + "\n\n![scores](scores.png) ![cost](cost.png)\n"
    if notes:
        text += "\nNotes:\n" + "".join(f"- {note}\n" for note in notes)
    target = write_text_atomic(out / "compare.md", text)
    write_json_atomic(out / "compare.json", rows)
    write_compare_html(out, list(run_dirs), rows, notes, COLUMNS, BENCHES)
    return target
