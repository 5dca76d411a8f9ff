"""Scene classes of SynthRS: what each UCMerced / AID class looks like from above, drawn procedurally.

Each drawer takes a :class:`Canvas` and draws one scene of its class with random position, scale,
rotation, colour and clutter. The class is carried by *structure* (stripes, round tanks, bands of
water, roof density, runways, courts), not by a colour of its own: most classes share the same land
tones. Drawers shared by both data sets (forest, river, storage tanks, residential densities, ...) are
the same function under both names. AID-only classes are in :mod:`geotune.synth.scenes_aid`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eval.readers import UCMERCED_CLASSES, UCMERCED_SPACED
from geotune.synth.canvas import Canvas, DrawnObject

# The benchmark's own class tables: SynthRS draws exactly the classes eval reads.
UCM_CLASSES = UCMERCED_CLASSES
UCM_SPACED = UCMERCED_SPACED


def spaced_ucm(name: str) -> str:
    """The name UCMerced prompts use ("dense residential" for ``denseresidential``)."""
    return UCM_SPACED.get(name, name)


ROOFS = ("roof_red", "roof_grey", "roof_white", "roof_blue")


# -- shared pieces -------------------------------------------------------------------------------
def ground(cv: Canvas, name: str, texture: float = 14.0) -> None:
    cv.fill(cv.color(name), texture, int(cv.rng.integers(3, 9)))


def to_image(cv: Canvas, angle: float, u: float, v: float) -> tuple[float, float]:
    """Image point of (u, v) in a frame rotated by ``angle`` about the canvas centre."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return cv.size / 2 + u * c + v * s, cv.size / 2 - u * s + v * c


def trees(cv: Canvas, n: float, radius_frac: float = 0.035, region=None) -> None:
    cv.scatter(n, radius_frac * cv.size, cv.color("tree"), region)


def road(cv: Canvas, offset: float, angle: float, width_frac: float = 0.07, lanes: bool = True) -> np.ndarray:
    """An asphalt road across the canvas at signed ``offset`` (pixels) from the centre."""
    cx, cy = to_image(cv, angle, 0.0, offset)
    mask = cv.band(cx, cy, width_frac * cv.size, angle, cv.color("asphalt", 0.05))
    if lanes and width_frac * cv.size >= 4:
        cv.band(cx, cy, max(cv.size / 90, 0.6), angle, cv.color("white", 0.02), alpha=0.6)
    return mask


def roof_grid(cv: Canvas, step: float, roof: tuple[float, float], p: float, angle: float,
              roads_every: int = 0, colors=ROOFS) -> None:
    """Roofs on a rotated grid (``step`` pixels apart, each occupied with probability ``p``)."""
    n = int(cv.size * 0.75 / step) + 1
    off_u, off_v = cv.u(0, step), cv.u(0, step)
    base = cv.color(colors[int(cv.rng.integers(len(colors)))])
    for i in range(-n, n + 1):
        if roads_every and i % roads_every == 0:
            road(cv, i * step + off_v - step / 2, angle, 0.05, lanes=False)
            continue
        for j in range(-n, n + 1):
            cx, cy = to_image(cv, angle, j * step + off_u, i * step + off_v)
            if not (0 <= cx < cv.size and 0 <= cy < cv.size) or cv.rng.random() > p:
                continue
            w, h = roof[0] * cv.u(0.85, 1.15), roof[1] * cv.u(0.85, 1.15)
            cv.rect(cx, cy, w, h, angle, base * (1 + cv.rng.normal(0, 0.07, 3)), "building")


