"""Element <-> Record converters, one pair per format (see ``formats`` for the table and the rules).

An element reader returns a ``Record`` or raises ``RecordFormatError`` (with the reason key that
``data.skip_bad`` counts); an element writer returns the dict to dump. Whatever the Record has no field
for is kept in ``extra``; how the element was spelt, when not canonical, in ``extra["_roundtrip"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finetune.data.records import GPT, HUMAN, IMAGE_TOKEN, Record

ROUNDTRIP = "_roundtrip"
XC_IMAGE = "<ImageHere>"


class RecordFormatError(ValueError):
    """An element that cannot become a Record. ``reason`` is the short key used in skip counts."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason



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
    order = [k for k in hints.get("order", default_order) if k in fields]
    # Keys the original did not have (converted from another format) go after their canonical
    # predecessor, so the original order of the other keys survives a trip through another format.
    for i, key in enumerate(default_order):
        if key in fields and key not in order:
            before = [k for k in default_order[:i] if k in order]
            order.insert(order.index(before[-1]) + 1 if before else 0, key)
    order += [k for k in fields if k not in order]
    return {k: fields[k] for k in order}


def _image_field(record: Record, hints: dict) -> dict:
    form = hints.get("image", "str" if len(record.images) == 1 else ("absent" if not record.images else "list"))
    if form == "absent" and not record.images:
        return {}
    if form == "str" and len(record.images) == 1:
        return {"image": record.images[0]}
    return {"image": list(record.images)}


def _llava_like(obj: Any, fallback_id: str, source: str, canonical: tuple[str, ...]) -> Record:
    hints, extra, record_id = _record(obj, ("id", "image", "conversations"), fallback_id, source)
    images = _images(obj, "image", hints)
    if hints.get("image") == "absent":
        del hints["image"]  # no image key is how LLaVA and InternVL spell a text-only record
    return _finish(record_id, images, _conversations(obj), source, extra, hints, canonical)


def _to_llava_like(record: Record, canonical: tuple[str, ...]) -> dict:
    hints = record.extra.get(ROUNDTRIP, {})
    core = {"id": record.id, **_image_field(record, hints), "conversations": record.conversations}
    return _restore(record, core, canonical)


def llava_to_record(obj: Any, fallback_id: str, source: str = "") -> Record:
    return _llava_like(obj, fallback_id, source, _CANONICAL_ORDER)


def record_to_llava(record: Record) -> dict:
    return _to_llava_like(record, _CANONICAL_ORDER)


_INTERNVL_ORDER = ("id", "image", "width", "height", "conversations")


def internvl_to_record(obj: Any, fallback_id: str, source: str = "") -> Record:
    """InternVL chat jsonl: the LLaVA shape, ``width``/``height`` kept in ``extra``."""
    return _llava_like(obj, fallback_id, source, _INTERNVL_ORDER)


def record_to_internvl(record: Record) -> dict:
    return _to_llava_like(record, _INTERNVL_ORDER)


def _xc_turn_in(turn: dict) -> dict:
    new = {**turn, "from": {"user": HUMAN, "assistant": GPT}.get(turn.get("from"), turn.get("from"))}
    if isinstance(turn.get("value"), str):
        new["value"] = turn["value"].replace(XC_IMAGE, IMAGE_TOKEN)
    return new


def _xc_turn_out(turn: dict) -> dict:
    new = {**turn, "from": {HUMAN: "user", GPT: "assistant"}.get(turn.get("from"), turn.get("from"))}
    if isinstance(turn.get("value"), str):
        new["value"] = turn["value"].replace(IMAGE_TOKEN, XC_IMAGE)
    return new


def xcomposer2_to_record(obj: Any, fallback_id: str, source: str = "") -> Record:
    hints, extra, record_id = _record(obj, ("id", "image", "conversations"), fallback_id, source)
    images = _images(obj, "image", hints)
    form = hints.pop("image", "str")
    if form != "list":  # a list is XComposer2's own spelling; remember the others
        hints["image"] = form
    turns = [_xc_turn_in(turn) for turn in _conversations(obj)]
    # A turn the mapping cannot give back (a literal "<image>" in the text, roles human/gpt) is kept
    # as it was, and written as it was while the record's turn is unchanged.
    raw = [[i, turn] for i, (turn, new) in enumerate(zip(_conversations(obj), turns, strict=True)) if _xc_turn_out(new) != turn]
    if raw:
        hints["raw_turns"] = raw
    return _finish(record_id, images, turns, source, extra, hints)


def record_to_xcomposer2(record: Record) -> dict:
    hints = dict(record.extra.get(ROUNDTRIP, {}))
    hints.setdefault("image", "list")
    raw = {i: turn for i, turn in hints.get("raw_turns", [])}
    turns = [raw[i] if i in raw and _xc_turn_in(raw[i]) == turn else _xc_turn_out(turn) for i, turn in enumerate(record.conversations)]
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
        messages = [{**{k: m[k] for k in order if k in m}, **m} for m, order in zip(messages, orders, strict=True)]
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
