"""The Python renderer's version of the `write` signature's image: the reference the in-graph
layout and raster are compared against (tests, benchmarks/render.py)."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Union

import numpy as np

from hw_gan import layout as layout_lib
from hw_gan.export import WriteParams, load_export
from hw_gan.render.pages import render_pages
from hw_gan.render.output import rasterize


def render_lines_python(model_path, text: str, writer: Optional[str], seed: int, line_width: int,
                        params: Union[WriteParams, None] = None, **kwargs) -> np.ndarray:
    """uint8 ink-high [H, W] (W = line_width): `text` rendered by hw_gan.render's Python layout
    and rasterizer with the parameters the `write` signature uses (`params`, or WriteParams
    fields as kwargs): no margins, no seeded variation, one page of unlimited height cut 0.8
    x-heights below the last baseline. `model_path`: an export path or a LoadedExport."""
    if params is None:
        params = WriteParams(**kwargs)
    elif kwargs:
        params = dataclasses.replace(params, **kwargs)
    model = load_export(model_path) if isinstance(model_path, (str, os.PathLike)) else model_path
    geometry = None
    if params.writer_geometry is not None:
        key = (writer or "") if getattr(model, "uses_writer", True) else ""
        geometry = params.writer_geometry.get(key) or {}
    lp = params.layout_params(line_width)
    pages = list(render_pages(model, text, writer=writer, seed=seed, params=lp,
                              geometry=geometry))
    if len(pages) != 1:
        raise RuntimeError(f"expected one page of unlimited height, got {len(pages)}")
    page, crops = pages[0]
    if page.lines:
        height = int(math.ceil(page.lines[-1].baseline
                               + layout_lib.DESCENDER_ROOM * params.x_height_px))
    else:
        height = 0
    return rasterize(dataclasses.replace(page, height=height), crops)
