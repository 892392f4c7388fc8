import json
import re
import zlib

import cv2
import numpy as np
import pytest

from data_pipeline import scan
from data_pipeline import template as tpl
from data_pipeline.charset import DEFAULT_CHARSET
from hw_gan.cli.template import template_main


def _boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_default_layout_cells_guides_and_markers():
    layout = tpl.make_layout()
    assert layout["family"] == tpl.FAMILY_A4 and layout["template_version"] == tpl.TEMPLATE_VERSION
    assert layout["dpi"] == 300 and layout["paper"] == "a4"
    cells = [c for p in layout["pages"] for c in p["cells"]]
    assert [c["char"] for c in cells] == [ch for ch in DEFAULT_CHARSET for _ in range(3)]
    assert layout["cell_count"] == len(cells) == 3 * len(DEFAULT_CHARSET)
    assert [p["page"] for p in layout["pages"]] == list(range(1, layout["page_count"] + 1))
    xh = layout["x_height_mm"] * 300 / 25.4
    for page in layout["pages"]:
        w, h = page["size_px"]
        assert (w, h) == (round(210 * 300 / 25.4), round(297 * 300 / 25.4))
        assert page["size_mm"] == [210.0, 297.0]
        assert [m["corner"] for m in page["markers"]] == list(tpl.CORNERS)
        for k, m in enumerate(page["markers"]):
            assert tpl.decode_marker_id(m["id"]) == (layout["family"], page["page_index"], k)
            assert 0 <= m["box"][0] and m["box"][2] <= w and 0 <= m["box"][1] and m["box"][3] <= h
        for c in page["cells"]:
            x0, y0, x1, y1 = c["box"]
            wx0, wy0, wx1, wy1 = c["writing_box"]
            lx0, ly0, lx1, ly1 = c["label_box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert ly1 == wy0 and ly0 == y0 and wy1 == y1  # label strip above the writing area
            assert wy0 < c["x_height_y"] < c["baseline_y"] < wy1
            assert c["baseline_y"] - c["x_height_y"] == pytest.approx(xh, abs=0.01)
            # room for ascenders/capitals (2 x-heights) above and descenders below
            assert c["baseline_y"] - wy0 >= 2.2 * xh and wy1 - c["baseline_y"] >= 1.2 * xh
            assert (wx1 - wx0) >= 2.6 * xh
            for m in page["markers"]:
                assert not _boxes_overlap(c["box"], m["box"])
        boxes = [c["box"] for c in page["cells"]]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert not _boxes_overlap([a[0] + 1, a[1] + 1, a[2] - 1, a[3] - 1], b)
    assert json.loads(json.dumps(layout)) == layout


def test_families_versions_and_limits():
    assert tpl.make_layout(paper="letter")["family"] == tpl.FAMILY_LETTER
    custom = tpl.make_layout(charset="digits", repeats=5)
    assert custom["family"] == tpl.FAMILY_CUSTOM and custom["cell_count"] == 50
    assert tpl.make_layout(dpi=150)["pages"][0]["cells"][5]["box"] == pytest.approx(
        [v / 2 for v in tpl.make_layout(dpi=300)["pages"][0]["cells"][5]["box"]], abs=0.01)
    assert tpl.layout_for_family(0)["charset"] == list(DEFAULT_CHARSET)
    assert tpl.layout_for_family(1)["paper"] == "letter"
    with pytest.raises(ValueError, match="--layout"):
        tpl.layout_for_family(tpl.FAMILY_CUSTOM)
    with pytest.raises(ValueError, match="another hwgan version"):
        tpl.layout_for_family(3)
    with pytest.raises(ValueError, match="at most 16"):
        tpl.make_layout(repeats=20)
    with pytest.raises(ValueError, match="paper"):
        tpl.make_layout(paper="a5")
    with pytest.raises(ValueError, match="too narrow"):
        tpl.make_layout(columns=20)
    ids = {tpl.marker_id(f, p, c) for f in tpl.KNOWN_FAMILIES for p in range(16) for c in range(4)}
    assert len(ids) == 192 and max(ids) < 250  # DICT_4X4_250, ids 192..249 left for later
    old = dict(tpl.make_layout(), template_version=0)
    with pytest.raises(ValueError, match="template version 0"):
        tpl.load_layout(old)


def test_rendered_page_markers_guides_and_labels():
    layout = tpl.make_layout(dpi=150)
    page = tpl.render_page(layout, 1)
    h, w = page.shape[:2]
    assert [w, h] == layout["pages"][1]["size_px"] and page.dtype == np.uint8
    gray = cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    found = dict(scan.detect_markers(gray))
    expected = {m["id"]: m["box"] for m in layout["pages"][1]["markers"]}
    assert sorted(found) == sorted(expected)
    for mid, (x0, y0, x1, y1) in expected.items():
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) - 0.5  # edges -> centres
        assert np.abs(found[mid] - corners).max() < 1.5
    xh = layout["x_height_mm"] * 150 / 25.4
    for c in layout["pages"][1]["cells"]:
        wx0, wy0, wx1, wy1 = (int(round(v)) for v in c["writing_box"])
        inner = gray[wy0 + 2:wy1 - 2, wx0 + 2:wx1 - 2]
        assert inner.min() > 150, "the writing area holds only pale guides"
        base = int(round(c["baseline_y"]))
        assert gray[base - 1:base + 2, wx0 + int(xh / 2):wx1 - int(xh / 2)].min() < 235
        lx0, ly0, lx1, ly1 = (int(round(v)) for v in c["label_box"])
        assert gray[ly0 + 1:ly1 - 1, lx0 + 1:lx1 - 1].min() < 120, "label printed in its strip"


