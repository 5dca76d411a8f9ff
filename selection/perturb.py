"""Seeded perturbations of a sample for the adaptive-shift signal (seed 000; DESIGN.md "Selection" A).

The paper does not publish its perturbation, so geotune offers the ones DESIGN.md lists, each a small
pure function ``fn(x, seed, **params) -> x'`` (PIL image or instruction text) that returns the same
output for the same seed:

image (applied to every image of the sample):
    ``gaussian_noise(sigma=0.1)``   additive N(0, sigma) on [0, 1] pixels, clipped (torchvision GaussianNoise)
    ``blur(kernel_size=5, sigma=1.5)``                      Gaussian blur (torchvision GaussianBlur)
    ``random_resized_crop(scale_min=0.5, scale_max=0.9)``   crop, resized back to the input size
    ``color_jitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)``
    ``patch_mask(grid=8, ratio=0.25)``   a ``ratio`` share of a grid x grid patch grid set to black
text (applied to the instruction, i.e. the first human turn):
    ``word_dropout(p=0.15)``   drop each word with probability p (at least one word stays)
    ``word_shuffle()``         permute the words
Text perturbations never drop or move ``<image>`` placeholders. ``identity`` changes nothing (a shift
of 0, used to check the signal).

Spec strings (``selection.options.perturbation``): ``"image:gaussian_noise"``,
``"image:gaussian_noise(sigma=0.05)"``, ``"text:word_dropout(p=0.3)"``, ``"identity"``; or a mapping
``{"name": "image:blur", "sigma": 2.0}``. Default: ``image:gaussian_noise`` with sigma 0.1 — a small,
content-preserving change that every image model sees the same way (unlike a crop, which can remove
the object a question is about); the choice is geotune's, not the paper's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from finetune.data.records import IMAGE_TOKEN

DEFAULT_PERTURBATION = "image:gaussian_noise"


@contextlib.contextmanager
def _torch_seed(seed: int):
    """torchvision v2 transforms draw from torch's global RNG: fork it so callers' streams are untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _apply_v2(img: Image.Image, transform, seed: int) -> Image.Image:
    from torchvision.transforms.v2 import functional as F

    with _torch_seed(seed):
        out = transform(F.to_image(img.convert("RGB")))
    return F.to_pil_image(out)


def gaussian_noise(img: Image.Image, seed: int, sigma: float = 0.1) -> Image.Image:
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    with _torch_seed(seed):
        pixels = F.to_dtype(F.to_image(img.convert("RGB")), torch.float32, scale=True)
        noisy = v2.GaussianNoise(mean=0.0, sigma=sigma, clip=True)(pixels)
    return F.to_pil_image(F.to_dtype(noisy, torch.uint8, scale=True))


def blur(img: Image.Image, seed: int, kernel_size: int = 5, sigma: float = 1.5) -> Image.Image:
    from torchvision.transforms import v2

    return _apply_v2(img, v2.GaussianBlur(kernel_size, sigma=(sigma, sigma)), seed)


def random_resized_crop(img: Image.Image, seed: int, scale_min: float = 0.5, scale_max: float = 0.9) -> Image.Image:
    from torchvision.transforms import v2

    size = (img.height, img.width)
    return _apply_v2(img, v2.RandomResizedCrop(size, scale=(scale_min, scale_max), antialias=True), seed)


def color_jitter(img: Image.Image, seed: int, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1) -> Image.Image:
    from torchvision.transforms import v2

    return _apply_v2(img, v2.ColorJitter(brightness, contrast, saturation, hue), seed)


def patch_mask(img: Image.Image, seed: int, grid: int = 8, ratio: float = 0.25) -> Image.Image:
    """Black out ``round(ratio * grid²)`` of the cells of a grid x grid partition (at least one)."""
    pixels = np.array(img.convert("RGB"))
    rng = np.random.default_rng(seed)
    n_cells = grid * grid
    rows = np.linspace(0, pixels.shape[0], grid + 1).astype(int)
    cols = np.linspace(0, pixels.shape[1], grid + 1).astype(int)
    for cell in rng.choice(n_cells, size=max(1, round(ratio * n_cells)), replace=False):
        r, c = divmod(int(cell), grid)
        pixels[rows[r] : rows[r + 1], cols[c] : cols[c + 1]] = 0
    return Image.fromarray(pixels)


