"""GeoChat-Bench question files (``UCmerced.jsonl``, ``aid.jsonl``, ``lrben.jsonl``), repaired.

Each line is ``{question_id, image, text, ground_truth}`` (lrben: ``category`` and no ground truth).
The published files have known defects, repaired here; every repair is logged and counted in
``Benchmark.repairs`` (and so in the result JSON):

- aid ground truth is CamelCase with 2 stray trailing characters -> the class's spaced name
  (``aid_ground_truth_stray_chars``, ``ground_truth_camelcase``);
- aid image paths say ``.png`` for ``.jpg`` files -> the file that exists (``image_png_to_jpg``);
- lrben has no ground truth -> rebuilt from the RSVQA answers JSON by question id
  (``ground_truth_from_rsvqa``); its type from the RSVQA questions when ``category`` is missing.

Images that cannot be found, and lrben questions the answers JSON does not know, are skipped and counted.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

from eval.readers import (
    AID_CLASSES,
    UCMERCED_CLASSES,
    BenchItem,
    Benchmark,
    read_rsvqa_answers,
    read_rsvqa_types,
    rsvqa_dir,
    spaced_name,
    subset,
)

log = logging.getLogger(__name__)

BENCH_FILES = {"ucmerced": "UCmerced.jsonl", "aid": "aid.jsonl", "lrben": "lrben.jsonl"}
BENCH_CLASSES = {"ucmerced": UCMERCED_CLASSES, "aid": AID_CLASSES}


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a jsonl file; a bad line fails naming ``file:line``."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg}); fix or delete the line") from err
    return rows


def _norm(text: str) -> str:
    return text.lower().replace(" ", "").replace("_", "")


def match_class(ground_truth: str, classes) -> tuple[str | None, list[str]]:
    """The class a ground-truth string names, and the repairs that took.

    Tries the string as is (stripped), then without its last 2 characters (GeoChat-Bench aid's stray
    trailing characters). Returns ``(None, [])`` when nothing matches.
    """
    by_norm = {_norm(c): c for c in classes}
    stripped = ground_truth.strip()
    if _norm(stripped) in by_norm:
        repairs = ["aid_ground_truth_stray_chars"] if stripped != ground_truth and len(ground_truth) - len(stripped) == 2 else []
        return by_norm[_norm(stripped)], repairs
    cut = ground_truth[:-2].strip()
    if _norm(cut) in by_norm:
        return by_norm[_norm(cut)], ["aid_ground_truth_stray_chars"]
    return None, []


_IMAGE_SUBDIRS = {"ucmerced": ("Images", "UCMerced_LandUse/Images"), "aid": ("AID",), "lrben": ("Images_LR", "RSVQA_LR/Images_LR")}


def _resolve_image(image: str, image_root: Path, bench: str, repairs: Counter) -> Path | None:
    """The image file a row names, relative to the image root or the layout's folders under it."""
    bases = [image_root] + [image_root / sub for sub in _IMAGE_SUBDIRS[bench]]
    candidates = [base / image for base in bases]
    if bench == "ucmerced":  # a bare "river07.tif": the class is the name without its number
        name = Path(image).name
        candidates += [base / re.sub(r"\d+$", "", Path(name).stem) / name for base in bases]
    for path in candidates:
        if path.exists():
            return path
    for path in candidates:
        if path.suffix.lower() == ".png" and path.with_suffix(".jpg").exists():
            repairs["image_png_to_jpg"] += 1
            return path.with_suffix(".jpg")
    return None


