"""Readers and writers of the annotation formats geotune speaks, each round-tripping exactly.

| format        | container  | one element                                                              |
|---------------|------------|--------------------------------------------------------------------------|
| llava         | JSON list  | ``{id, image?, conversations:[{from: human|gpt, value}]}`` (GeoChat too) |
| internvl      | JSON lines | ``{id, image (str or list)?, width?, height?, conversations}``           |
| internvl_meta | JSON       | ``{name: {root, annotation, data_augment, repeat_time, length, ...}}``   |
| xcomposer2    | JSON list  | ``{id, image:[paths], conversations:[{from: user|assistant, value}]}``   |
| sharegpt      | JSON list or lines | ``{messages:[{role, content}], images:[...]}``                   |

Exact round trip: reading a file written in the canonical style (see ``jsonio``) and writing it back
in the same format gives the same bytes. Whatever the internal ``Record`` has no field for (unknown
keys, ``width``/``height``, a system prompt) is kept in ``Record.extra`` under its own name, and how
the element was spelt (key order, ``image`` as a string or a list or absent, a non-string id, turn key
order) under ``extra["_roundtrip"]``. Converting between formats keeps unknown keys too.

Placeholders: records always use ``<image>``; XComposer2's ``<ImageHere>`` is mapped both ways, as
text. An XComposer2 turn the mapping cannot give back (a literal ``<image>`` in its text, roles
``human``/``gpt``) is kept as it was in ``_roundtrip`` and written back unchanged while the record's
turn is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from finetune.data import jsonio
from finetune.data.elements import CONTAINERS, CONVERTERS, ROUNDTRIP, XC_IMAGE, RecordFormatError
from finetune.data.internvl_meta import meta_entry_paths, read_internvl_meta_entries, write_internvl_meta
from finetune.data.mix import sample_records
from finetune.data.records import Record
from finetune.files import write_text_atomic

FORMATS = ("llava", "internvl", "internvl_meta", "xcomposer2", "sharegpt")


class DataFormatError(ValueError):
    """A file that cannot be read in the asked format; the message names file:line and what to do."""


# ---------------------------------------------------------------- files


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format from the extension and the first element.

    ``.jsonl`` is InternVL (or ShareGPT when its elements have ``messages``); a JSON object of entries
    with ``annotation`` is an InternVL meta file; a JSON list is ShareGPT (``messages``), XComposer2
    (turns ``from: user|assistant`` or an ``<ImageHere>`` placeholder) or else LLaVA. Pass the format
    explicitly when the first element is not typical of the file.
    """
    try:
        container, first = jsonio.first_element(path)
    except jsonio.JSONFileError:
        if Path(path).suffix == ".jsonl":  # a bad first line: the validator reports it by line
            return "internvl"
        raise
    if container == "object" and first and all(isinstance(v, dict) and "annotation" in v for v in first.values()):
        return "internvl_meta"
    if not isinstance(first, dict):
        if container == "list" or container == "empty":
            return "llava" if Path(path).suffix != ".jsonl" else "internvl"
        raise DataFormatError(f"{path}: cannot tell the format (first element is not a JSON object); pass --format")
    if "messages" in first:
        return "sharegpt"
    lines = container == "lines" or (container == "object" and Path(path).suffix == ".jsonl")
    if lines:
        return "internvl"
    turns = first.get("conversations") or []
    roles = {t.get("from") for t in turns if isinstance(t, dict)}
    text = " ".join(str(t.get("value", "")) for t in turns if isinstance(t, dict))
    if roles & {"user", "assistant"} or XC_IMAGE in text:
        return "xcomposer2"
    return "llava"


def container_of(path: str | os.PathLike, fmt: str) -> str:
    if fmt == "sharegpt" and Path(path).suffix == ".jsonl":
        return "lines"
    return CONTAINERS[fmt]


def iter_elements(path: str | os.PathLike, fmt: str) -> Iterator[jsonio.Item]:
    """The raw elements of an annotation file, with locations."""
    if container_of(path, fmt) == "lines":
        yield from jsonio.iter_jsonl(path)
    else:
        yield from jsonio.iter_json_array(path)


