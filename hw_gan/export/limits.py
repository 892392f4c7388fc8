"""The one home of the cost caps an export's signatures check in the graph before any work (TF
Serving runs them with no application in front), and that `hwgan serve` starts its own, lower
per-request budgets from. Plain constants and one dataclass; imports nothing of the project.

Every signature that draws glyphs draws them through the generator in blocks of
`GENERATE_BLOCK` (one block at a time), so its memory grows with its output, not with a batch of
activations; the caps bound that output."""

from __future__ import annotations

import dataclasses

__all__ = ["ExportLimits", "GENERATE_BLOCK", "MAX_GLYPHS", "MAX_LINE_WIDTH", "MAX_PIXELS",
           "MAX_STYLE_IMAGES", "MAX_STYLE_STEPS", "MAX_TEXT_CHARS"]

GENERATE_BLOCK = 256  # glyphs through the generator at once
MAX_GLYPHS = 8192  # glyphs per call: glyphs, glyphs_by_id, glyphs_with_style; a write text's
MAX_PIXELS = 1 << 24  # output pixels per call: N x R x R glyph images, or the write image
MAX_TEXT_CHARS = 16384  # characters of a write text (spaces and line breaks included)
MAX_LINE_WIDTH = 16384  # the write image's width
MAX_STYLE_IMAGES = 256  # extract_style: sample glyphs per call
MAX_STYLE_STEPS = 1000  # extract_style: projection steps


@dataclasses.dataclass(frozen=True)
class ExportLimits:
    """The caps the glyph and style signatures of one export check (the write signature's are
    in its WriteParams, with the same defaults)."""

    max_glyphs: int = MAX_GLYPHS
    max_pixels: int = MAX_PIXELS
    max_style_images: int = MAX_STYLE_IMAGES
    max_style_steps: int = MAX_STYLE_STEPS

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be an integer >= 1, got {value!r}")