# -- UCMerced classes (several reused by AID) -----------------------------------------------------
def draw_fields(cv: Canvas) -> None:
    """Agricultural / farmland: parcels of planted rows, each with its own direction and crop."""
    ground(cv, "soil")
    cuts = sorted(cv.rng.uniform(0.2, 0.8, int(cv.rng.integers(1, 3))) * cv.size)
    edges = [0.0, *cuts, float(cv.size)]
    vertical = cv.rng.random() < 0.5
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        coord = cv.xx if vertical else cv.yy
        mask = (coord >= a) & (coord < b)
        crops = [cv.color(c) for c in cv.rng.choice(["crop_green", "crop_yellow", "soil", "grass"], 2, replace=False)]
        cv.stripes(mask, cv.u(0, 180), cv.px(0.03, 0.07), crops)


def draw_airplane(cv: Canvas) -> None:
    ground(cv, "concrete" if cv.rng.random() < 0.6 else "asphalt", 8)
    for _ in range(int(cv.rng.integers(1, 4))):
        cx, cy, a = cv.px(0.2, 0.8), cv.px(0.2, 0.8), cv.u(-90, 90)
        length, col = cv.px(0.25, 0.4), cv.color("white", 0.04)
        cv.rect(cx, cy, length, length * 0.13, a, col)
        cv.rect(cx, cy, length * 0.2, length * 0.95, a, col)  # wings
        tx, ty = cx - 0.42 * length * math.cos(math.radians(a)), cy + 0.42 * length * math.sin(math.radians(a))
        cv.rect(tx, ty, length * 0.1, length * 0.4, a, col)  # tail plane
        cv.objects.append(DrawnObject("airplane", (cx, cy), (length, length * 0.95), ((a + 90) % 180) - 90))


def draw_baseball(cv: Canvas) -> None:
    """Baseball diamond: a sand infield quarter-disc with a grass diamond and white base lines."""
    ground(cv, "grass")
    trees(cv, cv.u(5, 20))
    for _ in range(int(cv.rng.integers(1, 3))):
        cx, cy, r, a = cv.px(0.3, 0.7), cv.px(0.3, 0.7), cv.px(0.18, 0.3), cv.u(0, 360)
        win = cv.window(cx, cy, r, r)
        dx, dy = cv.xx[win] - cx, cv.yy[win] - cy
        theta = (np.degrees(np.arctan2(-dy, dx)) - a) % 360
        sector = (dx * dx + dy * dy <= r * r) & (theta <= 90)
        cv.paint(win, sector, cv.color("sand"))
        dcx = cx + 0.35 * r * math.cos(math.radians(a + 45))
        dcy = cy - 0.35 * r * math.sin(math.radians(a + 45))
        cv.rect(dcx, dcy, 0.38 * r, 0.38 * r, a, cv.color("grass"))
        cv.objects.append(DrawnObject("baseball diamond", (dcx, dcy), (r, r), ((a + 90) % 180) - 90))


def draw_beach(cv: Canvas) -> None:
    ground(cv, "sand", 10)
    a, off = cv.u(-90, 90), cv.px(-0.15, 0.15)
    cx, cy = to_image(cv, a, 0, off)
    c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
    v = (cv.xx - cx) * s + (cv.yy - cy) * c
    v = v - cv.px(0.02, 0.05) * np.sin(cv.xx * c / cv.size * 12 + cv.u(0, 6))
    cv.img[v > 0] = cv.color("water")
    cv.img[(v > -cv.size * 0.02) & (v <= 0)] = cv.color("white", 0.03)  # surf
    if cv.rng.random() < 0.5:
        trees(cv, cv.u(3, 12), region=v < -cv.size * 0.3)


def draw_buildings(cv: Canvas) -> None:
    """Buildings: a few large flat roofs on paved ground with roads."""
    ground(cv, "concrete", 10)
    a = cv.u(-90, 90) if cv.rng.random() < 0.5 else 0.0
    road(cv, cv.px(-0.3, 0.3), a, 0.06)
    for _ in range(int(cv.rng.integers(3, 8))):
        w, h = cv.px(0.15, 0.35), cv.px(0.12, 0.3)
        cv.rect(cv.px(0.1, 0.9), cv.px(0.1, 0.9), w, h, a, cv.color(str(cv.rng.choice(ROOFS))), "building")


