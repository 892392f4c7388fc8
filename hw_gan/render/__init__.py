"""hw_gan.render: writes text in a learned hand, as PNG, SVG or PDF pages.

Owns the glyph source and styles (`render.glyphs`), text -> pages (`render.pages`), the one page
encoder (`render.output`: PNG, SVG, PDF bytes and files) and the Python reference of the `write`
signature (`render.lines`). It builds on layout and export; it must not import the floors above
it (experiment, serve, cli).

    from hw_gan.export import load_export
    from hw_gan.render import render_text

    model = load_export("export/quickstart")
    render_text(model, "Dear Ada,\\n\\nthank you for ...", writer="sim-003", out="letter.pdf")

Every character occurrence is a freshly generated glyph (two "e"s differ), and the whole document
is a function of (model, text, parameters, seed). Glyphs are generated lazily in blocks of
`CHUNK` = 512 in text order: block c is `model.glyphs(requests[512c : 512c+512], writer,
seed=chunk_seed(seed, c))`, so glyph k is row k % 512 of block k // 512 (one `.glyphs` call
covers a 200-character paragraph, and a page needs about three). Each glyph is cropped to its ink
and placed by `layout.layout_pages` (see its docstring for the rules); pages are generated,
written and dropped one at a time (`output.write_pages`), so memory stays bounded however long
the text.

`render_pages` yields (PageLayout, {k: ink crop}) pairs for callers that draw pages themselves.
"""

from __future__ import annotations

from hw_gan.layout import (CHUNK, LayoutParams, PageLayout, Placement, TextPlan, chunk_seed,
                           layout_pages, page_params, plan_text)
from hw_gan.render.grid import sample_grid, write_sample_grid
from hw_gan.render.glyphs import (STYLE_VARIATION, GlyphSource, StyledExport, apply_style,
                                  resolve_writer)
from hw_gan.render.output import FORMATS, encode_pages, format_for, parse_color, write_pages
from hw_gan.render.pages import RenderResult, render_pages, render_text

__all__ = [
    "CHUNK", "FORMATS", "GlyphSource", "LayoutParams", "PageLayout", "Placement", "RenderResult",
    "STYLE_VARIATION", "StyledExport", "TextPlan", "apply_style", "chunk_seed", "encode_pages",
    "format_for", "layout_pages", "page_params", "parse_color", "plan_text", "render_pages",
    "render_text", "resolve_writer", "sample_grid", "write_pages", "write_sample_grid",
]

