"""Readers for the raw benchmark layouts: UCMerced_LandUse, AID and RSVQA-LR (LRBEN).

Every reader returns a :class:`Benchmark`: a list of :class:`BenchItem` plus the class names (for
classification) and a ``repairs`` counter. The GeoChat-Bench jsonl files are read in
``eval.geochat_bench``; both produce the same items, so the runners do not care where items came from.

Layouts (DESIGN.md "Evaluation"):

- ``UCMerced_LandUse/Images/<class>/<class>NN.tif`` (21 classes).
- ``AID/<CamelClass>/<lowerclass>_<n>.jpg`` (30 classes); GeoChat-Bench scores 30 % of each class.
- ``RSVQA_LR/Images_LR/<id>.tif`` + ``LR_split_<split>_{questions,answers,images}.json``; either the
  split files hold the question text, or they hold ids + ``active`` and the text is in
  ``all_questions.json`` / ``all_answers.json``. Only ``active`` questions and answers are kept.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

UCMERCED_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
    "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
    "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)  # fmt: skip
# Folder name -> the spaced name prompts use ("denseresidential" -> "dense residential").
UCMERCED_SPACED = {
    "baseballdiamond": "baseball diamond", "denseresidential": "dense residential", "golfcourse": "golf course",
    "mediumresidential": "medium residential", "mobilehomepark": "mobile home park", "parkinglot": "parking lot",
    "sparseresidential": "sparse residential", "storagetanks": "storage tanks", "tenniscourt": "tennis court",
}  # fmt: skip
AID_CLASSES = (
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
    "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow", "MediumResidential",
    "Mountain", "Park", "Parking", "Playground", "Pond", "Port", "RailwayStation", "Resort", "River",
    "School", "SparseResidential", "Square", "Stadium", "StorageTanks", "Viaduct",
)  # fmt: skip
LRBEN_TYPES = ("presence", "comp", "count", "rural_urban")
AID_BENCH_FRACTION = 0.3


@dataclass
class BenchItem:
    """One benchmark question.

    ``category`` is the class folder name (classification) or the RSVQA question type (VQA).
    ``question`` is the question text for VQA, or the benchmark's own prompt for classification items
    read from GeoChat-Bench (empty for raw-layout classification items: the runner builds the prompt).
    """

    question_id: str
    image_path: str
    question: str
    ground_truth: str
    category: str


@dataclass
class Benchmark:
    """A benchmark's items, its class names as prompts spell them, and the repairs made while reading."""

    name: str
    items: list[BenchItem]
    task: str  # "classification" | "vqa"
    classes: list[str] = field(default_factory=list)
    repairs: Counter = field(default_factory=Counter)
    source: str = ""

    def __len__(self) -> int:
        return len(self.items)


def spaced_name(name: str) -> str:
    """The class name as prompts spell it: ``denseresidential``/``DenseResidential`` -> ``dense residential``."""
    if name in UCMERCED_SPACED:
        return UCMERCED_SPACED[name]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()


def subset(items: Sequence, limit: int | None, seed: int = 0) -> list:
    """At most ``limit`` items, drawn at random (seeded) so every class is represented; order kept."""
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    if limit < 0:
        raise ValueError(f"eval.limit must be >= 0, got {limit}")
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def _class_folders(root: Path, what: str) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: no folder at '{root}'. Point the eval root at the folder that holds it.")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"{what}: '{root}' has no class folders.")
    return folders


def read_ucmerced(root: str | Path, limit: int | None = None, seed: int = 0) -> Benchmark:
    """UCMerced_LandUse from ``root`` (the folder holding ``UCMerced_LandUse/``, or that folder itself)."""
    root = Path(root)
    images_dir = root / "Images" if (root / "Images").is_dir() else root / "UCMerced_LandUse" / "Images"
    items, repairs = [], Counter()
    for folder in _class_folders(images_dir, "UCMerced_LandUse/Images"):
        if folder.name not in UCMERCED_CLASSES:
            log.warning("UCMerced: unknown class folder %s (read anyway)", folder)
            repairs["unknown_class_folder"] += 1
        for image in sorted(folder.glob("*.tif")):
            items.append(BenchItem(f"{folder.name}/{image.stem}", str(image), "", spaced_name(folder.name), folder.name))
    classes = [spaced_name(f.name) for f in _class_folders(images_dir, "UCMerced_LandUse/Images")]
    return Benchmark("ucmerced", subset(items, limit, seed), "classification", classes, repairs, str(images_dir))


def read_aid(
    root: str | Path, limit: int | None = None, seed: int = 0, fraction: float = AID_BENCH_FRACTION
) -> Benchmark:
    """AID from ``root`` (holding ``AID/`` or that folder), ``fraction`` of each class drawn with ``seed``.

    GeoChat-Bench scores exactly 30 % of each class (3,000 of 10,000): ``round(0.3 * n)`` per class.
    """
    root = Path(root)
    aid_dir = root / "AID" if (root / "AID").is_dir() else root
    items, repairs = [], Counter()
    folders = _class_folders(aid_dir, "AID")
    for folder in folders:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))
        if not images:
            repairs["empty_class_folder"] += 1
            log.warning("AID: class folder %s has no images", folder)
            continue
        n_keep = max(1, round(fraction * len(images)))  # at least one, so a tiny class is still scored
        chosen = sorted(random.Random(f"{seed}:{folder.name}").sample(images, n_keep))
        for image in chosen:
            items.append(BenchItem(f"{folder.name}/{image.stem}", str(image), "", spaced_name(folder.name), folder.name))
    classes = [spaced_name(f.name) for f in folders]
    return Benchmark("aid", subset(items, limit, seed), "classification", classes, repairs, str(aid_dir))


