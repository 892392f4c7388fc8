"""Registration: finding a template page in an image and mapping the image onto its layout.

The template's ArUco markers say which template family, page and corner each one is
(data_pipeline.template), so the photo may be rotated any way, upside down included. The page
is mapped onto the layout with a homography from the markers' corners (RANSAC, then a check of
the residuals). `effective_dpi` and `estimate_blur` measure how well the image resolves the page.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from data_pipeline import template as template_lib
from data_pipeline.scan.decode import ImageProblem

WORK_DPI = 200  # resolution the cell grid is warped to
DETECT_MAX_SIDE = 2000  # markers are searched on a copy at most this large (then full size)
LOW_DPI = 150  # warn below this resolution of the page in the image
BLURRY_MM = 0.25  # warn above this blur (Gaussian sigma measured on the marker edges)
MAX_RESIDUAL_MM = 1.0  # marker corners must fit the homography this well (median)


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
    if not markers:
        small = gray[:: max(1, gray.shape[0] // 400), :: max(1, gray.shape[1] // 400)]
        if float(small.std()) < 4.0:
            raise ImageProblem("blank page: no template markers and no content")
        raise ImageProblem("no template markers found: is this a photo of an hwgan template? "
                           "All four corner squares must be in the picture")
    warn: list[str] = []
    if layout is not None:
        family, by_page = _markers_of_layout(markers, layout)
    else:
        layout, family, by_page = _markers_of_known_family(markers, warn)
    page_index, used = max(by_page.items(), key=lambda kv: len(kv[1]))
    if len(by_page) > 1:
        warn.append(f"markers of several pages in one image; using page {page_index + 1}, the "
                    f"one with most markers")
    if page_index >= len(layout["pages"]):
        raise ImageProblem(f"markers name page {page_index + 1}, but the layout has "
                           f"{len(layout['pages'])} pages")
    if len(used) < 2:
        raise ImageProblem(f"only one corner marker found (page {page_index + 1}): photograph the "
                           f"whole page with all four corner squares in view")
    H, residual = _fit_page(used, layout["pages"][page_index], layout["dpi"], warn)
    if len(used) == 3:
        warn.append("only 3 of 4 markers found")
    return PageMatch(layout, page_index, family, sorted(m for m, _, _ in used), H, residual, warn)


def _markers_of_layout(markers: list[tuple[int, np.ndarray]], layout: dict
                       ) -> tuple[int, dict[int, list]]:
    """(family, {page index: [(id, corner, corners)]}) of the markers the given layout has."""
    table = _layout_marker_table(layout)
    known = [(mid, c) for mid, c in markers if mid in table]
    if not known:
        ids = [mid for mid, _ in markers]
        fams = sorted({template_lib.decode_marker_id(m)[0] for m in ids})
        raise ImageProblem(f"the markers (ids {ids}, template family {fams}) are not those of "
                           f"the given layout (family {layout['family']}): another template")
    by_page: dict[int, list] = {}
    for mid, c in known:
        by_page.setdefault(table[mid][0], []).append((mid, table[mid][1], c))
    return int(layout["family"]), by_page


def _markers_of_known_family(markers: list[tuple[int, np.ndarray]], warn: list[str]
                             ) -> tuple[dict, int, dict[int, list]]:
    """(layout, family, {page index: [(id, corner, corners)]}) of the default template family
    with most markers in the image; markers of no known family are ignored (with a warning)."""
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
    return layout, family, by_page


def _fit_page(used: list, page: dict, dpi: float, warn: list[str]) -> tuple[np.ndarray, float]:
    """(homography image -> layout page pixels, median residual in mm) from the found markers'
    corners: a perspective fit from 3+ markers, an affine one from 2 (with a warning)."""
    import cv2

    src, dst = [], []
    for mid, corner, c in used:
        x0, y0, x1, y1 = page["markers"][corner]["box"]
        src.append(c)
        dst.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    src = np.concatenate(src).astype(np.float32)
    dst = np.concatenate(dst).astype(np.float32)
    px_per_mm = dpi / 25.4
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
    return H, residual


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

