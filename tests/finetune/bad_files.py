"""Bad image files for the reliability tests (tests/finetune/data/test_images.py, test_bad_images.py)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def write_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` pixels (a decompression bomb needs no more than that)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path
