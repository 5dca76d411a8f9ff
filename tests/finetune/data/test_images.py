"""The one image reader: remote-sensing TIFFs (16-bit, float, multi-band), bad files refused by reason."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import tifffile
from bad_files import write_png_header
from PIL import Image

from finetune.data.images import ImageError, check_image, confined_path, read_image, stretch_to_uint8


def _gradient(dtype, scale: float, offset: float = 0.0) -> np.ndarray:
    """A 32 x 40 horizontal ramp (0..39 per row) times ``scale`` plus ``offset``."""
    ramp = np.tile(np.arange(40, dtype=np.float64), (32, 1))
    return (ramp * scale + offset).astype(dtype)


def _expected(band: np.ndarray) -> np.ndarray:
    """The 2nd-98th percentile stretch computed independently, straight from numpy's percentiles."""
    low, high = np.percentile(band.astype(np.float64), [2, 98])
    return np.rint(np.clip((band - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def test_sixteen_bit_tiff_is_stretched_not_whitened(tmp_path):
    band = _gradient(np.uint16, 40.0, 1000.0)  # 1000..2560: what a calibrated sensor writes
    tifffile.imwrite(tmp_path / "a.tif", band)
    with Image.open(tmp_path / "a.tif") as naive:  # the old reader: near-white, no structure
        assert np.asarray(naive.convert("RGB")).mean() > 250
    image = read_image(tmp_path / "a.tif")
    pixels = np.asarray(image)
    assert image.mode == "RGB" and image.size == (40, 32)
    assert np.array_equal(pixels[..., 0], _expected(band))
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
    assert pixels.min() == 0 and pixels.max() == 255 and 100 < pixels.mean() < 155
    assert check_image(tmp_path / "a.tif") == (40, 32)


def test_float32_tiff_with_nan_is_stretched_not_black(tmp_path):
    band = _gradient(np.float32, 0.01, -0.2)  # reflectance-like, negative values included
    band[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", band)
    pixels = np.asarray(read_image(tmp_path / "f.tif"))
    assert pixels[0, 0, 0] == 0  # NaN -> 0
    finite = band.copy()
    finite[0, 0] = finite[0, 1]
    assert np.array_equal(pixels[1:, :, 0], _expected(finite)[1:])
    assert pixels.max() == 255 and pixels.mean() > 100


def test_four_band_uint16_uses_all_bits_and_data_bands_picks_them(tmp_path):
    # Band k holds the ramp times (k + 1) * 50: 4 x uint16, values up to 7800, in planar (bands, y, x) layout.
    stack = np.stack([_gradient(np.uint16, 50.0 * (k + 1)) for k in range(4)])
    tifffile.imwrite(tmp_path / "rgbn.tif", stack, photometric="minisblack", planarconfig="separate")
    default = np.asarray(read_image(tmp_path / "rgbn.tif"))
    for channel in range(3):
        assert np.array_equal(default[..., channel], _expected(stack[channel]))
    nir = np.asarray(read_image(tmp_path / "rgbn.tif", bands=[4, 3, 2]))
    assert np.array_equal(nir[..., 0], _expected(stack[3])) and np.array_equal(nir[..., 2], _expected(stack[1]))
    grey = np.asarray(read_image(tmp_path / "rgbn.tif", bands=[4]))
    assert all(np.array_equal(grey[..., c], _expected(stack[3])) for c in range(3))
    with pytest.raises(ImageError, match=r"has 4 band\(s\) but data.bands=\[5, 3, 2\] asks for band 5") as err:
        check_image(tmp_path / "rgbn.tif", bands=[5, 3, 2])
    assert err.value.reason == "bad_bands"


def test_interleaved_multiband_tiff_and_eight_bit_images_keep_their_pixels(tmp_path):
    rgbn = np.stack([_gradient(np.uint16, 10.0 * (k + 1)) for k in range(5)], axis=-1)  # (y, x, 5)
    tifffile.imwrite(tmp_path / "five.tif", rgbn, photometric="minisblack", planarconfig="contig")
    pixels = np.asarray(read_image(tmp_path / "five.tif", bands=[5, 1, 2]))
    assert np.array_equal(pixels[..., 0], _expected(rgbn[..., 4]))
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb8.tif", rgb, photometric="rgb")
    Image.fromarray(rgb).save(tmp_path / "rgb8.png")
    assert np.array_equal(np.asarray(read_image(tmp_path / "rgb8.tif")), rgb)
    assert np.array_equal(np.asarray(read_image(tmp_path / "rgb8.png")), rgb)
    assert np.array_equal(np.asarray(read_image(tmp_path / "rgb8.png", bands=[3, 2, 1])), rgb[..., ::-1])


def test_sixteen_bit_png_is_stretched(tmp_path):
    band = _gradient(np.uint16, 300.0, 5000.0)
    Image.fromarray(band).save(tmp_path / "deep.png")
    pixels = np.asarray(read_image(tmp_path / "deep.png"))
    assert np.array_equal(pixels[..., 0], _expected(band))


def test_stretch_of_a_flat_band_is_zero_not_nan():
    assert stretch_to_uint8(np.full((4, 4), 7, np.uint16)).max() == 0


def _jpeg(path, size=(64, 48)):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path, quality=90)


def test_truncated_jpeg_and_png_are_found_before_decoding_time(tmp_path):
    _jpeg(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk_after_eoi.jpg").write_bytes(data + b"trailing bytes some cameras write")
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    png = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 200])
    assert check_image(tmp_path / "ok.jpg") == (64, 48)
    assert check_image(tmp_path / "junk_after_eoi.jpg") == (64, 48)
    for name in ("cut.jpg", "cut.png"):
        with pytest.raises(ImageError, match=rf"{name}: cannot be decoded") as err:
            check_image(tmp_path / name)
        assert err.value.reason == "unreadable_image"
        with pytest.raises(ImageError, match=rf"{name}: cannot be decoded"):
            read_image(tmp_path / name)


def test_truncated_tiff_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _gradient(np.uint16, 40.0))
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) - 500])
    with pytest.raises(ImageError, match="truncated") as err:
        check_image(tmp_path / "cut.tif")
    assert err.value.reason == "unreadable_image"