def draw_chaparral(cv: Canvas) -> None:
    ground(cv, "dry_grass" if cv.rng.random() < 0.6 else "soil", 18)
    cv.scatter(cv.u(40, 110), cv.size * 0.025, cv.color("tree") * 1.25)


def draw_dense_residential(cv: Canvas) -> None:
    ground(cv, "grass")
    step = cv.px(0.085, 0.11)
    roof_grid(cv, step, (step * 0.8, step * 0.7), 0.92, cv.u(-90, 90), roads_every=3)
    trees(cv, cv.u(0, 6), 0.025)


def draw_medium_residential(cv: Canvas) -> None:
    ground(cv, "grass")
    step = cv.px(0.12, 0.16)
    roof_grid(cv, step, (step * 0.55, step * 0.45), 0.72, cv.u(-90, 90), roads_every=3)
    trees(cv, cv.u(8, 20), 0.03)


def draw_sparse_residential(cv: Canvas) -> None:
    ground(cv, "grass" if cv.rng.random() < 0.7 else "dry_grass")
    if cv.rng.random() < 0.6:
        road(cv, cv.px(-0.3, 0.3), cv.u(-90, 90), 0.05, lanes=False)
    for _ in range(int(cv.rng.integers(3, 10))):
        cv.rect(cv.px(0.05, 0.95), cv.px(0.05, 0.95), cv.px(0.07, 0.11), cv.px(0.06, 0.09), cv.u(-90, 90),
                cv.color(str(cv.rng.choice(ROOFS))), "building")
    trees(cv, cv.u(15, 40), 0.035)


def draw_forest(cv: Canvas) -> None:
    ground(cv, "tree", 10)
    cv.scatter(cv.u(80, 160), cv.size * 0.045, cv.color("tree") * 1.15, jitter=0.5)
    cv.scatter(cv.u(30, 70), cv.size * 0.03, cv.color("tree") * 0.8)


def draw_freeway(cv: Canvas) -> None:
    ground(cv, str(cv.rng.choice(["grass", "dry_grass"])))
    a, off, gap = cv.u(-90, 90), cv.px(-0.15, 0.15), cv.px(0.1, 0.16)
    for side in (-1, 1):
        road(cv, off + side * gap / 2, a, 0.11)
        for _ in range(int(cv.rng.integers(1, 5))):
            t = cv.px(-0.5, 0.5)
            px_, py_ = to_image(cv, a, t, off + side * gap / 2 + cv.px(-0.02, 0.02))
            cv.rect(px_, py_, cv.size * 0.05, cv.size * 0.025, a, cv.color(str(cv.rng.choice(ROOFS))), "car")
    trees(cv, cv.u(3, 15))


def draw_golfcourse(cv: Canvas) -> None:
    ground(cv, "grass", 10)
    for _ in range(int(cv.rng.integers(2, 4))):
        cv.ellipse(cv.px(0.1, 0.9), cv.px(0.1, 0.9), cv.px(0.2, 0.35), cv.px(0.07, 0.12), cv.u(-90, 90),
                   cv.color("crop_green") * 1.1)
    for _ in range(int(cv.rng.integers(2, 6))):
        cv.ellipse(cv.px(0.1, 0.9), cv.px(0.1, 0.9), cv.px(0.02, 0.04), cv.px(0.015, 0.03), cv.u(-90, 90),
                   cv.color("sand"))
    trees(cv, cv.u(10, 35), 0.04)
    if cv.rng.random() < 0.4:
        cv.ellipse(cv.px(0.2, 0.8), cv.px(0.2, 0.8), cv.px(0.05, 0.1), cv.px(0.04, 0.08), 0, cv.color("water"))


