"""Box conventions: InternVL (0-1000) <-> GeoChat (0-100 grid with an angle), and Mini-InternVL tasks.

- InternVL: ``<ref>name</ref><box>[[x1, y1, x2, y2]]</box>``, coordinates normalised to 0-1000, several
  boxes as ``[[...], [...]]``; grounding answers in Mini-InternVL also use ``[[x1, y1], [x2, y2]]``.
- GeoChat: ``{<x1><y1><x2><y2>|θ}`` on a 0-100 grid, θ the rotation in degrees of the box about its
  centre (GeoChat writes ``|θ``; ``|<θ>`` is read too); adjacent boxes are written back to back.

Number conversions: 0-100 -> 0-1000 multiplies by 10 (exact); 0-1000 -> 0-100 divides by 10 and
rounds half up. InternVL boxes have no angle: ``rotated="hull"`` (default) turns a rotated GeoChat box
into the axis-aligned box that encloses it (clamped to the image), ``rotated="drop"`` keeps the
unrotated corners. InternVL -> GeoChat writes θ = 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

Box = tuple[float, float, float, float]

GEOCHAT_BOX = re.compile(r"\{<(-?\d+(?:\.\d+)?)><(-?\d+(?:\.\d+)?)><(-?\d+(?:\.\d+)?)><(-?\d+(?:\.\d+)?)>(?:\|<?(-?\d+(?:\.\d+)?)>?)?\}")
_GEOCHAT_RUN = re.compile(rf"(?:{GEOCHAT_BOX.pattern})+")
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_QUAD = rf"\[{_NUM},{_NUM},{_NUM},{_NUM}\]"
INTERNVL_BOX = re.compile(rf"(?:<ref>(.*?)</ref>)?<box>\[\s*({_QUAD}(?:\s*,\s*{_QUAD})*)\s*\]</box>")
_QUAD_RE = re.compile(_QUAD)


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def rotated_hull(box: Box, angle: float) -> Box:
    """Axis-aligned box enclosing ``box`` rotated by ``angle`` degrees about its centre."""
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, abs(x2 - x1), abs(y2 - y1)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    half_w, half_h = (w * c + h * s) / 2, (w * s + h * c) / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def geochat_box_to_internvl(box: Sequence[float], angle: float = 0.0, rotated: str = "hull") -> list[int]:
    """One GeoChat box (0-100) with its angle -> InternVL ``[x1, y1, x2, y2]`` (0-1000 ints)."""
    if rotated not in ("hull", "drop"):
        raise ValueError(f"rotated must be 'hull' or 'drop', got {rotated!r}")
    corners: Box = tuple(float(v) for v in box)  # type: ignore[assignment]
    if angle and rotated == "hull":
        corners = rotated_hull(corners, angle)
    return [min(1000, max(0, _half_up(v * 10))) for v in corners]


def internvl_box_to_geochat(box: Sequence[float]) -> list[int]:
    """One InternVL box (0-1000) -> GeoChat ``[x1, y1, x2, y2]`` on the 0-100 grid."""
    return [min(100, max(0, _half_up(float(v) / 10))) for v in box]


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_geochat_boxes(text: str) -> list[tuple[list[float], float]]:
    """Every ``{<x1><y1><x2><y2>|θ}`` in ``text`` as ``([x1, y1, x2, y2], θ)`` (θ 0 when absent)."""
    return [([_number(g) for g in m.groups()[:4]], _number(m.group(5) or "0")) for m in GEOCHAT_BOX.finditer(text)]


def format_geochat_box(box: Sequence[float], angle: float = 0) -> str:
    x1, y1, x2, y2 = (_number(str(v)) for v in box)
    return f"{{<{x1}><{y1}><{x2}><{y2}>|{_number(str(angle))}}}"


def parse_internvl_boxes(text: str) -> list[tuple[str | None, list[list[float]]]]:
    """Every ``[<ref>name</ref>]<box>[[...]]</box>`` as ``(name or None, [[x1, y1, x2, y2], ...])``."""
    out = []
    for m in INTERNVL_BOX.finditer(text):
        quads = [[_number(v) for v in q.groups()] for q in _QUAD_RE.finditer(m.group(2))]
        out.append((m.group(1), quads))
    return out


def format_internvl_box(boxes: Sequence[Sequence[float]], name: str | None = None) -> str:
    inner = ", ".join("[" + ", ".join(str(_number(str(v))) for v in b) + "]" for b in boxes)
    ref = f"<ref>{name}</ref>" if name is not None else ""
    return f"{ref}<box>[{inner}]</box>"


def geochat_to_internvl(text: str, rotated: str = "hull") -> str:
    """Rewrite every GeoChat box in ``text`` as an InternVL box (a run of adjacent boxes -> one ``<box>``).

    The object name is not marked in GeoChat text, so no ``<ref>`` is added.
    """
    def replace(run: re.Match) -> str:
        boxes = [geochat_box_to_internvl(b, a, rotated) for b, a in parse_geochat_boxes(run.group(0))]
        return format_internvl_box(boxes)

    return _GEOCHAT_RUN.sub(replace, text)


def internvl_to_geochat(text: str) -> str:
    """Rewrite every InternVL box in ``text`` as GeoChat boxes; ``<ref>name</ref>`` becomes ``name ``."""
    def replace(m: re.Match) -> str:
        name = m.group(1)
        boxes = "".join(format_geochat_box(internvl_box_to_geochat(q)) for q in parse_internvl_boxes(m.group(0))[0][1])
        return f"{name} {boxes}" if name else boxes

    return INTERNVL_BOX.sub(replace, text)


# ---------------------------------------------------------------- Mini-InternVL unified task formats


def normalize_box(box: Sequence[float], width: float, height: float) -> list[int]:
    """Pixel ``[x1, y1, x2, y2]`` -> 0-1000 ints (Mini-InternVL / InternVL convention)."""
    x1, y1, x2, y2 = box
    return [_half_up(x1 / width * 1000), _half_up(y1 / height * 1000), _half_up(x2 / width * 1000), _half_up(y2 / height * 1000)]


def denormalize_box(box: Sequence[float], width: float, height: float) -> list[float]:
    """0-1000 -> pixel coordinates."""
    x1, y1, x2, y2 = box
    return [x1 * width / 1000, y1 * height / 1000, x2 * width / 1000, y2 * height / 1000]


CLASSIFICATION_PREFIX = "Classify the image into one of the following categories:"
CLASSIFICATION_SUFFIX = "Answer with the category name only."


def classification_prompt(labels: Sequence[str], prefix: str = CLASSIFICATION_PREFIX, suffix: str = CLASSIFICATION_SUFFIX) -> str:
    """``[Image][Prompt_Prefix][Candidate Labels][Prompt_Suffix]``; the answer is the label itself."""
    return f"<image>\n{prefix} {', '.join(labels)}.\n{suffix}"


def grounding_answer(name: str, box: Sequence[float]) -> str:
    """Grounding target ``<ref>name</ref><box>[[x1, y1], [x2, y2]]</box>`` (0-1000)."""
    x1, y1, x2, y2 = (_number(str(v)) for v in box)
    return f"<ref>{name}</ref><box>[[{x1}, {y1}], [{x2}, {y2}]]</box>"


_POINT_PAIR = re.compile(rf"\[\[{_NUM},{_NUM}\]\s*,\s*\[{_NUM},{_NUM}\]\]")


def parse_grounding_answer(text: str) -> list[list[float]]:
    """Every ``[[x1, y1], [x2, y2]]`` in ``text`` as ``[x1, y1, x2, y2]``."""
    return [[_number(v) for v in m.groups()] for m in _POINT_PAIR.finditer(text)]


def region_question(box: Sequence[float]) -> str:
    """Region perception question: ``What object is in this location[[x1, y1, x2, y2]]``."""
    return f"What object is in this location{format_internvl_box([box])[5:-6]}"


def region_answer(name: str, box: Sequence[float]) -> str:
    """Region perception answer: ``name[[x1, y1, x2, y2]]``."""
    return f"{name}{format_internvl_box([box])[5:-6]}"
