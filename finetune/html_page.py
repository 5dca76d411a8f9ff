"""Self-contained HTML pages (the selection explorer, the compare page): one file plus an assets folder.

What both pages share, and nothing page-specific:

- :func:`embed_json`: data for a ``<script type="application/json">`` block. ``<``, ``>`` and ``&`` are
  written as ``\\u003c``... so a record text like ``</script><script>...`` cannot end the block; the page
  reads it with ``JSON.parse`` and puts every text into the DOM with ``textContent`` (never ``innerHTML``).
- :func:`fill_template`: ``{{name}}`` placeholders of a template shipped as package data.
- :func:`write_thumbnails`: downscaled JPEG copies of images into ``<page folder>/<assets>/thumbs/``, named
  by position (never by record id or source path), so every path in the page is relative and stays inside
  the page's folder. Unreadable images are counted, not fatal.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path, PurePosixPath

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def _finite(value):
    """``value`` with NaN / infinite floats as None (``JSON.parse`` knows no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def embed_json(data) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">`` (see the module docstring);
    NaN and infinities become null."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def read_package_text(package: str, name: str) -> str:
    """A text file shipped inside ``package`` (templates, CSS, JS)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def fill_template(template: str, **parts: str) -> str:
    """Replace each ``{{name}}`` by ``parts[name]`` in one pass (a filled-in text is never scanned again, so a
    record text that reads ``{{css}}`` stays as it is). A placeholder without a part, or a part without a
    placeholder, is an error."""
    used = set()

    def part(match: re.Match) -> str:
        name = match.group(1)
        if name not in parts:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no value")
        used.add(name)
        return parts[name]

    page = _PLACEHOLDER.sub(part, template)
    if set(parts) - used:
        raise KeyError(f"template has no placeholder for {sorted(set(parts) - used)}")
    return page


def page_relative(path: str) -> str:
    """``path`` checked to be relative and inside the page's folder (no ``..``, not absolute)."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or ":" in path:
        raise ValueError(f"page path '{path}' would point outside the page's folder")
    return path


def _thumbnail(source: Path, target: Path, size: int) -> bool:
    from PIL import Image

    try:
        with Image.open(source) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at reduced scale, much faster on big images
            image = image.convert("RGB")
            image.thumbnail((size, size))
            image.save(target, "JPEG", quality=80)
        return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def write_thumbnails(sources: Sequence[str | os.PathLike | None], page_dir: str | os.PathLike, assets: str,
                     *, size: int = 128, desc: str = "thumbnails") -> tuple[list[str | None], int]:
    """Downscaled copies of ``sources`` for a page in ``page_dir``.

    Args:
        sources: image files (None: no image).
        page_dir: the folder the HTML page lies in.
        assets: the page's assets folder name; thumbnails go to ``<page_dir>/<assets>/thumbs/`` (emptied first,
            so no thumbnail of an earlier run is left behind).
        size: longest side in pixels.

    Returns:
        ``(paths, unreadable)``: per source the thumbnail path relative to ``page_dir`` (None when there was no
        image or it could not be read) and how many could not be read.
    """
    from tqdm.auto import tqdm

    folder = Path(page_dir) / page_relative(assets) / "thumbs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jobs = [(i, Path(src)) for i, src in enumerate(sources) if src is not None]
    paths: list[str | None] = [None] * len(sources)
    workers = max(1, min(8, os.cpu_count() or 1))  # PIL decodes and resizes without holding the GIL
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(jobs), desc=desc, unit=" images",
                                                   disable=len(jobs) < 200, mininterval=1.0) as bar:
        names = [f"{n:06d}.jpg" for n in range(len(jobs))]
        futures = [pool.submit(_thumbnail, src, folder / name, size) for (_, src), name in zip(jobs, names, strict=True)]
        for (i, _), name, future in zip(jobs, names, futures, strict=True):
            if future.result():
                paths[i] = page_relative(f"{assets}/thumbs/{name}")
            bar.update(1)
    unreadable = sum(1 for (i, _) in jobs if paths[i] is None)
    return paths, unreadable
