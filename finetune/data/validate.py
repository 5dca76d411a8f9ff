"""Find every problem in an annotation file, each with file:line and what is wrong.

Checks, with the reason keys that ``data.skip_bad`` counts by:

| reason               | problem                                                                  |
|----------------------|--------------------------------------------------------------------------|
| malformed_json       | a JSON line that does not parse (a JSON list stops at its first error)   |
| not_an_object        | an element that is not a JSON object                                     |
| missing_conversations| no ``conversations`` (``messages`` for ShareGPT), or not a list of turns |
| bad_image_field      | ``image`` neither a path nor a list of paths                             |
| bad_turn             | a turn without a string ``from``/``value``                               |
| turn_order           | turns not human/gpt alternating from human, or no gpt answer at the end  |
| empty_answer         | a gpt turn that is empty or blank                                        |
| image_count          | ``<image>`` placeholders != number of images                             |
| bad_unicode          | a lone surrogate (e.g. ``"\\ud800"``) in the id, an image path or a turn  |
| bad_encoding         | a line that is not UTF-8 (a JSON list: the whole file, with its line)    |
| path_escape          | an image path that is absolute or leaves the image root (always refused) |
| missing_image ...    | (check_images) the image cannot be used: every reason of ``images``      |
|                      | (missing, FIFO, empty, too large, truncated, bad bands, symlink escape)  |

A record with several problems is reported once per problem; ``skip_bad`` counts it once, under its
first problem.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from finetune.data import formats, jsonio
from finetune.data.images import ImageError, confined_path, escapes_root, read_image
from finetune.data.internvl_meta import meta_entry_paths, read_internvl_meta_entries
from finetune.data.records import GPT, HUMAN, IMAGE_TOKEN, Record

__all__ = ["BadRecordError", "Problem", "check_record", "check_record_images", "escapes_root", "validate_file"]
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Problem:
    """One problem: ``str()`` is ``file:line: message`` (line plus JSON index for JSON lists)."""

    file: str
    location: str
    message: str
    reason: str = ""
    record_id: str | None = None

    def __str__(self) -> str:
        what = f"record '{self.record_id}': " if self.record_id is not None else ""
        return f"{self.file}:{self.location}: {what}{self.message}"


class BadRecordError(ValueError):
    """A record failed validation while loading without ``data.skip_bad``."""


def _check_turns(turns: list) -> list[tuple[str, str]]:
    problems = []
    for i, turn in enumerate(turns):
        if not isinstance(turn.get("from"), str) or not isinstance(turn.get("value"), str):
            problems.append(("bad_turn", f"turn {i} needs string 'from' and 'value', got keys {sorted(turn)}"))
    if problems:
        return problems
    if not turns:
        return [("turn_order", "'conversations' is empty")]
    roles = [t["from"] for t in turns]
    for i, role in enumerate(roles):
        expected = HUMAN if i % 2 == 0 else GPT
        if role != expected:
            problems.append(("turn_order", f"turn {i} is from '{role}', expected '{expected}' (turns must alternate human/gpt, starting with human)"))
            break
    else:
        if roles[-1] != GPT:
            problems.append(("turn_order", "the last turn is from human: no gpt answer to train on"))
    for i, turn in enumerate(turns):
        if turn["from"] == GPT and not turn["value"].strip():
            problems.append(("empty_answer", f"turn {i} (gpt) is empty"))
    return problems


def _unicode_problems(record: Record) -> list[tuple[str, str]]:
    """Lone surrogates: valid JSON escapes that are not Unicode text (no UTF-8 writer accepts them)."""
    fields = [("the id", record.id)] + [(f"image {i}", p) for i, p in enumerate(record.images)]
    fields += [(f"turn {i}", t.get("value")) for i, t in enumerate(record.conversations)]
    if record.extra:
        import json

        fields.append(("an extra field", json.dumps(record.extra, ensure_ascii=False)))
    return [("bad_unicode", f"{where} contains a lone surrogate ({ascii(found.group())}): not Unicode text; fix the escape")
            for where, text in fields if isinstance(text, str) and (found := _SURROGATE.search(text))]


def check_record(record: Record) -> list[tuple[str, str]]:
    """Structural problems of one record as ``(reason, message)``: turns, text, placeholders, paths."""
    problems = _check_turns(record.conversations)
    if not any(reason == "bad_turn" for reason, _ in problems):
        placeholders = sum(t["value"].count(IMAGE_TOKEN) for t in record.conversations)
        if placeholders != len(record.images):
            problems.append(("image_count", f"{placeholders} {IMAGE_TOKEN} placeholder(s) but {len(record.images)} image(s)"))
    problems += _unicode_problems(record)
    for image in record.images:
        if escapes_root(image):
            problems.append(("path_escape", f"image path '{image}' escapes the image root (absolute or '..'); refused"))
    return problems


def check_record_images(record: Record, image_root: Path, bands=None) -> list[tuple[str, str]]:
    """Images that cannot be used, each decoded in full (``finetune.data.images.read_image``)."""
    problems = []
    for image in record.images:
        if escapes_root(image):
            continue
        try:
            read_image(confined_path(image_root, image), bands)
        except ImageError as err:
            where = f"not found under {image_root}" if err.reason == "missing_image" else f"({err.path}): {err.detail}"
            problems.append((err.reason, f"image '{image}' {where}"))
    return problems


def validate_file(path: str | os.PathLike, format: str = "auto", image_root: str | os.PathLike | None = None,
                  check_images: bool = False) -> list[Problem]:
    """Every problem of an annotation file (an InternVL meta file: of every annotation it lists).

    Args:
        path: annotation file.
        format: a name of ``formats.FORMATS`` or ``auto``.
        image_root: folder image paths are relative to (default: the file's folder; for a meta file,
            each entry's ``root``).
        check_images: also open every image.

    Returns:
        The problems in file order; empty when the file is clean.
    """
    try:
        fmt = formats.resolve_format(path, format)
    except jsonio.JSONFileError as err:
        return [Problem(str(path), str(err.line), err.message, "malformed_json")]
    except formats.DataFormatError as err:
        return [Problem(str(path), "1", str(err), "unknown_format")]
    if fmt == "internvl_meta":
        return _validate_meta(path, check_images)
    root = Path(image_root) if image_root else Path(path).parent
    problems = []
    try:
        for item, record, error in formats.iter_parsed(path, fmt, ""):
            if error is not None:
                problems.append(Problem(str(path), item.location, str(error), error.reason))
                continue
            found = check_record(record)
            if check_images:
                found += check_record_images(record, root)
            problems += [Problem(str(path), item.location, msg, reason, record.id) for reason, msg in found]
    except jsonio.JSONFileError as err:
        message = f"{err.message} (column {err.column}); nothing after it can be read"
        problems.append(Problem(str(path), str(err.line), message, "malformed_json"))
    return problems


def _validate_meta(path, check_images_too: bool) -> list[Problem]:

    try:
        entries = read_internvl_meta_entries(path)
    except ValueError as err:
        return [Problem(str(path), "1", str(err), "malformed_json")]
    problems = []
    for name, entry in entries.items():
        annotation, root = meta_entry_paths(path, entry)
        if not annotation.is_file():
            problems.append(Problem(str(path), f"entry '{name}'", f"annotation file {annotation} not found", "missing_file"))
            continue
        problems += validate_file(annotation, "internvl", root, check_images_too)
    return problems
