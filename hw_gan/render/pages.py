"""Text -> pages: render_pages (page layouts with their glyphs' ink crops, one page at a time)
and render_text (the whole document, written to PNG, SVG or PDF files)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Union

from hw_gan.export import load_export
from hw_gan.layout import LayoutParams, PageLayout, TextPlan, layout_pages, page_params, plan_text
from hw_gan.render.glyphs import STYLE_VARIATION, GlyphSource, apply_style, resolve_writer
from hw_gan.render.output import format_for, parse_color, write_pages

PathLike = Union[str, os.PathLike]


def _load(model):
    if isinstance(model, (str, os.PathLike)):
        return load_export(model)
    return model


def _geometry_for(model, writer: Optional[str], geometry):
    """The caller's geometry table, else the export's own for this writer (hwgan.json key
    "writer_geometry": {writer: {char: [top, bottom]}}), else None (charset defaults)."""
    if geometry is not None:
        return geometry
    table = (getattr(model, "info", None) or {}).get("writer_geometry") or {}
    return table.get(writer or "") or None


def render_pages(model, text: str, *, writer: Optional[str] = None, seed: int = 0,
                 params: Optional[LayoutParams] = None, missing: str = "error",
                 geometry: Optional[Mapping[str, object]] = None,
                 plan: Optional[TextPlan] = None) -> Iterator[tuple[PageLayout, dict]]:
    """Yields (page layout, {k: ink crop of glyph k}) one page at a time. The crops of a page are
    dropped when the next page is asked for."""
    model = _load(model)
    writer = resolve_writer(model, writer)
    params = params or page_params()
    if plan is None:
        plan = plan_text(text, model.charset, missing)
    geometry = _geometry_for(model, writer, geometry)
    if geometry is not None:
        params = dataclasses.replace(params, geometry=geometry)
    source = GlyphSource(model, plan.requests, writer, seed)
    for page in layout_pages(plan, source.ink_size, params, seed):
        ks = page.glyph_indices
        crops = {k: source.crop(k) for k in ks}
        yield page, crops
        source.release_before(ks.stop if len(ks) else 0)


@dataclasses.dataclass(frozen=True)
class RenderResult:
    paths: tuple[Path, ...]
    pages: int
    glyphs: int  # generated glyphs
    substitutions: Mapping[str, str]  # missing="nearest": char -> substitute
    missing: tuple[str, ...]  # characters the model's charset lacks


def render_text(model, text: str, *, writer: Optional[str] = None, out: PathLike,
                format: Optional[str] = None, seed: int = 0,
                page: Union[str, Sequence[float]] = "a4", dpi: float = 150.0,
                x_height_mm: float = 3.0, margin_mm: Union[float, Sequence[float]] = 20.0,
                line_width_px: Optional[float] = None, ink: Union[str, Sequence[int]] = "#1a1a40",
                paper: Union[str, Sequence[int]] = "#ffffff", slant: float = 0.0,
                missing: str = "error", geometry: Optional[Mapping[str, object]] = None,
                style=None, style_variation: float = STYLE_VARIATION,
                style_truncation: float = 1.0, overwrite: bool = False,
                **layout_kwargs) -> RenderResult:
    """Writes `text` in `writer`'s hand with `model` (a LoadedExport or an export path) to `out`.

    format: "png", "svg" or "pdf" (default: from out's suffix). PNG and SVG write one file per
    page (`out` for one page; out-1.png, out-2.png, ... for more); PDF one multi-page file.
    page: "a4", "a5", "a3", "letter", "legal" (+"-landscape"), "WxHmm" or (w, h) in mm; dpi sets
    the pixel grid (PNG pixels; the coordinate grid of SVG/PDF). x_height_mm: height of an "x";
    margin_mm: one value or (top, right, bottom, left); line_width_px: wrap width (default: the
    page between the margins). ink, paper: colours. slant: shear (0.2 = about 11 degrees right).
    missing: "error" | "skip" | "box" | "nearest" for characters the model cannot write.
    geometry: {char: (top, bottom)} in x-heights, the writer's own extents. style: a style file
    (`hwgan style extract`) or ws array, for models with style signatures (stylegan), instead of
    a writer; style_variation: how much each glyph's style varies around it. layout_kwargs: more
    LayoutParams fields (letter_spacing, word_spacing, line_spacing, paragraph_spacing, indent,
    baseline_drift, size_variation, spacing_variation, max_width).

    Everything is checked before anything is generated, the output name included (a regular
    file or nothing: hw_gan.render.output.write_pages); the output is written atomically.
    """
    fmt = format_for(out, format)
    ink_c, paper_c = parse_color(ink), parse_color(paper)
    model = apply_style(_load(model), style, style_variation, style_truncation)
    writer = resolve_writer(model, writer)
    params = page_params(page, dpi, x_height_mm, margin_mm, line_width_px, slant=slant,
                         **layout_kwargs)
    plan = plan_text(text, model.charset, missing)
    pages = render_pages(model, text, writer=writer, seed=seed, params=params,
                         geometry=geometry, plan=plan)
    count = {"pages": 0}

    def done(_page):
        count["pages"] += 1

    paths = write_pages(pages, out, fmt, dpi, ink_c, paper_c, on_page_done=done,
                        overwrite=overwrite)
    return RenderResult(tuple(paths), count["pages"], len(plan.requests), dict(plan.substitutions),
                        plan.missing)
