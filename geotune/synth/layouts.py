"""Writers of the real benchmark layouts: UCMerced_LandUse, AID, RSVQA-LR and GeoChat-Bench.

Every image comes from its own random stream ``[seed, stream, ...]`` (see :func:`stream_rng`); the
benchmark streams are disjoint from the pool's, so no test scene is ever drawn for training. Files are
written with fixed encoder settings and no timestamps, so the same seed gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from finetune.files import write_json_atomic, write_jsonl_atomic
from geotune.synth.scenes import UCM_CLASSES, spaced_ucm
from geotune.synth.scenes_aid import AID_CLASSES, AID_DIRS, AID_SIZES, draw_scene, spaced_aid
from geotune.synth.vqa import draw_lr_scene, lr_questions

# Random streams: benchmark (test) streams < 10, pool/training streams >= 10.
STREAMS = {"ucmerced": 1, "aid": 2, "lr_test": 3, "lr_val": 4, "lr_train": 5, "bench": 6,
           "retrieval_test": 7, "retrieval_val": 8, "retrieval_train": 12,
           "pool": 10, "pool_plan": 11, "general_train": 20, "general_test": 21, "learnability": 30,
           "pretrain": 40, "retrieval_pretrain": 41}  # fmt: skip

CLASSIFY = "Classify the given image in one of the following classes. Classes: {classes}. \nAnswer in one word or a short phrase."
VQA_SUFFIX = " Answer the question using a single word or phrase."
UCM_PROMPT = CLASSIFY.format(classes=", ".join(spaced_ucm(c) for c in UCM_CLASSES))
AID_PROMPT = CLASSIFY.format(classes=", ".join(spaced_aid(c) for c in AID_CLASSES))


def stream_rng(seed: int, stream: str, *keys: int) -> np.random.Generator:
    """The generator of one image (or plan) of ``stream``; independent of every other key."""
    return np.random.default_rng([int(seed), STREAMS[stream], *map(int, keys)])


# -- file writing (deterministic) ----------------------------------------------------------------
def save_image(pixels: np.ndarray, path: Path) -> None:
    """Write RGB pixels as TIFF (uncompressed), JPEG (q90, 4:2:0) or PNG, by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels)
    suffix = path.suffix.lower()
    if suffix == ".tif":
        img.save(path, format="TIFF", compression="raw")
    elif suffix == ".jpg":
        img.save(path, format="JPEG", quality=90, subsampling=2, optimize=False)
    else:
        img.save(path, format="PNG", compress_level=6)


def write_json(path: Path, obj, indent: int | None = None) -> None:
    """SynthRS JSON: compact unless ``indent`` (the published files are one line)."""
    write_json_atomic(path, obj, indent=indent)


# -- layouts ---------------------------------------------------------------------------------------
def write_ucmerced(root: Path, seed: int, per_class: int, image_size: int) -> list[dict]:
    """``UCMerced_LandUse/Images/<class>/<class>NN.tif``; returns one row per image."""
    rows = []
    for c, name in enumerate(UCM_CLASSES):
        for i in range(per_class):
            scene = draw_scene("ucmerced", name, stream_rng(seed, "ucmerced", c, i), image_size)
            rel = f"{name}/{name}{i:02d}.tif"
            save_image(scene.pixels, root / "UCMerced_LandUse" / "Images" / rel)
            rows.append({"image": rel, "class": name})
    return rows


def aid_class_sizes(scale: float) -> dict[str, int]:
    """Images per AID class: the real set's counts times ``scale`` (at least 2 per class)."""
    return {d: max(2, int(round(n * scale))) for d, n in AID_SIZES.items()}


def write_aid(root: Path, seed: int, scale: float, image_size: int) -> list[dict]:
    """``AID/<CamelClass>/<lowerclass>_<n>.jpg`` (n from 1), unequal class sizes as in the real set."""
    rows = []
    for c, (camel, n) in enumerate(aid_class_sizes(scale).items()):
        lower = AID_CLASSES[c]
        for i in range(1, n + 1):
            scene = draw_scene("aid", lower, stream_rng(seed, "aid", c, i), image_size)
            rel = f"{camel}/{lower}_{i}.jpg"
            save_image(scene.pixels, root / "AID" / rel)
            rows.append({"image": rel, "class": lower, "dir": camel})
    return rows