def _load_json(path: Path, key: str) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    if isinstance(data, dict):
        if key not in data:
            raise ValueError(f"{path}: top-level key '{key}' missing (found {sorted(data)[:5]}); is this RSVQA-LR?")
        data = data[key]
    if not isinstance(data, list):
        raise ValueError(f"{path}: '{key}' must be a list of objects")
    return data


def _by_id(entries: list[dict]) -> dict[int, dict]:
    # RSVQA entries carry their id; the list index is the id in the original release when they don't.
    return {int(e.get("id", i)): e for i, e in enumerate(entries) if isinstance(e, dict)}


def rsvqa_dir(root: str | Path) -> Path:
    """The RSVQA-LR folder: ``root`` itself or ``root/RSVQA_LR``."""
    root = Path(root)
    return root / "RSVQA_LR" if (root / "RSVQA_LR").is_dir() else root


def read_rsvqa_answers(path: str | Path) -> dict[str, str]:
    """``question_id -> answer`` from an RSVQA answers JSON (active answers only).

    Accepts a split answers file holding the text, ``all_answers.json``, or an ids-only split file
    (the text is then read from ``all_answers.json`` beside it).
    """
    path = Path(path)
    entries = _load_json(path, "answers")
    if entries and "answer" not in entries[0]:
        full = _by_id(_load_json(path.parent / "all_answers.json", "answers"))
        entries = [{**full.get(int(e["id"]), {}), **e} for e in entries]
    answers = {}
    for e in entries:
        if e.get("active", True) and "answer" in e and "question_id" in e:
            answers.setdefault(str(e["question_id"]), str(e["answer"]))
    return answers


def read_lrben(root: str | Path, split: str = "test", limit: int | None = None, seed: int = 0) -> Benchmark:
    """RSVQA-LR questions of ``split`` as VQA items (active questions with an active answer).

    Reads both circulating layouts (text in the split files, or ids in the split files and the text in
    ``all_questions.json`` / ``all_answers.json``). Questions without an active answer are skipped and
    counted in ``repairs``.
    """
    base = rsvqa_dir(root)
    q_path = base / f"LR_split_{split}_questions.json"
    a_path = base / f"LR_split_{split}_answers.json"
    if not q_path.exists():
        raise FileNotFoundError(f"RSVQA-LR: '{q_path}' missing. eval.lrben_root must hold RSVQA_LR/ (or be it).")
    questions = _load_json(q_path, "questions")
    repairs = Counter()
    if questions and "question" not in questions[0]:
        full_q = _by_id(_load_json(base / "all_questions.json", "questions"))
        questions = [{**full_q.get(int(q["id"]), {}), **q} for q in questions]
        repairs["text_from_all_questions"] = len(questions)
    answer_entries = _load_json(a_path, "answers") if a_path.exists() else []
    if answer_entries and "answer" not in answer_entries[0]:
        full_a = _by_id(_load_json(base / "all_answers.json", "answers"))
        answer_entries = [{**full_a.get(int(a["id"]), {}), **a} for a in answer_entries]
    if not answer_entries:
        answer_entries = _load_json(base / "all_answers.json", "answers")
    answers_by_id = {int(a["id"]): a for a in answer_entries if "id" in a}
    answers_by_question = {}
    for a in answer_entries:
        if a.get("active", True) and "question_id" in a:
            answers_by_question.setdefault(int(a["question_id"]), a)

    items = []
    for index, q in enumerate(questions):
        if not q.get("active", True):
            repairs["inactive_question"] += 1
            continue
        if "question" not in q or "img_id" not in q:
            raise ValueError(f"{q_path}: questions[{index}] (id {q.get('id')}) has no question text or img_id")
        answer = _first_active_answer(q, answers_by_id) or answers_by_question.get(int(q["id"]))
        if answer is None:
            repairs["question_without_active_answer"] += 1
            continue
        image = base / "Images_LR" / f"{q['img_id']}.tif"
        items.append(BenchItem(str(q["id"]), str(image), q["question"], str(answer["answer"]), q.get("type", "")))
    for reason, n in repairs.items():
        log.info("RSVQA-LR %s: %s x%d", split, reason, n)
    return Benchmark("lrben", subset(items, limit, seed), "vqa", [], repairs, str(base))


def _first_active_answer(question: dict, answers_by_id: dict[int, dict]) -> dict | None:
    for answer_id in question.get("answers_ids", []) or []:
        answer = answers_by_id.get(int(answer_id))
        if answer is not None and answer.get("active", True) and "answer" in answer:
            return answer
    return None


def read_rsvqa_types(questions_path: str | Path) -> dict[str, str]:
    """``question_id -> type`` from an RSVQA questions JSON (either layout)."""
    path = Path(questions_path)
    entries = _load_json(path, "questions")
    if entries and "type" not in entries[0]:
        full = _by_id(_load_json(path.parent / "all_questions.json", "questions"))
        entries = [{**full.get(int(e["id"]), {}), **e} for e in entries]
    return {str(e["id"]): e["type"] for e in entries if "type" in e and "id" in e}
