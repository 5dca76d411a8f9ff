"""A small RSITMD-layout folder written by hand, for the library tests (they may not use geotune.synth).

Train rows ``{caption, image, image_id, label_name, label}`` (five captions per image), val/test rows
``{image, caption: [5]}``: the layout HARMA.md section 4 gives, flat-colour PNGs at ``size`` pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 60, 200), "grey": (128, 128, 128)}


def write_rsitmd_files(root: Path, sizes: dict[str, int], size: int = 32, seed: int = 0) -> Path:
    """Write ``root/train.json``, ``val.json``, ``test.json`` and their images; returns ``root``."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    for split, n in sizes.items():
        rows = []
        for i in range(n):
            label = int(rng.integers(len(names)))
            pixels = np.clip(np.array(COLOURS[names[label]]) + rng.normal(0, 12, (size, size, 3)), 0, 255)
            image = f"{split}/img_{i:05d}.png"
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.astype(np.uint8)).save(root / image)
            captions = [f"a {names[label]} scene number {i} in words {k}" for k in range(5)]
            if split == "train":
                rows += [{"caption": c, "image": image, "image_id": i, "label_name": names[label], "label": label}
                         for c in captions]
            else:
                rows.append({"image": image, "caption": captions})
        (root / f"{split}.json").write_text(json.dumps(rows, indent=1))
    return root
