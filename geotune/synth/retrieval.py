"""SynthRS-RSITMD: an image-text retrieval set in the RSITMD layout (HARMA.md sections 4 and 7).

Each image is a class-coloured, textured field with one marker square; the class, the marker's colour
and its quadrant are visible in the pixels and named in the captions, so a tiny CLIP can learn the
pairing. Five templated captions per image; about a quarter of the images repeat a caption exactly, as
RSICD does. Layout::

    SynthRS-RSITMD/train.json   [{caption, image: "train/img_00000.png", image_id, label_name, label}, ...]
    SynthRS-RSITMD/val.json     [{image: "val/img_00000.png", caption: [5 strings], label_name, label}, ...]
    SynthRS-RSITMD/test.json    [{image: "test/img_00000.png", caption: [5 strings]}, ...]

``write_synthrs_rsitmd_pretrain`` writes the corpus a benchmark pretrains its CLIP on before fine-tuning
(``SynthRS-RSITMD-pretrain/``, train and val): every class, its own random stream (no image of the
fine-tuning set), and captions in other templates and other words for the marker's place ("north-west",
not "top left") and for half the classes ("cropland", not "farmland"), as GeoRSCLIP's RS5M captions are not RSITMD's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geotune.synth.layouts import save_image, stream_rng, write_json

FOLDER = "SynthRS-RSITMD"
CLASSES = {  # name -> base RGB of the field
    "airport": (150, 150, 150), "beach": (230, 210, 150), "farmland": (170, 140, 60), "forest": (30, 100, 40),
    "industrial": (120, 90, 110), "parking": (60, 60, 70), "river": (40, 80, 170), "residential": (190, 110, 90),
}
MARKERS = {"red": (220, 30, 30), "white": (245, 245, 245), "yellow": (235, 220, 40), "black": (10, 10, 10)}
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
TEMPLATES = (
    "{a_cls} scene with a {colour} square in the {pos}",
    "an aerial image of {a_cls} area; a {colour} block sits at the {pos}",
    "{colour} object in the {pos} of {a_cls} area",
    "remote sensing view of {cls} with a {colour} mark at the {pos}",
    "there is a {colour} square at the {pos} of this {cls} image",
)
DUPLICATE_SHARE = 0.25

PRETRAIN_FOLDER = "SynthRS-RSITMD-pretrain"
# None of these is a fine-tuning template, and the quadrants are named in other words (tested).
# Compass words, as map-minded RS captions put it: the fine-tuning's "top left" is then a new phrase for a
# visual feature the pretrained image tower already has, the kind of shift HarMA's adapters are for.
PRETRAIN_QUADRANTS = ("north-west", "north-east", "south-west", "south-east")
# Half the classes go by another name in the corpus, as RS5M and RSITMD name some scenes differently: the
# image tower knows every class, the text tower meets "farmland" first when fine-tuned. With the class
# names shared, class and colour alone saturate R@5/R@10 and zero-shot was within 8 val mR of full FT.
PRETRAIN_CLASS_WORDS = {"airport": "airfield", "farmland": "cropland", "forest": "woodland", "residential": "housing"}
PRETRAIN_TEMPLATES = (
    "satellite photo of {cls} land, {colour} patch toward the {pos}",
    "{cls} seen from above, with a {colour} tile near its {pos} corner",
    "overhead picture: {cls}; one {colour} spot, {pos}",
    "a {colour} patch lies in the {pos} part of this {cls} picture",
    "bird's eye view of {cls} and a {colour} marker, {pos}",
)


def _draw(rng: np.random.Generator, cls: str, colour: str, quadrant: int, size: int) -> np.ndarray:
    base = np.array(CLASSES[cls], dtype=np.float64)
    field = base + rng.normal(0, 12, (size, size, 3))  # per-image texture
    stripes = (np.arange(size) // max(2, size // 8)) % 2  # a per-class stripe direction adds structure
    field += 15 * (stripes[:, None, None] if list(CLASSES).index(cls) % 2 else stripes[None, :, None])
    side = size // 4
    half = size // 2
    y0 = (quadrant // 2) * half + int(rng.integers(0, half - side + 1))
    x0 = (quadrant % 2) * half + int(rng.integers(0, half - side + 1))
    field[y0:y0 + side, x0:x0 + side] = MARKERS[colour]
    return np.clip(field, 0, 255).astype(np.uint8)


def _image(rng: np.random.Generator, size: int, n_classes: int, templates=TEMPLATES, quadrants=QUADRANTS,
           duplicate_share: float = DUPLICATE_SHARE, class_words=None) -> tuple[np.ndarray, dict, list[str]]:
    label = int(rng.integers(n_classes))
    cls = list(CLASSES)[label]
    colour = list(MARKERS)[int(rng.integers(len(MARKERS)))]
    quadrant = int(rng.integers(len(QUADRANTS)))
    word = (class_words or {}).get(cls, cls)
    a_cls = ("an " if word[0] in "aeiou" else "a ") + word
    captions = [t.format(cls=word, a_cls=a_cls, colour=colour, pos=quadrants[quadrant]) for t in templates]
    if rng.random() < duplicate_share:
        captions[4] = captions[0]
    return _draw(rng, cls, colour, quadrant, size), {"label_name": cls, "label": label}, captions


def _write_splits(out: Path, split_sizes: dict[str, int], draw) -> dict[str, int]:
    """Each split's images and json; ``draw(split, i)`` gives (pixels, label, captions)."""
    counts = {}
    for split, n in split_sizes.items():
        rows = []
        for i in range(n):
            pixels, label, captions = draw(split, i)
            image = f"{split}/img_{i:05d}.png"
            save_image(pixels, out / image)
            if split == "train":
                rows.extend({"caption": c, "image": image, "image_id": i, **label} for c in captions)
            else:
                rows.append({"image": image, "caption": captions, **(label if split == "val" else {})})
        write_json(out / f"{split}.json", rows, indent=1)
        counts[split] = n
    return counts