def draw_harbor(cv: Canvas) -> None:
    """Harbor: water with piers and many moored boats along them."""
    ground(cv, "water", 6)
    a = cv.u(-90, 90)
    for k in range(int(cv.rng.integers(2, 5))):
        off = (k - 1.5) * cv.px(0.18, 0.24)
        px_, py_ = to_image(cv, a, -cv.size * 0.1, off)
        cv.rect(px_, py_, cv.size * 0.8, cv.size * 0.025, a, cv.color("concrete"))
        for t in np.arange(-0.45, 0.35, cv.u(0.05, 0.08)) * cv.size:
            if cv.rng.random() < 0.75:
                side = 1 if cv.rng.random() < 0.5 else -1
                bx, by = to_image(cv, a, t - cv.size * 0.1, off + side * cv.size * 0.045)
                cv.rect(bx, by, cv.size * 0.025, cv.size * 0.06, a, cv.color("white", 0.05), "boat")


def draw_intersection(cv: Canvas) -> None:
    ground(cv, str(cv.rng.choice(["grass", "concrete", "dry_grass"])))
    a = cv.u(-90, 90)
    road(cv, cv.px(-0.1, 0.1), a, 0.12)
    road(cv, cv.px(-0.1, 0.1), a + 90 + cv.u(-10, 10), 0.12)
    for _ in range(int(cv.rng.integers(2, 6))):
        cv.rect(cv.px(0.05, 0.95), cv.px(0.05, 0.95), cv.px(0.08, 0.15), cv.px(0.08, 0.15), a,
                cv.color(str(cv.rng.choice(ROOFS))), "building")
    trees(cv, cv.u(0, 10))


def draw_mobilehomepark(cv: Canvas) -> None:
    ground(cv, str(cv.rng.choice(["grass", "dry_grass", "concrete"])))
    step = cv.px(0.075, 0.09)
    roof_grid(cv, step, (step * 1.7, step * 0.55), 0.9, cv.u(-90, 90), roads_every=4,
              colors=("roof_white", "roof_grey"))


def draw_overpass(cv: Canvas) -> None:
    """Overpass: a road crossing over another, with its shadow beside it."""
    ground(cv, str(cv.rng.choice(["grass", "dry_grass"])))
    a, b = cv.u(-90, 90), cv.u(25, 65)
    road(cv, cv.px(-0.1, 0.1), a, 0.1)
    off = cv.px(-0.1, 0.1)
    cx, cy = to_image(cv, a + b, 0, off + cv.size * 0.06)
    cv.band(cx, cy, cv.size * 0.09, a + b, np.zeros(3, np.float32), alpha=0.45)  # shadow
    road(cv, off, a + b, 0.1)
    trees(cv, cv.u(3, 12))


def draw_parking(cv: Canvas) -> None:
    ground(cv, "asphalt", 6)
    a = cv.u(-90, 90) if cv.rng.random() < 0.5 else 0.0
    step = cv.px(0.06, 0.08)
    n = int(cv.size * 0.75 / step) + 1
    for i in range(-n, n + 1):
        if i % 3 == 2:
            continue
        for j in range(-2 * n, 2 * n + 1):
            cx, cy = to_image(cv, a, j * step * 0.5, i * step)
            if 0 <= cx < cv.size and 0 <= cy < cv.size and cv.rng.random() < 0.7:
                col = cv.color(str(cv.rng.choice(ROOFS + ("white", "court_blue"))), 0.15)
                cv.rect(cx, cy, step * 0.3, step * 0.7, a, col, "car")


def draw_river(cv: Canvas) -> None:
    ground(cv, str(cv.rng.choice(["grass", "tree", "dry_grass"])))
    a = cv.u(-90, 90)
    cx, cy = to_image(cv, a, 0, cv.px(-0.15, 0.15))
    cv.band(cx, cy, cv.px(0.1, 0.25), a, cv.color("water"), wave=cv.px(0.03, 0.1), period=cv.u(0.6, 1.5),
            phase=cv.u(0, 6.3))
    trees(cv, cv.u(5, 30))


