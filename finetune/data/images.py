"""The one image reader for training, selection and evaluation: checked, confined, RGB 8-bit out.

Every image geotune looks at goes through ``confined_path`` (where it may live), ``check_image``
(cheap: before step 1, in the length pass) and ``read_image`` (full decode: in the DataLoader, and
when ``--check-images`` / ``data.check_images`` asks for it). Failures raise ``ImageError`` with the
file and a reason key that ``data.skip_bad`` counts by:

| reason           | problem                                                                  |
|------------------|--------------------------------------------------------------------------|
| path_escape      | the path, symlinks resolved, leaves the image root                       |
| missing_image    | no such file                                                             |
| not_a_file       | a FIFO, device or folder (opening a FIFO would block forever)            |
| empty_image      | a zero-byte file                                                         |
| image_too_large  | more than 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (decompression bomb) |
| bad_bands        | ``data.bands`` asks for a band the image does not have                   |
| unreadable_image | not an image, or truncated / corrupt data                                |

Remote-sensing pictures: 8-bit images read as PIL reads them (``convert("RGB")``, unchanged pixels).
Anything deeper -- 16-bit or 32-bit integers, floats, more than four bands (TIFFs through
``tifffile``, 16-bit PNGs through PIL) -- is stretched band by band from its 2nd to its 98th
percentile onto 0..255 (NaN and inf -> 0), the stretch ENVI and QGIS show by default: a plain
``convert("RGB")`` turns 16-bit data near-white, floats black and keeps only the high byte of 4 x
uint16. ``bands`` (``data.bands``, 1-based, e.g. ``[3, 2, 1]`` or ``[4, 3, 2]`` for false-colour NIR)
chooses the bands shown as R, G, B; one band is shown as grey. Default: the first three bands, or the
only one as grey.

Truncation in ``check_image``: JPEG and PNG files that do not end in their end marker (EOI / IEND)
are decoded fully to tell a truncated file from one with trailing bytes; TIFF strips must lie inside
the file. Other damage inside the data shows in ``read_image`` (``--check-images`` before training).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

PERCENTILES = (2.0, 98.0)
STRETCH_SAMPLES = 1 << 20  # percentiles from at most ~1M evenly spaced pixels per band (exact enough, fast)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


class ImageError(ValueError):
    """An image that cannot be used; ``reason`` is the key ``data.skip_bad`` counts by."""

    def __init__(self, path, reason: str, message: str):
        self.path, self.reason, self.detail = str(path), reason, message
        super().__init__(f"image {path}: {message}")


def escapes_root(image: str) -> bool:
    """True when a relative image path is absolute or climbs out of its root (``..``), lexically."""
    if not image or os.path.isabs(image) or posixpath.isabs(image) or (len(image) > 1 and image[1] == ":"):
        return True
    normal = posixpath.normpath(image.replace("\\", "/"))
    return normal == ".." or normal.startswith("../")


def confined_path(root: str | os.PathLike, image: str) -> Path:
    """``root / image`` when it stays inside ``root`` with every symlink resolved.

    The root itself may be a symlink (datasets often live on a data disk); a link *inside* it that
    points elsewhere is refused, so an annotation file can only ever make us read under its root.

    Raises:
        ImageError: reason ``path_escape``.
    """
    path = Path(root) / image
    if escapes_root(image):
        raise ImageError(path, "path_escape", f"path '{image}' is absolute or climbs with '..': escapes the image root; refused")
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise ImageError(path, "path_escape", f"resolves to {real}, outside the image root {real_root} (a symlink "
                         "pointing out of the root); refused: copy the files under the root or point image_root at them")
    return path


def check_bands(bands) -> list[int] | None:
    """``data.bands`` as a list of 1-based ints (None stays None).

    Raises:
        ValueError: not one or three positive integers, naming the recipe key.
    """
    if bands is None:
        return None
    values = list(bands)
    if len(values) not in (1, 3) or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in values):
        raise ValueError(f"data.bands: {values} must be one (grey) or three (R, G, B) 1-based band numbers, e.g. [3, 2, 1]")
    return values


def _regular_size(path: Path) -> int:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageError(path, "missing_image", "not found") from None
    except OSError as err:
        raise ImageError(path, "unreadable_image", f"cannot stat: {err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(path, "not_a_file", "is not a regular file (a FIFO, device or folder); refused")
    if info.st_size == 0:
        raise ImageError(path, "empty_image", "is empty (0 bytes)")
    return info.st_size


def _too_large(path: Path, width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        raise ImageError(path, "image_too_large", f"{width} x {height} pixels is more than twice PIL's limit of "
                         f"{limit} (a decompression bomb, or a whole scene): cut it into tiles")


def _select(bands: Sequence[int] | None, count: int, path: Path) -> list[int]:
    """0-based band indices shown as R, G, B."""
    if bands is None:
        return [0, 1, 2] if count >= 3 else [0, 0, 0]
    wanted = [int(b) for b in bands]
    if max(wanted) > count:
        raise ImageError(path, "bad_bands", f"has {count} band(s) but data.bands={wanted} asks for band {max(wanted)}")
    indices = [b - 1 for b in wanted]
    return indices * 3 if len(indices) == 1 else indices


def stretch_to_uint8(band: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """One band onto 0..255: its low percentile -> 0, high -> 255, linear between, clipped; NaN/inf -> 0.

    A flat band (low == high) becomes 0 where it is at or below that value.
    """
    values = band.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    sample = values[finite]
    if sample.size == 0:
        return np.zeros(band.shape, np.uint8)
    if sample.size > STRETCH_SAMPLES:
        sample = sample[:: sample.size // STRETCH_SAMPLES]
    low, high = np.percentile(sample, percentiles)
    scale = 255.0 / (high - low) if high > low else 0.0
    out = np.clip((np.where(finite, values, low) - low) * scale, 0, 255)
    return np.rint(out).astype(np.uint8)


def _to_rgb(array: np.ndarray, bands: Sequence[int] | None, path: Path) -> Image.Image:
    """(H, W, C) array -> RGB image: chosen bands, stretched unless already 8-bit."""
    picked = [array[..., i] for i in _select(bands, array.shape[-1], path)]
    if array.dtype != np.uint8:
        cache: dict[int, np.ndarray] = {}
        picked = [cache.setdefault(id(p), stretch_to_uint8(p)) for p in picked]
    return Image.fromarray(np.ascontiguousarray(np.stack(picked, axis=-1)), "RGB")


def _tiff_layout(tif, path: Path) -> tuple[int, int, int, str]:
    """(height, width, bands, axes) of a TIFF's first series; refuses more than one non-spatial axis."""
    series = tif.series[0]
    axes, shape = series.axes, series.shape
    if "Y" not in axes or "X" not in axes:
        raise ImageError(path, "unreadable_image", f"TIFF without Y/X axes (axes {axes}, shape {shape})")
    other = [n for a, n in zip(axes, shape, strict=True) if a not in "YX" and n > 1]
    if len(other) > 1:
        raise ImageError(path, "unreadable_image", f"TIFF with several non-spatial axes (axes {axes}, shape {shape}); "
                         "write one image of bands per file")
    return shape[axes.index("Y")], shape[axes.index("X")], other[0] if other else 1, axes


