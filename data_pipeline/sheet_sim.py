"""Simulated filling-in and photographing of template sheets, and scoring what extraction
returns: for tests, benchmarks (benchmarks/extract.py) and capture studies (data_pipeline.capture).

  write_glyph     one glyph image written into a cell of a page, at a given x-height scale
  fill_page       every cell of a page written by a simulated writer (sources.simulated)
  photograph      a phone-photo-like JPEG of a page (perspective, tilt, blur, noise, shadow,
                  JPEG); random_photograph draws its settings at random
  soft_iou, reference_glyph, score, records_by_cell: extraction against what was written
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from data_pipeline import scan, tfrecords
from data_pipeline.sources import simulated as sim

INK_RGB = (25, 35, 110)  # dark blue ballpoint
RENDER_SIZE = 128  # the simulated glyph is drawn this large, then scaled onto the page


# --------------------------------------------------------------------------------------------
# Simulated writing and photographing


def write_glyph(page: np.ndarray, cell: dict, glyph: np.ndarray, scale: float, cx: float,
                cy: float) -> np.ndarray:
    """Writes a uint8 ink-high glyph image into `cell` of a float RGB page (in place), in
    INK_RGB: `scale` page pixels per glyph pixel, the glyph image's centre at page pixel
    (cx, cy). Returns the float ink (0..1) over the cell's box."""
    x0, y0, x1, y1 = cell["box"]
    bx0, by0 = int(math.floor(x0)), int(math.floor(y0))
    bx1, by1 = int(math.ceil(x1)), int(math.ceil(y1))
    f = float(scale)
    sy, sx = glyph.shape[0] / 2.0, glyph.shape[1] / 2.0
    m = np.array([[f, 0, cx - bx0 - 0.5 + f * (0.5 - sx)],
                  [0, f, cy - by0 - 0.5 + f * (0.5 - sy)]], np.float32)
    ink = glyph.astype(np.float32) / 255.0
    if f < 1:  # anti-alias before shrinking
        ink = cv2.GaussianBlur(ink, (0, 0), 0.45 / f)
    ink = cv2.warpAffine(ink, m, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR)
    dark = 1.0 - np.array(INK_RGB, np.float32) / 255.0
    page[by0:by1, bx0:bx1] *= 1.0 - ink[:, :, None] * dark[None, None, :]
    return ink


def fill_page(page_rgb: np.ndarray, layout: dict, page_index: int, writer_index: int,
              seed: int = 0, empty_fraction: float = 0.1, rng=None):
    """Writes a simulated writer's glyphs into the page's cells, each scaled so the writer's
    x-height matches the printed guides, standing on the baseline, centred across the cell.
    Returns (page, truth): truth[(row, col)] = {"char", "filled", "ink" (clean float ink of the
    cell box), "glyph" (the uint8 glyph as drawn, before scaling onto the page), "geometry"}.
    Cells of characters the simulated writers have no skeleton for (e.g. '#' of a model's
    charset) stay empty, as a person may leave a box."""
    rng = rng or np.random.default_rng(seed)
    drawable = set(sim.skeleton_chars())
    page = page_rgb.astype(np.float32)
    writer = sim.SimWriter.make(seed, writer_index)
    px = layout["dpi"] / 25.4
    xh = layout["x_height_mm"] * px
    models: dict[str, sim.CharModel] = {}
    truth = {}
    for cell in layout["pages"][page_index]["cells"]:
        key = (cell["row"], cell["col"])
        label = cell["char"]
        if rng.random() < empty_fraction or label not in drawable:
            truth[key] = {"char": label, "filled": False}
            continue
        if label not in models:
            models[label] = sim.CharModel(writer, label, seed, RENDER_SIZE)
        img, g = models[label].sample(RENDER_SIZE)
        ext = max(g.right - g.left, g.top - g.bottom)
        f = xh * ext / (RENDER_SIZE * sim.FILL)  # page px per glyph-image px
        wx0, _, wx1, _ = cell["writing_box"]
        cx = (wx0 + wx1) / 2.0 + rng.normal(0, 0.15) * xh
        cy = cell["baseline_y"] - (g.top + g.bottom) / 2.0 * xh
        ink = write_glyph(page, cell, img, f, cx, cy)
        half_w = (g.right - g.left) / 2.0
        left = (cx - half_w * xh - wx0) / xh
        geom = (g.top, g.bottom, left, left + 2 * half_w)
        truth[key] = {"char": label, "filled": True, "ink": ink, "glyph": img, "geometry": geom}
    return np.clip(np.rint(page), 0, 255).astype(np.uint8), truth