def read_geochat_bench(
    path: str | Path,
    bench: str,
    image_root: str | Path,
    rsvqa_root: str | Path | None = None,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
) -> Benchmark:
    """Read a GeoChat-Bench jsonl into a :class:`Benchmark`, repairing its known defects.

    Args:
        path: ``UCmerced.jsonl``, ``aid.jsonl`` or ``lrben.jsonl``.
        bench: ``ucmerced`` | ``aid`` | ``lrben``.
        image_root: the folder the ``image`` paths are relative to (``UCMerced_LandUse/Images``,
            ``AID`` or ``RSVQA_LR/Images_LR``), or a folder above them in the layout.
        rsvqa_root: RSVQA-LR folder whose ``LR_split_<split>_answers.json`` rebuilds lrben's ground
            truth (default: ``image_root``).
    """
    if bench not in BENCH_FILES:
        raise ValueError(f"unknown benchmark '{bench}'; choose from {', '.join(BENCH_FILES)}")
    path, image_root = Path(path), Path(image_root)
    rows = read_jsonl(path)
    repairs: Counter = Counter()
    answers, types = {}, {}
    if bench == "lrben" and any("ground_truth" not in r for r in rows):
        base = rsvqa_dir(rsvqa_root or image_root)
        answers = read_rsvqa_answers(base / f"LR_split_{split}_answers.json")
        q_path = base / f"LR_split_{split}_questions.json"
        types = read_rsvqa_types(q_path) if q_path.exists() else {}
    items = []
    for line_no, row in enumerate(rows, 1):
        missing = [k for k in ("question_id", "image", "text") if k not in row]
        if missing:
            raise ValueError(f"{path}:{line_no}: missing {', '.join(missing)}")
        item = _item_from_row(row, bench, image_root, answers, types, repairs)
        if item is not None:
            items.append(item)
    if rows and not items:
        raise FileNotFoundError(f"{path}: none of {len(rows)} questions could be used ({dict(repairs)}); check the image root '{image_root}'")
    for reason, n in sorted(repairs.items()):
        log.warning("%s: %s x%d", path.name, reason, n)
    classes = [spaced_name(c) for c in BENCH_CLASSES.get(bench, ())]
    task = "vqa" if bench == "lrben" else "classification"
    return Benchmark(bench, subset(items, limit, seed), task, classes, repairs, str(path))


def _item_from_row(row: dict, bench: str, image_root: Path, answers: dict, types: dict, repairs: Counter) -> BenchItem | None:
    qid = str(row["question_id"])
    image = _resolve_image(str(row["image"]), image_root, bench, repairs)
    if image is None:
        repairs["skipped_missing_image"] += 1
        return None
    if bench == "lrben":
        truth = row.get("ground_truth")
        if truth is None:
            if qid not in answers:
                repairs["skipped_no_rsvqa_answer"] += 1
                return None
            truth = answers[qid]
            repairs["ground_truth_from_rsvqa"] += 1
        category = row.get("category") or row.get("type")
        if not category:
            category = types.get(qid, "unknown")
            repairs["type_from_rsvqa" if qid in types else "type_unknown"] += 1
        return BenchItem(qid, str(image), str(row["text"]), str(truth), category)
    truth = str(row.get("ground_truth", ""))
    cls = repair_ground_truth(truth, bench, repairs)
    if cls is None:  # fall back on the class folder the image sits in
        cls, _ = match_class(image.parent.name, BENCH_CLASSES[bench])
        repairs["ground_truth_from_image_folder" if cls else "skipped_unknown_ground_truth"] += 1
    if cls is None:
        return None
    return BenchItem(qid, str(image), str(row["text"]), spaced_name(cls), cls)


def repair_ground_truth(truth: str, bench: str, repairs: Counter) -> str | None:
    """The class folder name a classification ground truth names (None: none), counting the repairs."""
    cls, took = match_class(truth, BENCH_CLASSES[bench])
    if cls is None:
        return None
    for reason in took:
        repairs[reason] += 1
    if any(ch.isupper() for ch in truth):
        repairs["ground_truth_camelcase"] += 1
    return cls


def default_bench_file(bench_dir: str | Path, bench: str) -> Path:
    """``<bench_dir>/<UCmerced|aid|lrben>.jsonl``."""
    return Path(bench_dir) / BENCH_FILES[bench]
