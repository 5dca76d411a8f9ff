"""Vectorised drawing primitives for SynthRS scenes (numpy masks on a float RGB canvas).

Every primitive works on the window of the canvas its shape can touch, so a scene with 60 roofs
costs 60 small mask evaluations rather than 60 full-image ones. Shapes that stand for countable or
locatable things are recorded as :class:`DrawnObject` so questions, captions and boxes are true by
construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

# Land-cover tones shared by many classes on purpose: a colour histogram alone must not give the
# class away (learnability is measured, and should stay far from 100%).
PALETTE = {
    "grass": (92, 128, 68),
    "dry_grass": (148, 146, 96),
    "soil": (138, 112, 84),
    "sand": (202, 186, 146),
    "concrete": (152, 150, 146),
    "asphalt": (74, 74, 80),
    "water": (42, 72, 98),
    "tree": (38, 72, 42),
    "roof_red": (152, 82, 64),
    "roof_grey": (122, 120, 126),
    "roof_white": (222, 220, 214),
    "roof_blue": (82, 110, 150),
    "white": (236, 236, 232),
    "crop_yellow": (184, 170, 92),
    "crop_green": (108, 150, 70),
    "court_green": (62, 128, 86),
    "court_blue": (58, 96, 150),
    "track_red": (170, 76, 60),
    "pool": (80, 180, 200),
}


@dataclass
class DrawnObject:
    """A drawn thing a question or a box can refer to.

    Attributes:
        category: singular name ("storage tank", "building", "airplane", ...).
        center: (cx, cy) in pixels.
        extent: (w, h) of the un-rotated shape in pixels.
        angle: rotation in degrees, counter-clockwise, in [-90, 90).
    """

    category: str
    center: tuple[float, float]
    extent: tuple[float, float]
    angle: float = 0.0


@dataclass
class Canvas:
    """A float32 RGB canvas with a random generator and the list of objects drawn on it."""

    size: int
    rng: np.random.Generator
    objects: list[DrawnObject] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.img = np.zeros((self.size, self.size, 3), np.float32)
        coords = np.arange(self.size, dtype=np.float32) + 0.5
        self.xx, self.yy = np.meshgrid(coords, coords)

    # -- colours ---------------------------------------------------------------------------------
    def color(self, name: str, jitter: float = 0.08) -> np.ndarray:
        """A palette tone with per-channel multiplicative jitter (scene-to-scene colour variation)."""
        base = np.asarray(PALETTE[name], np.float32)
        return base * (1.0 + self.rng.normal(0.0, jitter, 3)).astype(np.float32)

    def u(self, lo: float, hi: float) -> float:
        """A uniform draw in [lo, hi)."""
        return float(self.rng.uniform(lo, hi))

    def px(self, frac_lo: float, frac_hi: float) -> float:
        """A uniform length in pixels, given as fractions of the canvas size."""
        return float(self.rng.uniform(frac_lo, frac_hi)) * self.size

    # -- fills -----------------------------------------------------------------------------------
    def fill(self, color: np.ndarray, texture: float = 12.0, grain: int = 6) -> None:
        """Fill the canvas with ``color`` modulated by smooth low-frequency noise."""
        self.img[:] = color
        self.img += self.smooth_noise(grain)[..., None] * texture

    def smooth_noise(self, grain: int) -> np.ndarray:
        """Zero-mean, unit-scale smooth noise: a ``grain``x``grain`` random grid upsampled bilinearly."""
        grid = self.rng.normal(0.0, 1.0, (grain, grain)).astype(np.float32)
        up = Image.fromarray(grid).resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(up, np.float32)

    # -- shapes ----------------------------------------------------------------------------------
    def window(self, cx: float, cy: float, ex: float, ey: float):
        """Slices of the canvas a shape centred at (cx, cy) with half-extents (ex, ey) can touch."""
        x0, x1 = max(int(cx - ex) - 1, 0), min(int(math.ceil(cx + ex)) + 1, self.size)
        y0, y1 = max(int(cy - ey) - 1, 0), min(int(math.ceil(cy + ey)) + 1, self.size)
        return slice(y0, max(y1, y0)), slice(x0, max(x1, x0))

    def _local(self, cx: float, cy: float, angle: float, ex: float, ey: float):
        win = self.window(cx, cy, ex, ey)
        dx, dy = self.xx[win] - cx, self.yy[win] - cy
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        # u along the shape's long axis, v across it (image y points down, so negate for CCW).
        return win, dx * c - dy * s, dx * s + dy * c

    def paint(self, win, mask: np.ndarray, color: np.ndarray, alpha: float = 1.0) -> None:
        region = self.img[win]
        region[mask] = region[mask] * (1.0 - alpha) + color * alpha

    def rect(self, cx, cy, w, h, angle, color, category=None, alpha=1.0) -> None:
        """A filled rectangle ``w`` along ``angle`` and ``h`` across it."""
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        ex, ey = (w * c + h * s) / 2, (w * s + h * c) / 2
        win, u, v = self._local(cx, cy, angle, ex, ey)
        self.paint(win, (np.abs(u) <= w / 2) & (np.abs(v) <= h / 2), color, alpha)
        self.record(category, cx, cy, w, h, angle)

    def ellipse(self, cx, cy, rx, ry, angle, color, category=None, alpha=1.0, ring=0.0) -> None:
        """A filled ellipse (or a ring of relative width ``ring`` when > 0)."""
        r = max(rx, ry)
        win, u, v = self._local(cx, cy, angle, r, r)
        d = (u / max(rx, 1e-3)) ** 2 + (v / max(ry, 1e-3)) ** 2
        mask = d <= 1.0 if ring <= 0 else (d <= 1.0) & (d >= (1.0 - ring) ** 2)
        self.paint(win, mask, color, alpha)
        self.record(category, cx, cy, 2 * rx, 2 * ry, angle)

    def band(self, cx, cy, width, angle, color, wave=0.0, period=1.0, phase=0.0, alpha=1.0) -> np.ndarray:
        """An infinite strip through (cx, cy) along ``angle``, optionally wavy; returns its mask."""
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        dx, dy = self.xx - cx, self.yy - cy
        u, v = dx * c - dy * s, dx * s + dy * c
        if wave:
            v = v - wave * np.sin(2 * math.pi * u / (period * self.size) + phase)
        mask = np.abs(v) <= width / 2
        self.paint((slice(None), slice(None)), mask, color, alpha)
        return mask

    def stripes(self, mask: np.ndarray, angle: float, period: float, colors: list[np.ndarray]) -> None:
        """Parallel stripes (ploughed or planted rows) of ``colors`` in turn, inside ``mask``."""
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        v = self.xx * s + self.yy * c
        idx = np.floor(v / max(period, 1.0)).astype(np.int64) % len(colors)
        for k, col in enumerate(colors):
            sel = mask & (idx == k)
            self.img[sel] = col

    def scatter(self, n, radius, color, region=None, category=None, jitter=0.3) -> None:
        """``n`` small round blobs (trees, shrubs) at random places (inside ``region`` if given)."""
        for _ in range(int(n)):
            cx, cy = self.u(0, self.size), self.u(0, self.size)
            if region is not None and not region[min(int(cy), self.size - 1), min(int(cx), self.size - 1)]:
                continue
            r = radius * (1 + self.rng.uniform(-jitter, jitter))
            self.ellipse(cx, cy, r, r, 0.0, color * (1 + self.rng.normal(0, 0.06)), category)

    def record(self, category, cx, cy, w, h, angle) -> None:
        if category is None:
            return
        a = ((angle + 90.0) % 180.0) - 90.0
        self.objects.append(DrawnObject(category, (float(cx), float(cy)), (float(w), float(h)), a))

    # -- finishing -------------------------------------------------------------------------------
    def finish(self, noise: float = 6.0, gain: float = 0.12) -> np.ndarray:
        """Global brightness/contrast variation, sensor noise, then uint8 RGB."""
        out = self.img * float(1.0 + self.rng.uniform(-gain, gain))
        out += self.rng.normal(0.0, noise, out.shape).astype(np.float32)
        return np.clip(out, 0, 255).astype(np.uint8)


def oriented_box(obj: DrawnObject, size: int) -> tuple[int, int, int, int, int]:
    """GeoChat box of an object: un-rotated extents around its centre on a 0-100 grid, and θ."""
    (cx, cy), (w, h) = obj.center, obj.extent
    scale = 100.0 / size

    def grid(value: float) -> int:
        return int(min(max(round(value * scale), 0), 100))

    return grid(cx - w / 2), grid(cy - h / 2), grid(cx + w / 2), grid(cy + h / 2), int(round(obj.angle))
