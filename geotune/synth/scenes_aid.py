"""AID scene classes (the 30 of the real set) and the one entry point that draws any SynthRS class.

Classes AID shares with UCMerced (beach, forest, river, storage tanks, residential densities, ...)
use the UCMerced drawers; the others are drawn here.
"""

from __future__ import annotations

import math

import numpy as np

from geotune.synth import scenes as S
from geotune.synth.canvas import Canvas

# Real AID class sizes (images per class, 10,000 in all): SynthRS keeps their proportions.
AID_SIZES = {
    "Airport": 360, "BareLand": 310, "BaseballField": 220, "Beach": 400, "Bridge": 360, "Center": 260,
    "Church": 240, "Commercial": 350, "DenseResidential": 410, "Desert": 300, "Farmland": 370,
    "Forest": 250, "Industrial": 390, "Meadow": 280, "MediumResidential": 290, "Mountain": 340,
    "Park": 350, "Parking": 390, "Playground": 370, "Pond": 420, "Port": 380, "RailwayStation": 260,
    "Resort": 290, "River": 410, "School": 300, "SparseResidential": 300, "Square": 330, "Stadium": 290,
    "StorageTanks": 360, "Viaduct": 420,
}  # fmt: skip
AID_DIRS = tuple(AID_SIZES)
AID_CLASSES = tuple(d.lower() for d in AID_DIRS)


def spaced_aid(name: str) -> str:
    """"bare land" for ``bareland`` / ``BareLand`` (the CamelCase directory split into words)."""
    camel = AID_DIRS[AID_CLASSES.index(name.lower())]
    return "".join(" " + ch.lower() if ch.isupper() else ch for ch in camel).strip()


def draw_airport(cv: Canvas) -> None:
    S.draw_runway(cv)
    S.road(cv, cv.px(-0.4, -0.25), cv.u(-90, 90), 0.06, lanes=False)
    for _ in range(int(cv.rng.integers(1, 3))):
        x, y, a = cv.px(0.15, 0.85), cv.px(0.15, 0.85), cv.u(-90, 90)
        size = cv.px(0.15, 0.22)
        cv.rect(x, y, size, size * 0.15, a, cv.color("white", 0.04))
        cv.rect(x, y, size * 0.2, size, a, cv.color("white", 0.04), "airplane")
    cv.rect(cv.px(0.1, 0.9), cv.px(0.1, 0.9), cv.px(0.3, 0.5), cv.px(0.08, 0.12), 0, cv.color("roof_grey"), "building")


def draw_bareland(cv: Canvas) -> None:
    S.ground(cv, str(cv.rng.choice(["soil", "sand", "dry_grass"])), 20)
    for _ in range(int(cv.rng.integers(0, 3))):  # tracks
        x, y = S.to_image(cv, 0, 0, 0)
        cv.band(x + cv.px(-0.3, 0.3), y, max(cv.size * 0.012, 0.8), cv.u(-90, 90), cv.color("soil") * 0.85,
                wave=cv.px(0, 0.05), period=cv.u(0.5, 1.5))


def draw_bridge(cv: Canvas) -> None:
    S.draw_river(cv)
    S.road(cv, cv.px(-0.15, 0.15), cv.u(-90, 90), 0.08)


def draw_center(cv: Canvas) -> None:
    """Center: one large round or square landmark roof on a plaza, ringed by roads and parking."""
    S.ground(cv, "concrete", 8)
    x, y, r = cv.px(0.4, 0.6), cv.px(0.4, 0.6), cv.px(0.18, 0.3)
    cv.ellipse(x, y, r * 1.3, r * 1.3, 0, cv.color("asphalt"), ring=0.18)
    if cv.rng.random() < 0.6:
        cv.ellipse(x, y, r, r, 0, cv.color(str(cv.rng.choice(S.ROOFS))), "building")
    else:
        cv.rect(x, y, 1.7 * r, 1.7 * r, cv.u(-45, 45), cv.color(str(cv.rng.choice(S.ROOFS))), "building")
    S.trees(cv, cv.u(0, 8))