def _pdf_pages(data: bytes):
    """Checks the xref table and returns the decompressed page images' bytes and sizes."""
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    start = int(data[data.rindex(b"startxref") + 9:].split()[0])
    assert data[start:start + 4] == b"xref"
    lines = data[start:].split(b"\n")
    count = int(lines[1].split()[1])
    for i in range(1, count):
        off = int(lines[2 + i].split()[0])
        assert data[off:].startswith(b"%d 0 obj" % i)
    images = []
    for m in re.finditer(rb"/Width (\d+) /Height (\d+) .*?/Length (\d+) >>\nstream\n", data):
        w, h, n = (int(v) for v in m.groups())
        images.append((w, h, zlib.decompress(data[m.end():m.end() + n])))
    return images


def test_make_template_pdf_png_and_layout_file(tmp_path):
    out = tmp_path / "sheets.pdf"
    layout = tpl.make_template(out, charset="digits+punct", repeats=2, dpi=100, png=True)
    assert layout["family"] == tpl.FAMILY_CUSTOM
    on_disk = json.loads((tmp_path / "sheets.pdf.layout.json").read_text())
    assert on_disk == layout == tpl.make_layout("digits+punct", 2, "a4", 100)
    images = _pdf_pages(out.read_bytes())
    assert len(images) == layout["page_count"] == out.read_bytes().count(b"/Type /Page ")
    for i, (w, h, raw) in enumerate(images):
        page = tpl.render_page(layout, i)
        assert [w, h] == layout["pages"][i]["size_px"]
        assert raw == page.tobytes()
        png = cv2.imread(str(tmp_path / f"sheets-page-{i + 1}.png"))
        assert np.array_equal(png[:, :, ::-1], page)
    assert b"/PrintScaling /None" in out.read_bytes()
    assert b"/MediaBox [0 0 595.276 841.890]" in out.read_bytes()  # A4 in points
    only_png = tmp_path / "p.png"
    tpl.make_template(only_png, paper="letter", dpi=72)
    assert (tmp_path / "p-page-1.png").exists() and not (tmp_path / "p.pdf").exists()
    assert json.loads((tmp_path / "p.png.layout.json").read_text())["family"] == tpl.FAMILY_LETTER
    with pytest.raises(ValueError, match=".pdf or .png"):
        tpl.make_template(tmp_path / "x.svg")


def test_template_cli(tmp_path, capsys):
    out = tmp_path / "t.pdf"
    assert template_main(["--out", str(out), "--charset", "abc", "--repeats", "1",
                         "--dpi", "100"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pages"] == 1 and summary["cells"] == 3 and "custom" in summary["note"]
    assert out.exists() and (tmp_path / "t.pdf.layout.json").exists()
    assert template_main(["--out", str(tmp_path / "u.pdf"), "--repeats", "40"]) == 2
    assert "at most" in capsys.readouterr().err
    assert not (tmp_path / "u.pdf").exists()
