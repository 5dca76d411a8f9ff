"""InternVL meta JSON: ``{name: {root, annotation, data_augment, repeat_time, length, max_dynamic_patch?}}``.

This module reads and writes the meta file itself; ``finetune.data.formats.read_internvl_meta`` reads
the annotation files it points to.

Relative ``root`` and ``annotation`` paths are taken relative to the meta file's folder when they
exist there, else relative to the current directory (InternVL's own scripts run from ``internvl_chat/``).

``repeat_time`` differs from InternVL on purpose: InternVL's loader keeps the *first*
``int(len * repeat_time)`` rows when ``repeat_time < 1``; geotune samples that many rows at random with
a seed (``finetune.data.mix.sample_records``), so a file sorted by task or source is not cut to its
head. ``repeat_time > 1`` repeats, as in InternVL (extra copies get ``<id>#<k>`` ids).
"""

from __future__ import annotations

import os
from pathlib import Path

from finetune.data import jsonio
from finetune.files import write_text_atomic

REQUIRED = ("root", "annotation")


def _resolve(meta_path: Path, value: str) -> Path:
    path = Path(value)
    if path.is_absolute():
        return path
    beside = meta_path.parent / path
    return beside if beside.exists() or not path.exists() else path


def read_internvl_meta_entries(meta_path: str | os.PathLike) -> dict[str, dict]:
    """The meta file as written (entry name -> settings), checked for the keys geotune needs."""
    meta = jsonio.load_json(meta_path)
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: an InternVL meta file is a JSON object {{name: {{root, annotation, ...}}}}")
    for name, entry in meta.items():
        missing = [k for k in REQUIRED if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ValueError(f"{meta_path}: entry '{name}' lacks {', '.join(missing)} (every entry needs root and annotation)")
    return meta


def write_internvl_meta(entries: dict[str, dict], meta_path: str | os.PathLike) -> Path:
    """Write a meta file in the canonical style (indent 2, final newline), atomically."""
    return write_text_atomic(meta_path, jsonio.dumps_list(entries))


def meta_entry_paths(meta_path: str | os.PathLike, entry: dict) -> tuple[Path, Path]:
    """(annotation file, image root) of one entry, resolved as the module docstring says."""
    meta_path = Path(meta_path)
    return _resolve(meta_path, entry["annotation"]), _resolve(meta_path, entry["root"])

