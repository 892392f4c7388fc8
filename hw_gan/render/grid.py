"""Sample grids: a PNG of glyphs drawn from an export, one row per writer and one column per
character (`hwgan sample`, `train_main --mode=sample`). Dark ink on white, each glyph 2x, tiled
by `data_pipeline.glyph.tile`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from data_pipeline import atomic
from data_pipeline.atomic import PathLike
from data_pipeline.glyph import tile
from hw_gan.export import LoadedExport, load_export

__all__ = ["sample_grid", "write_sample_grid"]


def sample_grid(images: np.ndarray, rows: int, cols: int, blank: Sequence[bool] = ()) -> np.ndarray:
    """uint8 ink-high [rows*cols, R, R, 1] -> uint8 grey [H, W]: dark ink on white paper, each
    glyph scaled up 2x, cells separated by light grey lines. `blank[i]` leaves cell i empty."""
    return tile(images, cols, rows=rows, gap=2, gap_value=200, scale=2, invert=True, blank=blank)


def write_sample_grid(export_path: Union[PathLike, LoadedExport], out_png: PathLike, chars: str,
                      writers: Sequence[str], seed: int = 0, overwrite: bool = False) -> Path:
    """PNG grid: one row per writer, one column per character of `chars` (a space is a blank
    column). Dark ink on white, 2x. Unknown chars/writers -> ValueError before anything is
    written; the PNG is written atomically. For a family without writers, `writers` only sets
    the number of rows (an empty list gives one). `out_png` must be absent or a writable
    regular file (a symbolic link only with `overwrite`: data_pipeline.atomic.check_output)."""
    atomic.check_output(out_png, overwrite)
    loaded = export_path if isinstance(export_path, LoadedExport) else load_export(export_path)
    chars = list(chars)
    writers = [writers] if isinstance(writers, str) else list(writers)
    if not chars:
        raise ValueError("no characters to draw")
    if not writers:
        if loaded.uses_writer:
            raise ValueError("no writers to draw")
        writers = [""]
    blank = [c == " " for c in chars]
    known_chars = [c for c in chars if c != " "]
    loaded.check_known(known_chars, writers)
    fill = known_chars[0] if known_chars else loaded.charset[0][0]
    flat_chars = [fill if c == " " else c for _ in writers for c in chars]
    flat_writers = [w for w in writers for _ in chars]
    images = loaded.glyphs(flat_chars, flat_writers if loaded.uses_writer else [""], seed)
    grid = sample_grid(images, len(writers), len(chars), blank * len(writers))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    out_png = Path(out_png)
    atomic.write_bytes(out_png, buf.getvalue(), overwrite)
    return out_png