def _tiff_array(tif, path: Path) -> np.ndarray:
    series = tif.series[0]
    array = series.asarray()
    axes = series.axes
    y, x = axes.index("Y"), axes.index("X")
    rest = [i for i in range(array.ndim) if i not in (y, x)]
    array = np.transpose(array, [y, x, *rest]).reshape(array.shape[y], array.shape[x], -1)
    return array


def _tiff_truncated(tif, size: int) -> bool:
    for page in tif.series[0].pages:
        offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
        if any(o + n > size for o, n in zip(offsets, counts, strict=False)):
            return True
    return False


def _tiff_needs_tifffile(tif) -> bool:
    """8-bit TIFFs with up to 4 samples read through PIL as before (palettes, YCbCr); the rest through tifffile."""
    page = tif.pages[0]
    return page.dtype != np.uint8 or getattr(page, "samplesperpixel", 1) > 4 or len(tif.series[0].shape) > 3


def _open_tiff(source, path: Path):
    import tifffile

    try:
        return tifffile.TiffFile(source)
    except Exception as err:  # tifffile raises TiffFileError, ValueError, struct.error...
        raise ImageError(path, "unreadable_image", f"not a readable TIFF: {type(err).__name__}: {err}") from None


def _open_pil(source, path: Path) -> Image.Image:
    try:
        image = Image.open(source)
    except Image.DecompressionBombError as err:
        raise ImageError(path, "image_too_large", f"{err}: cut it into tiles") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(path, "unreadable_image", f"not a readable image: {type(err).__name__}: {err}") from None
    _too_large(path, *image.size)
    return image


