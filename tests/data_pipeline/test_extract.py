"""Extraction accuracy on simulated print-and-scan pages, and bad input.

Pages of the default template are rendered at a low dpi (fast), cells are written with glyphs
of a simulated writer (scaled so the writer's x-height matches the printed guides, standing on
the baseline, ~10 % of cells left empty), then "photographed": placed on a darker table with a
random perspective, rotation (90/180/270 degrees too), scale, blur, noise, a shadow gradient and
JPEG compression. Extraction must return >= 99 % of the filled cells with an image close to what
was written (soft IoU of ink >= 0.8 after a +-1 px alignment, against the same normalisation
applied to the clean written ink) and no glyph from an empty cell.

The helpers (`fill_page`, `photograph`, `score`) are also used by benchmarks/extract.py.
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_pipeline import build, scan
from data_pipeline import template as tpl
from data_pipeline import tfrecords
from data_pipeline.sources import simulated as sim
from hw_gan.cli.extract import extract_main

INK_RGB = (25, 35, 110)  # dark blue ballpoint
RENDER_SIZE = 128  # the simulated glyph is drawn this large, then scaled onto the page


# --------------------------------------------------------------------------------------------
# Simulated writing and photographing (shared with benchmarks/extract.py)


def fill_page(page_rgb: np.ndarray, layout: dict, page_index: int, writer_index: int,
              seed: int = 0, empty_fraction: float = 0.1, rng=None):
    """Writes a simulated writer's glyphs into the page's cells, each scaled so the writer's
    x-height matches the printed guides, standing on the baseline, centred across the cell.
    Returns (page, truth): truth[(row, col)] = {"char", "filled", "ink" (clean float ink of the
    cell box), "glyph" (the uint8 glyph as drawn, before scaling onto the page), "geometry"}."""
    rng = rng or np.random.default_rng(seed)
    page = page_rgb.astype(np.float32)
    writer = sim._Writer.make(seed, writer_index)
    px = layout["dpi"] / 25.4
    xh = layout["x_height_mm"] * px
    models: dict[str, sim._CharModel] = {}
    truth = {}
    dark = 1.0 - np.array(INK_RGB, np.float32) / 255.0
    for cell in layout["pages"][page_index]["cells"]:
        key = (cell["row"], cell["col"])
        x0, y0, x1, y1 = cell["box"]
        bx0, by0 = int(math.floor(x0)), int(math.floor(y0))
        bx1, by1 = int(math.ceil(x1)), int(math.ceil(y1))
        if rng.random() < empty_fraction:
            truth[key] = {"char": cell["char"], "filled": False}
            continue
        label = cell["char"]
        if label not in models:
            models[label] = sim._CharModel(writer, label, seed, RENDER_SIZE)
        img, g = models[label].sample(RENDER_SIZE)
        ext = max(g.right - g.left, g.top - g.bottom)
        f = xh * ext / (RENDER_SIZE * sim._FILL)  # page px per glyph-image px
        wx0, _, wx1, _ = cell["writing_box"]
        cx = (wx0 + wx1) / 2.0 + rng.normal(0, 0.15) * xh
        cy = cell["baseline_y"] - (g.top + g.bottom) / 2.0 * xh
        s2 = RENDER_SIZE / 2.0
        m = np.array([[f, 0, cx - bx0 - 0.5 + f * (0.5 - s2)],
                      [0, f, cy - by0 - 0.5 + f * (0.5 - s2)]], np.float32)
        glyph = img.astype(np.float32) / 255.0
        if f < 1:  # anti-alias before shrinking
            glyph = cv2.GaussianBlur(glyph, (0, 0), 0.45 / f)
        ink = cv2.warpAffine(glyph, m, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR)
        region = page[by0:by1, bx0:bx1]
        region *= 1.0 - ink[:, :, None] * dark[None, None, :]
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
    assert ok
    return jpg.tobytes()


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


# --------------------------------------------------------------------------------------------
# Tests


DPI = 150


@pytest.fixture(scope="module")
def layout():
    return tpl.make_layout(dpi=DPI)


@pytest.fixture(scope="module")
def filled(layout):
    """The three pages of the default A4 template, written by simulated writer 5."""
    rng = np.random.default_rng(123)
    pages = {}
    for i in range(len(layout["pages"])):
        blank = tpl.render_page(layout, i)
        page, truth = fill_page(blank, layout, i, writer_index=5, seed=0, rng=rng)
        pages[i + 1] = (blank, page, truth)
    return pages


def _accuracy(tmp_path, layout, filled_pages, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    paths, truth_pages = [], {}
    turns = {1: 2, 2: 1, 3: 3}  # upside down, and both quarter turns
    for page_no, (_, page, truth) in filled_pages.items():
        jpg = photograph(page, rng, quarter_turns=turns[page_no], quality=int(rng.integers(60, 86)),
                         blur=rng.uniform(0.5, 1.0), noise=rng.uniform(2, 6),
                         shadow=rng.uniform(0.2, 0.45), scale=rng.uniform(0.85, 1.15))
        path = tmp_path / f"photo{page_no}.jpg"
        path.write_bytes(jpg)
        paths.append(path)
        truth_pages[page_no] = truth
    t0 = time.perf_counter()
    report = build.extract(paths[::-1], "alice", tmp_path / "alice", quiet=True)
    seconds = time.perf_counter() - t0
    assert all(e["status"] == "ok" for e in report["images"]), report["images"]
    assert sorted(e["page"] for e in report["images"]) == [1, 2, 3]
    for e in report["images"]:  # the photos are ~0.8-1.2 x the page's dpi
        assert 0.6 * layout["dpi"] < e["effective_dpi"] < 1.4 * layout["dpi"], e["effective_dpi"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"
    figures = score(truth_pages, report, records_by_cell(tmp_path / "alice"), 32)
    figures["seconds_per_page_with_write"] = round(seconds / len(paths), 2)
    print(f"\nextract accuracy ({layout['dpi']} dpi):",
          json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))
    assert figures["right_fraction"] >= 0.99, figures
    assert figures["false_glyphs_from_empty"] == 0, figures
    assert figures["iou_mean"] >= 0.85, figures
    assert figures["geometry_error_x_median"] < 0.08, figures
    return report


def test_accuracy_on_simulated_photos(tmp_path, layout, filled):
    _accuracy(tmp_path, layout, filled, seed=7)
    # The dataset, its review sheet and report are complete and consistent.
    out = tmp_path / "alice"
    manifest = tfrecords.load_manifest(out)
    assert manifest["source"]["name"] == "scans" and manifest["writers"] == ["alice"]
    assert manifest["has_geometry"] and list(manifest["splits"]) == ["train"]
    assert tuple(manifest["charset"]) == tuple(layout["charset"])
    assert tfrecords.verify_dataset(out) == []
    assert cv2.imread(str(out / build.REVIEW_NAME)) is not None
    on_disk = json.loads((out / build.REPORT_NAME).read_text())
    assert on_disk["counts"]["glyphs"] == manifest["splits"]["train"]["count"]


def test_accuracy_thin_pen_at_200_dpi(tmp_path):
    """Writer 0 has one of the finest simulated pens (0.09 x-height, ~0.5 mm)."""
    layout = tpl.make_layout(dpi=200)
    rng = np.random.default_rng(321)
    pages = {}
    for i in range(len(layout["pages"])):
        page, truth = fill_page(tpl.render_page(layout, i), layout, i, writer_index=0, rng=rng)
        pages[i + 1] = (None, page, truth)
    _accuracy(tmp_path, layout, pages, seed=8)


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h pixels, with no pixel data at all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_bad_inputs_are_reported_and_the_rest_processed(tmp_path, layout, filled, capsys):
    rng = np.random.default_rng(11)
    _, page1, _ = filled[1]
    blank2, _, _ = filled[2]
    good = tmp_path / "good.jpg"
    good.write_bytes(photograph(page1, rng, quarter_turns=0))
    again = tmp_path / "again.jpg"  # the same page, photographed again
    again.write_bytes(photograph(page1, rng, quarter_turns=2))
    empty_template = tmp_path / "unfilled.jpg"  # a page with markers but no writing
    empty_template.write_bytes(photograph(blank2, rng))
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all\n")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((800, 600), 250, np.uint8))
    no_markers = tmp_path / "no_markers.jpg"
    covered = page1.copy()
    for m in layout["pages"][0]["markers"]:
        x0, y0, x1, y1 = (int(round(v)) for v in m["box"])
        covered[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = 255
    no_markers.write_bytes(photograph(covered, rng))
    other = tmp_path / "other_version.jpg"  # markers from ids no version-1 template uses
    foreign = tpl.with_marker_ids(layout, {0: [200, 201, 202, 203]})
    other_page, _ = fill_page(tpl.render_page(foreign, 0), foreign, 0, writer_index=1, rng=rng)
    other.write_bytes(photograph(other_page, rng))
    huge = tmp_path / "huge.png"
    _png_header_only(huge, 20000, 12000)
    files = [text, good, blank, no_markers, again, other, huge, empty_template,
             tmp_path / "missing.jpg"]
    report = build.extract(files, "bob", tmp_path / "bob", report_path=tmp_path / "r.json")
    err = capsys.readouterr().err
    by_name = {Path(e["file"]).name: e for e in report["images"]}
    print("\nbad-input report:", json.dumps({k: (v["status"], v.get("error", ""))
                                             for k, v in by_name.items()}, indent=1))
    assert by_name["good.jpg"]["status"] == "ok" and by_name["good.jpg"]["page"] == 1
    assert by_name["unfilled.jpg"]["status"] == "ok" and by_name["unfilled.jpg"]["page"] == 2
    unfilled = by_name["unfilled.jpg"]["counts"]
    assert unfilled["ok"] + unfilled["suspicious"] == 0
    assert "no handwriting" in by_name["unfilled.jpg"]["warnings"][-1]
    assert "not an image" in by_name["notes.jpg"]["error"]
    assert "blank" in by_name["blank.png"]["error"]
    assert "no template markers" in by_name["no_markers.jpg"]["error"]
    assert by_name["again.jpg"]["status"] == "duplicate"
    assert "good.jpg" in by_name["again.jpg"]["error"]
    assert "another hwgan version" in by_name["other_version.jpg"]["error"]
    assert "too large" in by_name["huge.png"]["error"]
    assert "does not exist" in by_name["missing.jpg"]["error"]
    for name in ("notes.jpg", "blank.png", "no_markers.jpg", "again.jpg", "other_version.jpg",
                 "huge.png", "missing.jpg"):
        assert name in err, f"{name} not reported on stderr"
    assert report["counts"]["images_refused"] == 7 and report["counts"]["pages"] == 2
    assert json.loads((tmp_path / "r.json").read_text())["counts"] == report["counts"]
    assert tfrecords.load_manifest(tmp_path / "bob")["writers"] == ["bob"]


def test_no_glyph_at_all_writes_nothing(tmp_path, filled):
    blank_page = filled[1][0]
    p = tmp_path / "unfilled.jpg"
    p.write_bytes(photograph(blank_page, np.random.default_rng(3)))
    q = tmp_path / "junk.txt"
    q.write_text("junk")
    with pytest.raises(ValueError, match="no glyph could be extracted"):
        build.extract([p, q], "carol", tmp_path / "carol", quiet=True)
    assert not (tmp_path / "carol").exists()
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".")] == []


def test_extract_cli_and_build_source(tmp_path, filled):
    p = tmp_path / "page3.jpg"
    p.write_bytes(photograph(filled[3][1], np.random.default_rng(5), quarter_turns=1))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 100)
    rc = extract_main([str(p), str(junk), "--writer", "dora", "--out", str(tmp_path / "d"),
                       "--image_size", "24", "--report", str(tmp_path / "rep.json"), "--quiet"])
    assert rc == 1  # dataset written, one file refused
    manifest = tfrecords.load_manifest(tmp_path / "d")
    assert manifest["resolution"] == [24, 24]
    assert json.loads((tmp_path / "rep.json").read_text())["counts"]["images_refused"] == 1
    assert extract_main([str(junk), "--writer", "dora", "--out", str(tmp_path / "e"),
                        "--quiet"]) == 2
    assert not (tmp_path / "e").exists()
    m = build.build("scans", str(tmp_path / "b"), {"images": str(p), "writer": "dora",
                                                    "quiet": True}, split="none", progress=False)
    assert m["source"]["name"] == "scans"
    assert m["splits"]["train"]["count"] == manifest["splits"]["train"]["count"]


def test_suspicious_cells_are_flagged_and_can_be_left_out(tmp_path, layout, filled):
    page = filled[1][1].copy()
    cells = layout["pages"][0]["cells"]
    s = DPI / 25.4
    # r1c1: a stroke running out through the right border; r1c2: a second glyph-sized mark far
    # from the first; r1c3: writing at a third of the usual contrast (pencil).
    x0, y0, x1, y1 = cells[10]["writing_box"]
    cv2.line(page, (int(x1 - 4 * s), int(y0 + 6 * s)), (int(x1 + 2 * s), int(y0 + 8 * s)),
             (30, 30, 30), 3)
    x0, y0, x1, y1 = cells[11]["writing_box"]
    cv2.circle(page, (int(x0 + 2.5 * s), int(y1 - 2.5 * s)), int(1.2 * s), (30, 30, 30), -1)
    cv2.circle(page, (int(x1 - 2.5 * s), int(y0 + 2.5 * s)), int(1.2 * s), (30, 30, 30), -1)
    x0, y0, x1, y1 = (int(v) for v in cells[12]["writing_box"])
    region = page[y0 + 3:y1 - 3, x0 + 3:x1 - 3].astype(np.float32)
    page[y0 + 3:y1 - 3, x0 + 3:x1 - 3] = np.rint(255 - (255 - region) * 0.33).astype(np.uint8)
    truth = filled[1][2]
    assert all(truth[(1, c)]["filled"] for c in (1, 2, 3)), "the fixture left these cells empty"
    path = tmp_path / "s.jpg"
    path.write_bytes(photograph(page, np.random.default_rng(2), quarter_turns=1))
    report = build.extract([path], "w", tmp_path / "all", quiet=True)
    by_cell = {(c["row"], c["col"]): c for c in report["images"][0]["cells"]}
    assert by_cell[(1, 1)]["status"] == "suspicious"
    assert "border" in " ".join(by_cell[(1, 1)]["reasons"])
    assert by_cell[(1, 2)]["status"] == "suspicious"
    assert "separate marks" in " ".join(by_cell[(1, 2)]["reasons"])
    assert by_cell[(1, 3)]["status"] == "suspicious"
    assert "faint" in " ".join(by_cell[(1, 3)]["reasons"])
    n_sus = report["counts"]["cells_suspicious"]
    assert n_sus >= 3 and report["counts"]["glyphs"] == report["counts"]["cells_ok"] + n_sus
    dropped = build.extract([path], "w", tmp_path / "ok_only", keep_suspicious=False, quiet=True)
    assert dropped["counts"]["glyphs"] == report["counts"]["cells_ok"]


def test_custom_template_needs_its_layout_file(tmp_path):
    layout = tpl.make_template(tmp_path / "digits.pdf", charset="digits", repeats=2, dpi=DPI)
    assert layout["family"] == tpl.FAMILY_CUSTOM
    page, _ = fill_page(tpl.render_page(layout, 0), layout, 0, writer_index=3, empty_fraction=0)
    path = tmp_path / "digits.jpg"
    path.write_bytes(photograph(page, np.random.default_rng(4), quarter_turns=2))
    with pytest.raises(ValueError, match="--layout"):
        build.extract([path], "eve", tmp_path / "no_layout", quiet=True)
    report = build.extract([path], "eve", tmp_path / "eve",
                           layout=tmp_path / "digits.pdf.layout.json")
    assert report["counts"]["glyphs"] == 20 and report["missing_chars"] == []
    manifest = tfrecords.load_manifest(tmp_path / "eve")
    assert manifest["charset"] == list("0123456789")
    # The default template's pages are not pages of this layout.
    other = tmp_path / "default.jpg"
    other.write_bytes(photograph(filled_page_of_default(), np.random.default_rng(5)))
    with pytest.raises(ValueError, match="not those of the given layout"):
        build.extract([other], "eve", tmp_path / "mixed", layout=layout, quiet=True)


def filled_page_of_default() -> np.ndarray:
    layout = tpl.make_layout(dpi=DPI)
    return fill_page(tpl.render_page(layout, 1), layout, 1, writer_index=2)[0]


def test_three_markers_and_a_cut_off_corner(tmp_path, layout, filled):
    """One corner of the page is not in the photo: its marker is missing, the page is mapped
    from the other three, and the cells that are not in the photo are reported as outside."""
    _, page, truth = filled[2]
    h, w = page.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0.05 * w, 0.05 * h], [0.95 * w, 0.03 * h], [1.3 * w, 1.25 * h],
                      [0.04 * w, 0.95 * h]])  # the bottom-right corner lands off the image
    img = cv2.warpPerspective(page, cv2.getPerspectiveTransform(src, dst), (w, h),
                              borderValue=(70, 80, 95))
    path = tmp_path / "cut.png"
    cv2.imwrite(str(path), img[:, :, ::-1])
    report = build.extract([path], "w", tmp_path / "cut", quiet=True)
    entry = report["images"][0]
    assert entry["status"] == "ok" and entry["page"] == 2 and len(entry["markers_found"]) == 3
    assert any("3 of 4" in w for w in entry["warnings"])
    outside = [c for c in entry["cells"] if c["status"] == "outside"]
    assert outside and all(c["row"] >= 5 and c["col"] >= 5 for c in outside), outside
    for c in entry["cells"]:
        t = truth[(c["row"], c["col"])]
        if c["status"] in ("ok", "suspicious"):
            assert t["filled"], c
