"""Cells: cutting each cell's glyph out of a registered page and normalising it.

  1. the cell grid is warped to WORK_DPI and divided by a local paper estimate (a large
     grey-level max filter), which evens out light falloff and shadows; the ratio is
     thresholded: the pale printed guides and borders lie above the threshold and drop out;
     near the layout's guide rows ink must also be clearly darker than the guide, whose level
     is measured over the whole page (one cell's ink may cover its guide), so a guide printed
     too dark drops out while ink lying along it keeps its stroke; ink along a guide that is
     darker than it but not clearly is kept and the cell flagged suspicious. Ink only as dark
     as the guide is told from it by what the layout and the page say of the guide (its rows,
     its thickness, the x-height line's dash gaps, all measured over the page): grey beside
     the guide's rows, across them wider than the guide, or in a dash gap is ink; such ink
     along a guide is kept and the cell flagged suspicious (the stroke's part on the guide is
     a guess), so ink along a guide is not silently lost;
  2. per cell, inside the writing area only (the label strip is never looked at): drop specks,
     decide empty / glyph (an empty-looking cell is read again at a looser threshold for faint
     writing), group the ink into clusters (small far-away marks are left out), flag suspicious
     cells (ink on the cell border, separate marks far apart, faint ink);
  3. draw each glyph from its ink, cut at half the page's pen level (the edge a blur leaves in
     place; the level is read off guides printed dark enough to be cut out, where ink lying
     on a guide looks darker than the pen), fitted into image_size^2 with
     strokes.fit_transform's 0.08 margin (4x supersampled, area-reduced: anti-aliased,
     ink-high uint8), and keep its box, found to a quarter pixel, against the cell's printed
     baseline in printed x-heights (schema.Geometry).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from data_pipeline import template as template_lib
from data_pipeline.scan.registration import WORK_DPI, PageMatch
from data_pipeline.schema import Geometry

INK_RATIO = 0.62  # ink: darker than this fraction of the local paper level
GUIDE_MARGIN = 0.12  # near a guide, ink must also be this much darker than the guide itself
GUIDE_SEP = 0.06  # ... and pixels this much darker than the guide, but not by the margin, ...
GUIDE_RUN_X = 0.3  # ... along this many x-heights of it: ink the guide cannot be told from
GUIDE_RIM_MM = 0.3  # (not counting this far around clearly dark ink: its blurred edge)
GUIDE_TOL_PX = 0.6  # rows this close to a guide's measured rows are the guide's (its edge)
GAP_MARGIN = 0.04  # a dash gap: where the page's dashed guide is this much paler than the cut
DASH_BINS = 24  # a dash period is measured in this many phase bins
INSET_MM = 0.9  # the writing area is read this far inside the printed cell border
INK_EDGE = 0.5  # a glyph's edge: where the ink reaches this fraction of the pen's ink level
MARGIN_FRAC = 0.08  # strokes.fit_transform's default
CLUSTER_GAP_X = 0.7  # ink closer than this (x-heights) belongs to one glyph
STRAY_FRACTION = 0.15  # a far-away cluster below this share of the ink is a stray mark (dropped)
FAINT_LEVEL = 0.52  # median ink level (fraction of paper) above this: faint
FAINT_RATIO = 0.85  # an otherwise empty cell is read again at this threshold for faint writing
FAINT_EMPTY_FACTOR = 3.0  # ... and must then hold this many times the empty-cell ink
EMPTY_AREA_X2 = 0.003  # less ink than this (x-height^2) is an empty cell
SPECK_AREA_X2 = 0.0015  # components smaller than this are specks

OK, EMPTY, SUSPICIOUS, OUTSIDE = "ok", "empty", "suspicious", "outside"


@dataclasses.dataclass
class CellResult:
    page: int
    row: int
    col: int
    char: str
    status: str  # OK, EMPTY, SUSPICIOUS, OUTSIDE
    reasons: list[str]
    image: Optional[np.ndarray] = None
    geometry: Optional[Geometry] = None
    _glyph: Optional[dict] = dataclasses.field(default=None, repr=False)  # until drawn

    def as_json(self) -> dict:
        out = {"row": self.row, "col": self.col, "char": self.char, "status": self.status}
        if self.reasons:
            out["reasons"] = self.reasons
        if self.geometry is not None:
            out["geometry"] = [round(v, 3) for v in self.geometry.as_list()]
        return out


def normalize_glyph(ink: np.ndarray, bbox: tuple[float, float, float, float], size: int,
                    margin_frac: float = MARGIN_FRAC, threshold: Optional[float] = None
                    ) -> np.ndarray:
    """Fits the box (x0, y0, x1, y1: pixel edges) of a float ink image (0 paper .. 1 ink) into
    a size x size uint8 ink-high image, centred, aspect ratio kept, the longer side filling
    (1 - 2 * margin_frac) of it, like strokes.render_strokes: drawn 4x larger, area-reduced.

    threshold: if given, the 4x image is cut at this ink level before the reduction (crisp,
    anti-aliased edges wherever the ink crosses it, however much the glyph is enlarged);
    otherwise the ink is resampled as it is."""
    import cv2

    x0, y0, x1, y1 = bbox
    extent = max(x1 - x0, y1 - y0, 1e-6)
    ss = 4
    s = ss * size * (1.0 - 2.0 * margin_frac) / extent  # input px -> supersampled px
    src = ink.astype(np.float32)
    if s < 1.0:  # anti-alias before sampling below the input's resolution
        src = cv2.GaussianBlur(src, (0, 0), 0.45 / s)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    big = ss * size
    # pixel centre x + 0.5 (edge coordinates) -> X + 0.5 in the big image
    m = np.array([[s, 0.0, s * (0.5 - cx) + big / 2.0 - 0.5],
                  [0.0, s, s * (0.5 - cy) + big / 2.0 - 0.5]], np.float32)
    out = cv2.warpAffine(src, m, (big, big), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if threshold is not None:
        out = (out >= threshold).astype(np.float32)
    out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _paper_level(gray: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Local paper brightness: a grey-level max filter wider than any pen stroke, smoothed."""
    import cv2

    f = 4
    small = cv2.resize(gray, (max(1, gray.shape[1] // f), max(1, gray.shape[0] // f)),
                       interpolation=cv2.INTER_AREA)
    k = int(math.ceil(4.5 * px_per_mm / f)) | 1
    bg = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    bg = cv2.blur(bg, (k, k))
    bg = cv2.resize(bg, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.maximum(bg.astype(np.float32), 8.0)


def _erase_thin_lines(mask: np.ndarray, rows: range, thick: int) -> None:
    """Erases, in the given rows, a horizontal line crossing most of the mask, except where ink
    continues above or below it (a stroke crossing the line)."""
    if len(rows) == 0:
        return
    r0, r1 = rows.start, rows.stop
    band = mask[r0:r1]
    if band.size == 0 or band.any(axis=0).mean() < 0.5:
        return
    above = mask[max(0, r0 - thick):r0].any(axis=0) if r0 > 0 else np.zeros(mask.shape[1], bool)
    below = mask[r1:r1 + thick].any(axis=0) if r1 < mask.shape[0] else np.zeros(mask.shape[1], bool)
    crossing = above | below
    band[:, ~crossing] = False


def _guide_band(row: int, height: int, px_per_mm: float) -> range:
    """The rows of a cell's writing area that a printed guide at `row` may cover (its
    thickness plus the homography's error)."""
    guide_px = max(1.0, template_lib.GUIDE_MM * px_per_mm)
    half = int(math.ceil(guide_px / 2 + 0.4 * px_per_mm))
    return range(max(0, row - half), min(height, row + half + 1))


def _band_ink(ns: np.ndarray, mask: np.ndarray, threshold: float, guide: CellGuide,
              px_per_mm: float, x_height_px: float):
    """(the band's rows, its ink, whether the guide is unsure) of one guide at a threshold, or
    None when the guide is paler than the threshold (it drops out by itself)."""
    import cv2

    rows = _guide_band(guide.row, ns.shape[0], px_per_mm)
    thr = min(threshold, guide.level - GUIDE_MARGIN)
    if len(rows) == 0 or thr >= threshold:
        return None
    band = ns[rows.start:rows.stop]
    strict = band < thr
    darker = band < min(threshold, guide.level - GUIDE_SEP)
    # Clear ink in and around the band (rim rows each side), grown by the rim.
    rim = int(math.ceil(GUIDE_RIM_MM * px_per_mm))
    r0, r1 = max(0, rows.start - rim), min(ns.shape[0], rows.stop + rim)
    clear = mask[r0:r1].copy()
    clear[rows.start - r0:rows.stop - r0] = strict
    near = cv2.dilate(clear.astype(np.uint8), np.ones((2 * rim + 1, 2 * rim + 1), np.uint8))
    # Darker than the guide but not clearly, away from the blurred edge of clear ink.
    doubt = darker & ~strict & ~near[rows.start - r0:rows.stop - r0].astype(bool)
    unsure = _longest_run(doubt.any(axis=0)) >= GUIDE_RUN_X * x_height_px
    if unsure:
        strict = darker
    ink, along = _guide_grey_ink(band, threshold, strict, guide, guide.row - rows.start,
                                 x_height_px)
    return rows, ink, unsure or along


def _run_near(dark: np.ndarray, row: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a band: (start, stop) of the run of dark rows nearest `row` (0, 0 where
    the column has none)."""
    idx = np.arange(dark.shape[0])[:, None]
    near = np.where(dark, np.abs(idx - row), np.inf).argmin(axis=0)
    has = dark.any(axis=0)
    light = ~dark
    start = np.where(light & (idx < near), idx, -1).max(axis=0) + 1
    stop = np.where(light & (idx > near), idx, dark.shape[0]).min(axis=0)
    return np.where(has, start, 0), np.where(has, stop, 0)


def _guide_grey_ink(band: np.ndarray, threshold: float, keep: np.ndarray, guide: CellGuide,
                    row: int, x_height_px: float) -> tuple[np.ndarray, bool]:
    """Which pixels of a guide's band that are only as dark as the guide are ink: (the band's
    ink, whether ink of the guide's grey lies along the guide).

    `keep`: the band's pixels already known to be ink (clearly darker than the guide). Of the
    others darker than `threshold` ("grey"), the guide is where it is printed: in each column,
    the run of dark rows nearest the guide's row, as thick as the page's guide (its median run;
    without the page's, the lower quartile of this cell's columns) and centred where this
    cell's guide-thick runs put it; for the dashed x-height line, not in the dash gaps (the
    page's darkness of the guide along one dash period). So grey pixels are ink in a dash gap,
    apart from the guide's run, and in a run at least two rows thicker than the guide (ink
    beside it): off the guide's rows, and on them too where the run goes on both sides (a
    stroke lying on the guide, wider than it). Such ink along GUIDE_RUN_X x-heights of the guide,
    or a guide thicker in this cell than on the page (ink hidden in it), makes the guide
    unsure: the part of the stroke on the guide is a guess."""
    dark = band < threshold
    grey = dark & ~keep
    if not grey.any():
        return keep, False
    width = band.shape[1]
    gap = (guide.dash > threshold + GAP_MARGIN if guide.dash is not None
           else np.zeros(width, bool))
    start, stop = _run_near(dark, row + guide.offset)
    length = stop - start
    solid = ~gap & (length > 0)
    if not solid.any():
        return keep | grey, False  # no guide printed here: all of it is ink
    # Columns of the guide itself (not a dash's blurred end) say how thick it is here.
    full = solid if guide.dash is None else solid & (guide.dash <= guide.level + GUIDE_SEP)
    lengths = np.sort(length[full if full.any() else solid])
    cell_rows = float(lengths[len(lengths) // 4])  # the lower quartile
    page_rows = (guide.thickness or {}).get(threshold)
    rows = cell_rows if page_rows is None else page_rows
    thin = full & (length <= rows + 1)
    centre = (float(np.median((start + stop - 1)[thin] / 2.0)) if thin.sum() >= 3
              else row + guide.offset)
    half = (rows - 1) / 2.0 + GUIDE_TOL_PX
    r = np.arange(band.shape[0])[:, None]
    on = np.abs(r - centre) <= half
    top, bottom = int(math.ceil(centre - half)) - 1, int(math.floor(centre + half)) + 1
    in_run = (r >= start) & (r < stop)
    thick = solid & (length >= rows + 2)
    bridged = thick & (start <= top) & (stop > bottom)
    beside = in_run & thick & ~on
    ink = keep | (grey & (gap | ~in_run | beside | (on & bridged)))
    along = (grey & beside).any(axis=0) | (grey & on & bridged).any(axis=0)
    hidden = page_rows is not None and cell_rows > page_rows + 1
    return ink, hidden or _longest_run(along) >= GUIDE_RUN_X * x_height_px


def _longest_run(flags: np.ndarray) -> int:
    """The longest run of True in a 1-D array."""
    edges = np.diff(np.concatenate([[0], np.asarray(flags, np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


class CellGuide(NamedTuple):
    """A printed guide in one cell's writing area, as _ink_components takes it."""

    name: str
    row: int  # the layout's row of the guide in the writing area
    level: float  # the page's darkness of it (fraction of the paper)
    offset: float = 0.0  # where the page shows it against `row` (rows)
    thickness: Optional[dict] = None  # threshold -> rows it covers on this page; None: the cell's
    dash: Optional[np.ndarray] = None  # a dashed guide: per column, the page's darkness of the
    # guide at that column's place in the dash period (a gap is paper); None: a solid line


def _ink_components(ns: np.ndarray, threshold: float, guides: Sequence[tuple],
                    px_per_mm: float, x_height_px: float):
    """Ink of a cell's writing area at a threshold (a fraction of the paper level), with the
    printed guides removed: (labels, [[label, x0, y0, x1, y1, area]], total area, names of the
    guides that could not be told from ink lying along them).

    guides: CellGuide (or its first three fields). Near a guide, ink clearly darker than the
    guide (GUIDE_MARGIN) is ink; the guide's level is the page's, not the cell's, so ink running
    along the guide keeps its stroke however much of the guide it covers. Where pixels along a
    guide are darker than it but not by the margin, over GUIDE_RUN_X x-heights (a pale ink on a
    guide printed dark), they are kept as ink and the guide is named. Pixels only as dark as the
    guide are told apart by where the guide is (`_guide_grey_ink`): its rows in the cell, its
    dash gaps; ink of the guide's grey lying along it is kept and the guide named."""
    import cv2

    mask = ns < threshold
    unsure = []
    for guide in (CellGuide(*g) for g in guides):
        found = _band_ink(ns, mask, threshold, guide, px_per_mm, x_height_px)
        if found is not None:
            rows, ink, doubt = found
            mask[rows.start:rows.stop] = ink
            if doubt:
                unsure.append(guide.name)
    # Any other long thin horizontal line (a border printed too dark, a ruled pad).
    for r in np.flatnonzero(mask.mean(axis=1) > 0.6):
        _erase_thin_lines(mask, range(r, r + 1), 2)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    xh2 = x_height_px * x_height_px
    speck = max(2.0, SPECK_AREA_X2 * xh2)
    comps = []
    for k in range(1, count):
        x, y, w, h, area = stats[k]
        if area < speck:
            continue
        if area < 4 * speck and float(ns[labels == k].min()) > threshold - 0.08:
            continue  # a small, barely dark speck: noise
        comps.append([k, x, y, x + w, y + h, int(area)])
    return labels, comps, sum(c[5] for c in comps), unsure


GUIDES = ("baseline", "x-height line")
DASHED = (False, True)  # which of GUIDES is printed dashed (template: DASH_MM on, GAP_MM off)


def _writing_area(cell: dict, to_work, px_per_mm: float, x_height_mm: float):
    """(x0, y0, x1, y1) of the part of a cell's writing area that is read, in work pixels,
    the rows of its guides (GUIDES order) inside it, and the column where the template starts
    its dashes (template.render_page: 0.12 x-heights inside the cell)."""
    wx0, wy0, wx1, wy1 = to_work(cell["writing_box"])
    base_y, xline_y = to_work([0, cell["baseline_y"], 0, cell["x_height_y"]])[1::2]
    inset = INSET_MM * px_per_mm
    ix0, iy0 = int(math.ceil(wx0 + inset)), int(math.ceil(wy0 + inset))
    ix1, iy1 = int(math.floor(wx1 - inset)), int(math.floor(wy1 - inset))
    dash_x0 = to_work(cell["box"])[0] + 0.12 * x_height_mm * px_per_mm - ix0
    return (ix0, iy0, ix1, iy1), [int(round(gy - iy0)) for gy in (base_y, xline_y)], dash_x0


def _dash_bins(width: int, dash_x0: float, px_per_mm: float) -> np.ndarray:
    """Per column of a cell: its phase bin (of DASH_BINS) in the dash period."""
    period = (template_lib.DASH_MM + template_lib.GAP_MM) * px_per_mm
    phase = np.mod(np.arange(width) + 0.5 - dash_x0, period) / period
    return np.minimum((phase * DASH_BINS).astype(int), DASH_BINS - 1)


class PageGuide(NamedTuple):
    """A printed guide as one page shows it, measured over all its cells (a cell's ink can
    cover most of its own guide; the page's cannot)."""

    level: float  # darkness (fraction of the paper): median of the band's darkest pixel
    offset: float  # its centre against the layout's row (rows)
    thickness: dict  # threshold -> rows darker than it (median over columns)
    dash: Optional[np.ndarray]  # dashed: its darkness per phase bin of the dash period

    def in_cell(self, name: str, row: int, width: int, dash_x0: float,
                px_per_mm: float) -> CellGuide:
        dash = (None if self.dash is None
                else self.dash[_dash_bins(width, dash_x0, px_per_mm)])
        return CellGuide(name, row, self.level, self.offset, self.thickness, dash)


def _cell(norm: np.ndarray, smooth: np.ndarray, cell: dict, to_work, px_per_mm: float,
          x_height_px: float, image_size: int, page_no: int,
          page_guides: Sequence[PageGuide], x_height_mm: float) -> CellResult:
    res = CellResult(page_no, cell["row"], cell["col"], cell["char"], EMPTY, [])
    wx0 = to_work(cell["writing_box"])[0]
    base_y = to_work([0, cell["baseline_y"], 0, 0])[1]
    (ix0, iy0, ix1, iy1), guide_rows, dash_x0 = _writing_area(cell, to_work, px_per_mm,
                                                              x_height_mm)
    n = norm[iy0:iy1, ix0:ix1]
    ns = smooth[iy0:iy1, ix0:ix1]
    if n.shape[0] < 8 or n.shape[1] < 8 or (n >= 2.0).mean() > 0.5:
        res.status, res.reasons = OUTSIDE, ["the cell is not in the photo"]
        return res
    guides = [g.in_cell(name, row, n.shape[1], dash_x0, px_per_mm)
              for name, row, g in zip(GUIDES, guide_rows, page_guides)]
    found = _find_ink(ns, guides, px_per_mm, x_height_px)
    if found is None:
        return res
    labels, comps, faint, unsure = found
    keep, strays, big_others = _group_ink(comps, CLUSTER_GAP_X * x_height_px)
    suspicious = [f"ink along the {g} could not be told from the printed guide"
                  for g in unsure]
    if big_others:
        suspicious.append(f"{len(big_others) + 1} separate marks far apart")
    kept = np.isin(labels, [c[0] for c in keep])
    x0 = min(c[1] for c in keep)
    y0 = min(c[2] for c in keep)
    x1 = max(c[3] for c in keep)
    y1 = max(c[4] for c in keep)
    if x0 <= 0 or y0 <= 0 or x1 >= n.shape[1] or y1 >= n.shape[0]:
        suspicious.append("ink touches the cell border (glyph may be cut off)")
    level = float(np.median(n[kept]))
    if faint or level > FAINT_LEVEL:
        suspicious.append(f"faint ink ({level:.2f} of the paper's brightness)")
    # The pen's own darkness is read off guides printed dark enough to be cut out: ink on such
    # a guide is darker than the pen (the two layers add up).
    pen = kept.copy()
    for g in guides:
        if g.level - GUIDE_MARGIN < INK_RATIO:
            band = _guide_band(g.row, n.shape[0], px_per_mm)
            pen[band.start:band.stop] = False
    # Image and geometry follow in _draw_glyph, once the page's ink level is known.
    res._glyph = {"ink": np.maximum(1.0 - n, 0.0), "kept": kept,
                  "pen": pen if pen.any() else kept, "bbox": (x0, y0, x1, y1),
                  "baseline": base_y - iy0, "left": wx0 - ix0, "x_height": x_height_px}
    res.reasons = suspicious + ([f"{len(strays)} small stray mark(s) left out"] if strays else [])
    res.status = SUSPICIOUS if suspicious else OK
    return res


def _find_ink(ns: np.ndarray, guides: Sequence[CellGuide], px_per_mm: float,
              x_height_px: float):
    """(labels, components, faint, guides not told from ink) of a cell's ink, or None for an
    empty cell. A cell with no dark ink is read again at a looser threshold for faint
    writing."""
    empty_area = max(3.0, EMPTY_AREA_X2 * x_height_px * x_height_px)
    labels, comps, total, unsure = _ink_components(ns, INK_RATIO, guides, px_per_mm,
                                                   x_height_px)
    if total >= empty_area:
        return labels, comps, False, unsure
    # Nothing dark: look again for faint writing (pencil, a pen running dry).
    labels, comps, total, unsure = _ink_components(ns, FAINT_RATIO, guides, px_per_mm,
                                                   x_height_px)
    if total < FAINT_EMPTY_FACTOR * empty_area:
        return None
    return labels, comps, True, unsure


def _group_ink(comps: list, gap: float) -> tuple[list, list, list]:
    """Clusters ink components by the gap between their boxes: (components kept, stray
    clusters left out, large clusters kept apart from the main one)."""
    parent = list(range(len(comps)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(comps)):
        for j in range(i + 1, len(comps)):
            a, b = comps[i], comps[j]
            dx = max(0, max(a[1], b[1]) - min(a[3], b[3]))
            dy = max(0, max(a[2], b[2]) - min(a[4], b[4]))
            if max(dx, dy) <= gap:
                parent[find(i)] = find(j)
    clusters: dict[int, list] = {}
    for i, c in enumerate(comps):
        clusters.setdefault(find(i), []).append(c)
    ordered = sorted(clusters.values(), key=lambda cl: -sum(c[5] for c in cl))
    main_area = sum(c[5] for c in ordered[0])
    keep = list(ordered[0])
    others = ordered[1:]
    strays = [cl for cl in others if sum(c[5] for c in cl) < STRAY_FRACTION * main_area]
    big_others = [cl for cl in others if sum(c[5] for c in cl) >= STRAY_FRACTION * main_area]
    for cl in big_others:
        keep.extend(cl)
    return keep, strays, big_others


def extract_page(gray: np.ndarray, match: PageMatch, image_size: int = 32,
                 work_dpi: int = WORK_DPI) -> list[CellResult]:
    """Every cell of a matched page, in layout order."""
    import cv2

    layout = match.layout
    page = layout["pages"][match.page_index]
    scale = work_dpi / layout["dpi"]
    px_per_mm = work_dpi / 25.4
    boxes = np.array([c["box"] for c in page["cells"]], np.float64) * scale
    if len(boxes) == 0:
        return []
    pad = 2.0 * px_per_mm
    gx0, gy0 = boxes[:, 0].min() - pad, boxes[:, 1].min() - pad
    gx1, gy1 = boxes[:, 2].max() + pad, boxes[:, 3].max() + pad
    w, h = int(math.ceil(gx1 - gx0)), int(math.ceil(gy1 - gy0))
    to_grid = np.array([[scale, 0, -gx0], [0, scale, -gy0], [0, 0, 1]], np.float64)
    H = to_grid @ match.homography
    # Out-of-photo pixels become 0 in `valid`.
    warped = cv2.warpPerspective(gray, H, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    valid = cv2.warpPerspective(np.full(gray.shape, 255, np.uint8), H, (w, h),
                                flags=cv2.INTER_NEAREST, borderValue=0)
    paper = _paper_level(warped, px_per_mm)
    norm = warped.astype(np.float32) / paper
    norm[valid == 0] = 9.0
    smooth = cv2.GaussianBlur(norm, (3, 3), 0.7)

    def to_work(b):
        return [(b[0] * scale - gx0), (b[1] * scale - gy0), (b[2] * scale - gx0),
                (b[3] * scale - gy0)]

    xh = layout["x_height_mm"] * px_per_mm
    guides = _page_guides(smooth, page["cells"], to_work, px_per_mm, layout["x_height_mm"])
    cells = [_cell(norm, smooth, c, to_work, px_per_mm, xh, image_size, page["page"], guides,
                   layout["x_height_mm"]) for c in page["cells"]]
    glyphs = [c for c in cells if c._glyph is not None]
    if glyphs:
        # The pen's ink level: the darkest ink on the page (stroke crossings, dots and thick
        # strokes reach it even where blur greys thin strokes).
        page_level = float(np.percentile(np.concatenate(
            [-np.sort(-c._glyph["ink"][c._glyph["pen"]])[:200] for c in glyphs]), 80))
        for c in glyphs:
            _draw_glyph(c, page_level, image_size)
    return cells


def _page_guides(smooth: np.ndarray, cells: Sequence[dict], to_work, px_per_mm: float,
                 x_height_mm: float) -> list[PageGuide]:
    """How each guide (GUIDES order) is printed on this page, at the rows the layout gives:
    its darkness, its thickness at the ink thresholds, where it sits against the layout, and for
    the dashed one its darkness along the dash period. Medians over the page's cells."""
    bands = [[] for _ in GUIDES]  # (band, layout row in it, phase bin per column)
    for cell in cells:
        (ix0, iy0, ix1, iy1), rows, dash_x0 = _writing_area(cell, to_work, px_per_mm,
                                                             x_height_mm)
        ns = smooth[iy0:iy1, ix0:ix1]
        if ns.shape[0] < 8 or ns.shape[1] < 8 or (ns >= 2.0).mean() > 0.5:
            continue  # not in the photo
        for k, r in enumerate(rows):
            band = _guide_band(r, ns.shape[0], px_per_mm)
            if len(band):
                bands[k].append((ns[band.start:band.stop], r - band.start,
                                 _dash_bins(ns.shape[1], dash_x0, px_per_mm)))
    return [_measure_guide(found, dashed) for found, dashed in zip(bands, DASHED)]


def _measure_guide(bands: list, dashed: bool) -> PageGuide:
    """A PageGuide from its bands in the page's cells: (band, layout row in it, phase bins)."""
    if not bands:
        return PageGuide(1.0, 0.0, {}, None)
    darkest = [b.min(axis=0) for b, _, _ in bands]
    dash = None
    if dashed:
        values, bins = np.concatenate(darkest), np.concatenate([p for _, _, p in bands])
        dash = np.array([float(np.median(values[bins == k])) if (bins == k).any() else 1.0
                         for k in range(DASH_BINS)])
    level = float(np.median([np.median(d) for d in darkest]))
    thickness, offsets = {}, []
    for threshold in (INK_RATIO, FAINT_RATIO):
        lengths = []
        for band, row, bins in bands:
            dark = band < threshold
            start, stop = _run_near(dark, row)
            solid = stop > start
            if dash is not None:  # the dashes' own columns, not their blurred ends
                solid &= dash[bins] <= level + GUIDE_SEP
            lengths.append((stop - start)[solid])
            if threshold == INK_RATIO:
                offsets.append(((start + stop - 1) / 2.0 - row)[solid])
        lengths = np.concatenate(lengths)
        if len(lengths):
            thickness[threshold] = float(np.median(lengths))
    offsets = np.concatenate(offsets) if offsets else np.zeros(0)
    return PageGuide(level, float(np.median(offsets)) if len(offsets) else 0.0, thickness, dash)


def _draw_glyph(res: CellResult, page_level: float, image_size: int) -> None:
    """The normalised image and the geometry of a cell's glyph. Its ink is where the darkness
    reaches half the pen's ink level (where a blurred edge stays in place); the box is found
    to a quarter pixel on the ink interpolated 4x."""
    import cv2

    g = res._glyph
    ink, kept = g["ink"], g["kept"]
    own = float(np.percentile(ink[g["pen"]], 95))
    # A cell written with a clearly lighter pen than the rest of the page uses its own level.
    level = max(own if own < page_level - 0.25 else page_level, 0.25)
    ink = np.clip(ink / level, 0.0, 1.0)
    rim = cv2.dilate(kept.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ink = np.where(rim, ink, 0.0).astype(np.float32)
    x0, y0, x1, y1 = g["bbox"]
    cx0, cy0 = max(0, x0 - 2), max(0, y0 - 2)
    crop = ink[cy0:y1 + 2, cx0:x1 + 2]
    ys, xs = np.nonzero(cv2.resize(crop, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
                        >= INK_EDGE)
    if len(xs):
        bbox = (cx0 + xs.min() / 4.0, cy0 + ys.min() / 4.0,
                cx0 + (xs.max() + 1) / 4.0, cy0 + (ys.max() + 1) / 4.0)
    else:
        bbox = (float(x0), float(y0), float(x1), float(y1))
    res.image = normalize_glyph(ink, bbox, image_size, threshold=INK_EDGE)
    xh = g["x_height"]
    res.geometry = Geometry(top=float((g["baseline"] - bbox[1]) / xh),
                            bottom=float((g["baseline"] - bbox[3]) / xh),
                            left=float((bbox[0] - g["left"]) / xh),
                            right=float((bbox[2] - g["left"]) / xh))
    res._glyph = None