def _ends_cleanly(tail: bytes, fmt: str | None) -> bool:
    """True for a JPEG ending in EOI or a PNG ending in IEND (other formats: True), from the file's last bytes."""
    if fmt not in ("JPEG", "PNG"):
        return True
    tail = tail.rstrip(b"\x00\r\n ")
    return tail.endswith(b"\xff\xd9") if fmt == "JPEG" else b"IEND" in tail[-12:]


def check_image(path: str | os.PathLike, bands: Sequence[int] | None = None) -> tuple[int, int]:
    """(width, height) of a usable image, reading little (see the module docstring for what is checked).

    One open: the magic number, the last 64 bytes and the header are read from the same handle (the
    length pass does this for every image before step 1).

    Raises:
        ImageError: the file cannot be used; ``reason`` says why.
    """
    path = Path(path)
    size = _regular_size(path)
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 64))
        tail = f.read()
        f.seek(0)
        if head in _TIFF_MAGIC:
            with _open_tiff(f, path) as tif:
                height, width, count, _ = _tiff_layout(tif, path)
                _too_large(path, width, height)
                _select(bands, count, path)
                if _tiff_truncated(tif, size):
                    raise ImageError(path, "unreadable_image", "truncated: its image data runs past the end of the file")
                if _tiff_needs_tifffile(tif):
                    return width, height
            f.seek(0)
        with _open_pil(f, path) as image:
            _select(bands, _band_count(image), path)
            if not _ends_cleanly(tail, image.format):
                _decode(image, path)
            return image.size


def _band_count(image: Image.Image) -> int:
    """Bands ``data.bands`` can pick from: as stored for L/LA/RGB/RGBA and deep grey, else after RGB conversion."""
    if image.mode not in _EIGHT_BIT_MODES:
        return 1
    return len(image.getbands()) if image.mode in ("L", "LA", "RGB", "RGBA") else 3


def _decode(image: Image.Image, path: Path) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as err:
        raise ImageError(path, "image_too_large", str(err)) from None
    except (OSError, ValueError, SyntaxError) as err:  # "image file is truncated", broken data streams
        raise ImageError(path, "unreadable_image", f"cannot be decoded ({err})") from None


def _pil_to_rgb(image: Image.Image, bands: Sequence[int] | None, path: Path) -> Image.Image:
    if image.mode not in _EIGHT_BIT_MODES:  # I;16, I, F...: deeper than 8 bits
        return _to_rgb(np.asarray(image)[..., None], bands, path)
    if bands is None:
        return image.convert("RGB")
    base = image if image.mode in ("L", "LA", "RGB", "RGBA") else image.convert("RGB")
    array = np.asarray(base)
    return _to_rgb(array[..., None] if array.ndim == 2 else array, bands, path)


def read_image(path: str | os.PathLike, bands: Sequence[int] | None = None) -> Image.Image:
    """The whole image decoded, as an 8-bit RGB ``PIL.Image`` (module docstring: stretch and bands).

    Raises:
        ImageError: the file cannot be used; ``reason`` says why.
    """
    path = Path(path)
    _regular_size(path)
    with open(path, "rb") as f:
        if f.read(4) in _TIFF_MAGIC:
            f.seek(0)
            with _open_tiff(f, path) as tif:
                height, width, _, _ = _tiff_layout(tif, path)
                _too_large(path, width, height)
                if _tiff_needs_tifffile(tif):
                    try:
                        array = _tiff_array(tif, path)
                    except Exception as err:  # truncated or corrupt strips
                        raise ImageError(path, "unreadable_image", f"cannot be decoded ({type(err).__name__}: {err})") from None
                    return _to_rgb(array, bands, path)
        f.seek(0)
        with _open_pil(f, path) as image:
            _decode(image, path)
            return _pil_to_rgb(image, bands, path)
