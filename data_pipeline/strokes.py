"""Pen strokes -> glyph images: the one stroke renderer behind the ink and simulated sources.

Strokes are lists of (n, 2) float arrays, x to the right and y DOWNWARD (image convention), in
any units. Rendering fits the strokes' bounding box into the glyph box keeping the aspect ratio,
draws each stroke as an anti-aliased polyline with round caps and joins, supersampled and reduced
with area averaging, and returns a uint8 ink-high image (schema.py's convention).
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

SUPERSAMPLE = 4
MARGIN_FRAC = 0.08  # blank margin on each side of a fitted glyph, as a fraction of its box
_SHIFT = 4  # OpenCV fixed-point bits for sub-pixel coordinates
_ONE = 1 << _SHIFT


def stroke_bounds(strokes: Sequence[np.ndarray]) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) over all points."""
    pts = np.concatenate([np.asarray(s, np.float64).reshape(-1, 2) for s in strokes], axis=0)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def fit_transform(strokes: Sequence[np.ndarray], size: int, pen_px: float,
                  margin_frac: float = MARGIN_FRAC, min_extent: float = 0.0
                  ) -> tuple[float, float, float]:
    """Scale and offsets (s, ox, oy) that map stroke units into a size x size box so the ink
    (including the pen's half width) fits inside the margin, centred, aspect ratio kept.
    min_extent (stroke units): the box spans at least this much, so a mark smaller than it is
    drawn at its size within the box instead of blown up to fill it."""
    xmin, ymin, xmax, ymax = stroke_bounds(strokes)
    avail = size * (1.0 - 2.0 * margin_frac) - pen_px
    extent = max(xmax - xmin, ymax - ymin, float(min_extent))
    scale = avail / extent if extent > 1e-9 else 1.0
    ox = size / 2.0 - scale * (xmin + xmax) / 2.0
    oy = size / 2.0 - scale * (ymin + ymax) / 2.0
    return scale, ox, oy


def render_strokes(strokes: Sequence[np.ndarray], size: int, pen_width: float = 0.055,
                   width_variation: float = 0.0, rng: Optional[np.random.Generator] = None,
                   margin_frac: float = MARGIN_FRAC,
                   transform: Optional[tuple[float, float, float]] = None,
                   min_extent: float = 0.0) -> np.ndarray:
    """Draws strokes into a uint8 [size, size] ink-high image.

    pen_width: pen diameter as a fraction of the image side (UNIPEN's README suggests 4-7 %).
    width_variation: relative spread of the pen width along each stroke (0 = constant); the
      width drifts smoothly, like pressure, and needs `rng`.
    transform: (scale, ox, oy) to use instead of fitting the bounding box (for callers that place
      glyphs on a shared baseline).
    min_extent: the smallest extent (stroke units) the fitted box spans (see fit_transform).
    """
    strokes = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes if len(s) > 0]
    if not strokes:
        raise ValueError("no strokes to render")
    if width_variation > 0 and rng is None:
        raise ValueError("width_variation needs an rng")
    pen_px = pen_width * size
    scale, ox, oy = transform if transform is not None else fit_transform(
        strokes, size, pen_px, margin_frac, min_extent)
    big = size * SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    base_thickness = max(1.0, pen_px * SUPERSAMPLE)
    for stroke in strokes:
        pts = np.empty_like(stroke)
        pts[:, 0] = (stroke[:, 0] * scale + ox) * SUPERSAMPLE
        pts[:, 1] = (stroke[:, 1] * scale + oy) * SUPERSAMPLE
        fixed = np.rint(pts * _ONE).astype(np.int32)
        if width_variation <= 0:
            thickness = int(round(base_thickness))
            if len(fixed) == 1:
                cv2.circle(canvas, tuple(fixed[0]), max(1, int(round(base_thickness / 2 * _ONE))),
                           255, -1, cv2.LINE_AA, _SHIFT)
            else:
                cv2.polylines(canvas, [fixed.reshape(-1, 1, 2)], False, 255, thickness,
                              cv2.LINE_AA, _SHIFT)
            continue
        # Pressure-like drift: a smooth random walk of the width along the stroke.
        n = len(fixed)
        walk = np.cumsum(rng.normal(0.0, 1.0, n))
        walk = walk - walk.mean()
        spread = np.abs(walk).max() or 1.0
        widths = base_thickness * (1.0 + width_variation * walk / spread)
        widths = np.maximum(widths, 1.0)
        if n == 1:
            cv2.circle(canvas, tuple(fixed[0]), max(1, int(round(widths[0] / 2 * _ONE))),
                       255, -1, cv2.LINE_AA, _SHIFT)
            continue
        for i in range(n - 1):
            cv2.line(canvas, tuple(fixed[i]), tuple(fixed[i + 1]), 255,
                     int(round((widths[i] + widths[i + 1]) / 2)), cv2.LINE_AA, _SHIFT)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


def split_strokes(points: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Cuts a flat (P, 2) point array into strokes of the given lengths."""
    lengths = np.asarray(lengths, np.int64)
    if lengths.sum() != len(points):
        raise ValueError(f"stroke lengths sum to {lengths.sum()} but there are {len(points)} points")
    return np.split(points, np.cumsum(lengths)[:-1])
