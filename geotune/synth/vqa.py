"""RSVQA-LR-style scenes and their questions, answers true by construction.

A scene is a grid of cells. Each cell holds at most one thing (a building, a water area, a farmland
or forest patch) and roads run only along cell boundaries, so nothing overlaps and every count a
question asks for is exactly what was drawn. Urban scenes are dense in buildings and roads, rural ones
are fields and woods with a few houses; ``rural_urban`` answers say which was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geotune.synth.canvas import Canvas, DrawnObject
from geotune.synth.scenes import ground
from geotune.synth.scenes_aid import GAIN, NOISE

COUNTABLE = {"building": "buildings", "road": "roads", "water area": "water areas"}
PRESENCE = ("building", "road", "water area", "farmland", "forest")
QUESTION_TYPES = ("presence", "comp", "count", "rural_urban")
LR_ROOFS = ("roof_red", "roof_grey", "roof_white")


@dataclass
class LRScene:
    pixels: np.ndarray
    counts: dict[str, int]  # per PRESENCE category, number drawn
    urban: bool
    objects: list[DrawnObject]


def grid_cells(size: int) -> int:
    return int(min(max(size // 16, 4), 6))


def draw_lr_scene(rng: np.random.Generator, size: int, urban: bool | None = None) -> LRScene:
    """Draw one land-cover scene; ``urban`` None draws it at random (45% urban)."""
    cv = Canvas(size, rng)
    urban = bool(rng.random() < 0.45) if urban is None else urban
    g = grid_cells(size)
    cell = size / g
    ground(cv, "grass" if rng.random() < 0.6 else "dry_grass", 10)
    n_cells = g * g
    n_build = int(rng.integers(int(0.45 * n_cells), int(0.8 * n_cells))) if urban else int(rng.integers(0, 4))
    n_water = int(rng.integers(0, 3))
    n_farm = int(rng.integers(0, 2)) if urban else int(rng.integers(1, 5))
    n_forest = int(rng.integers(0, 2)) if urban else int(rng.integers(0, 4))
    order = rng.permutation(n_cells)
    kinds = ["building"] * n_build + ["water area"] * n_water + ["farmland"] * n_farm + ["forest"] * n_forest
    kinds = kinds[:n_cells]
    counts = dict.fromkeys(PRESENCE, 0)
    roof = cv.color(str(rng.choice(LR_ROOFS)))  # no blue roofs: they would read as water
    for kind, idx in zip(kinds, order[: len(kinds)], strict=True):
        x0, y0 = (idx % g) * cell, (idx // g) * cell
        cx, cy = x0 + cell / 2 + rng.uniform(-0.1, 0.1) * cell, y0 + cell / 2 + rng.uniform(-0.1, 0.1) * cell
        counts[kind] += 1
        if kind == "building":
            cv.rect(cx, cy, cell * rng.uniform(0.35, 0.6), cell * rng.uniform(0.3, 0.5), rng.uniform(-90, 90),
                    roof * (1 + rng.normal(0, 0.06, 3)), "building")
        elif kind == "water area":
            cv.ellipse(cx, cy, cell * rng.uniform(0.25, 0.4), cell * rng.uniform(0.2, 0.35), rng.uniform(-90, 90),
                       cv.color("water"), "water area")
        elif kind == "farmland":
            mask = (cv.xx >= x0 + 1) & (cv.xx < x0 + cell - 1) & (cv.yy >= y0 + 1) & (cv.yy < y0 + cell - 1)
            cv.stripes(mask, rng.uniform(0, 180), max(cell * 0.15, 1.5), [cv.color("crop_yellow"), cv.color("soil")])
            cv.record("farmland", x0 + cell / 2, y0 + cell / 2, cell - 2, cell - 2, 0.0)
        else:
            cv.rect(x0 + cell / 2, y0 + cell / 2, cell - 2, cell - 2, 0.0, cv.color("tree"), "forest")
            for _ in range(8):  # crowns, for texture
                r = cell * rng.uniform(0.08, 0.16)
                cv.ellipse(x0 + rng.uniform(r + 1, cell - r - 1), y0 + rng.uniform(r + 1, cell - r - 1), r, r, 0.0,
                           cv.color("tree") * 1.2)
    counts["road"] = _draw_grid_roads(cv, g, urban)
    return LRScene(cv.finish(NOISE * 0.6, GAIN), counts, urban, cv.objects)


def _draw_grid_roads(cv: Canvas, g: int, urban: bool) -> int:
    """Roads on cell boundaries only (they never cover a cell's content); returns how many."""
    lines = [(axis, k) for axis in (0, 1) for k in range(1, g)]
    n = int(cv.rng.integers(2, len(lines) + 1)) if urban else int(cv.rng.integers(0, 3))
    width = max(cv.size * 0.035, 1.5)
    for i in cv.rng.permutation(len(lines))[:n]:
        axis, k = lines[int(i)]
        pos = k * cv.size / g
        cx, cy = (pos, cv.size / 2) if axis == 0 else (cv.size / 2, pos)
        cv.band(cx, cy, width, 90.0 if axis == 0 else 0.0, cv.color("asphalt", 0.04))
        cv.record("road", cx, cy, cv.size if axis else width, width if axis else cv.size, 0.0)
    return n


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def lr_questions(scene: LRScene, rng: np.random.Generator, n_comp: int = 3) -> list[tuple[str, str, str]]:
    """(type, question, answer) for one scene: presence of each category, counts, comparisons, rural/urban."""
    c = scene.counts
    out = [("rural_urban", "Is it a rural or an urban area?", "urban" if scene.urban else "rural")]
    for cat in PRESENCE:
        q = f"Is there a {cat} in the image?" if rng.random() < 0.5 else f"Is a {cat} present?"
        out.append(("presence", q, _yes(c[cat] > 0)))
    for cat, plural in COUNTABLE.items():
        out.append(("count", f"How many {plural} are there?", str(c[cat])))
    cats = list(COUNTABLE)
    for _ in range(n_comp):
        a, b = (cats[int(i)] for i in rng.choice(len(cats), 2, replace=False))
        pa, pb = COUNTABLE[a], COUNTABLE[b]
        form = int(rng.integers(3))
        if form == 0:
            out.append(("comp", f"Are there more {pa} than {pb}?", _yes(c[a] > c[b])))
        elif form == 1:
            out.append(("comp", f"Are there less {pa} than {pb}?", _yes(c[a] < c[b])))
        else:
            out.append(("comp", f"Is the number of {pa} equal to the number of {pb}?", _yes(c[a] == c[b])))
    return out
