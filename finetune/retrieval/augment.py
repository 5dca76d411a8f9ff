"""HarMA's own RandAugment (HARMA.md section 3), written from the public code's definition
(``dataset/randaugment.py``, ``RandomAugment(2, 7, isPIL=True, augs=[...])`` in ``dataset/__init__.py``).

Two ops are drawn *with replacement* from the ten below; each is applied with probability 0.5, at level
M = 7 of 10. The levels are:

* Brightness, Sharpness: factor ``M / 10 * 1.8 + 0.1`` = 1.36. It is always above 1, so these ops only
  brighten and sharpen.
* ShearX, ShearY: ``M / 10 * 0.3`` = 0.21. Rotate: ``M / 10 * 30`` = 21 degrees. TranslateX, TranslateY:
  ``M / 10 * 10`` = 7 **pixels**, whatever the image size. Each of these gets a random sign.
* Identity, AutoContrast, Equalize: no level.

Geometric ops fill with grey (128, 128, 128) and interpolate bilinearly. They use the public code's
``cv2.warpAffine`` matrices on pixel indices: shears about the top-left corner (not centred), and a
rotation about index (W/2, H/2). Brightness truncates ``v * factor`` to uint8 as the public table does.
Equalize and Sharpness are PIL's, which the public cv2 versions reproduce, as their docstrings say.

AutoContrast is PIL's too, and here the public code differs. It computes ``-low`` on a uint8 scalar,
which wraps around (the file silences that overflow warning), so a channel whose minimum is above 0
becomes all 255. The public op whitens most real images. This is a bug, not a choice, so it is not
copied.

Checked once against the public functions (cv2 5.0, numpy 2.4, a 64x48 test image, not part of the
suite, since cv2 is not a dependency). Equalize, Brightness, Sharpness and TranslateX/Y are identical.
ShearX/Y and Rotate are within 1 grey level everywhere except next to the grey fill, where cv2 blends the
border value into the edge pixels. AutoContrast differs as said above.

Randomness comes from torch's global generator (the public code uses numpy's), so the training loop's
per-epoch ``torch.manual_seed`` makes a resumed epoch repeat its augmentations.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageEnhance, ImageOps

HARMA_OPS = ("Identity", "AutoContrast", "Equalize", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX",
             "TranslateY", "Rotate")
MAX_LEVEL = 10
FILL = (128, 128, 128)


def _signed(value: float) -> float:
    return -value if torch.rand(()).item() < 0.5 else value


def _affine(img: Image.Image, data: tuple) -> Image.Image:
    # PIL maps each output pixel to its input position: data = (a, b, c, d, e, f), x_in = a x + b y + c.
    return img.transform(img.size, Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=FILL)


def apply_op(img: Image.Image, name: str, level: float) -> Image.Image:
    """One op at ``level`` (of ``MAX_LEVEL``) on an RGB image; signed ops draw their sign from torch."""
    if name == "Identity":
        return img
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name in ("Brightness", "Sharpness"):
        factor = level / MAX_LEVEL * 1.8 + 0.1
        if name == "Brightness":
            return img.point([min(255, int(v * factor)) for v in range(256)] * len(img.getbands()))
        return ImageEnhance.Sharpness(img).enhance(factor)
    if name in ("ShearX", "ShearY"):
        shear = _signed(level / MAX_LEVEL * 0.3)
        # forward x' = x + s y (ShearX) or y' = y + s x (ShearY) on pixel indices, as cv2.warpAffine; PIL wants
        # the inverse and works on pixel centres (index + 0.5), hence the s / 2 offset
        data = (1, -shear, shear / 2, 0, 1, 0) if name == "ShearX" else (1, 0, 0, -shear, 1, shear / 2)
        return _affine(img, data)
    if name in ("TranslateX", "TranslateY"):
        offset = _signed(level / MAX_LEVEL * 10.0)  # pixels
        # forward x' = x - offset (the public matrix [[1, 0, -offset], [0, 1, 0]]); inverse x = x' + offset
        return _affine(img, (1, 0, offset, 0, 1, 0) if name == "TranslateX" else (1, 0, 0, 0, 1, offset))
    if name == "Rotate":
        degrees = _signed(level / MAX_LEVEL * 30.0)  # counter-clockwise, as cv2 and PIL
        # about pixel index (W/2, H/2), as cv2.getRotationMatrix2D((W/2, H/2)): PIL's centre is in centre coordinates
        center = (img.size[0] / 2 + 0.5, img.size[1] / 2 + 0.5)
        return img.rotate(degrees, resample=Image.BILINEAR, fillcolor=FILL, center=center)
    raise ValueError(f"unknown RandAugment op '{name}'; known: {', '.join(HARMA_OPS)}")


class HarmaRandAugment:
    """``n`` ops drawn with replacement from ``ops``, each applied with probability ``p``, at ``magnitude``."""

    def __init__(self, n: int = 2, magnitude: float = 7, p: float = 0.5, ops: tuple[str, ...] = HARMA_OPS):
        self.n, self.magnitude, self.p, self.ops = n, magnitude, p, tuple(ops)

    def __call__(self, img: Image.Image) -> Image.Image:
        for index in torch.randint(len(self.ops), (self.n,)).tolist():
            if torch.rand(()).item() < self.p:
                img = apply_op(img, self.ops[index], self.magnitude)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, magnitude={self.magnitude}, p={self.p}, ops={self.ops})"
