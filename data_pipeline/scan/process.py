"""Many images -> report entries and the cells of every matched page.

For each image: decode it (decode.read_gray), find and match its template page
(registration), refuse a page already read from another image, cut its cells (cells.extract_page)
and measure its resolution and blur. Bad input (not an image, too large, blank, no or foreign
markers, a page given twice) is reported for that file; the other files are still processed.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from data_pipeline import template as template_lib
from data_pipeline.scan.cells import EMPTY, OK, OUTSIDE, SUSPICIOUS, CellResult, extract_page
from data_pipeline.scan.decode import DEFAULT_MAX_PIXELS, ImageProblem, read_gray
from data_pipeline.scan.registration import (BLURRY_MM, LOW_DPI, WORK_DPI, PageMatch,
                                             detect_markers, effective_dpi, estimate_blur,
                                             match_page)


def process_images(images: Sequence[str], layout=None, image_size: int = 32,
                   max_pixels: int = DEFAULT_MAX_PIXELS, work_dpi: int = WORK_DPI,
                   log=None) -> tuple[list[dict], list[tuple[str, list[CellResult]]]]:
    """Runs every image; returns (per-image report entries, [(file, cells)] of matched pages).
    `log(message)` hears of each file that was refused."""
    layout = template_lib.load_layout(layout) if layout is not None else None
    entries: list[dict] = []
    pages: list[tuple[str, list[CellResult]]] = []
    seen: dict[tuple, str] = {}
    for path in images:
        entry: dict = {"file": os.fspath(path)}
        entries.append(entry)
        try:
            gray, match = _register(path, layout, max_pixels, entry)
        except ImageProblem as e:
            entry.update(status="error", error=str(e))
            if log:
                log(f"{path}: {e}")
            continue
        _describe_match(entry, match)
        key = (match.family, match.page_index, match.layout.get("cell_count"),
               tuple(match.layout["charset"]))
        if key in seen:
            entry.update(status="duplicate",
                         error=f"page {match.page_index + 1} was already read from {seen[key]}; "
                               f"this copy is left out")
            if log:
                log(f"{path}: {entry['error']}")
            continue
        seen[key] = os.fspath(path)
        cells = extract_page(gray, match, image_size, work_dpi)
        _describe_cells(entry, cells, estimate_blur(gray, match, work_dpi), work_dpi)
        pages.append((os.fspath(path), cells))
    return entries, pages


def _register(path, layout, max_pixels: int, entry: dict) -> tuple[np.ndarray, PageMatch]:
    """Decodes an image and matches its page (ImageProblem if it cannot be used)."""
    gray = read_gray(path, max_pixels)
    entry["size"] = [int(gray.shape[1]), int(gray.shape[0])]
    markers = detect_markers(gray)
    entry["markers_found"] = [mid for mid, _ in markers]
    return gray, match_page(markers, layout, gray)


def _describe_match(entry: dict, match: PageMatch) -> None:
    """The page, family, fit and resolution of a matched image, with their warnings."""
    dpi = effective_dpi(match)
    entry.update(page=match.page_index + 1, template_family=match.family,
                 marker_residual_mm=round(match.residual_mm, 3), effective_dpi=round(dpi))
    if match.warnings:
        entry["warnings"] = list(match.warnings)
    if dpi < LOW_DPI:
        entry.setdefault("warnings", []).append(
            f"low resolution: the page is {dpi:.0f} dpi in this image; {LOW_DPI}+ dpi "
            f"keeps thin strokes (scan at 300 dpi, or photograph the page closer)")


def _describe_cells(entry: dict, cells: list[CellResult], sigma, work_dpi: int) -> None:
    """The blur and the cell counts of a page that was read."""
    if sigma is not None:
        blur_mm = sigma * 25.4 / work_dpi
        entry["blur_mm"] = round(blur_mm, 3)
        if blur_mm > BLURRY_MM:
            entry.setdefault("warnings", []).append(
                f"the image is blurred (edges spread {blur_mm:.2f} mm): thin strokes may come "
                f"out bolder; a sharper photo or a 300 dpi scan is better")
    counts = {s: sum(c.status == s for c in cells) for s in (OK, SUSPICIOUS, EMPTY, OUTSIDE)}
    entry.update(status="ok", counts=counts, cells=[c.as_json() for c in cells])
    if counts[OK] + counts[SUSPICIOUS] == 0:
        entry.setdefault("warnings", []).append("no handwriting found on this page")