def draw_church(cv: Canvas) -> None:
    """Church: a cross-shaped roof among dense houses."""
    S.ground(cv, "concrete", 10)
    S.roof_grid(cv, cv.px(0.1, 0.13), (cv.size * 0.08, cv.size * 0.07), 0.6, cv.u(-90, 90))
    x, y, a, size = cv.px(0.35, 0.65), cv.px(0.35, 0.65), cv.u(-90, 90), cv.px(0.35, 0.5)
    col = cv.color(str(cv.rng.choice(["roof_red", "roof_grey"])))
    cv.rect(x, y, size * 1.3, size * 1.3, a, cv.color("concrete"))
    cv.rect(x, y, size, size * 0.3, a, col, "church")
    cv.rect(x + 0.15 * size * math.cos(math.radians(a)), y - 0.15 * size * math.sin(math.radians(a)),
            size * 0.25, size * 0.75, a, col)


def draw_commercial(cv: Canvas) -> None:
    S.ground(cv, "concrete", 8)
    a = cv.u(-90, 90) if cv.rng.random() < 0.5 else 0.0
    S.roof_grid(cv, cv.px(0.2, 0.26), (cv.size * 0.15, cv.size * 0.12), 0.8, a, roads_every=2)
    for _ in range(int(cv.rng.integers(4, 12))):
        cv.rect(cv.px(0, 1), cv.px(0, 1), cv.size * 0.04, cv.size * 0.02, a, cv.color(str(cv.rng.choice(S.ROOFS))), "car")


def draw_desert(cv: Canvas) -> None:
    S.ground(cv, "sand", 16)
    dunes = np.sin((cv.xx * math.cos(cv.u(0, 3.14)) + cv.yy * math.sin(cv.u(0, 3.14))) / cv.px(0.03, 0.08))
    cv.img += (dunes * cv.u(6, 18))[..., None]


def draw_industrial(cv: Canvas) -> None:
    S.ground(cv, "concrete", 10)
    a = cv.u(-90, 90) if cv.rng.random() < 0.5 else 0.0
    for _ in range(int(cv.rng.integers(2, 5))):
        cv.rect(cv.px(0.1, 0.9), cv.px(0.1, 0.9), cv.px(0.25, 0.45), cv.px(0.15, 0.3), a,
                cv.color(str(cv.rng.choice(["roof_grey", "roof_blue", "roof_white"]))), "building")
    for _ in range(int(cv.rng.integers(0, 4))):
        r = cv.px(0.04, 0.07)
        cv.ellipse(cv.px(0.1, 0.9), cv.px(0.1, 0.9), r, r, 0, cv.color("roof_white"), "storage tank")
    S.road(cv, cv.px(-0.4, 0.4), a, 0.05, lanes=False)


def draw_meadow(cv: Canvas) -> None:
    S.ground(cv, str(cv.rng.choice(["grass", "dry_grass", "crop_green"])), 12)
    S.trees(cv, cv.u(0, 4))


def draw_mountain(cv: Canvas) -> None:
    """Mountain: strong shaded relief (ridges) under sparse vegetation."""
    S.ground(cv, str(cv.rng.choice(["soil", "tree", "dry_grass"])), 8)
    relief = cv.smooth_noise(int(cv.rng.integers(3, 6))) + 0.5 * cv.smooth_noise(int(cv.rng.integers(8, 14)))
    gy, gx = np.gradient(relief)
    cv.img += (np.clip(gx + gy, -1, 1) * cv.size * cv.u(0.8, 1.6))[..., None]


def draw_park(cv: Canvas) -> None:
    S.ground(cv, "grass", 10)
    if cv.rng.random() < 0.7:
        cv.ellipse(cv.px(0.3, 0.7), cv.px(0.3, 0.7), cv.px(0.1, 0.2), cv.px(0.07, 0.15), cv.u(-90, 90),
                   cv.color("water"), "pond")
    for _ in range(int(cv.rng.integers(1, 3))):  # footpaths
        x, y = cv.px(0.2, 0.8), cv.px(0.2, 0.8)
        cv.band(x, y, max(cv.size * 0.015, 0.8), cv.u(-90, 90), cv.color("sand"), wave=cv.px(0.02, 0.08))
    S.trees(cv, cv.u(15, 45), 0.04)


