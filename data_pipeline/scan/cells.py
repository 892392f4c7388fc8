"""Cells: cutting each cell's glyph out of a registered page and normalising it.

  1. the cell grid is warped to WORK_DPI and divided by a local paper estimate (a large
     grey-level max filter), which evens out light falloff and shadows; the ratio is
     thresholded: the pale printed guides and borders lie above the threshold and drop out;
     near the layout's guide rows ink must also be clearly darker than the guide, whose level
     is measured over the whole page (one cell's ink may cover its guide), so a guide printed
     too dark drops out while ink lying along it keeps its stroke; ink along a guide that is
     darker than it but not clearly is kept and the cell flagged suspicious;
  2. per cell, inside the writing area only (the label strip is never looked at): drop specks,
     decide empty / glyph (an empty-looking cell is read again at a looser threshold for faint
     writing), group the ink into clusters (small far-away marks are left out), flag suspicious
     cells (ink on the cell border, separate marks far apart, faint ink);
  3. draw each glyph from its ink, cut at half the page's pen level (the edge a blur leaves in
     place), fitted into image_size^2 with strokes.fit_transform's 0.08 margin (4x supersampled,
     area-reduced: anti-aliased, ink-high uint8), and keep its box, found to a quarter pixel,
     against the cell's printed baseline in printed x-heights (schema.Geometry).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from data_pipeline import template as template_lib
from data_pipeline.scan.registration import WORK_DPI, PageMatch
from data_pipeline.schema import Geometry

INK_RATIO = 0.62  # ink: darker than this fraction of the local paper level
GUIDE_MARGIN = 0.12  # near a guide, ink must also be this much darker than the guide itself
GUIDE_SEP = 0.06  # ... and pixels this much darker than the guide, but not by the margin, ...
GUIDE_RUN_X = 0.3  # ... along this many x-heights of it: ink the guide cannot be told from
GUIDE_RIM_MM = 0.3  # (not counting this far around clearly dark ink: its blurred edge)
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


def _guide_level(ns: np.ndarray, rows: range) -> Optional[float]:
    """How dark a guide looks in one cell: the median over columns of the darkest pixel of its
    band (a cell's ink can take most of it: extract_page takes the median over the page)."""
    if len(rows) == 0:
        return None
    return float(np.median(ns[rows.start:rows.stop].min(axis=0)))


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def _ink_components(ns: np.ndarray, threshold: float, guides: Sequence[tuple[str, int, float]],
                    px_per_mm: float, x_height_px: float):
    """Ink of a cell's writing area at a threshold (a fraction of the paper level), with the
    printed guides removed: (labels, [[label, x0, y0, x1, y1, area]], total area, names of the
    guides that could not be told from ink lying along them).

    guides: (name, row, the page's level of that guide). Near a guide, ink must be clearly
    darker than the guide (GUIDE_MARGIN); the guide's level is the page's, not the cell's, so
    ink running along the guide keeps its stroke however much of the guide it covers. Where
    pixels along a guide are darker than it but not by the margin, over GUIDE_RUN_X x-heights
    (a pale ink on a guide printed dark), they are kept as ink and the guide is named."""
    import cv2

    mask = ns < threshold
    unsure = []
    for name, r, level in guides:
        rows = _guide_band(r, ns.shape[0], px_per_mm)
        if len(rows) == 0:
            continue
        thr = min(threshold, level - GUIDE_MARGIN)
        if thr >= threshold:
            continue  # the guide is paler than the threshold: it drops out by itself
        band = ns[rows.start:rows.stop]
        strict = band < thr
        darker = band < min(threshold, level - GUIDE_SEP)
        clear = mask.copy()
        clear[rows.start:rows.stop] = strict
        rim = 2 * int(math.ceil(GUIDE_RIM_MM * px_per_mm)) + 1
        near = cv2.dilate(clear.astype(np.uint8), np.ones((rim, rim), np.uint8))
        # Darker than the guide but not clearly, away from the blurred edge of clear ink.
        doubt = darker & ~strict & ~near[rows.start:rows.stop].astype(bool)
        if _longest_run(doubt.any(axis=0)) >= GUIDE_RUN_X * x_height_px:
            unsure.append(name)
            strict = darker
        mask[rows.start:rows.stop] = strict
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


def _writing_area(cell: dict, to_work, px_per_mm: float):
    """(x0, y0, x1, y1) of the part of a cell's writing area that is read, in work pixels,
    and the rows of its guides (GUIDES order) inside it."""
    wx0, wy0, wx1, wy1 = to_work(cell["writing_box"])
    base_y, xline_y = to_work([0, cell["baseline_y"], 0, cell["x_height_y"]])[1::2]
    inset = INSET_MM * px_per_mm
    ix0, iy0 = int(math.ceil(wx0 + inset)), int(math.ceil(wy0 + inset))
    ix1, iy1 = int(math.floor(wx1 - inset)), int(math.floor(wy1 - inset))
    return (ix0, iy0, ix1, iy1), [int(round(gy - iy0)) for gy in (base_y, xline_y)]


def _cell(norm: np.ndarray, smooth: np.ndarray, cell: dict, to_work, px_per_mm: float,
          x_height_px: float, image_size: int, page_no: int,
          guide_levels: Sequence[float]) -> CellResult:
    res = CellResult(page_no, cell["row"], cell["col"], cell["char"], EMPTY, [])
    wx0 = to_work(cell["writing_box"])[0]
    base_y = to_work([0, cell["baseline_y"], 0, 0])[1]
    (ix0, iy0, ix1, iy1), guide_rows = _writing_area(cell, to_work, px_per_mm)
    n = norm[iy0:iy1, ix0:ix1]
    ns = smooth[iy0:iy1, ix0:ix1]
    if n.shape[0] < 8 or n.shape[1] < 8 or (n >= 2.0).mean() > 0.5:
        res.status, res.reasons = OUTSIDE, ["the cell is not in the photo"]
        return res
    guides = list(zip(GUIDES, guide_rows, guide_levels))
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
    # Image and geometry follow in _draw_glyph, once the page's ink level is known.
    res._glyph = {"ink": np.maximum(1.0 - n, 0.0), "kept": kept, "bbox": (x0, y0, x1, y1),
                  "baseline": base_y - iy0, "left": wx0 - ix0, "x_height": x_height_px}
    res.reasons = suspicious + ([f"{len(strays)} small stray mark(s) left out"] if strays else [])
    res.status = SUSPICIOUS if suspicious else OK
    return res


def _find_ink(ns: np.ndarray, guides: Sequence[tuple[str, int, float]], px_per_mm: float,
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
    levels = _page_guide_levels(smooth, page["cells"], to_work, px_per_mm)
    cells = [_cell(norm, smooth, c, to_work, px_per_mm, xh, image_size, page["page"], levels)
             for c in page["cells"]]
    glyphs = [c for c in cells if c._glyph is not None]
    if glyphs:
        # The pen's ink level: the darkest ink on the page (stroke crossings, dots and thick
        # strokes reach it even where blur greys thin strokes).
        page_level = float(np.percentile(np.concatenate(
            [-np.sort(-c._glyph["ink"][c._glyph["kept"]])[:200] for c in glyphs]), 80))
        for c in glyphs:
            _draw_glyph(c, page_level, image_size)
    return cells

def _page_guide_levels(smooth: np.ndarray, cells: Sequence[dict], to_work,
                       px_per_mm: float) -> list[float]:
    """How dark each guide (GUIDES order) printed on this page, as a fraction of the paper:
    the median over the page's cells, at the guide rows the layout gives. A cell's ink can
    cover most of its guide; the page's cannot."""
    per_guide: list[list[float]] = [[] for _ in GUIDES]
    for cell in cells:
        (ix0, iy0, ix1, iy1), rows = _writing_area(cell, to_work, px_per_mm)
        ns = smooth[iy0:iy1, ix0:ix1]
        if ns.shape[0] < 8 or ns.shape[1] < 8 or (ns >= 2.0).mean() > 0.5:
            continue  # not in the photo
        for k, r in enumerate(rows):
            level = _guide_level(ns, _guide_band(r, ns.shape[0], px_per_mm))
            if level is not None:
                per_guide[k].append(level)
    return [float(np.median(v)) if v else 1.0 for v in per_guide]


def _draw_glyph(res: CellResult, page_level: float, image_size: int) -> None:
    """The normalised image and the geometry of a cell's glyph. Its ink is where the darkness
    reaches half the pen's ink level (where a blurred edge stays in place); the box is found
    to a quarter pixel on the ink interpolated 4x."""
    import cv2

    g = res._glyph
    ink, kept = g["ink"], g["kept"]
    own = float(np.percentile(ink[kept], 95))
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