def iter_parsed(path: str | os.PathLike, fmt: str, source: str) -> Iterator[tuple[jsonio.Item, Record | None, RecordFormatError | None]]:
    """(item, record, error) for every element; exactly one of record and error is set."""
    to_record = CONVERTERS[fmt][0]
    prefix = source or Path(path).stem
    for item in iter_elements(path, fmt):
        if item.error is not None:
            yield item, None, RecordFormatError(item.reason, item.error)
            continue
        try:
            yield item, to_record(item.obj, f"{prefix}-{item.index if item.index >= 0 else item.line}", source), None
        except RecordFormatError as err:
            yield item, None, err


def resolve_format(path: str | os.PathLike, format: str = "auto") -> str:
    fmt = detect_format(path) if format in ("auto", "", None) else format
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format '{format}'; choose from: auto, {', '.join(FORMATS)}")
    return fmt


def _read(path, fmt: str, source: str | None) -> list[Record]:
    records = []
    try:
        parsed = list(iter_parsed(path, fmt, source or ""))
    except jsonio.JSONFileError as err:
        raise DataFormatError(f"{err}. Fix the file: a JSON list cannot be read past a syntax error.") from None
    for item, record, error in parsed:
        if error is not None:
            raise DataFormatError(f"{path}:{item.location}: {error} (run `geotune data validate {path}` for every problem)")
        records.append(record)
    return records


def read_records(path: str | os.PathLike, format: str = "auto", source: str | None = None) -> list[Record]:
    """Every record of an annotation file (InternVL meta: all entries, ``source`` = entry name).

    Raises:
        DataFormatError: the first element that cannot become a record, with file:line.
    """
    fmt = resolve_format(path, format)
    if fmt == "internvl_meta":
        return [r for records, _ in read_internvl_meta(path).values() for r in records]
    return _read(path, fmt, source)


def write_records(records: list[Record], path: str | os.PathLike, format: str) -> Path:
    """Write records in ``format`` (canonical style, atomically)."""
    if format not in CONVERTERS:
        raise DataFormatError(f"cannot write format '{format}'; choose from: {', '.join(CONVERTERS)}")
    to_element = CONVERTERS[format][1]
    elements = [to_element(r) for r in records]
    text = jsonio.dumps_lines(elements) if container_of(path, format) == "lines" else jsonio.dumps_list(elements)
    return write_text_atomic(path, text)


def read_llava(path, source=None) -> list[Record]:
    return _read(path, "llava", source)


def write_llava(records, path) -> Path:
    return write_records(records, path, "llava")


def read_internvl_jsonl(path, source=None) -> list[Record]:
    return _read(path, "internvl", source)


def write_internvl_jsonl(records, path) -> Path:
    return write_records(records, path, "internvl")


def read_xcomposer2(path, source=None) -> list[Record]:
    return _read(path, "xcomposer2", source)


def write_xcomposer2(records, path) -> Path:
    return write_records(records, path, "xcomposer2")


def read_sharegpt(path, source=None) -> list[Record]:
    return _read(path, "sharegpt", source)


def write_sharegpt(records, path) -> Path:
    return write_records(records, path, "sharegpt")


def read_internvl_meta(meta_path: str | os.PathLike, seed: int = 0) -> dict[str, tuple[list[Record], Path]]:
    """Every entry's records (``source`` = entry name, ``repeat_time`` applied) and image root."""
    out = {}
    for name, entry in read_internvl_meta_entries(meta_path).items():
        annotation, root = meta_entry_paths(meta_path, entry)
        records = read_internvl_jsonl(annotation, source=name)
        out[name] = (sample_records(records, float(entry.get("repeat_time", 1)), seed), root)
    return out


__all__ = [
    "FORMATS", "ROUNDTRIP", "XC_IMAGE", "CONVERTERS", "DataFormatError", "RecordFormatError", "detect_format", "read_records", "write_records",
    "read_llava", "write_llava", "read_internvl_jsonl", "write_internvl_jsonl", "read_internvl_meta",
    "read_internvl_meta_entries", "write_internvl_meta", "read_xcomposer2", "write_xcomposer2",
    "read_sharegpt", "write_sharegpt",
]
