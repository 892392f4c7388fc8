"""Extraction accuracy on simulated print-and-scan pages, and bad input.

Pages of the default template are rendered at a low dpi (fast), cells are written with glyphs
of a simulated writer (scaled so the writer's x-height matches the printed guides, standing on
the baseline, ~10 % of cells left empty), then "photographed": placed on a darker table with a
random perspective, rotation (90/180/270 degrees too), scale, blur, noise, a shadow gradient and
JPEG compression. Extraction must return >= 99 % of the filled cells with an image close to what
was written (soft IoU of ink >= 0.8 after a +-1 px alignment, against the same normalisation
applied to the clean written ink) and no glyph from an empty cell.

The helpers (`fill_page`, `photograph`, `score`, ...) live in data_pipeline/sheet_sim.py, shared
with benchmarks/extract.py and data_pipeline/capture.py; they are imported here under their old
names for the tests that import them from this file.
"""

from __future__ import annotations

import json
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
from data_pipeline.sheet_sim import (fill_page, photograph, records_by_cell,  # noqa: F401
                                     reference_glyph, score, soft_iou)
from hw_gan.cli.extract import extract_main


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


def test_simulated_filling_leaves_characters_it_cannot_draw_empty():
    """A model's charset may hold symbols the simulated writers have no skeleton for ('#', '~'):
    their cells stay empty (as a person may leave a box); the others are written as before."""
    from data_pipeline.sources import simulated as sim

    assert "#" not in sim.skeleton_chars() and "a" in sim.skeleton_chars()
    small = tpl.make_layout(charset=["a", "#", "b", "~"], repeats=2, dpi=DPI)
    page, truth = fill_page(tpl.render_page(small, 0), small, 0, writer_index=1, seed=0,
                            empty_fraction=0.0)
    filled = {t["char"] for t in truth.values() if t["filled"]}
    empty = {t["char"] for t in truth.values() if not t["filled"]}
    assert filled == {"a", "b"} and empty == {"#", "~"} and len(truth) == 8