def photograph(page_rgb: np.ndarray, rng, quarter_turns: int = 0, quality: int = 75,
               blur: float = 0.8, noise: float = 4.0, shadow: float = 0.35,
               perspective: float = 0.03, tilt_deg: float = 4.0, scale: float = 1.0) -> bytes:
    """A phone-photo-like JPEG of a page: on a darker table, in perspective, turned, scaled,
    blurred, noisy, shaded, compressed."""
    h, w = page_rgb.shape[:2]
    cw, ch = int(w * 1.2 * scale), int(h * 1.2 * scale)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    c = np.array([cw / 2, ch / 2])
    a = math.radians(rng.uniform(-tilt_deg, tilt_deg))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    k = scale * rng.uniform(0.9, 1.0)
    dst = (src - [w / 2, h / 2]) * k @ rot.T + c
    dst += rng.normal(0, perspective * w * scale, dst.shape)
    H = cv2.getPerspectiveTransform(src, np.float32(dst))
    table = np.full((ch, cw, 3), (70, 80, 95), np.uint8)
    photo = cv2.warpPerspective(page_rgb, H, (cw, ch), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_TRANSPARENT, dst=table)
    photo = photo.astype(np.float32)
    # Shadow: a smooth ramp in a random direction and a soft vignette.
    sh, sw = ch // 8 + 1, cw // 8 + 1  # the light varies slowly: compute it small
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32) * 8
    d = rng.uniform(0, 2 * math.pi)
    ramp = ((xx - cw / 2) * math.cos(d) + (yy - ch / 2) * math.sin(d)) / max(cw, ch) + 0.5
    light = 1.0 - shadow * np.clip(ramp, 0, 1) ** 1.5
    light *= 1.0 - 0.15 * (((xx - cw / 2) / cw) ** 2 + ((yy - ch / 2) / ch) ** 2)
    light = cv2.resize(light, (cw, ch), interpolation=cv2.INTER_LINEAR)
    photo *= light[:, :, None]
    if blur > 0:
        photo = cv2.GaussianBlur(photo, (0, 0), blur)
    photo += rng.normal(0, noise, photo.shape).astype(np.float32)
    photo = np.clip(np.rint(photo), 0, 255).astype(np.uint8)
    photo = np.ascontiguousarray(np.rot90(photo, quarter_turns))
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode the photo as JPEG")
    return jpg.tobytes()


def random_photograph(page_rgb: np.ndarray, rng) -> bytes:
    """`photograph` with settings drawn from rng: any quarter turn, JPEG quality 60-85, blur
    0.6-1.5 px, noise 2-6, shadow 0.2-0.45, scale 0.9-1.1 (benchmarks/extract.py's photos)."""
    return photograph(page_rgb, rng, quarter_turns=int(rng.integers(4)),
                      quality=int(rng.integers(60, 86)), blur=rng.uniform(0.6, 1.5),
                      noise=rng.uniform(2, 6), shadow=rng.uniform(0.2, 0.45),
                      scale=rng.uniform(0.9, 1.1))


def soft_iou(a: np.ndarray, b: np.ndarray, shift: float = 1.0, step: float = 0.25) -> float:
    """Soft IoU (sum of min / sum of max) of two uint8 ink images, best over translations of b
    by up to +-shift px in `step` px steps (sub-pixel alignment)."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    best = 0.0
    offsets = np.arange(-shift, shift + 1e-6, step)
    for dy in offsets:
        for dx in offsets:
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            bb = cv2.warpAffine(b, m, (b.shape[1], b.shape[0]), flags=cv2.INTER_LINEAR)
            den = np.maximum(a, bb).sum()
            best = max(best, float(np.minimum(a, bb).sum() / den) if den else 1.0)
    return best


def reference_glyph(glyph: np.ndarray, size: int) -> np.ndarray:
    """extract's normalisation applied to the clean glyph as written."""
    ink = glyph.astype(np.float32) / 255.0
    ys, xs = np.nonzero(ink >= scan.INK_EDGE)
    return scan.normalize_glyph(ink, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), size,
                                threshold=scan.INK_EDGE)


def score(truth_pages: dict, report: dict, records: dict, size: int) -> dict:
    """Compares extraction with what was written. truth_pages: page number -> truth of
    fill_page; records: key suffix "p<page>:r<row>c<col>" -> GlyphRecord."""
    filled = right = false_glyphs = empty = 0
    ious, geom_err, misses = [], [], []
    for entry in report["images"]:
        if entry["status"] != "ok":
            continue
        truth = truth_pages[entry["page"]]
        for cell in entry["cells"]:
            t = truth[(cell["row"], cell["col"])]
            key = f"p{entry['page']}:r{cell['row']}c{cell['col']}"
            if not t["filled"]:
                empty += 1
                false_glyphs += cell["status"] != scan.EMPTY
                continue
            filled += 1
            rec = records.get(key)
            if rec is None or rec.char != t["char"]:
                misses.append((key, t["char"], cell["status"], cell.get("reasons")))
                continue
            iou = soft_iou(rec.image, reference_glyph(t["glyph"], size))
            ious.append(iou)
            geom_err.append(float(np.abs(np.array(rec.geometry.as_list()) - t["geometry"]).max()))
            if iou >= 0.8:
                right += 1
            else:
                misses.append((key, t["char"], cell["status"], f"iou {iou:.2f}"))
    return {
        "filled_cells": filled, "right": right,
        "right_fraction": right / max(1, filled),
        "iou_mean": float(np.mean(ious)) if ious else 0.0,
        "iou_min": float(np.min(ious)) if ious else 0.0,
        "geometry_error_x_median": float(np.median(geom_err)) if geom_err else 0.0,
        "geometry_error_x_max": float(np.max(geom_err)) if geom_err else 0.0,
        "empty_cells": empty, "false_glyphs_from_empty": false_glyphs,
        "misses": misses[:20],
    }


def records_by_cell(data_dir) -> dict:
    return {r.key.rsplit(":", 2)[-2] + ":" + r.key.rsplit(":", 1)[-1]: r
            for r in tfrecords.read_records(data_dir, "train")}
