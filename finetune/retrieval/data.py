"""RSITMD / RSICD retrieval annotations (HARMA.md section 4) and their torch datasets.

Train file: a JSON list with one row per caption, ``{caption, image, image_id, ...}``; ``image_id``
groups the captions of one image (the multi-positive InfoNCE uses it). Val/test files: a JSON list of
``{image, caption: [str, ...]}``, one entry per image. ``image`` is relative to the image root; paths
that are absolute or climb out of it are refused. Errors name ``file:line``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from finetune.data.images import ImageError, confined_path, escapes_root, read_image
from finetune.data.jsonio import iter_json_array
from finetune.data.loader import TrainingData
from finetune.data.records import GPT, HUMAN, IMAGE_TOKEN, Record
from finetune.retrieval.augment import HarmaRandAugment

# CLIP's normalisation (OpenAI), the default when a checkpoint has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PUNCTUATION = re.compile(r"[,.'!?\"()*#:;~]")


class RetrievalDataError(ValueError):
    """A retrieval annotation the user must fix; the message names file:line."""


def pre_caption(caption: str, max_words: int = 30) -> str:
    """HarMA's caption cleaning: lowercase, punctuation and ``-``/``/`` to spaces, at most ``max_words``."""
    text = _PUNCTUATION.sub(" ", caption.lower()).replace("-", " ").replace("/", " ")
    words = text.split()
    return " ".join(words[:max_words])


@dataclass
class TrainPairs:
    """One row per caption: ``images[i]`` (relative path), ``captions[i]``, ``image_ids[i]`` (0..n_images-1),
    ``locations[i]`` (``file:line`` it was read from, "" when built in code)."""

    images: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    image_root: str = ""
    locations: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, rows) -> TrainPairs:
        """The rows ``rows`` (indices, in that order); image ids keep their values (the loss only compares them)."""
        rows = [int(i) for i in rows]
        where = self.locations or [""] * len(self)
        return TrainPairs([self.images[i] for i in rows], [self.captions[i] for i in rows],
                          [self.image_ids[i] for i in rows], self.image_root, [where[i] for i in rows])


# The source name of train rows seen as records (selection reports count records per source).
PAIR_SOURCE = "retrieval"


def pair_records(pairs: TrainPairs) -> list[Record]:
    """Each train row as a ``Record`` for selection: the image, and the caption as the answer.

    Ids are ``<image>#<k>`` for the k-th caption of that image (in file order), stable and readable in a
    manifest. ``task`` is ``caption``: a row is an image with one describing text.
    """
    seen: dict[str, int] = {}
    records = []
    where = pairs.locations or [""] * len(pairs)
    for image, caption, location in zip(pairs.images, pairs.captions, where, strict=True):
        k = seen[image] = seen.get(image, -1) + 1
        records.append(Record(id=f"{image}#{k}", images=[image], source=PAIR_SOURCE, task="caption",
                              conversations=[{"from": HUMAN, "value": IMAGE_TOKEN}, {"from": GPT, "value": caption}],
                              location=location))
    return records


def pairs_training_data(pairs: TrainPairs) -> TrainingData:
    """Train rows as the ``TrainingData`` selection reads (records, images under ``image_root``)."""
    return TrainingData(records=pair_records(pairs), image_roots={PAIR_SOURCE: Path(pairs.image_root)},
                        counts={PAIR_SOURCE: len(pairs)})


@dataclass
class EvalSplit:
    """Images and all their captions; ``txt2img[t]`` is caption t's image, ``img2txt[i]`` image i's captions."""

    images: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    txt2img: list[int] = field(default_factory=list)
    img2txt: list[list[int]] = field(default_factory=list)
    image_root: str = ""


def _where(path, item) -> str:
    return f"{path}:{item.location}"


def _image(path, item, obj, image_root: str) -> str:
    image = obj.get("image")
    if not isinstance(image, str) or not image:
        raise RetrievalDataError(f"{_where(path, item)}: 'image' must be a relative path string, got {image!r}")
    if escapes_root(image):
        raise RetrievalDataError(f"{_where(path, item)}: image path '{image}' is absolute or leaves the image "
                                 f"root '{image_root}'; refused (write it relative to harma.image_root)")
    return image


def _caption(path, item, text, max_words: int) -> str:
    if not isinstance(text, str) or not pre_caption(text, max_words):
        raise RetrievalDataError(f"{_where(path, item)}: caption must be a non-empty string, got {text!r}")
    return pre_caption(text, max_words)


def _check_files(kind: str, path, images: list[str], lines: list[str], image_root: str) -> None:
    missing = []
    for img, line in zip(images, lines, strict=True):
        try:  # real paths, as for the instruction formats: a symlink inside the root may not lead out of it
            if not confined_path(image_root, img).is_file():
                missing.append((img, line))
        except ImageError as err:
            raise RetrievalDataError(f"{line}: {err}") from None
    if missing:
        img, line = missing[0]
        raise RetrievalDataError(f"{line}: {len(missing)} {kind} image(s) missing under image root '{image_root}' "
                                 f"(first: '{img}'); fix harma.image_root or the file")