def write_rsvqa_lr(root: Path, seed: int, split_sizes: dict[str, int], image_size: int,
                   inactive_share: float = 0.03) -> dict[str, list[dict]]:
    """``RSVQA_LR/Images_LR/<id>.tif`` and the nine ``LR_split_*`` files with the real keys.

    Ids are global across splits, as in the real set. A share of questions (with their answers) is
    inactive, and the first train image is inactive with all its questions, so readers must honour
    ``active``. Returns the test questions joined with their answers (for ``lrben.jsonl``).
    """
    base = root / "RSVQA_LR"
    img_id = q_id = 0
    test_rows: list[dict] = []
    for split in ("train", "val", "test"):
        images, questions, answers = [], [], []
        for k in range(split_sizes[split]):
            rng = stream_rng(seed, f"lr_{split}", k)
            scene = draw_lr_scene(rng, image_size)
            save_image(scene.pixels, base / "Images_LR" / f"{img_id}.tif")
            image_active = not (split == "train" and k == 0 and split_sizes[split] > 1)
            ids = []
            for qtype, text, answer in lr_questions(scene, rng):
                active = image_active and bool(rng.random() >= inactive_share)
                questions.append({"id": q_id, "img_id": img_id, "type": qtype, "question": text,
                                  "answers_ids": [q_id], "active": active})
                answers.append({"id": q_id, "question_id": q_id, "answer": answer, "active": active})
                if split == "test" and active:
                    test_rows.append({"question_id": q_id, "img_id": img_id, "type": qtype, "question": text,
                                      "answer": answer})
                ids.append(q_id)
                q_id += 1
            images.append({"id": img_id, "original_name": f"{img_id}.tif", "questions_ids": ids,
                           "active": image_active})
            img_id += 1
        write_json(base / f"LR_split_{split}_questions.json", {"questions": questions})
        write_json(base / f"LR_split_{split}_answers.json", {"answers": answers})
        write_json(base / f"LR_split_{split}_images.json", {"images": images})
    return {"test": test_rows}


def write_geochat_bench(root: Path, seed: int, ucm: list[dict], aid: list[dict], lr_test: list[dict],
                        published_defects: bool) -> None:
    """``GeoChat-Bench/{UCmerced,aid,lrben}.jsonl``: ``{question_id, image, text, ground_truth}``.

    Image paths are relative to ``UCMerced_LandUse/Images``, ``AID`` and ``RSVQA_LR/Images_LR``. AID
    keeps exactly 30% of each class (at least one), chosen with the seed. lrben ``text`` is the bare
    question (GeoChat appends the VQA suffix at evaluation) and ``category`` is the RSVQA type. With
    ``published_defects``: aid ground truth is the CamelCase directory plus two stray characters and
    its paths say ``.png`` for ``.jpg`` files; lrben has no ground truth.
    """
    bench = root / "GeoChat-Bench"
    ucm_rows = [{"question_id": Path(r["image"]).stem, "image": r["image"], "text": UCM_PROMPT,
                 "ground_truth": spaced_ucm(r["class"])} for r in ucm]
    write_jsonl_atomic(bench / "UCmerced.jsonl", ucm_rows)
    aid_rows = []
    rng = stream_rng(seed, "bench", 0)
    for camel in AID_DIRS:
        members = [r for r in aid if r["dir"] == camel]
        keep = sorted(rng.choice(len(members), max(1, round(0.3 * len(members))), replace=False))
        for i in keep:
            r = members[int(i)]
            image, truth = r["image"], spaced_aid(r["class"])
            if published_defects:
                image, truth = image[: -len(".jpg")] + ".png", camel + "\\n"
            aid_rows.append({"question_id": Path(r["image"]).stem, "image": image, "text": AID_PROMPT,
                             "ground_truth": truth})
    write_jsonl_atomic(bench / "aid.jsonl", aid_rows)
    lr_rows = []
    for r in lr_test:
        row = {"question_id": r["question_id"], "image": f"{r['img_id']}.tif", "text": r["question"],
               "category": r["type"], "ground_truth": r["answer"]}
        if published_defects:
            del row["ground_truth"]
        lr_rows.append(row)
    write_jsonl_atomic(bench / "lrben.jsonl", lr_rows)