def write_synthrs_rsitmd(root: Path, seed: int, split_sizes: dict[str, int], image_size: int,
                         n_classes: int = len(CLASSES)) -> dict[str, int]:
    """Write ``root/SynthRS-RSITMD``; returns images per split. Test and val come from benchmark streams.

    ``n_classes`` < 8 draws only the first classes (a narrower "pretraining" domain for benchmarks).
    """
    if not 1 <= n_classes <= len(CLASSES):
        raise ValueError(f"n_classes must be 1..{len(CLASSES)}, got {n_classes}")
    return _write_splits(Path(root) / FOLDER, split_sizes, lambda split, i: _image(
        stream_rng(seed, f"retrieval_{split}", i), image_size, n_classes))


def write_synthrs_rsitmd_pretrain(root: Path, seed: int, split_sizes: dict[str, int], image_size: int,
                                  class_words: dict[str, str] | None = None) -> dict[str, int]:
    """Write ``root/SynthRS-RSITMD-pretrain`` (splits ``train`` and ``val``, the RSITMD layout); returns
    images per split.

    All 8 classes; images from the ``retrieval_pretrain`` stream (keyed by split), so none is a
    fine-tuning image for any seed's splits; captions from ``PRETRAIN_TEMPLATES`` with the quadrants
    in ``PRETRAIN_QUADRANTS``' words, none repeated. ``label_name`` stays the class.

    Args:
        class_words: the corpus's word for a class, where it is not the class name. None (the default)
            is ``PRETRAIN_CLASS_WORDS``, half the classes renamed; ``{}`` names every class as the
            fine-tuning captions do (a milder shift: only templates and quadrant words differ). The
            images do not depend on it.
    """
    unknown = set(split_sizes) - {"train", "val"}
    if unknown:
        raise ValueError(f"the pretraining corpus has splits train and val, not {sorted(unknown)}")
    return _write_splits(Path(root) / PRETRAIN_FOLDER, split_sizes, lambda split, i: _image(
        stream_rng(seed, "retrieval_pretrain", ("train", "val").index(split), i), image_size, len(CLASSES),
        PRETRAIN_TEMPLATES, PRETRAIN_QUADRANTS, duplicate_share=0.0,
        class_words=PRETRAIN_CLASS_WORDS if class_words is None else class_words))
