"""Pages: paper sizes, the layout parameters of a page (LayoutParams, page_params), where its
first and last baselines may go, and the empty rectangle drawn for a missing character."""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Optional, Sequence, Union

import numpy as np

PAGE_SIZES_MM = {
    "a4": (210.0, 297.0),
    "a5": (148.0, 210.0),
    "a3": (297.0, 420.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
}
MM_PER_INCH = 25.4

FIRST_BASELINE = 1.75  # xh below the top margin
DESCENDER_ROOM = 0.8  # xh above the bottom margin

# A missing character drawn as an empty rectangle: its extent in x-heights, and the bitmap the
# renderers draw (uint8 ink-high, border BOX_BORDER px of BOX_SIZE).
BOX_TOP, BOX_BOTTOM, BOX_WIDTH = 1.2, 0.0, 0.8
BOX_SIZE = (30, 20)  # (height, width) px
BOX_BORDER = 2


def box_bitmap() -> np.ndarray:
    """uint8 ink-high [BOX_SIZE]: the empty rectangle drawn for a missing character."""
    img = np.zeros(BOX_SIZE, np.uint8)
    b = BOX_BORDER
    img[:b, :] = img[-b:, :] = 255
    img[:, :b] = img[:, -b:] = 255
    return img


def parse_page(page: Union[str, Sequence[float]]) -> tuple[float, float]:
    """"a4", "a5", "a3", "letter", "legal" (add "-landscape" to turn it), "WxH" or "WxHmm" (mm),
    or a (width, height) pair in mm -> (width, height) in mm."""
    if not isinstance(page, str):
        w, h = (float(v) for v in page)
    else:
        name = page.strip().lower()
        landscape = name.endswith("-landscape")
        if landscape:
            name = name[: -len("-landscape")]
        if name in PAGE_SIZES_MM:
            w, h = PAGE_SIZES_MM[name]
        else:
            m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*[x×]\s*(\d+(?:\.\d*)?)\s*(?:mm)?", name)
            if not m:
                raise ValueError(f"page {page!r} is not one of {sorted(PAGE_SIZES_MM)} (optionally "
                                 "with -landscape) nor a size like '148x210mm'")
            w, h = float(m.group(1)), float(m.group(2))
        if landscape:
            w, h = max(w, h), min(w, h)
    if not (w > 0 and h > 0) or max(w, h) > 5000:
        raise ValueError(f"page size {w}x{h} mm is not a usable size")
    return w, h


@dataclasses.dataclass(frozen=True)
class LayoutParams:
    """Everything the layout depends on besides the text, the ink boxes and the seed.

    Pixel quantities are page pixels (at the output dpi); the rest are in x-heights.
    `geometry`: the writer's own extents, {char: (top, bottom)} in x-heights above the baseline
    (or objects with .top/.bottom such as data_pipeline.schema.Geometry); characters it lacks use
    the charset defaults.
    """

    page_width_px: int
    page_height_px: int
    x_height_px: float
    margin_px: tuple[float, float, float, float] = (120.0, 120.0, 120.0, 120.0)  # t, r, b, l
    line_width_px: Optional[float] = None
    letter_spacing: float = 0.15
    word_spacing: float = 0.9
    line_spacing: float = 3.1
    paragraph_spacing: float = 0.5
    indent: float = 0.0
    slant: float = 0.0
    baseline_drift: float = 0.12
    size_variation: float = 0.05
    spacing_variation: float = 0.05
    max_width: float = 2.0
    geometry: Optional[Mapping[str, object]] = None

    def __post_init__(self):
        if self.page_width_px < 1 or self.page_height_px < 1:
            raise ValueError(f"page size {self.page_width_px}x{self.page_height_px} px is empty")
        if not self.x_height_px > 0:
            raise ValueError(f"x_height_px must be > 0, got {self.x_height_px}")
        if len(self.margin_px) != 4 or any(m < 0 for m in self.margin_px):
            raise ValueError(f"margin_px must be 4 values >= 0 (top, right, bottom, left), got "
                             f"{self.margin_px}")
        if not -1.0 <= self.slant <= 1.0:
            raise ValueError(f"slant {self.slant} is out of range [-1, 1] (a shear factor)")
        if self.line_spacing <= 0:
            raise ValueError(f"line_spacing must be > 0, got {self.line_spacing}")
        self._check_text_area()

    def _check_text_area(self) -> None:
        top, right, bottom, left = self.margin_px
        avail = self.page_width_px - left - right
        if self.line_width_px is not None:
            if self.line_width_px <= 0:
                raise ValueError(f"line_width_px must be > 0, got {self.line_width_px}")
            if self.line_width_px > avail + 1e-6:
                raise ValueError(f"line_width_px {self.line_width_px:g} is wider than the page's "
                                 f"text area ({avail:g} px between the margins)")
        xh = self.x_height_px
        if self.text_width_px < 4 * xh:
            raise ValueError(f"the text column is {self.text_width_px:g} px wide: too narrow for "
                             f"an x-height of {xh:g} px")
        if (FIRST_BASELINE + DESCENDER_ROOM) * xh > self.page_height_px - top - bottom:
            raise ValueError(f"no line of x-height {xh:g} px fits between the top and bottom "
                             f"margins")

    @property
    def text_left_px(self) -> float:
        return float(self.margin_px[3])

    @property
    def text_width_px(self) -> float:
        avail = self.page_width_px - self.margin_px[1] - self.margin_px[3]
        return float(self.line_width_px if self.line_width_px is not None else avail)

    @property
    def text_right_px(self) -> float:
        return self.text_left_px + self.text_width_px


def page_params(page: Union[str, Sequence[float]] = "a4", dpi: float = 150.0,
                x_height_mm: float = 3.0, margin_mm: Union[float, Sequence[float]] = 20.0,
                line_width_px: Optional[float] = None, **kwargs) -> LayoutParams:
    """LayoutParams for a page ("a4", "letter", "148x210mm", ...) at `dpi`, with the x-height and
    margins (one value, or top, right, bottom, left) in mm; kwargs are LayoutParams fields."""
    if not 10 <= dpi <= 2400:
        raise ValueError(f"dpi {dpi} is out of range [10, 2400]")
    w_mm, h_mm = parse_page(page)
    px = dpi / MM_PER_INCH
    margins = [float(margin_mm)] * 4 if np.isscalar(margin_mm) else [float(m) for m in margin_mm]
    if len(margins) != 4:
        raise ValueError(f"margin_mm must be one value or 4 (top, right, bottom, left), got "
                         f"{margin_mm}")
    if not x_height_mm > 0:
        raise ValueError(f"x_height_mm must be > 0, got {x_height_mm}")
    return LayoutParams(page_width_px=int(round(w_mm * px)), page_height_px=int(round(h_mm * px)),
                        x_height_px=x_height_mm * px, margin_px=tuple(m * px for m in margins),
                        line_width_px=line_width_px, **kwargs)
