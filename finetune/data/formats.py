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

Placeholders: records always use ``<image>``; XComposer2's ``<ImageHere>`` is mapped both ways. (A
literal ``<image>`` inside XComposer2 text would come back as ``<ImageHere>``; no real file has one.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from finetune.data import jsonio
from finetune.data.records import GPT, HUMAN, IMAGE_TOKEN, Record

FORMATS = ("llava", "internvl", "internvl_meta", "xcomposer2", "sharegpt")
ROUNDTRIP = "_roundtrip"
XC_IMAGE = "<ImageHere>"


class RecordFormatError(ValueError):
    """An element that cannot become a Record. ``reason`` is the short key used in skip counts."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class DataFormatError(ValueError):
    """A file that cannot be read in the asked format; the message names file:line and what to do."""


# ---------------------------------------------------------------- element <-> Record, per format


def _conversations(obj: dict, key: str = "conversations") -> list:
    turns = obj.get(key)
    if turns is None:
        raise RecordFormatError("missing_conversations", f"missing '{key}'")
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise RecordFormatError("missing_conversations", f"'{key}' is not a list of turn objects")
    return turns


def _images(obj: dict, key: str, hints: dict) -> list[str]:
    value = obj.get(key)
    if key not in obj:
        hints["image"] = "absent"
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        hints["image"] = "list"
        return list(value)
    raise RecordFormatError("bad_image_field", f"'{key}' must be a path or a list of paths, got {type(value).__name__}")


def _record(obj: Any, core: tuple[str, ...], fallback_id: str, source: str) -> tuple[dict, dict, str]:
    """Shared start of every element reader: (hints, extra, id)."""
    if not isinstance(obj, dict):
        raise RecordFormatError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    hints: dict[str, Any] = {"order": list(obj)}
    extra = {k: v for k, v in obj.items() if k not in core}
    raw_id = obj.get("id")
    if "id" not in obj:
        hints["id"] = None
        record_id = fallback_id
    elif isinstance(raw_id, str):
        record_id = raw_id
    else:
        hints["id"] = raw_id
        record_id = str(raw_id)
    return hints, extra, record_id


_CANONICAL_ORDER = ("id", "image", "conversations")


def _finish(record_id, images, turns, source, extra, hints, canonical=_CANONICAL_ORDER) -> Record:
    """Make the Record; keep the spelling hints only when they differ from the canonical spelling."""
    present = [k for k in canonical if k in hints["order"]]
    if hints["order"] == present:
        del hints["order"]  # canonical order of the keys it has: nothing to remember
    if hints:
        extra[ROUNDTRIP] = hints
    return Record(id=record_id, images=images, conversations=turns, source=source, extra=extra)


def _restore(record: Record, core: dict, default_order: tuple[str, ...]) -> dict:
    """Build an element: core fields plus ``extra``, in the original key order when known."""
    hints = record.extra.get(ROUNDTRIP, {})
    fields = dict(core)
    if "id" in hints:
        original = hints["id"]
        if original is None:
            fields.pop("id", None)
        elif str(original) == record.id:
            fields["id"] = original
    fields.update({k: v for k, v in record.extra.items() if k != ROUNDTRIP})
    hinted = hints.get("order", default_order)
    if set(fields) <= set(hinted):
        order = [k for k in hinted if k in fields]
    else:  # converted from another format: this format's keys first, then the others as they were
        order = [k for k in default_order if k in fields]
        order += [k for k in hinted if k in fields and k not in order]
        order += [k for k in fields if k not in order]
    return {k: fields[k] for k in order}


def _image_field(record: Record, hints: dict) -> dict:
    form = hints.get("image", "str" if len(record.images) == 1 else ("absent" if not record.images else "list"))
    if form == "absent" and not record.images:
        return {}
    if form == "str" and len(record.images) == 1:
        return {"image": record.images[0]}
    return {"image": list(record.images)}


def llava_to_record(obj: Any, fallback_id: str, source: str = "") -> Record:
    hints, extra, record_id = _record(obj, ("id", "image", "conversations"), fallback_id, source)
    images = _images(obj, "image", hints)
    if hints.get("image") == "absent":
        del hints["image"]  # no image key is how LLaVA spells a text-only record
    return _finish(record_id, images, _conversations(obj), source, extra, hints)


def record_to_llava(record: Record) -> dict:
    hints = record.extra.get(ROUNDTRIP, {})
    core = {"id": record.id, **_image_field(record, hints), "conversations": record.conversations}
    return _restore(record, core, _CANONICAL_ORDER)


# InternVL chat jsonl elements have the LLaVA shape (width/height land in extra).
internvl_to_record = llava_to_record
record_to_internvl = record_to_llava


def xcomposer2_to_record(obj: Any, fallback_id: str, source: str = "") -> Record:
    hints, extra, record_id = _record(obj, ("id", "image", "conversations"), fallback_id, source)
    images = _images(obj, "image", hints)
    form = hints.pop("image", "str")
    if form != "list":  # a list is XComposer2's own spelling; remember the others
        hints["image"] = form
    roles = {"user": HUMAN, "assistant": GPT}
    turns = []
    for turn in _conversations(obj):
        new = {**turn, "from": roles.get(turn.get("from"), turn.get("from"))}
        if isinstance(turn.get("value"), str):
            new["value"] = turn["value"].replace(XC_IMAGE, IMAGE_TOKEN)
        turns.append(new)
    return _finish(record_id, images, turns, source, extra, hints)


def record_to_xcomposer2(record: Record) -> dict:
    hints = dict(record.extra.get(ROUNDTRIP, {}))
    hints.setdefault("image", "list")
    roles = {HUMAN: "user", GPT: "assistant"}
    turns = []
    for turn in record.conversations:
        new = {**turn, "from": roles.get(turn["from"], turn["from"])}
        if isinstance(turn.get("value"), str):
            new["value"] = turn["value"].replace(IMAGE_TOKEN, XC_IMAGE)
        turns.append(new)
    image = _image_field(record, hints)
    return _restore(record, {"id": record.id, **image, "conversations": turns}, _CANONICAL_ORDER)


_SHAREGPT_ORDER = ("id", "messages", "images")


def sharegpt_to_record(obj: Any, fallback_id: str, source: str = "") -> Record:
    hints, extra, record_id = _record(obj, ("id", "messages", "images"), fallback_id, source)
    images = _images(obj, "images", hints)
    if hints.pop("image", None) == "absent":
        hints["images"] = "absent"
    roles = {"user": HUMAN, "assistant": GPT}
    turns, turn_orders = [], []
    for i, message in enumerate(_conversations(obj, "messages")):
        turn_orders.append(list(message))
        role, content = message.get("role"), message.get("content")
        if i == 0 and role == "system":
            extra["system"] = content
            continue
        turn = {"from": roles.get(role, role), "value": content}
        turn.update({k: v for k, v in message.items() if k not in ("role", "content")})
        turns.append(turn)
    if any(order[:2] != ["role", "content"] for order in turn_orders):
        hints["turn_orders"] = turn_orders
    return _finish(record_id, images, turns, source, extra, hints, _SHAREGPT_ORDER)


def record_to_sharegpt(record: Record) -> dict:
    hints = record.extra.get(ROUNDTRIP, {})
    roles = {HUMAN: "user", GPT: "assistant"}
    messages = []
    if "system" in record.extra:
        messages.append({"role": "system", "content": record.extra["system"]})
    for turn in record.conversations:
        message = {"role": roles.get(turn["from"], turn["from"]), "content": turn["value"]}
        message.update({k: v for k, v in turn.items() if k not in ("from", "value")})
        messages.append(message)
    orders = hints.get("turn_orders")
    if orders and len(orders) == len(messages):
        messages = [{**{k: m[k] for k in order if k in m}, **m} for m, order in zip(messages, orders)]
    core: dict[str, Any] = {"id": record.id, "messages": messages}
    if record.images or hints.get("images") != "absent":
        core["images"] = list(record.images)
    extra = {k: v for k, v in record.extra.items() if k != "system"}
    copy = Record(record.id, record.images, record.conversations, record.source, record.task, extra)
    return _restore(copy, core, _SHAREGPT_ORDER)


CONVERTERS: dict[str, tuple[Callable[..., Record], Callable[[Record], dict]]] = {
    "llava": (llava_to_record, record_to_llava),
    "internvl": (internvl_to_record, record_to_internvl),
    "xcomposer2": (xcomposer2_to_record, record_to_xcomposer2),
    "sharegpt": (sharegpt_to_record, record_to_sharegpt),
}
CONTAINERS = {"llava": "list", "internvl": "lines", "xcomposer2": "list", "sharegpt": "list"}


# ---------------------------------------------------------------- files


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format from the extension and the first element.

    ``.jsonl`` is InternVL (or ShareGPT when its elements have ``messages``); a JSON object of entries
    with ``annotation`` is an InternVL meta file; a JSON list is ShareGPT (``messages``), XComposer2
    (turns ``from: user|assistant``, ``<ImageHere>`` or ``image`` as a list) or LLaVA.
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


def iter_parsed(path: str | os.PathLike, fmt: str, source: str) -> Iterator[tuple[jsonio.Item, Optional[Record], Optional[RecordFormatError]]]:
    """(item, record, error) for every element; exactly one of record and error is set."""
    to_record = CONVERTERS[fmt][0]
    prefix = source or Path(path).stem
    for item in iter_elements(path, fmt):
        if item.error is not None:
            yield item, None, RecordFormatError("malformed_json", item.error)
            continue
        try:
            yield item, to_record(item.obj, f"{prefix}-{max(item.index, item.line)}", source), None
        except RecordFormatError as err:
            yield item, None, err


def resolve_format(path: str | os.PathLike, format: str = "auto") -> str:
    fmt = detect_format(path) if format in ("auto", "", None) else format
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format '{format}'; choose from: auto, {', '.join(FORMATS)}")
    return fmt


def _read(path, fmt: str, source: Optional[str]) -> list[Record]:
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


def read_records(path: str | os.PathLike, format: str = "auto", source: Optional[str] = None) -> list[Record]:
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
    return jsonio.write_text_atomic(path, text)


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


from finetune.data.internvl_meta import (  # noqa: E402  (meta reading needs the readers above)
    read_internvl_meta,
    read_internvl_meta_entries,
    write_internvl_meta,
)

__all__ = [
    "FORMATS", "DataFormatError", "RecordFormatError", "detect_format", "read_records", "write_records",
    "read_llava", "write_llava", "read_internvl_jsonl", "write_internvl_jsonl", "read_internvl_meta",
    "read_internvl_meta_entries", "write_internvl_meta", "read_xcomposer2", "write_xcomposer2",
    "read_sharegpt", "write_sharegpt",
]
