"""Scans or photos of filled-in hwgan templates -> glyph records (see data_pipeline/scan/).

  python -m data_pipeline.build --source=scans --source_param images=a.jpg,b.jpg \
      --source_param writer=alice --out data/alice --split none

Opening the source reads every image (so that its length, report and problems are known before
anything is written). Records are ordered by image, then cell; keys are
"scans:<file>:p<page>:r<row>c<col>". Geometry is the glyph's ink box against the cell's printed
baseline, in units of the printed x-height.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Iterator

from data_pipeline import scan
from data_pipeline import template as template_lib
from data_pipeline.schema import GlyphRecord

NAME = "scans"


class ScansSource:
    name = NAME

    def __init__(self, records: list[GlyphRecord], report: dict, params: dict, charset,
                 pages):
        self.records = records
        self.report = report
        self.params = params
        self.charset = tuple(charset)
        self.pages = pages  # [(file, [CellResult])], for the review sheet

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[GlyphRecord]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"ScansSource({len(self.records)} glyphs from {len(self.pages)} pages)"


def open_scans(images, writer: str, image_size: int = 32, layout=None,
               keep_suspicious: bool = True, max_pixels: int = scan.DEFAULT_MAX_PIXELS,
               work_dpi: int = scan.WORK_DPI, quiet: bool = False) -> ScansSource:
    """Glyphs of `writer` from template images.

    images: paths (a list, or one comma-separated string; glob patterns are expanded);
    layout: the template's layout file or dict (default: the default template named by the
    pages' markers); keep_suspicious: also yield cells flagged suspicious (ink on the border,
    separate marks far apart, faint ink); max_pixels: larger images are refused unread.
    Problems with single files go to the report (and stderr unless quiet); ValueError if no
    image gives a glyph.
    """
    writer, image_size, max_pixels, work_dpi = _check_params(writer, image_size, max_pixels,
                                                             work_dpi)
    paths = scan.expand_images(images)
    if not paths:
        raise ValueError("scans source: no images given")
    layout_dict = None
    if layout is not None and layout != "":
        layout_dict = template_lib.load_layout(layout)

    def log(message: str) -> None:
        if not quiet:
            print(f"extract: {message}", file=sys.stderr)

    entries, pages = scan.process_images(paths, layout_dict, image_size, max_pixels, work_dpi,
                                         log)
    records: list[GlyphRecord] = []
    for file, cells in pages:
        base = os.path.basename(file)
        for c in cells:
            if c.image is None or (c.status == scan.SUSPICIOUS and not keep_suspicious):
                continue
            records.append(GlyphRecord(
                char=c.char, writer=writer, source=NAME, image=c.image, geometry=c.geometry,
                key=f"{NAME}:{base}:p{c.page}:r{c.row}c{c.col}").check())
    charset = layout_dict["charset"] if layout_dict is not None else _charset_of_pages(entries)
    report = _report(entries, pages, records, charset, writer, image_size, keep_suspicious)
    if not records:
        why = "; ".join(f"{e['file']}: {e.get('error') or 'no handwriting found'}"
                        for e in entries) or "no images"
        raise ValueError(f"no glyph could be extracted from any image ({why})")
    params = {"images": paths, "writer": writer, "image_size": image_size,
              "layout": None if layout is None or isinstance(layout, dict) else os.fspath(layout),
              "keep_suspicious": keep_suspicious, "max_pixels": max_pixels, "work_dpi": work_dpi}
    return ScansSource(records, report, params, charset, pages)


def _check_params(writer, image_size, max_pixels, work_dpi) -> tuple[str, int, int, int]:
    """The opener's parameters, checked and converted (ValueError naming the bad one)."""
    if isinstance(writer, (int, float)) and not isinstance(writer, bool):
        writer = str(writer)  # a --source_param value that looked like a number
    if not isinstance(writer, str) or not writer.strip():
        raise ValueError(f"scans source: writer must be a non-empty name, got {writer!r}")
    writer = writer.strip()
    image_size, max_pixels, work_dpi = int(image_size), int(max_pixels), int(work_dpi)
    if not 8 <= image_size <= 512:
        raise ValueError(f"scans source: image_size {image_size} is outside 8..512")
    if not 100 <= work_dpi <= 600:
        raise ValueError(f"scans source: work_dpi {work_dpi} is outside 100..600")
    return writer, image_size, max_pixels, work_dpi


def _report(entries: list[dict], pages, records: list[GlyphRecord], charset, writer: str,
            image_size: int, keep_suspicious: bool) -> dict:
    """The extraction report: counts over all images, missing characters, one entry an image."""
    refused = [e for e in entries if e["status"] != "ok"]
    per_char = Counter(r.char for r in records)
    counts = {
        "images": len(entries), "pages": len(pages), "images_refused": len(refused),
        "glyphs": len(records),
        "cells_ok": sum(e["counts"]["ok"] for e in entries if e["status"] == "ok"),
        "cells_suspicious": sum(e["counts"]["suspicious"] for e in entries if e["status"] == "ok"),
        "cells_empty": sum(e["counts"]["empty"] for e in entries if e["status"] == "ok"),
        "cells_outside": sum(e["counts"]["outside"] for e in entries if e["status"] == "ok"),
    }
    return {
        "writer": writer, "image_size": image_size, "keep_suspicious": keep_suspicious,
        "counts": counts, "missing_chars": [ch for ch in charset if per_char[ch] == 0],
        "images": entries,
    }


def _charset_of_pages(entries) -> list[str]:
    """The charset of the default template the pages came from (their markers' family)."""
    fams = sorted({e["template_family"] for e in entries if e.get("status") == "ok"})
    labels: list[str] = []
    for fam in fams:
        for label in template_lib.layout_for_family(fam)["charset"]:
            if label not in labels:
                labels.append(label)
    return labels
