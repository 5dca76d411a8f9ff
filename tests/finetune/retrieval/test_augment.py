"""HarMA's RandAugment: each op as the public code's cv2 matrices define it (a lone bright pixel lands where the
forward matrix sends it), the levels of M = 7, and two draws with replacement, each applied with p = 0.5."""

import numpy as np
import pytest
import torch
from PIL import Image

from finetune.retrieval import augment
from finetune.retrieval.augment import HarmaRandAugment, apply_op
from finetune.retrieval.data import image_transform


@pytest.fixture
def positive_sign(monkeypatch):
    monkeypatch.setattr(augment, "_signed", lambda value: value)


def _dot(x: int, y: int, size=(40, 30)) -> Image.Image:
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[y, x] = (255, 0, 0)  # red: told apart from the black ground and the grey fill (R - G = 0 for both)
    return Image.fromarray(pixels)


def _brightest(img: Image.Image) -> tuple[float, float]:
    """Centre of the red, weighted by R - G (interpolation spreads the dot over neighbours)."""
    rgb = np.asarray(img).astype(float)
    a = np.clip(rgb[..., 0] - rgb[..., 1], 0, None)
    ys, xs = np.nonzero(a)
    return float(np.average(xs, weights=a[ys, xs])), float(np.average(ys, weights=a[ys, xs]))


@pytest.mark.parametrize(("op", "expected"), [
    ("ShearX", lambda x, y: (x + 0.21 * y, y)),      # cv2 M = [[1, s, 0], [0, 1, 0]], about the top-left corner
    ("ShearY", lambda x, y: (x, y + 0.21 * x)),
    ("TranslateX", lambda x, y: (x - 7, y)),         # M = [[1, 0, -7], [0, 1, 0]]: 7 pixels, not a fraction
    ("TranslateY", lambda x, y: (x, y - 7)),
    # getRotationMatrix2D((W/2, H/2), 21): counter-clockwise on screen (y down) about pixel index (20, 15)
    ("Rotate", lambda x, y: (20 + np.cos(np.radians(21)) * (x - 20) + np.sin(np.radians(21)) * (y - 15),
                             15 - np.sin(np.radians(21)) * (x - 20) + np.cos(np.radians(21)) * (y - 15))),
])
def test_geometric_ops_move_a_pixel_where_the_public_matrix_sends_it(op, expected, positive_sign):
    for x, y in ((30, 20), (12, 25), (25, 10)):
        got = _brightest(apply_op(_dot(x, y), op, 7))
        assert got == pytest.approx(expected(x, y), abs=0.1), (op, x, y, got)


def test_photometric_levels(positive_sign):
    ramp = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (4, 1))[..., None].repeat(3, axis=2))
    bright = np.asarray(apply_op(ramp, "Brightness", 7))[0, :, 0]
    assert bright.tolist() == [min(255, int(v * 1.36)) for v in range(256)]  # factor 7/10*1.8+0.1, truncated
    assert np.asarray(apply_op(ramp, "Identity", 7)).tolist() == np.asarray(ramp).tolist()
    grey = Image.fromarray(np.full((8, 8, 3), 90, dtype=np.uint8))
    grey.putpixel((0, 0), (60, 60, 60))
    stretched = np.asarray(apply_op(grey, "AutoContrast", 7))
    assert stretched.min() == 0 and stretched.max() == 255  # PIL's: not the public uint8-overflow whitening
    with pytest.raises(ValueError, match="unknown RandAugment op 'Solarise'"):
        apply_op(grey, "Solarise", 7)


def test_two_draws_with_replacement_each_with_probability_one_half():
    torch.manual_seed(0)
    ramp = Image.fromarray(np.tile(np.arange(0, 160, 10, dtype=np.uint8), (2, 1))[..., None].repeat(3, axis=2))
    levels = {0: 0, 1: 0, 2: 0}
    transform = HarmaRandAugment(ops=("Brightness",))  # brightening once and twice can be told apart
    for _ in range(4000):
        value = np.asarray(transform(ramp))[0, 5, 0]  # 50 -> 68 -> 92
        levels[{50: 0, 68: 1, 92: 2}[int(value)]] += 1
    assert [levels[k] / 4000 for k in (0, 1, 2)] == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    torch.manual_seed(3)
    first = [HarmaRandAugment()(ramp).tobytes() for _ in range(20)]
    torch.manual_seed(3)
    assert [HarmaRandAugment()(ramp).tobytes() for _ in range(20)] == first  # torch's generator: resumable


def test_train_transform_uses_the_chosen_randaugment():
    harma = image_transform(32, train=True, randaugment="harma")
    assert any(isinstance(t, HarmaRandAugment) for t in harma.transforms)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    assert harma(img).shape == (3, 32, 32)
    assert not any(isinstance(t, HarmaRandAugment) for t in image_transform(32, train=True, randaugment="torchvision").transforms)
    with pytest.raises(ValueError, match="harma.randaugment: 'rand' is not one of harma, torchvision"):
        image_transform(32, train=True, randaugment="rand")
