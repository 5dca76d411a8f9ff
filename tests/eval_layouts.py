"""Tiny copies of the real benchmark layouts (DESIGN.md "Evaluation"), written by tests.

Each writer returns the root folder that the eval readers take, with a handful of images and the
JSON files laid out exactly as the real datasets lay them out, including the published defects of
the GeoChat-Bench files. Counts are small and fixed so tests can assert exact numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

UCM_CLASSES = ("agricultural", "denseresidential", "river")
AID_CLASSES = ("Airport", "BareLand", "DenseResidential")
AID_PER_CLASS = 10


def _image(path: Path, seed: int, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_ucmerced(root: Path, per_class: int = 3) -> Path:
    """``root/UCMerced_LandUse/Images/<class>/<class>NN.tif``."""
    for c, cls in enumerate(UCM_CLASSES):
        for n in range(per_class):
            _image(root / "UCMerced_LandUse" / "Images" / cls / f"{cls}{n:02d}.tif", seed=100 * c + n)
    return root


def write_aid(root: Path, per_class: int = AID_PER_CLASS) -> Path:
    """``root/AID/<CamelClass>/<lowerclass>_<n>.jpg``."""
    for c, cls in enumerate(AID_CLASSES):
        for n in range(1, per_class + 1):
            _image(root / "AID" / cls / f"{cls.lower()}_{n}.jpg", seed=1000 + 100 * c + n)
    return root


# RSVQA-LR test split: 3 images; question 5 inactive, question 6's only answer inactive.
RSVQA_QUESTIONS = [
    (0, 0, "presence", "Is there a road?", "yes"),
    (1, 0, "comp", "Are there more buildings than water areas?", "no"),
    (2, 0, "count", "How many small buildings are there?", "3"),
    (3, 1, "rural_urban", "Is it a rural or an urban area?", "rural"),
    (4, 1, "presence", "Is there a river?", "no"),
    (5, 2, "presence", "Is there a beach?", "yes"),
    (6, 2, "comp", "Are there more roads than trees?", "yes"),
    (7, 2, "count", "How many buildings are there?", "12"),
]
INACTIVE_QUESTION, INACTIVE_ANSWER = 5, 6
RSVQA_ACTIVE_IDS = [0, 1, 2, 3, 4, 7]


def write_rsvqa(root: Path, text_in_split: bool = True) -> Path:
    """``root/RSVQA_LR/`` with ``Images_LR/<id>.tif`` and the test split JSONs.

    ``text_in_split``: the split files hold the question/answer text (the authors' loader layout);
    otherwise they hold ids + ``active`` and the text is in ``all_questions.json`` / ``all_answers.json``.
    """
    base = root / "RSVQA_LR"
    for img in range(3):
        _image(base / "Images_LR" / f"{img}.tif", seed=5000 + img)
    questions = [
        {"id": qid, "img_id": img, "type": kind, "question": text, "answers_ids": [qid], "active": qid != INACTIVE_QUESTION}
        for qid, img, kind, text, _ in RSVQA_QUESTIONS
    ]
    answers = [
        {"id": qid, "question_id": qid, "answer": answer, "active": qid != INACTIVE_ANSWER}
        for qid, _, _, _, answer in RSVQA_QUESTIONS
    ]
    images = [{"id": img, "questions_ids": [q[0] for q in RSVQA_QUESTIONS if q[1] == img], "active": True} for img in range(3)]
    if text_in_split:
        split_q, split_a = questions, answers
    else:
        (base / "all_questions.json").write_text(json.dumps({"questions": questions}))
        (base / "all_answers.json").write_text(json.dumps({"answers": answers}))
        split_q = [{"id": q["id"], "active": q["active"]} for q in questions]
        split_a = [{"id": a["id"], "active": a["active"]} for a in answers]
    (base / "LR_split_test_questions.json").write_text(json.dumps({"questions": split_q}))
    (base / "LR_split_test_answers.json").write_text(json.dumps({"answers": split_a}))
    (base / "LR_split_test_images.json").write_text(json.dumps({"images": images}))
    return root


def write_geochat_bench(root: Path) -> Path:
    """``root/GeoChat-Bench/{UCmerced,aid,lrben}.jsonl`` over the layouts above, with the published defects:
    aid ground truth CamelCase + 2 stray trailing characters and ``.png`` paths for ``.jpg`` files;
    lrben without ground truth."""
    bench = root / "GeoChat-Bench"
    bench.mkdir(parents=True, exist_ok=True)
    prompt = "Classify the given image in one of the following classes. Classes: {}. \nAnswer in one word or a short phrase."
    ucm = [
        {"question_id": i, "image": f"{cls}/{cls}{n:02d}.tif", "text": prompt.format("agricultural, dense residential, river"),
         "ground_truth": cls}
        for i, (cls, n) in enumerate((cls, n) for cls in UCM_CLASSES for n in range(2))
    ]
    aid = [
        {"question_id": f"{cls}_{n}", "image": f"{cls}/{cls.lower()}_{n}.png", "text": prompt.format("airport, bare land, dense residential"),
         "ground_truth": cls + "\n\n" if n % 2 else cls + "ab"}
        for cls in AID_CLASSES for n in (1, 2)
    ]
    lrben = [
        {"question_id": qid, "image": f"{img}.tif", "text": text, "category": kind}
        for qid, img, kind, text, _ in RSVQA_QUESTIONS if qid in RSVQA_ACTIVE_IDS
    ]
    for name, rows in (("UCmerced", ucm), ("aid", aid), ("lrben", lrben)):
        (bench / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return bench


def write_all(root: Path) -> Path:
    write_ucmerced(root)
    write_aid(root)
    write_rsvqa(root)
    write_geochat_bench(root)
    return root
