"""hw_gan.render: writes text in a learned hand, as PNG, SVG or PDF pages.

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

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from hw_gan import layout as layout_lib
from hw_gan.export import (EXTRACT_STYLE as STYLE_SIGNATURE, GLYPHS_WITH_STYLE as STYLED_SIGNATURE,
                           MEAN_STYLE as MEAN_STYLE_SIGNATURE)
from hw_gan.layout import (CHUNK, INK_THRESHOLD, LayoutParams, PageLayout, Placement, TextPlan,
                           chunk_seed, layout_pages, page_params, plan_text)
from hw_gan.render.output import FORMATS, format_for, parse_color, write_pages

__all__ = [
    "CHUNK", "FORMATS", "GlyphSource", "LayoutParams", "PageLayout", "Placement", "RenderResult",
    "TextPlan", "chunk_seed", "layout_pages", "page_params", "plan_text", "render_pages",
    "render_text", "resolve_writer",
]

PathLike = Union[str, os.PathLike]


class GlyphSource:
    """Generates glyph k on demand, in blocks of `chunk` requests (one `.glyphs` call each), and
    keeps each glyph's ink crop until `release_before` drops it."""

    def __init__(self, model, requests: Sequence[str], writer: Optional[str], seed: int,
                 chunk: int = CHUNK, threshold: int = INK_THRESHOLD):
        self.model = model
        self.requests = tuple(requests)
        self.writer = writer if writer is not None else ""
        self.seed = int(seed)
        self.chunk = int(chunk)
        self.threshold = threshold
        self._crops: dict[int, np.ndarray] = {}
        self._loaded: set[int] = set()
        self.calls = 0

    def _load(self, c: int) -> None:
        lo, hi = c * self.chunk, min(len(self.requests), (c + 1) * self.chunk)
        images = self.model.glyphs(list(self.requests[lo:hi]), self.writer,
                                   chunk_seed(self.seed, c))
        self.calls += 1
        if images.shape[0] != hi - lo:
            raise RuntimeError(f"the model returned {images.shape[0]} glyphs for {hi - lo}")
        for i in range(hi - lo):
            self._crops[lo + i] = layout_lib.crop_to_ink(images[i], self.threshold)
        self._loaded.add(c)

    def crop(self, k: int) -> np.ndarray:
        """uint8 ink-high [h, w]: glyph k cropped to its ink ([0, 0] if it has none)."""
        if k not in self._crops:
            c = k // self.chunk
            if c in self._loaded:
                raise KeyError(f"glyph {k} was released")
            if not 0 <= k < len(self.requests):
                raise IndexError(f"glyph {k} out of range [0, {len(self.requests)})")
            self._load(c)
        return self._crops[k]

    def ink_size(self, k: int) -> tuple[int, int]:
        h, w = self.crop(k).shape
        return h, w

    def release_before(self, k: int) -> None:
        for key in [key for key in self._crops if key < k]:
            del self._crops[key]

    @property
    def held(self) -> int:
        return len(self._crops)


def resolve_writer(model, writer: Optional[str]) -> Optional[str]:
    """Checks `writer` against the model: required and known for families with writers, ignored
    (None) for those without. ValueError names a few known writers."""
    if not getattr(model, "uses_writer", True):
        return None
    untrained = set(getattr(model, "untrained_writers", ()))
    writers = tuple(w for w in getattr(model, "writers", ()) if w not in untrained)
    shown = ", ".join(writers[:8]) + (f", ... ({len(writers)} in all)" if len(writers) > 8 else "")
    if not writer:
        raise ValueError(f"this model writes in the hand of one of its writers: name one "
                         f"(known writers: {shown})")
    if writer in untrained:
        raise ValueError(f"writer {writer!r} was held out when this model was trained: it has "
                         f"a name here but its style was never learned; the model knows {shown}")
    if writer not in writers:
        raise ValueError(f"unknown writer {writer!r}: the model knows {shown}")
    return writer


STYLE_VARIATION = 0.12  # default spread of each glyph's style around the given one


class StyledModel:
    """An export seen through a style: `.glyphs(chars, writer, seed)` draws every glyph in the
    given style (W+ styles from `hwgan style extract`) through the export's `glyphs_with_style`
    signature, each glyph's style varied by `variation` (seeded) as a real hand varies."""

    def __init__(self, model, ws, variation: float = STYLE_VARIATION):
        import tensorflow as tf

        self._tf = tf
        self.model = model
        self.ws = np.asarray(ws, np.float32)
        self.variation = float(variation)
        self.charset = model.charset
        self.uses_writer = False
        self.writers = ()
        self.family = model.family
        self.info = {k: v for k, v in (getattr(model, "info", None) or {}).items()
                     if k != "writer_geometry"}
        self.signatures = model.signatures

    def glyphs(self, chars, writers=None, seed: int = 0) -> np.ndarray:
        tf = self._tf
        chars = list(chars)
        out = self.signatures[STYLED_SIGNATURE](
            chars=tf.constant(chars, tf.string, shape=[len(chars)]),
            style=tf.constant(self.ws), seed=tf.constant(int(seed), tf.int64),
            variation=tf.constant(self.variation, tf.float32))
        return out["images"].numpy()


def apply_style(model, style, variation: float = STYLE_VARIATION, truncation: float = 1.0):
    """`model` unchanged when style is None; else a StyledModel. style: a style file path or a
    ws array [L, w_dim]; truncation psi in [0, 1] pulls it toward the mean hand (StyleGAN's
    truncation trick: mean + psi * (style - mean); 1 keeps it, lower is neater and less
    personal). ValueError when the model has no style support or the style does not fit it."""
    if style is None:
        return model
    sigs = getattr(model, "signatures", {})
    if STYLE_SIGNATURE not in sigs or STYLED_SIGNATURE not in sigs:
        raise ValueError(f"a style sample (--style) is not available for this model (family "
                         f"{getattr(model, 'family', '?')!r}: its export has no "
                         f"{STYLE_SIGNATURE!r} signature); pick one of its writers instead")
    if not 0.0 <= float(variation) <= 2.0:
        raise ValueError(f"style variation {variation} must be in [0, 2]")
    if not 0.0 <= float(truncation) <= 1.0:
        raise ValueError(f"style truncation {truncation} must be in [0, 1]")
    mean = sigs[MEAN_STYLE_SIGNATURE]()["style"].numpy()
    if isinstance(style, (str, os.PathLike)):
        from hw_gan.inversion import StyleError, load_style

        info = {"family": "stylegan", "resolution": int(model.resolution),
                "w_dim": int(mean.shape[1]), "num_ws": int(mean.shape[0]),
                "charset": list(model.charset)}
        try:
            ws, _ = load_style(style, info)
        except StyleError as e:
            raise ValueError(str(e)) from None
    else:
        ws = np.asarray(style, np.float32)
        if ws.shape != mean.shape:
            raise ValueError(f"style of shape {ws.shape} does not fit this model ({mean.shape})")
    from hw_gan.models.stylegan import truncate

    ws = truncate(ws, mean, float(truncation))
    return StyledModel(model, ws, variation)


def _load(model):
    if isinstance(model, (str, os.PathLike)):
        from hw_gan.export import load_export

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
                style_truncation: float = 1.0,
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

    Everything is checked before anything is generated; the output is written atomically.
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

    paths = write_pages(pages, out, fmt, dpi, ink_c, paper_c, on_page_done=done)
    return RenderResult(tuple(paths), count["pages"], len(plan.requests), dict(plan.substitutions),
                        plan.missing)