def test_decompression_bomb_header_is_refused_by_name(tmp_path):
    write_png_header(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageError, match=r"bomb.png: .*cut it into tiles") as err:
        check_image(tmp_path / "bomb.png")
    assert err.value.reason == "image_too_large"
    big = np.zeros((2, 2), np.uint16)
    tifffile.imwrite(tmp_path / "bomb.tif", big)
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 1  # the same limit applies to TIFFs read through tifffile
        with pytest.raises(ImageError, match="bomb.tif"):
            check_image(tmp_path / "bomb.tif")
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_missing_empty_and_fifo_are_refused_without_blocking(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    os.mkfifo(tmp_path / "pipe.png")
    outcome = {}

    def probe():
        for name in ("nope.png", "empty.png", "pipe.png"):
            try:
                check_image(tmp_path / name)
            except ImageError as err:
                outcome[name] = err.reason

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout=900)  # only catches a hang: opening a FIFO blocks until a writer comes
    assert outcome == {"nope.png": "missing_image", "empty.png": "empty_image", "pipe.png": "not_a_file"}


def test_symlink_out_of_the_root_is_refused_a_symlinked_root_is_not(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (4, 4)).save(outside / "secret.png")
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ImageError, match="outside the image root") as err:
        confined_path(root, "linked/secret.png")
    assert err.value.reason == "path_escape"
    with pytest.raises(ImageError, match="escapes the image root; refused"):
        confined_path(root, "../outside/secret.png")
    (tmp_path / "disk_link").symlink_to(outside, target_is_directory=True)
    assert confined_path(tmp_path / "disk_link", "secret.png") == tmp_path / "disk_link" / "secret.png"
