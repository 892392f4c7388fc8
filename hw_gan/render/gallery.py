"""A gallery of a model's writers: each writer's name above a line of text in their hand, many
to a page, so a person can pick a hand by eye (`hwgan writers`). Pages are rasters: a multi-page
PDF (data_pipeline.template's image PDF) or PNG files (one a page: NAME-1.png, NAME-2.png, ...
when there are several)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from data_pipeline import atomic
from data_pipeline.template import pdf_bytes
from hw_gan.layout import (DESCENDER_ROOM, FIRST_BASELINE, MM_PER_INCH, page_params, parse_page,
                           plan_text)
from hw_gan.render.output import page_image, page_path, parse_color, rasterize
from hw_gan.render.pages import render_pages

SAMPLE_TEXT = "Dear Sam, thank you for the flowers!"
LABEL_MM = 3.2  # height of a name's row
ROW_GAP_MM = 2.5


@dataclasses.dataclass(frozen=True)
class GalleryResult:
    paths: tuple[Path, ...]
    pages: int
    writers: tuple[str, ...]
    missing: tuple[str, ...]  # characters of the text the model lacks (handled by `missing`)


def writer_strips(model, writers: Sequence[str], text: str, *, seed: int, dpi: float,
                  width_mm: float, x_height_mm: float, missing: str) -> Iterator[np.ndarray]:
    """For each writer, uint8 ink coverage [H, W] of the first line of `text` in their hand."""
    height_mm = (FIRST_BASELINE + DESCENDER_ROOM + 0.3) * x_height_mm
    params = page_params((width_mm, height_mm), dpi, x_height_mm, margin_mm=(0, 0, 0, 0))
    plan = plan_text(text, model.charset, missing)
    for writer in writers:
        page, crops = next(iter(render_pages(model, text, writer=writer, seed=seed,
                                             params=params, plan=plan)))
        yield rasterize(page, crops)


def _label(image: np.ndarray, text: str, x: int, baseline: int, height_px: float) -> None:
    import cv2

    scale = height_px / 22.0  # FONT_HERSHEY_SIMPLEX capitals are ~22 px at scale 1
    cv2.putText(image, text, (x, baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (70, 70, 70),
                max(1, int(round(scale * 1.5))), cv2.LINE_AA)


def gallery_pages(model, writers: Sequence[str], text: str = SAMPLE_TEXT, *, seed: int = 0,
                  page: str = "a4", dpi: float = 150.0, x_height_mm: float = 3.0,
                  margin_mm: float = 15.0, missing: str = "nearest",
                  ink: str = "#1a1a40", paper: str = "#ffffff") -> Iterator[np.ndarray]:
    """RGB uint8 pages, each with as many writers as fit (name, then a line in their hand)."""
    w_mm, h_mm = parse_page(page)
    px = dpi / MM_PER_INCH
    width_mm = w_mm - 2 * margin_mm
    strip_h = int(round((FIRST_BASELINE + DESCENDER_ROOM + 0.3) * x_height_mm * px))
    label_h, gap = int(round(LABEL_MM * px)), int(round(ROW_GAP_MM * px))
    row_h = label_h + strip_h + gap
    top, left = int(round(margin_mm * px)), int(round(margin_mm * px))
    per_page = max(1, int((h_mm - 2 * margin_mm) * px) // row_h)
    ink_c, paper_c = parse_color(ink), parse_color(paper)
    strips = writer_strips(model, writers, text, seed=seed, dpi=dpi, width_mm=width_mm,
                           x_height_mm=x_height_mm, missing=missing)
    shape = (int(round(h_mm * px)), int(round(w_mm * px)))
    for start in range(0, len(writers), per_page):
        names = writers[start:start + per_page]
        coverage = np.zeros(shape, np.uint8)
        for i, _ in enumerate(names):
            strip = next(strips)
            y = top + i * row_h + label_h
            h, w = min(strip.shape[0], shape[0] - y), min(strip.shape[1], shape[1] - left)
            coverage[y:y + h, left:left + w] = strip[:h, :w]
        image = np.array(page_image(coverage, ink_c, paper_c).convert("RGB"))
        for i, name in enumerate(names):
            y = top + i * row_h
            _label(image, f"{start + i + 1}. {name}", left, y + int(label_h * 0.8), label_h * 0.7)
        yield image


def write_gallery(model, out, writers: Optional[Sequence[str]] = None, text: str = SAMPLE_TEXT,
                  *, format: Optional[str] = None, seed: int = 0, page: str = "a4",
                  dpi: float = 150.0, x_height_mm: float = 3.0, missing: str = "nearest",
                  overwrite: bool = False) -> GalleryResult:
    """Writes the gallery of `writers` (default: every writer the model learned) to `out`
    (.pdf: one file; .png: one file a page). ValueError for a model without writers."""
    out = Path(out)
    fmt = (format or out.suffix.lstrip(".")).lower()
    if fmt not in ("pdf", "png"):
        raise ValueError(f"--out {out}: a gallery is .pdf or .png")
    if not model.uses_writer or not model.writers:
        raise ValueError(f"{model.path} is a {model.family} model without writers of its own "
                         f"(it takes a style from a person's glyphs: `hwgan style extract`)")
    writers = list(writers) if writers else list(model.trained_writers())
    model.check_known([], writers)
    plan = plan_text(text, model.charset, missing)  # characters it lacks: error before drawing
    atomic.check_output(out, overwrite, "--out")
    pages = gallery_pages(model, writers, text, seed=seed, page=page, dpi=dpi,
                          x_height_mm=x_height_mm, missing=missing)
    size_mm = parse_page(page)
    if fmt == "pdf":
        counted = []  # pages are compressed one at a time as pdf_bytes takes them
        data = pdf_bytes((counted.append(1) or image for image in pages),
                         itertools.repeat(size_mm))
        atomic.write_bytes(out, data, overwrite)
        return GalleryResult((out,), len(counted), tuple(writers), plan.missing)
    staged = atomic.StagedFiles(overwrite=overwrite)
    try:
        images = list(pages)
        for i, image in enumerate(images):
            target = out if len(images) == 1 else page_path(out, i)
            staged.write(target, _rgb_png(image, dpi))
        paths = staged.commit()
    except BaseException:
        staged.abort()
        raise
    return GalleryResult(tuple(paths), len(images), tuple(writers), plan.missing)


def _rgb_png(image: np.ndarray, dpi: float) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", dpi=(dpi, dpi))
    return buf.getvalue()


__all__ = ["GalleryResult", "SAMPLE_TEXT", "gallery_pages", "write_gallery", "writer_strips"]