def draw_playground(cv: Canvas) -> None:
    """Playground: a red running track (oval ring) around a green pitch."""
    S.ground(cv, str(cv.rng.choice(["concrete", "grass"])))
    x, y, a = cv.px(0.4, 0.6), cv.px(0.4, 0.6), cv.u(-90, 90)
    rx, ry = cv.px(0.3, 0.42), cv.px(0.18, 0.25)
    cv.ellipse(x, y, rx, ry, a, cv.color("track_red"), "running track")
    cv.ellipse(x, y, rx * 0.78, ry * 0.68, a, cv.color("court_green"))
    S.trees(cv, cv.u(0, 10))


def draw_pond(cv: Canvas) -> None:
    S.ground(cv, str(cv.rng.choice(["grass", "dry_grass", "tree"])))
    for _ in range(int(cv.rng.integers(1, 3))):
        cv.ellipse(cv.px(0.3, 0.7), cv.px(0.3, 0.7), cv.px(0.15, 0.32), cv.px(0.1, 0.25), cv.u(-90, 90),
                   cv.color("water"), "pond")
    S.trees(cv, cv.u(5, 20))


def draw_port(cv: Canvas) -> None:
    """Port: a quay with container stacks in many colours and large ships in the water."""
    S.ground(cv, "water", 6)
    a, off = cv.u(-90, 90), cv.px(-0.1, 0.1)
    c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
    x, y = S.to_image(cv, a, 0, off)
    v = (cv.xx - x) * s + (cv.yy - y) * c
    cv.img[v < 0] = cv.color("concrete")
    for _ in range(int(cv.rng.integers(6, 16))):
        px_, py_ = S.to_image(cv, a, cv.px(-0.5, 0.5), off - cv.px(0.08, 0.45))
        col = cv.color(str(cv.rng.choice(["roof_red", "roof_blue", "crop_yellow", "court_green"])), 0.1)
        cv.rect(px_, py_, cv.size * 0.12, cv.size * 0.04, a, col, "container")
    for _ in range(int(cv.rng.integers(1, 4))):
        px_, py_ = S.to_image(cv, a, cv.px(-0.4, 0.4), off + cv.px(0.08, 0.2))
        cv.rect(px_, py_, cv.px(0.25, 0.4), cv.size * 0.07, a, cv.color(str(cv.rng.choice(S.ROOFS))), "ship")


def draw_railwaystation(cv: Canvas) -> None:
    """Railway station: many parallel thin rails and long platform roofs."""
    S.ground(cv, str(cv.rng.choice(["concrete", "soil"])), 8)
    a, step = cv.u(-90, 90), cv.px(0.035, 0.05)
    n = int(cv.rng.integers(6, 14))
    for k in range(n):
        x, y = S.to_image(cv, a, 0, (k - n / 2) * step)
        if k % 4 == 3:
            cv.rect(x, y, cv.size * cv.u(0.6, 0.9), step * 0.9, a, cv.color("roof_grey"), "platform")
        else:
            cv.band(x, y, max(step * 0.35, 0.8), a, cv.color("asphalt") * 0.7)


def draw_resort(cv: Canvas) -> None:
    S.ground(cv, "grass", 10)
    for _ in range(int(cv.rng.integers(1, 4))):
        cv.rect(cv.px(0.2, 0.8), cv.px(0.2, 0.8), cv.px(0.08, 0.18), cv.px(0.06, 0.12), cv.u(-90, 90),
                cv.color("pool"), "swimming pool")
    for _ in range(int(cv.rng.integers(4, 10))):
        cv.rect(cv.px(0.05, 0.95), cv.px(0.05, 0.95), cv.px(0.08, 0.14), cv.px(0.08, 0.14), cv.u(-90, 90),
                cv.color("roof_red"), "building")
    S.trees(cv, cv.u(15, 40), 0.04)


def draw_school(cv: Canvas) -> None:
    S.ground(cv, "concrete", 10)
    a = cv.u(-90, 90)
    for _ in range(int(cv.rng.integers(2, 4))):
        px_, py_ = S.to_image(cv, a, cv.px(-0.3, 0.3), cv.px(-0.35, -0.1))
        cv.rect(px_, py_, cv.px(0.3, 0.5), cv.px(0.08, 0.12), a, cv.color(str(cv.rng.choice(S.ROOFS))), "building")
    x, y = S.to_image(cv, a, cv.px(-0.1, 0.1), cv.px(0.2, 0.3))
    cv.ellipse(x, y, cv.size * 0.3, cv.size * 0.17, a, cv.color("track_red"), "running track")
    cv.ellipse(x, y, cv.size * 0.23, cv.size * 0.11, a, cv.color("court_green"))


