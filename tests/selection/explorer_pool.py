"""A small real pool and synthetic selections for the report.html tests (imported by conftest and tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from finetune.data.records import Record
from selection.budget import Selection

EVIL_ANSWER = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">{{css}}'
POOL_CLASSES = {"forest": (34, 120, 50), "river": (40, 90, 200), "beach": (230, 210, 150), "farmland": (170, 160, 60)}


def write_small_pool(folder: Path, n: int = 40) -> Path:
    """A GeoChat-style JSON list: classification, VQA and caption records on small coloured PNGs (one colour
    per class, so thumbnails are easy to tell apart), plus one record whose answer is HTML (``EVIL_ANSWER``)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    classes = list(POOL_CLASSES)
    rows = []
    for i in range(n):
        cls = classes[i % len(classes)]
        colour = np.array(POOL_CLASSES[cls], dtype=np.int16)
        pixels = np.clip(colour + np.random.default_rng(i).integers(-30, 30, (48, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{i:03d}.png")
        kind = i % 3
        if kind == 0:
            question = f"Classify the given image in one of the following classes: {', '.join(classes)}."
            answer = cls
        elif kind == 1:
            question, answer = f"Is there a {cls} in the image?", "yes" if i % 2 else "no"
        else:
            question, answer = "Describe the image briefly.", f"An aerial view of {cls} with {i % 5 + 1} patches."
        if i == 8:  # a caption record
            answer = EVIL_ANSWER
        rows.append({"id": f"pool_{i:03d}", "image": f"images/{i:03d}.png",
                     "conversations": [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": answer}]})
    path = folder / "pool.json"
    path.write_text(json.dumps(rows, indent=2))
    return path


def synthetic_selection(n: int, k: int, keep_every: int, seed: int = 0) -> Selection:
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, k, n)
    scores = rng.random(n)
    kept = np.arange(0, n, keep_every)
    return Selection(kept, clusters[kept], scores[kept], np.zeros(len(kept), dtype=np.int64), clusters, scores,
                     {"clusters": k})


def synthetic_header(selection: Selection, n: int) -> dict:
    return {"method": "synthetic", "n_total": n, "n_kept": len(selection), "budget": 0.5, "seed": 0,
            "config_hash": "0" * 16, "options": {}, "info": selection.info}


def synthetic_records(n: int) -> list[Record]:
    turns = [{"from": "human", "value": "<image>\nClassify the given image in one of the following classes: a, b."},
             {"from": "gpt", "value": "a"}]
    return [Record(f"r{i}", [f"{i}.png"], turns, "synthetic", "classification") for i in range(n)]
