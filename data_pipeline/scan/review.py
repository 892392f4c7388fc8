"""The review sheet: every extracted glyph of every page on one PNG, for a person to check."""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from data_pipeline.scan.cells import EMPTY, SUSPICIOUS, CellResult


def review_sheet(pages: Sequence[tuple[str, Sequence[CellResult]]], tile: int = 64,
                 per_row: int = 18) -> bytes:
    """PNG: every extracted glyph (dark on white) with its label; suspicious ones in a red
    frame with a '?' ; one block per page, headed by its file and counts."""
    import cv2

    blocks = []
    lab_h = 16
    for file, cells in pages:
        glyphs = [c for c in cells if c.image is not None]
        n_sus = sum(c.status == SUSPICIOUS for c in glyphs)
        n_empty = sum(c.status == EMPTY for c in cells)
        rows = max(1, math.ceil(len(glyphs) / per_row))
        block = np.full((28 + rows * (tile + lab_h + 4), per_row * (tile + 4) + 4, 3), 255,
                        np.uint8)
        page_no = cells[0].page if cells else "?"
        head = (f"{os.path.basename(file)}  page {page_no}: {len(glyphs) - n_sus} ok, "
                f"{n_sus} suspicious (red), {n_empty} empty")
        cv2.putText(block, head, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for i, c in enumerate(glyphs):
            r, k = divmod(i, per_row)
            x, y = 4 + k * (tile + 4), 28 + r * (tile + lab_h + 4)
            img = cv2.resize(255 - c.image, (tile, tile), interpolation=cv2.INTER_NEAREST)
            block[y:y + tile, x:x + tile] = img[:, :, None]
            cv2.rectangle(block, (x, y), (x + tile - 1, y + tile - 1), (200, 200, 200), 1)
            label = f"{c.char} r{c.row}c{c.col}"
            color = (0, 0, 0)
            if c.status == SUSPICIOUS:
                cv2.rectangle(block, (x, y), (x + tile - 1, y + tile - 1), (0, 0, 255), 2)
                label, color = "? " + label, (0, 0, 255)
            cv2.putText(block, label, (x + 1, y + tile + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                        color, 1, cv2.LINE_AA)
        blocks.append(block)
    if not blocks:
        blocks.append(np.full((40, 400, 3), 255, np.uint8))
    width = max(b.shape[1] for b in blocks)
    sheet = np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)),
                                   constant_values=255) for b in blocks], axis=0)
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("could not encode the review sheet")
    return png.tobytes()
