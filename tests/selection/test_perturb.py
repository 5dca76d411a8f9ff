import numpy as np
import pytest
from PIL import Image

from selection.features.inputs import Sample
from selection.perturb import (
    IMAGE_PERTURBATIONS,
    PERTURBATIONS,
    parse_perturbation,
    patch_mask,
    perturb_sample,
    sample_seed,
    word_dropout,
    word_shuffle,
)

IMG = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
TEXT = "<image>\nIs there a road next to the river in this image?"


def pixels(img):
    return np.asarray(img, dtype=np.int16)


@pytest.mark.parametrize("name", list(IMAGE_PERTURBATIONS))
def test_image_perturbations_are_seeded_and_change_the_image(name):
    p = parse_perturbation(f"image:{name}")
    a, b = p(IMG, 3), p(IMG, 3)
    assert a.size == IMG.size and a.mode == "RGB"
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(IMG))
    if name != "blur":  # a Gaussian blur has no randomness
        assert not np.array_equal(pixels(a), pixels(p(IMG, 4)))


def test_gaussian_noise_sigma_sets_the_spread():
    small = pixels(parse_perturbation("image:gaussian_noise(sigma=0.02)")(IMG, 0)) - pixels(IMG)
    large = pixels(parse_perturbation("image:gaussian_noise(sigma=0.2)")(IMG, 0)) - pixels(IMG)
    assert 2 < small.std() < 8 and large.std() > 30


def test_patch_mask_blacks_out_the_requested_share():
    out = pixels(patch_mask(Image.new("RGB", (64, 64), (200, 100, 50)), seed=1, grid=4, ratio=0.25))
    assert (out.sum(axis=2) == 0).mean() == pytest.approx(4 / 16)


@pytest.mark.parametrize("fn", [word_dropout, word_shuffle])
def test_text_perturbations_keep_placeholders_and_are_seeded(fn):
    outs = [fn(TEXT, s) for s in range(20)]
    assert all(o.split()[0] == "<image>" and o.count("<image>") == 1 for o in outs)
    assert fn(TEXT, 5) == fn(TEXT, 5)
    assert any(o != " ".join(TEXT.split()) for o in outs)
    if fn is word_shuffle:
        assert all(sorted(o.split()) == sorted(TEXT.split()) for o in outs)


def test_word_dropout_never_empties_the_instruction():
    assert word_dropout("<image> road", 0, p=1.0) == "<image> road"


def test_parser_params_errors_and_identity():
    assert parse_perturbation("image:blur(kernel_size=3, sigma=2.5)").params == {"kernel_size": 3, "sigma": 2.5}
    assert parse_perturbation({"name": "text:word_dropout", "p": 0.3}).describe() == "text:word_dropout(p=0.3)"
    assert parse_perturbation(None).name == "image:gaussian_noise"
    assert parse_perturbation("none").name == "identity"
    with pytest.raises(ValueError, match="unknown perturbation 'image:swirl'"):
        parse_perturbation("image:swirl")
    with pytest.raises(ValueError, match="no parameter radius; it takes: kernel_size, sigma"):
        parse_perturbation("image:blur(radius=2)")
    assert set(PERTURBATIONS) >= {"image:patch_mask", "text:word_shuffle", "identity"}


def test_perturb_sample_touches_only_its_modality_and_seeds_by_id():
    sample = Sample("Is there a road?", "yes", [IMG, IMG])
    noisy = perturb_sample(sample, parse_perturbation("image:gaussian_noise"), 7)
    assert noisy.question == sample.question and len(noisy.images) == 2
    assert not np.array_equal(pixels(noisy.images[0]), pixels(noisy.images[1]))  # each image its own seed
    shuffled = perturb_sample(sample, parse_perturbation("text:word_shuffle"), 7)
    assert shuffled.images == sample.images
    assert sample_seed(0, "r1") == sample_seed(0, "r1") != sample_seed(1, "r1")
