"""Scans or photos of filled-in templates -> glyph images, geometry and a report per image.

  decode        image files -> uint8 grey, refusing non-images and oversized ones from their
                header (read_gray, ImageProblem, expand_images)
  registration  the template's ArUco markers -> which page, and a homography onto its layout
                (detect_markers, match_page, PageMatch, effective_dpi, estimate_blur)
  cells         each cell's glyph cut out and normalised (extract_page, CellResult,
                normalize_glyph)
  process       many images -> report entries and the cells of every matched page
                (process_images)
  review        the review sheet PNG (review_sheet)

This package only reads images and templates: it must not import data_pipeline.sources or
data_pipeline.tfrecords (the `scans` source and `data_pipeline.build.extract` sit above it and
turn its cells into a dataset), nor anything of hw_gan.
"""

from data_pipeline.scan.cells import (EMPTY, INK_EDGE, MARGIN_FRAC, OK, OUTSIDE, SUSPICIOUS,
                                      CellResult, extract_page, normalize_glyph)
from data_pipeline.scan.decode import DEFAULT_MAX_PIXELS, ImageProblem, expand_images, read_gray
from data_pipeline.scan.process import process_images
from data_pipeline.scan.registration import (BLURRY_MM, LOW_DPI, WORK_DPI, PageMatch,
                                             detect_markers, effective_dpi, estimate_blur,
                                             match_page)
from data_pipeline.scan.review import review_sheet

__all__ = [
    "BLURRY_MM", "DEFAULT_MAX_PIXELS", "EMPTY", "INK_EDGE", "LOW_DPI", "MARGIN_FRAC", "OK",
    "OUTSIDE", "SUSPICIOUS", "WORK_DPI", "CellResult", "ImageProblem", "PageMatch",
    "detect_markers", "effective_dpi", "estimate_blur", "expand_images", "extract_page",
    "match_page", "normalize_glyph", "process_images", "read_gray", "review_sheet",
]