def draw_runway(cv: Canvas) -> None:
    ground(cv, str(cv.rng.choice(["grass", "dry_grass"])))
    a, off = cv.u(-90, 90), cv.px(-0.15, 0.15)
    cx, cy = to_image(cv, a, 0, off)
    cv.band(cx, cy, cv.px(0.16, 0.24), a, cv.color("concrete", 0.04))
    for t in np.arange(-0.6, 0.6, 0.12) * cv.size:  # dashed centre line
        x, y = to_image(cv, a, t, off)
        cv.rect(x, y, cv.size * 0.06, max(cv.size * 0.012, 0.8), a, cv.color("white", 0.02))
    if cv.rng.random() < 0.5:
        road(cv, off + cv.px(0.25, 0.35), a, 0.05, lanes=False)  # taxiway


def draw_storagetanks(cv: Canvas) -> None:
    """Storage tanks: round white tanks with a dark rim, in a cluster, on paved or bare ground."""
    ground(cv, str(cv.rng.choice(["concrete", "soil", "dry_grass"])), 10)
    r0 = cv.px(0.05, 0.09)
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(cv.rng.integers(3, 13))):
        r = r0 * cv.u(0.7, 1.3)
        x, y = cv.px(0.08, 0.92), cv.px(0.08, 0.92)
        if all((x - px_) ** 2 + (y - py_) ** 2 > (r + pr + 1) ** 2 for px_, py_, pr in placed):
            placed.append((x, y, r))
            cv.ellipse(x + r * 0.25, y + r * 0.25, r, r, 0, np.zeros(3, np.float32), alpha=0.4)  # shadow
            cv.ellipse(x, y, r, r, 0, cv.color("roof_white", 0.05), "storage tank")
            cv.ellipse(x, y, r, r, 0, cv.color("roof_grey"), ring=0.25)


def draw_tenniscourt(cv: Canvas) -> None:
    ground(cv, str(cv.rng.choice(["grass", "concrete"])))
    a, n = cv.u(-90, 90), int(cv.rng.integers(1, 5))
    surface = cv.color(str(cv.rng.choice(["court_green", "court_blue", "track_red"])))
    w, h = cv.px(0.22, 0.3), cv.px(0.11, 0.15)
    x0 = cv.u(-0.15, 0.15) * cv.size
    for k in range(n):
        cx, cy = to_image(cv, a, x0, (k - (n - 1) / 2) * h * 1.15)
        cv.rect(cx, cy, w * 1.15, h * 1.1, a, cv.color("concrete"))
        cv.rect(cx, cy, w, h, a, surface, "tennis court")
        cv.rect(cx, cy, max(cv.size * 0.01, 0.8), h, a, cv.color("white", 0.02))  # net
    trees(cv, cv.u(4, 16))


@dataclass
class Scene:
    """A drawn scene: uint8 RGB pixels and the objects they contain."""

    kind: str
    pixels: np.ndarray
    objects: list[DrawnObject]


UCM_DRAWERS = {
    "agricultural": draw_fields, "airplane": draw_airplane, "baseballdiamond": draw_baseball,
    "beach": draw_beach, "buildings": draw_buildings, "chaparral": draw_chaparral,
    "denseresidential": draw_dense_residential, "forest": draw_forest, "freeway": draw_freeway,
    "golfcourse": draw_golfcourse, "harbor": draw_harbor, "intersection": draw_intersection,
    "mediumresidential": draw_medium_residential, "mobilehomepark": draw_mobilehomepark,
    "overpass": draw_overpass, "parkinglot": draw_parking, "river": draw_river, "runway": draw_runway,
    "sparseresidential": draw_sparse_residential, "storagetanks": draw_storagetanks,
    "tenniscourt": draw_tenniscourt,
}  # fmt: skip
