"""Glyph image helpers shared by every layer: one grid tiler.

Images follow schema's convention (uint8, ink high); `tile` lays equal-sized cells out row-major
on a canvas, which is how the dataset's contact sheet, training's sample grids and an export's
sample grid are all drawn.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def tile(cells: np.ndarray, cols: int, *, rows: Optional[int] = None, gap: int = 0,
         gap_value: int = 255, scale: int = 1, invert: bool = False,
         blank: Sequence[bool] = ()) -> np.ndarray:
    """uint8 [N, h, w] (or [N, h, w, 1]) -> uint8 [H, W]: cell i at row i // cols, column
    i % cols, each scaled up `scale` times (nearest), `gap` pixels of `gap_value` around and
    between cells. invert: draw 255 - cell (dark ink on white paper). blank[i]: cell i is left
    as paper (255 when inverted, else 0). rows defaults to ceil(N / cols)."""
    cells = np.asarray(cells)
    if cells.ndim == 4:
        cells = cells[..., 0]
    if cells.ndim != 3 or cols < 1:
        raise ValueError(f"tile needs [N, h, w] cells and cols >= 1, got {cells.shape}, {cols}")
    n, h, w = cells.shape
    rows = -(-n // cols) if rows is None else rows
    ch, cw = h * scale, w * scale
    grid = np.full((rows * (ch + gap) + gap, cols * (cw + gap) + gap), gap_value, np.uint8)
    for i in range(min(n, rows * cols)):
        y, x = divmod(i, cols)
        cell = 255 - cells[i] if invert else cells[i]
        if blank and blank[i]:
            cell = np.full_like(cell, 255 if invert else 0)
        if scale != 1:
            cell = np.repeat(np.repeat(cell, scale, axis=0), scale, axis=1)
        top, left = gap + y * (ch + gap), gap + x * (cw + gap)
        grid[top:top + ch, left:left + cw] = cell
    return grid