def read_train_pairs(path: str | os.PathLike, image_root: str, max_words: int = 30,
                     check_images: bool = True) -> TrainPairs:
    """Read a flat train file (rows ``{caption, image, image_id}``); ``image_id`` values become 0..n-1.

    Raises:
        RetrievalDataError: a malformed row, an escaping path, an image id shared by two files, or a
            missing image, naming ``file:line``.
    """
    pairs, ids, first_image, lines = TrainPairs(image_root=str(image_root)), {}, {}, []
    for item in iter_json_array(path):
        obj = item.obj
        if not isinstance(obj, dict):
            raise RetrievalDataError(f"{_where(path, item)}: expected an object {{caption, image, image_id}}, "
                                     f"got {type(obj).__name__} (is this a val/test file?)")
        image = _image(path, item, obj, image_root)
        key = obj.get("image_id", image)
        if isinstance(key, (list, dict)):
            raise RetrievalDataError(f"{_where(path, item)}: 'image_id' must be a number or string, got {key!r}")
        if first_image.setdefault(key, image) != image:
            raise RetrievalDataError(f"{_where(path, item)}: image_id {key!r} is used for '{first_image[key]}' and "
                                     f"'{image}'; captions of one image need one id")
        pairs.images.append(image)
        pairs.captions.append(_caption(path, item, obj.get("caption"), max_words))
        pairs.image_ids.append(ids.setdefault(key, len(ids)))
        lines.append(_where(path, item))
    pairs.locations = lines
    if not pairs.captions:
        raise RetrievalDataError(f"{path}: no training rows")
    if check_images:
        _check_files("train", path, pairs.images, lines, image_root)
    return pairs


def read_eval_split(path: str | os.PathLike, image_root: str, max_words: int = 30,
                    check_images: bool = True) -> EvalSplit:
    """Read a val/test file (entries ``{image, caption: [str, ...]}``)."""
    split, lines = EvalSplit(image_root=str(image_root)), []
    for item in iter_json_array(path):
        obj = item.obj
        if not isinstance(obj, dict):
            raise RetrievalDataError(f"{_where(path, item)}: expected an object {{image, caption: [...]}}, "
                                     f"got {type(obj).__name__}")
        image = _image(path, item, obj, image_root)
        captions = obj.get("caption")
        if not isinstance(captions, list) or not captions:
            raise RetrievalDataError(f"{_where(path, item)}: 'caption' must be a non-empty list of strings "
                                     "(a flat one-row-per-caption file is a train file)")
        index = len(split.images)
        split.images.append(image)
        split.img2txt.append([])
        for text in captions:
            split.img2txt[index].append(len(split.captions))
            split.captions.append(_caption(path, item, text, max_words))
            split.txt2img.append(index)
        lines.append(_where(path, item))
    if not split.images:
        raise RetrievalDataError(f"{path}: no images")
    if check_images:
        _check_files("eval", path, split.images, lines, image_root)
    return split


def image_transform(size: int, mean=CLIP_MEAN, std=CLIP_STD, train: bool = False, augment: bool = True,
                    randaugment: str = "harma"):
    """HarMA's pixels: train RandomResizedCrop(0.5-1) + flip + RandAugment; test a bicubic resize.

    ``randaugment``: ``harma`` (its own op list, ``finetune/retrieval/augment.py``) or ``torchvision``
    (``RandAugment(2, 7)``, 14 ops, one applied per draw).
    """
    from torchvision import transforms as T

    bicubic = T.InterpolationMode.BICUBIC
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    if train and augment:
        if randaugment not in ("harma", "torchvision"):
            raise ValueError(f"harma.randaugment: '{randaugment}' is not one of harma, torchvision")
        ops = HarmaRandAugment(2, 7) if randaugment == "harma" else T.RandAugment(num_ops=2, magnitude=7)
        return T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0), interpolation=bicubic),
                          T.RandomHorizontalFlip(), ops, *tail])
    return T.Compose([T.Resize((size, size), interpolation=bicubic), *tail])


def _open_rgb(root: str, image: str):
    # The one image reader (finetune/data/images.py): 16-bit, float and multi-band TIFFs stretched per band
    # instead of PIL's convert("RGB") (near-white or black), and the path confined to the root.
    return read_image(confined_path(root, image))


class PairDataset:
    """``(pixels, caption, image_id)`` per train row."""

    def __init__(self, pairs: TrainPairs, transform):
        self.pairs, self.transform = pairs, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        p = self.pairs
        return self.transform(_open_rgb(p.image_root, p.images[i])), p.captions[i], p.image_ids[i]


class ImageDataset:
    """Pixels of every image of an eval split, in order."""

    def __init__(self, split: EvalSplit, transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split.images)

    def __getitem__(self, i: int):
        return self.transform(_open_rgb(self.split.image_root, self.split.images[i]))