def _split_words(text: str) -> list[str]:
    # Placeholders become their own words even when glued to text ("<image>\nWhat ...").
    return text.replace(IMAGE_TOKEN, f" {IMAGE_TOKEN} ").split()


def word_dropout(text: str, seed: int, p: float = 0.15) -> str:
    words = _split_words(text)
    rng = np.random.default_rng(seed)
    keep = [w == IMAGE_TOKEN or rng.random() >= p for w in words]
    if not any(k for w, k in zip(words, keep, strict=True) if w != IMAGE_TOKEN):
        # Dropping every word leaves no instruction at all; keep one at random instead.
        candidates = [i for i, w in enumerate(words) if w != IMAGE_TOKEN]
        if candidates:
            keep[candidates[int(rng.integers(len(candidates)))]] = True
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)


def word_shuffle(text: str, seed: int) -> str:
    words = _split_words(text)
    slots = [i for i, w in enumerate(words) if w != IMAGE_TOKEN]
    order = np.random.default_rng(seed).permutation(len(slots))
    out = list(words)
    for slot, src in zip(slots, order, strict=True):
        out[slot] = words[slots[src]]
    return " ".join(out)


IMAGE_PERTURBATIONS: dict[str, Callable] = {
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "random_resized_crop": random_resized_crop,
    "color_jitter": color_jitter,
    "patch_mask": patch_mask,
}
TEXT_PERTURBATIONS: dict[str, Callable] = {"word_dropout": word_dropout, "word_shuffle": word_shuffle}
PERTURBATIONS: dict[str, Callable] = {
    **{f"image:{name}": fn for name, fn in IMAGE_PERTURBATIONS.items()},
    **{f"text:{name}": fn for name, fn in TEXT_PERTURBATIONS.items()},
    "identity": lambda x, seed: x,
}


@dataclass(frozen=True)
class Perturbation:
    """A parsed spec: ``name`` (registry key), ``kind`` (image | text | identity), checked ``params``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]

    def describe(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({args})" if args else self.name

    def __call__(self, x, seed: int):
        return PERTURBATIONS[self.name](x, seed, **self.params)


_SPEC = re.compile(r"^\s*([\w:]+)\s*(?:\((.*)\))?\s*$")


def _parse_value(text: str) -> Any:
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_perturbation(spec: str | Mapping | None, key: str = "selection.options.perturbation") -> Perturbation:
    """Parse a perturbation spec (see the module docstring); bad names/params fail naming ``key``."""
    if spec is None:
        spec = DEFAULT_PERTURBATION
    if isinstance(spec, Mapping):
        params = {k: v for k, v in dict(spec).items() if k != "name"}
        name = str(spec.get("name", ""))
    else:
        match = _SPEC.match(str(spec))
        if not match:
            raise ValueError(f"{key}: cannot parse '{spec}'; write e.g. image:gaussian_noise(sigma=0.1)")
        name, args = match.group(1), match.group(2) or ""
        params = {}
        for item in filter(None, (a.strip() for a in args.split(","))):
            if "=" not in item:
                raise ValueError(f"{key}: parameter '{item}' in '{spec}' must be name=value")
            k, v = item.split("=", 1)
            params[k.strip()] = _parse_value(v)
    if name in ("none", ""):
        name = "identity"
    if name not in PERTURBATIONS:
        raise ValueError(f"{key}: unknown perturbation '{name}'; choose from {', '.join(PERTURBATIONS)}")
    allowed = [p for p in inspect.signature(PERTURBATIONS[name]).parameters if p not in ("img", "text", "x", "seed")]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{key}: {name} has no parameter {', '.join(unknown)}; it takes: {', '.join(allowed) or 'none'}")
    return Perturbation(name, params)


def sample_seed(seed: int, record_id: str) -> int:
    """A per-sample seed from the run seed and the record id: independent of order, sharding and ranks."""
    digest = hashlib.sha256(f"{seed}\0{record_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def perturb_sample(sample, perturbation: Perturbation, seed: int):
    """A perturbed copy of a :class:`selection.features.inputs.Sample` (images or question changed)."""
    if perturbation.kind == "image":
        return dataclasses.replace(sample, images=[perturbation(img, seed + i) for i, img in enumerate(sample.images)])
    if perturbation.kind == "text":
        return dataclasses.replace(sample, question=perturbation(sample.question, seed))
    return sample
