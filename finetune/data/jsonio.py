"""JSON and JSON-lines I/O with locations, in the canonical styles geotune writes.

Readers yield every element with where it came from (1-based line, 0-based index for JSON lists) so
that errors can name ``file:line``. A JSON list is decoded element by element with
``json.JSONDecoder.raw_decode`` (C speed), which gives each element's start offset, hence its line,
for the price of one ``str.count`` per element.

Canonical styles (what round-trips byte for byte):
- JSON list / object: ``json.dumps(obj, ensure_ascii=False, indent=2)`` plus a final newline.
- JSON lines: one ``json.dumps(obj, ensure_ascii=False)`` per line, each ending in a newline.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass
class Item:
    """One element of an annotation file: the decoded object, or why it could not be decoded."""

    line: int
    index: int
    obj: Any = None
    error: str | None = None
    reason: str = "malformed_json"

    @property
    def location(self) -> str:
        """``"12"`` for a JSON line, ``"12 (index 3)"`` for an element of a JSON list."""
        return f"{self.line} (index {self.index})" if self.index >= 0 else str(self.line)


class JSONFileError(ValueError):
    """A file that cannot be read as JSON at all (as opposed to one bad line of a jsonl file)."""

    def __init__(self, path, text: str, offset: int, message: str):
        self.path, self.message = str(path), message
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        super().__init__(f"{path}:{self.line}: {message} (column {self.column})")


def _not_utf8(err: UnicodeDecodeError) -> str:
    return f"not UTF-8: byte 0x{err.object[err.start]:02x} cannot be decoded; re-save the file as UTF-8"


def read_text(path: str | os.PathLike) -> str:
    """The file as UTF-8 text.

    Raises:
        JSONFileError: a byte that is not UTF-8, with its line and column.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8", "replace")
        raise JSONFileError(path, before, len(before), _not_utf8(err)) from None


def _too_deep(where: str) -> str:
    return f"{where} is nested too deep to read (Python's recursion limit, {sys.getrecursionlimit()} levels)"


def iter_jsonl(path: str | os.PathLike) -> Iterator[Item]:
    """Every non-blank line of a JSON-lines file; a malformed, non-UTF-8 or too deeply nested line
    becomes an ``Item`` with ``error`` (and its ``reason``), the other lines are read on."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                column = len(raw[: err.start].decode("utf-8", "replace")) + 1
                yield Item(number, -1, error=f"{_not_utf8(err)} (column {column})", reason="bad_encoding")
                continue
            if not line.strip():
                continue
            try:
                yield Item(number, -1, json.loads(line))
            except json.JSONDecodeError as err:
                yield Item(number, -1, error=f"malformed JSON line: {err.msg} (column {err.colno})")
            except RecursionError:
                yield Item(number, -1, error=_too_deep("this line"))


def iter_json_array(path: str | os.PathLike, text: str | None = None) -> Iterator[Item]:
    """Every element of a JSON list with its line and index.

    Raises:
        JSONFileError: the file is not a JSON list or is malformed; the message gives line and column
            (nothing after a syntax error in a JSON list can be trusted, so reading stops there).
    """
    text = read_text(path) if text is None else text
    pos = _WHITESPACE.match(text, 0).end()
    if pos >= len(text) or text[pos] != "[":
        raise JSONFileError(path, text, pos, "expected a JSON list ('[')")
    pos = _WHITESPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    line, counted_to, index = 1, 0, 0
    while True:
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            obj, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise JSONFileError(path, text, err.pos, f"malformed JSON: {err.msg}") from None
        except RecursionError:
            raise JSONFileError(path, text, pos, _too_deep(f"element {index}")) from None
        yield Item(line, index, obj)
        index += 1
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            rest = _WHITESPACE.match(text, pos + 1).end()
            if rest != len(text):
                raise JSONFileError(path, text, rest, "extra data after the JSON list")
            return
        else:
            raise JSONFileError(path, text, pos, "malformed JSON: expected ',' or ']'")


def load_json(path: str | os.PathLike) -> Any:
    """A whole JSON document, with file:line:column on a syntax error."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(path, text, err.pos, f"malformed JSON: {err.msg}") from None
    except RecursionError:
        raise JSONFileError(path, text, 0, _too_deep("the document")) from None


def first_element(path: str | os.PathLike, chunk: int = 1 << 20) -> tuple[str, Any]:
    """The container (``"list"``, ``"object"`` or ``"lines"``) and first element, reading little.

    Used by format detection: reads 1 MiB, growing until the first element decodes.
    """
    # Bad bytes become U+FFFD here: detection only looks at the first element, the readers report them.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(path, "rb") as f:
        text = ""
        while True:
            raw = f.read(chunk)
            more = decoder.decode(raw, final=not raw)
            text += more
            start = _WHITESPACE.match(text, 0).end()
            if start >= len(text) and not more:
                return "empty", None
            head = text[start:start + 1]
            try:
                if head == "[":
                    inner = _WHITESPACE.match(text, start + 1).end()
                    if text.startswith("]", inner):
                        return "list", None
                    return "list", _DECODER.raw_decode(text, inner)[0]
                obj, end = _DECODER.raw_decode(text, start)
                after = _WHITESPACE.match(text, end).end()
                if after < len(text) and text[after] == "{":
                    return "lines", obj
                if not more and after >= len(text):
                    return ("object" if isinstance(obj, dict) else "value"), obj
            except json.JSONDecodeError:
                if not more:
                    raise JSONFileError(path, text, 0, "not JSON or JSON lines") from None
            except RecursionError:
                raise JSONFileError(path, text, start, _too_deep("the first element")) from None
            if not more:
                return "value", None


def dumps_list(objs: list[Any]) -> str:
    """A JSON list in the canonical style."""
    return json.dumps(objs, ensure_ascii=False, indent=2) + "\n"


def dumps_lines(objs: list[Any]) -> str:
    """JSON lines in the canonical style."""
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objs)


