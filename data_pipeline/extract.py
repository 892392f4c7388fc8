"""Scans or photos of filled-in templates -> glyph records (`hwgan extract`).

For each image:
  1. decode it safely: the header is read first (Pillow's lazy open), so a file that is not an
     image, or an image over `max_pixels`, is refused before anything is decoded;
  2. find the template's ArUco markers; their ids say which template family, page and corner
     each one is (template.py), so the photo may be rotated any way, upside down included;
  3. map the page onto the layout with a homography from the markers' corners (RANSAC, then
     a check of the residuals) and warp the cell grid to WORK_DPI;
  4. divide by a local paper estimate (a large grey-level max filter), which evens out light
     falloff and shadows, and threshold the ratio: the pale printed guides and borders lie
     above the threshold and drop out; near the known guide rows the threshold also follows the
     guide's measured darkness, and long thin horizontal runs there are erased, so guides that
     printed too dark do not survive either;
  5. per cell, inside the writing area only (the label strip is never looked at): drop specks,
     decide empty / glyph (an empty-looking cell is read again at a looser threshold for faint
     writing), group the ink into clusters (small far-away marks are left out), flag suspicious
     cells (ink on the cell border, separate marks far apart, faint ink);
  6. draw each glyph from its ink, cut at half the page's pen level (the edge a blur leaves in
     place), fitted into image_size^2 with strokes.fit_transform's 0.08 margin (4x supersampled,
     area-reduced: anti-aliased, ink-high uint8), and keep its box, found to a quarter pixel,
     against the cell's printed baseline in printed x-heights (schema.Geometry).

Bad input (not an image, too large, blank, no or foreign markers, a page given twice) is reported
for that file in the report and on stderr; the other files are still processed. `extract` writes
the dataset (tfrecords.write_dataset through the `scans` source), a review sheet and a JSON
report, all inside the output directory, which appears only when complete; if no glyph at all
was extracted it raises and writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipeline import atomic
from data_pipeline import template as template_lib
from data_pipeline.schema import Geometry

DEFAULT_MAX_PIXELS = 100_000_000
WORK_DPI = 200  # resolution the cell grid is warped to
DETECT_MAX_SIDE = 2000  # markers are searched on a copy at most this large (then full size)
INK_RATIO = 0.62  # ink: darker than this fraction of the local paper level
GUIDE_MARGIN = 0.12  # near a guide, ink must also be this much darker than the guide itself
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
LOW_DPI = 150  # warn below this resolution of the page in the image
BLURRY_MM = 0.25  # warn above this blur (Gaussian sigma measured on the marker edges)
MAX_RESIDUAL_MM = 1.0  # marker corners must fit the homography this well (median)
REVIEW_NAME = "review.png"
REPORT_NAME = "extract_report.json"

OK, EMPTY, SUSPICIOUS, OUTSIDE = "ok", "empty", "suspicious", "outside"


class ImageProblem(ValueError):
    """A file that cannot be used; the message says why (without the file name)."""


# --------------------------------------------------------------------------------------------
# Reading


def read_gray(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes an image file to uint8 grey, refusing non-images and images over max_pixels
    from their header, before decoding."""
    import cv2
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageProblem("file does not exist")
    if not path.is_file():
        raise ImageProblem("not a regular file")
    if path.stat().st_size == 0:
        raise ImageProblem("empty file")
    # Only the header is read here; the size check below replaces Pillow's own bomb check.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt = im.format
    except UnidentifiedImageError:
        raise ImageProblem("not an image (no known image format)") from None
    except OSError as e:
        raise ImageProblem(f"not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if w * h > max_pixels:
        raise ImageProblem(f"image too large: {w}x{h} = {w * h / 1e6:.1f} megapixels, over the "
                           f"limit of {max_pixels / 1e6:.1f} (scan at 300 dpi or resize it)")
    if min(w, h) < 64:
        raise ImageProblem(f"image too small ({w}x{h}) to hold a template page")
    gray = None
    if fmt in ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM"):
        gray = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:  # formats OpenCV does not read, or a file it refused: try Pillow
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # size checked above
        try:
            with Image.open(path) as im:
                gray = np.asarray(im.convert("L"))
        except (OSError, ValueError) as e:
            raise ImageProblem(f"{fmt} image could not be decoded (truncated or corrupt?): "
                               f"{e}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    if gray.ndim != 2 or gray.shape[0] * gray.shape[1] > max_pixels:
        raise ImageProblem(f"decoded image has an unexpected shape {gray.shape}")
    return gray


# --------------------------------------------------------------------------------------------
# Markers and the page


def detect_markers(gray: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """[(id, corners (4, 2) in image pixels)], corners in the marker's own order (its top-left,
    top-right, bottom-right, bottom-left as printed), whatever the image's rotation."""
    import cv2

    dictionary = template_lib.aruco_dictionary()
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(dictionary, params)
    h, w = gray.shape
    found: dict[int, np.ndarray] = {}
    scales = [min(1.0, DETECT_MAX_SIDE / max(h, w))]
    if scales[0] < 1.0:
        scales.append(min(1.0, 2 * scales[0]))
    for s in scales:
        img = gray if s >= 1.0 else cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        corners, ids, _ = detector.detectMarkers(img)
        if ids is not None:
            for c, mid in zip(corners, ids.ravel()):
                # pixel centres: x_small = (x + 0.5) * s - 0.5
                found.setdefault(int(mid), (c.reshape(4, 2).astype(np.float64) + 0.5) / s - 0.5)
        if len(found) >= 4:
            break
    return sorted(found.items())


@dataclasses.dataclass
class PageMatch:
    layout: dict
    page_index: int
    family: int
    marker_ids: list[int]
    homography: np.ndarray  # image pixels -> layout page pixels
    residual_mm: float
    warnings: list[str]


def _layout_marker_table(layout: dict) -> dict[int, tuple[int, int]]:
    return {int(m["id"]): (pi, k) for pi, page in enumerate(layout["pages"])
            for k, m in enumerate(page["markers"])}


def match_page(markers: list[tuple[int, np.ndarray]], layout: Optional[dict],
               gray: np.ndarray) -> PageMatch:
    """Identifies the template page from its markers and maps the image onto it."""
    import cv2

    if not markers:
        small = gray[:: max(1, gray.shape[0] // 400), :: max(1, gray.shape[1] // 400)]
        if float(small.std()) < 4.0:
            raise ImageProblem("blank page: no template markers and no content")
        raise ImageProblem("no template markers found: is this a photo of an hwgan template? "
                           "All four corner squares must be in the picture")
    warn: list[str] = []
    ids = [mid for mid, _ in markers]
    if layout is not None:
        table = _layout_marker_table(layout)
        known = [(mid, c) for mid, c in markers if mid in table]
        if not known:
            fams = sorted({template_lib.decode_marker_id(m)[0] for m in ids})
            raise ImageProblem(f"the markers (ids {ids}, template family {fams}) are not those of "
                               f"the given layout (family {layout['family']}): another template")
        by_page: dict[int, list] = {}
        for mid, c in known:
            by_page.setdefault(table[mid][0], []).append((mid, table[mid][1], c))
        family = int(layout["family"])
    else:
        by_fam_page: dict[tuple[int, int], list] = {}
        foreign = []
        for mid, c in markers:
            fam, pi, corner = template_lib.decode_marker_id(mid)
            if fam not in template_lib.KNOWN_FAMILIES:
                foreign.append(mid)
                continue
            by_fam_page.setdefault((fam, pi), []).append((mid, corner, c))
        if not by_fam_page:
            raise ImageProblem(f"the markers (ids {foreign}) belong to no template of version "
                               f"{template_lib.TEMPLATE_VERSION}: the sheet was printed by "
                               f"another hwgan version (or is not an hwgan template)")
        (family, _), _ = max(by_fam_page.items(), key=lambda kv: len(kv[1]))
        try:
            layout = template_lib.layout_for_family(family)
        except ValueError as e:
            raise ImageProblem(str(e)) from None
        by_page = {pi: v for (fam, pi), v in by_fam_page.items() if fam == family}
        if foreign:
            warn.append(f"ignored markers of no known template: {foreign}")
    page_index, used = max(by_page.items(), key=lambda kv: len(kv[1]))
    if len(by_page) > 1:
        warn.append(f"markers of several pages in one image; using page {page_index + 1}, the "
                    f"one with most markers")
    if page_index >= len(layout["pages"]):
        raise ImageProblem(f"markers name page {page_index + 1}, but the layout has "
                           f"{len(layout['pages'])} pages")
    page = layout["pages"][page_index]
    if len(used) < 2:
        raise ImageProblem(f"only one corner marker found (page {page_index + 1}): photograph the "
                           f"whole page with all four corner squares in view")
    src, dst = [], []
    for mid, corner, c in used:
        x0, y0, x1, y1 = page["markers"][corner]["box"]
        src.append(c)
        dst.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    src = np.concatenate(src).astype(np.float32)
    dst = np.concatenate(dst).astype(np.float32)
    px_per_mm = layout["dpi"] / 25.4
    if len(used) >= 3:
        H, _ = cv2.findHomography(src, dst, cv2.RANSAC, 2.0 * px_per_mm)
    else:
        warn.append(f"only {len(used)} of 4 markers found: the page is mapped without "
                    f"perspective correction; check the review sheet")
        A, _ = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=2.0 * px_per_mm)
        H = None if A is None else np.vstack([A, [0.0, 0.0, 1.0]])
    if H is None or not np.isfinite(H).all():
        raise ImageProblem("the markers do not define a page (degenerate positions)")
    proj = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), H).reshape(-1, 2)
    residual = float(np.median(np.linalg.norm(proj - dst, axis=1))) / px_per_mm
    if residual > MAX_RESIDUAL_MM:
        raise ImageProblem(f"the markers do not fit the page layout (median error "
                           f"{residual:.1f} mm): folded paper, or the wrong layout")
    if np.linalg.det(H[:2, :2]) < 0:
        raise ImageProblem("the page appears mirrored")
    if len(used) == 3:
        warn.append("only 3 of 4 markers found")
    return PageMatch(layout, page_index, family, sorted(m for m, _, _ in used), H, residual, warn)


def effective_dpi(match: PageMatch) -> float:
    """The image's resolution on the page (pixels per inch of paper), at the page's centre."""
    import cv2

    page = match.layout["pages"][match.page_index]
    w, h = page["size_px"]
    step = match.layout["dpi"] / 2.54  # 1 cm
    pts = np.array([[[w / 2, h / 2]], [[w / 2 + step, h / 2]], [[w / 2, h / 2 + step]]])
    img = cv2.perspectiveTransform(pts, np.linalg.inv(match.homography)).reshape(-1, 2)
    per_cm = (np.linalg.norm(img[1] - img[0]) + np.linalg.norm(img[2] - img[0])) / 2
    return float(per_cm * 2.54)


# --------------------------------------------------------------------------------------------
# Cells


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


def _ink_components(ns: np.ndarray, threshold: float, guide_rows: Sequence[int],
                    px_per_mm: float, xh2: float):
    """Ink of a cell's writing area at a threshold (a fraction of the paper level), with the
    printed guides removed: (labels, [[label, x0, y0, x1, y1, area]], total area)."""
    import cv2

    mask = ns < threshold
    guide_px = max(1.0, template_lib.GUIDE_MM * px_per_mm)
    half = int(math.ceil(guide_px / 2 + 0.4 * px_per_mm))  # + homography error allowance
    for r in guide_rows:
        rows = range(max(0, r - half), min(ns.shape[0], r + half + 1))
        if len(rows) == 0:
            continue
        # Near a guide, ink must be clearly darker than the guide itself.
        level = float(np.median(ns[rows.start:rows.stop].min(axis=0)))
        thr = min(threshold, level - GUIDE_MARGIN)
        if thr < threshold:
            mask[rows.start:rows.stop] &= ns[rows.start:rows.stop] < thr
        _erase_thin_lines(mask, rows, max(2, int(round(guide_px)) + 1))
    # Any other long thin horizontal line (a border printed too dark, a ruled pad).
    for r in np.flatnonzero(mask.mean(axis=1) > 0.6):
        _erase_thin_lines(mask, range(r, r + 1), 2)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    speck = max(2.0, SPECK_AREA_X2 * xh2)
    comps = []
    for k in range(1, count):
        x, y, w, h, area = stats[k]
        if area < speck:
            continue
        if area < 4 * speck and float(ns[labels == k].min()) > threshold - 0.08:
            continue  # a small, barely dark speck: noise
        comps.append([k, x, y, x + w, y + h, int(area)])
    return labels, comps, sum(c[5] for c in comps)


def _cell(norm: np.ndarray, smooth: np.ndarray, cell: dict, to_work, px_per_mm: float,
          x_height_px: float, image_size: int, page_no: int) -> CellResult:
    res = CellResult(page_no, cell["row"], cell["col"], cell["char"], EMPTY, [])
    wx0, wy0, wx1, wy1 = to_work(cell["writing_box"])
    base_y, xline_y = to_work([0, cell["baseline_y"], 0, cell["x_height_y"]])[1::2]
    inset = INSET_MM * px_per_mm
    ix0, iy0 = int(math.ceil(wx0 + inset)), int(math.ceil(wy0 + inset))
    ix1, iy1 = int(math.floor(wx1 - inset)), int(math.floor(wy1 - inset))
    n = norm[iy0:iy1, ix0:ix1]
    ns = smooth[iy0:iy1, ix0:ix1]
    if n.shape[0] < 8 or n.shape[1] < 8 or (n >= 2.0).mean() > 0.5:
        res.status, res.reasons = OUTSIDE, ["the cell is not in the photo"]
        return res
    guide_rows = [int(round(gy - iy0)) for gy in (base_y, xline_y)]
    xh2 = x_height_px * x_height_px
    empty_area = max(3.0, EMPTY_AREA_X2 * xh2)
    labels, comps, total = _ink_components(ns, INK_RATIO, guide_rows, px_per_mm, xh2)
    faint = False
    if total < empty_area:
        # Nothing dark: look again for faint writing (pencil, a pen running dry).
        labels, comps, total = _ink_components(ns, FAINT_RATIO, guide_rows, px_per_mm, xh2)
        if total < FAINT_EMPTY_FACTOR * empty_area:
            return res
        faint = True
    # Cluster the components by the gap between their boxes.
    gap = CLUSTER_GAP_X * x_height_px
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
    suspicious = []
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
    cells = [_cell(norm, smooth, c, to_work, px_per_mm, xh, image_size, page["page"])
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


def estimate_blur(gray: np.ndarray, match: PageMatch, work_dpi: int = WORK_DPI
                  ) -> Optional[float]:
    """Gaussian sigma (in work pixels) of the optical blur plus resampling, measured on the
    printed step edges of the page's markers: the 25 %..75 % rise of an edge spans 1.349
    sigma. None when no edge can be measured."""
    import cv2

    layout = match.layout
    page = layout["pages"][match.page_index]
    scale = work_dpi / layout["dpi"]
    px_per_mm = work_dpi / 25.4
    half = int(round(1.5 * px_per_mm))
    sigmas = []
    for m in page["markers"]:
        if m["id"] not in match.marker_ids:
            continue
        x0, y0, x1, y1 = (v * scale for v in m["box"])
        ox, oy = x0 - 2 * half, y0 - 2 * half
        size = (int(x1 - x0) + 4 * half, int(y1 - y0) + 4 * half)
        T = np.array([[scale, 0, -ox], [0, scale, -oy], [0, 0, 1]], np.float64)
        patch = cv2.warpPerspective(gray, T @ match.homography, size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        lx0, ly0, lx1, ly1 = x0 - ox, y0 - oy, x1 - ox, y1 - oy
        a, b = int(ly0 + 0.25 * (ly1 - ly0)), int(ly0 + 0.75 * (ly1 - ly0))
        c, d = int(lx0 + 0.25 * (lx1 - lx0)), int(lx0 + 0.75 * (lx1 - lx0))
        profiles = []  # each from paper (outside) into the black border
        xi, yi, xj, yj = (int(round(v)) for v in (lx0, ly0, lx1, ly1))
        profiles.append(patch[a:b, xi - half:xi + half].mean(axis=0))
        profiles.append(patch[a:b, xj - half:xj + half].mean(axis=0)[::-1])
        profiles.append(patch[yi - half:yi + half, c:d].mean(axis=1))
        profiles.append(patch[yj - half:yj + half, c:d].mean(axis=1)[::-1])
        for prof in profiles:
            k = max(2, len(prof) // 5)
            white, black = prof[:k].mean(), prof[-k:].mean()
            if white - black < 30:
                continue
            f = (white - prof) / (white - black)
            t = []
            for level in (0.25, 0.75):
                i = int(np.argmax(f >= level))
                if i == 0:
                    break
                t.append(i - 1 + (level - f[i - 1]) / max(1e-6, f[i] - f[i - 1]))
            if len(t) == 2 and t[1] > t[0]:
                sigmas.append((t[1] - t[0]) / 1.349)
    if not sigmas:
        return None
    return float(np.clip(np.median(sigmas), 0.3, 3.0))


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


# --------------------------------------------------------------------------------------------
# Many images


def expand_images(images) -> list[str]:
    """A list of paths, or one string of comma-separated paths / glob patterns."""
    import glob

    if isinstance(images, (str, os.PathLike)):
        items = [s.strip() for s in os.fspath(images).split(",") if s.strip()]
    else:
        items = [os.fspath(s) for s in images]
    out = []
    for item in items:
        if any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = sorted(glob.glob(item))
            out.extend(matches if matches else [item])
        else:
            out.append(item)
    return out


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
            gray = read_gray(path, max_pixels)
            entry["size"] = [int(gray.shape[1]), int(gray.shape[0])]
            markers = detect_markers(gray)
            entry["markers_found"] = [mid for mid, _ in markers]
            match = match_page(markers, layout, gray)
        except ImageProblem as e:
            entry.update(status="error", error=str(e))
            if log:
                log(f"{path}: {e}")
            continue
        page_no = match.page_index + 1
        dpi = effective_dpi(match)
        entry.update(page=page_no, template_family=match.family,
                     marker_residual_mm=round(match.residual_mm, 3), effective_dpi=round(dpi))
        if match.warnings:
            entry["warnings"] = list(match.warnings)
        if dpi < LOW_DPI:
            entry.setdefault("warnings", []).append(
                f"low resolution: the page is {dpi:.0f} dpi in this image; {LOW_DPI}+ dpi "
                f"keeps thin strokes (scan at 300 dpi, or photograph the page closer)")
        key = (match.family, match.page_index, match.layout.get("cell_count"),
               tuple(match.layout["charset"]))
        if key in seen:
            entry.update(status="duplicate",
                         error=f"page {page_no} was already read from {seen[key]}; this copy is "
                               f"left out")
            if log:
                log(f"{path}: {entry['error']}")
            continue
        seen[key] = os.fspath(path)
        cells = extract_page(gray, match, image_size, work_dpi)
        sigma = estimate_blur(gray, match, work_dpi)
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
        pages.append((os.fspath(path), cells))
    return entries, pages


def review_sheet(pages: Sequence[tuple[str, Sequence[CellResult]]], tile: int = 64,
                 per_row: int = 18) -> bytes:
    """PNG: every extracted glyph (dark on white) with its label; suspicious ones in a red
    frame with a '?' ; one block per page, headed by its file and counts."""
    import cv2

    blocks = []
    lab_h = 16
    for file, cells in pages:
        glyphs = [c for c in cells if c.image is not None]
        n_sus = sum(c.status == SUSPICIOUS for c in glyphs)
        n_empty = sum(c.status == EMPTY for c in cells)
        rows = max(1, math.ceil(len(glyphs) / per_row))
        block = np.full((28 + rows * (tile + lab_h + 4), per_row * (tile + 4) + 4, 3), 255,
                        np.uint8)
        page_no = cells[0].page if cells else "?"
        head = (f"{os.path.basename(file)}  page {page_no}: {len(glyphs) - n_sus} ok, "
                f"{n_sus} suspicious (red), {n_empty} empty")
        cv2.putText(block, head, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for i, c in enumerate(glyphs):
            r, k = divmod(i, per_row)
            x, y = 4 + k * (tile + 4), 28 + r * (tile + lab_h + 4)
            img = cv2.resize(255 - c.image, (tile, tile), interpolation=cv2.INTER_NEAREST)
            block[y:y + tile, x:x + tile] = img[:, :, None]
            cv2.rectangle(block, (x, y), (x + tile - 1, y + tile - 1), (200, 200, 200), 1)
            label = f"{c.char} r{c.row}c{c.col}"
            color = (0, 0, 0)
            if c.status == SUSPICIOUS:
                cv2.rectangle(block, (x, y), (x + tile - 1, y + tile - 1), (0, 0, 255), 2)
                label, color = "? " + label, (0, 0, 255)
            cv2.putText(block, label, (x + 1, y + tile + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                        color, 1, cv2.LINE_AA)
        blocks.append(block)
    if not blocks:
        blocks.append(np.full((40, 400, 3), 255, np.uint8))
    width = max(b.shape[1] for b in blocks)
    sheet = np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)),
                                   constant_values=255) for b in blocks], axis=0)
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("could not encode the review sheet")
    return png.tobytes()


def extract(images, writer: str, out_dir, layout=None, image_size: int = 32,
            report_path=None, split: str = "none", keep_suspicious: bool = True,
            max_pixels: int = DEFAULT_MAX_PIXELS, work_dpi: int = WORK_DPI,
            overwrite: bool = False, quiet: bool = False) -> dict:
    """Extracts glyphs from template images into a dataset directory; returns the report.

    out_dir receives the TFRecord dataset (split `split`, all in "train" by default), the review
    sheet review.png and the report extract_report.json; `report_path` gets a copy of the
    report. ValueError (and nothing written) if no glyph was extracted from any image.
    """
    from data_pipeline import tfrecords
    from data_pipeline.sources.scans import open_scans

    out_dir = Path(out_dir)
    with atomic.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        source = open_scans(images, writer, image_size=image_size, layout=layout,
                            keep_suspicious=keep_suspicious, max_pixels=max_pixels,
                            work_dpi=work_dpi, quiet=quiet)
        manifest = tfrecords.write_dataset(source, tmp, split=split, progress=False)
        report = dict(source.report)
        report["dataset"] = {"dir": os.fspath(out_dir), **tfrecords.summarize(manifest)}
        atomic.write_bytes(tmp / REVIEW_NAME, review_sheet(source.pages))
        text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
        atomic.write_text(tmp / REPORT_NAME, text)
    if report_path is not None:
        atomic.write_text(report_path, text)
    return report


def extract_main(argv: Optional[Sequence[str]] = None) -> int:
    """`hwgan extract IMAGES... --writer NAME --out DIR [--image_size 32] [--report FILE]`.
    Exit status 0: every image used; 1: dataset written, some images refused (see stderr and
    the report); 2: nothing written."""
    p = argparse.ArgumentParser(
        prog="hwgan extract",
        description="Read scans or photos of filled-in hwgan templates into a glyph dataset "
                    "(TFRecords, review.png, extract_report.json).")
    p.add_argument("images", nargs="+", help="scans or photos, one page each, any order")
    p.add_argument("--writer", required=True, help="the writer's name, stored in every record")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--report", default=None, help="also write the JSON report here")
    p.add_argument("--layout", default=None,
                   help="the template's layout file (needed for custom templates only)")
    p.add_argument("--split", default="none", choices=["none", "random"])
    p.add_argument("--drop_suspicious", action="store_true",
                   help="leave suspicious cells out of the dataset (they are kept by default)")
    p.add_argument("--max_megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        report = extract(args.images, args.writer, args.out, layout=args.layout,
                         image_size=args.image_size, report_path=args.report, split=args.split,
                         keep_suspicious=not args.drop_suspicious,
                         max_pixels=int(args.max_megapixels * 1e6), overwrite=args.overwrite,
                         quiet=args.quiet)
    except (ValueError, FileExistsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": args.out, **report["counts"]}))
    return 1 if report["counts"]["images_refused"] else 0