def draw_square(cv: Canvas) -> None:
    """Square: a large paved plaza with a tiled pattern and a central feature, framed by buildings."""
    S.ground(cv, "concrete", 6)
    a = cv.u(-90, 90) if cv.rng.random() < 0.5 else 0.0
    mask = np.ones((cv.size, cv.size), bool)
    cv.stripes(mask, a, cv.px(0.08, 0.14), [cv.color("concrete"), cv.color("sand", 0.04)])
    x, y = cv.px(0.4, 0.6), cv.px(0.4, 0.6)
    cv.ellipse(x, y, cv.px(0.06, 0.1), cv.px(0.06, 0.1), 0, cv.color(str(cv.rng.choice(["pool", "grass"]))), "fountain")
    for k in range(4):
        bx, by = S.to_image(cv, a + 90 * k, 0, cv.size * 0.45)
        cv.rect(bx, by, cv.size * 0.8, cv.size * 0.12, a + 90 * k, cv.color(str(cv.rng.choice(S.ROOFS))))


def draw_stadium(cv: Canvas) -> None:
    """Stadium: an oval of stands (ring) around a green pitch, on a car park."""
    S.ground(cv, str(cv.rng.choice(["asphalt", "concrete"])), 8)
    x, y, a = cv.px(0.42, 0.58), cv.px(0.42, 0.58), cv.u(-90, 90)
    rx, ry = cv.px(0.36, 0.45), cv.px(0.28, 0.36)
    cv.ellipse(x, y, rx, ry, a, cv.color(str(cv.rng.choice(["roof_white", "roof_grey"]))), "stadium")
    cv.ellipse(x, y, rx * 0.7, ry * 0.62, a, cv.color("court_green"))
    cv.rect(x, y, rx * 0.9, ry * 0.7, a, cv.color("court_green"))


def draw_viaduct(cv: Canvas) -> None:
    """Viaduct: curved elevated roads crossing, with their shadows."""
    S.ground(cv, str(cv.rng.choice(["grass", "concrete", "dry_grass"])))
    for _ in range(int(cv.rng.integers(2, 4))):
        x, y, a = cv.px(0.3, 0.7), cv.px(0.3, 0.7), cv.u(-90, 90)
        wave, period, phase = cv.px(0.05, 0.15), cv.u(0.8, 2.0), cv.u(0, 6.3)
        cv.band(x + cv.size * 0.04, y + cv.size * 0.04, cv.size * 0.08, a, np.zeros(3, np.float32), wave, period,
                phase, alpha=0.4)
        cv.band(x, y, cv.size * 0.08, a, cv.color("concrete", 0.04), wave, period, phase)


AID_DRAWERS = {
    "airport": draw_airport, "bareland": draw_bareland, "baseballfield": S.draw_baseball, "beach": S.draw_beach,
    "bridge": draw_bridge, "center": draw_center, "church": draw_church, "commercial": draw_commercial,
    "denseresidential": S.draw_dense_residential, "desert": draw_desert, "farmland": S.draw_fields,
    "forest": S.draw_forest, "industrial": draw_industrial, "meadow": draw_meadow,
    "mediumresidential": S.draw_medium_residential, "mountain": draw_mountain, "park": draw_park,
    "parking": S.draw_parking, "playground": draw_playground, "pond": draw_pond, "port": draw_port,
    "railwaystation": draw_railwaystation, "resort": draw_resort, "river": S.draw_river, "school": draw_school,
    "sparseresidential": S.draw_sparse_residential, "square": draw_square, "stadium": draw_stadium,
    "storagetanks": S.draw_storagetanks, "viaduct": draw_viaduct,
}  # fmt: skip
DRAWERS = {"ucmerced": S.UCM_DRAWERS, "aid": AID_DRAWERS}

# Difficulty: sensor noise sigma and global gain range of every scene (see docs/synthrs.md).
NOISE, GAIN = 10.0, 0.2


def draw_scene(dataset: str, name: str, rng: np.random.Generator, size: int) -> S.Scene:
    """Draw one scene of class ``name`` of ``dataset`` ("ucmerced" or "aid")."""
    cv = Canvas(size, rng)
    DRAWERS[dataset][name](cv)
    return S.Scene(name, cv.finish(NOISE, GAIN), cv.objects)
