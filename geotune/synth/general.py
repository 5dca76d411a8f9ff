"""The general (non remote-sensing) pool and its held-out test: ``general/{train,test}.json``.

Two kinds of records, both with short exact answers so forgetting can be scored by exact match:
- images of flat shapes on a plain background: counting, colour, shape and presence questions;
- text-only instructions (LLaVA records without ``image``): arithmetic, comparisons, opposites,
  spelling backwards.
Train and test come from disjoint random streams, and a test prompt never appears in train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from geotune.synth.layouts import save_image, stream_rng, write_json

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
           "black": (20, 20, 20), "white": (245, 245, 245)}  # fmt: skip
SHAPES = ("circle", "square", "triangle")
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "day": "night", "fast": "slow", "open": "closed",
             "light": "dark", "old": "new", "happy": "sad", "wet": "dry", "early": "late", "full": "empty"}  # fmt: skip
WORDS = ("tree", "river", "house", "cloud", "stone", "field", "road", "lake", "map", "bridge", "farm", "city")
SUFFIX = " Answer with a single word or number."


def draw_shapes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """1-5 non-overlapping flat shapes; returns pixels and (colour, shape) of each."""
    background = tuple(int(v) for v in rng.integers(150, 215, 3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    cells = rng.permutation(9)[: int(rng.integers(1, 6))]
    cell = size / 3
    drawn = []
    for idx in cells:
        colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        r = cell * rng.uniform(0.28, 0.42)
        cx, cy = (idx % 3 + 0.5) * cell, (idx // 3 + 0.5) * cell
        box = [cx - r, cy - r, cx + r, cy + r]
        if shape == "circle":
            draw.ellipse(box, fill=COLOURS[colour])
        elif shape == "square":
            draw.rectangle(box, fill=COLOURS[colour])
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLOURS[colour])
        drawn.append((colour, shape))
    return np.asarray(img), drawn


def shape_question(rng: np.random.Generator, drawn: list[tuple[str, str]]) -> tuple[str, str]:
    shapes = [s for _, s in drawn]
    colours = [c for c, _ in drawn]
    form = int(rng.integers(4))
    unique_shapes = [s for s in SHAPES if shapes.count(s) == 1]
    unique_colours = [c for c in COLOURS if colours.count(c) == 1]
    if form == 1 and unique_shapes:
        s = str(rng.choice(unique_shapes))
        return f"What colour is the {s}?", colours[shapes.index(s)]
    if form == 2 and unique_colours:
        c = str(rng.choice(unique_colours))
        return f"What shape is the {c} object?", shapes[colours.index(c)]
    if form == 3:
        c, s = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        return f"Is there a {c} {s} in the image?", "yes" if (c, s) in drawn else "no"
    return "How many shapes are there in the image?", str(len(drawn))


def text_instruction(rng: np.random.Generator) -> tuple[str, str]:
    form = int(rng.integers(4))
    if form == 0:
        a, b = (int(v) for v in rng.integers(0, 50, 2))
        return f"What is {a} + {b}?", str(a + b)
    if form == 1:
        a, b = (int(v) for v in rng.choice(100, 2, replace=False))
        return f"Which number is larger, {a} or {b}?", str(max(a, b))
    if form == 2:
        word = str(rng.choice(list(OPPOSITES)))
        return f"What is the opposite of '{word}'?", OPPOSITES[word]
    word = str(rng.choice(WORDS))
    return f"Write the word '{word}' backwards.", word[::-1]


def general_records(root: Path, split: str, n: int, seed: int, image_size: int, text_share: float,
                    exclude: set[str]) -> list[dict]:
    """``n`` records of ``split``; images under ``general/images/``; prompts in ``exclude`` are skipped."""
    records, k = [], 0
    while len(records) < n:
        rng = stream_rng(seed, f"general_{split}", k)
        k += 1
        rid = f"general_{split}_{len(records):05d}"
        if rng.random() < text_share:
            question, answer = text_instruction(rng)
            if question in exclude:
                continue
            records.append({"id": rid, "conversations": [{"from": "human", "value": question + SUFFIX},
                                                         {"from": "gpt", "value": answer}]})
            continue
        pixels, drawn = draw_shapes(rng, image_size)
        question, answer = shape_question(rng, drawn)
        save_image(pixels, root / "general" / "images" / f"{rid}.png")
        records.append({"id": rid, "image": f"images/{rid}.png",
                        "conversations": [{"from": "human", "value": "<image>\n" + question + SUFFIX},
                                          {"from": "gpt", "value": answer}]})
    return records


def write_general(root: Path, seed: int, n_train: int, n_test: int, image_size: int,
                  text_share: float = 0.3) -> dict[str, int]:
    """``general/test.json`` first, then ``general/train.json`` without any of the test's text prompts."""
    test = general_records(root, "test", n_test, seed, image_size, text_share, set())
    held_out = {r["conversations"][0]["value"][: -len(SUFFIX)] for r in test if "image" not in r}
    train = general_records(root, "train", n_train, seed, image_size, text_share, held_out)
    write_json(root / "general" / "test.json", test, indent=2)
    write_json(root / "general" / "train.json", train, indent=2)
    return {"train": len(train), "test": len(test)}
