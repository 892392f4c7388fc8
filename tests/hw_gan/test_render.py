"""hw_gan.render: text -> placed glyphs -> PNG / SVG / PDF, and `hwgan write`.

Layout rules are checked on the pure layout (ink boxes given, no model); rendering on a tiny
untrained style_cgan export built here (width 0.125), and streaming on a fake model that counts
what it is asked for."""

from __future__ import annotations

import math
import re
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from hw_gan import export
from hw_gan import render
from hw_gan import layout
from hw_gan.render import output
from hw_gan.cli.write import write_main
from hw_gan.layout import BOX, GAP, GLYPH, Spaces, Word, layout_pages, plan_text
from tests.conftest import tiny_export

CHARSET = tuple("abdegpxyTH1.,-'") + ("Oo",)
WRITERS = ("w0", "w1")
RES = 32


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("render_export")
    return export.load_export(tiny_export(root, "tiny", CHARSET, WRITERS, resolution=RES))


class FakeModel:
    """Duck-typed export: each glyph a ring (an ellipse with a hole) whose size depends on
    (seed, row)."""

    def __init__(self, charset=CHARSET, writers=WRITERS, uses_writer=True, res=32):
        self.charset, self.writers, self.uses_writer = tuple(charset), tuple(writers), uses_writer
        self.resolution, self.family, self.info, self.signatures = res, "fake", {}, {}
        self.calls: list[tuple[int, str, int]] = []

    def glyphs(self, chars, writers, seed=0):
        chars = list(chars)
        self.calls.append((len(chars), writers, seed))
        rng = np.random.default_rng(seed)
        out = np.zeros((len(chars), self.resolution, self.resolution, 1), np.uint8)
        r = self.resolution
        for i in range(len(chars)):
            a, b = rng.integers(r // 4, r // 2 - 1, size=2)
            cv2.ellipse(out[i, :, :, 0], (r // 2, r // 2), (int(a), int(b)), 0, 0, 360, 255,
                        max(2, r // 8), cv2.LINE_AA)
        return out


def _params(**kw):
    base = dict(page_width_px=600, page_height_px=800, x_height_px=20.0,
                margin_px=(40.0, 40.0, 40.0, 40.0))
    base.update(kw)
    return layout.LayoutParams(**base)


def _layout(text, params, sizes=(30, 14), seed=0, charset=CHARSET, missing="error"):
    plan = plan_text(text, charset, missing)
    return list(layout_pages(plan, [sizes] * len(plan.requests), params, seed))


# ------------------------------------------------------------------------------------------------
# Text plan.


def test_plan_text_structure():
    plan = plan_text("ab  a\r\nb\n\n\n\tab", CHARSET)
    assert len(plan.paragraphs) == 2
    first, second = plan.paragraphs
    assert len(first.lines) == 2 and second.blank_lines_before == 1
    line0 = first.lines[0]
    assert [type(x) for x in line0] == [Word, Spaces, Word] and line0[1].count == 2
    assert isinstance(second.lines[0][0], Spaces) and second.lines[0][0].count == 4  # the tab
    assert plan.requests == tuple("abab" + "ab")
    ks = [t.index for p in plan.paragraphs for line in p.lines for item in line
          if isinstance(item, Word) for t in item.tokens]
    assert ks == list(range(6))
    assert plan_text("Hello", ("H", "e", "Ll", "o")).requests == tuple("Hello")  # merged label


def test_plan_text_missing_modes():
    with pytest.raises(ValueError, match=r"not in the model's charset: \['é', '★', 'Q'\].*skip"):
        plan_text("aé ★Q é", CHARSET)
    # A font-sized charset (a few-shot model draws thousands of characters) is named by its
    # size and its first 120, not listed whole: the error stays a line a person can read.
    big = [chr(c) for c in range(0x21, 0x21 + 3000)]
    with pytest.raises(ValueError) as err:
        plan_text("a中", big)
    message = str(err.value)
    assert message.endswith("the charset is 3000 characters, beginning "
                            + repr("".join(big[:120])))
    assert "['中']" in message and big[1000] not in message and len(message) < 400
    skip = plan_text("aé b", CHARSET, "skip")
    assert skip.requests == ("a", "b")
    assert [t.kind for t in skip.paragraphs[0].lines[0][0].tokens] == [GLYPH, GAP]
    box = plan_text("aé b", CHARSET, "box")
    assert [t.kind for t in box.paragraphs[0].lines[0][0].tokens] == [GLYPH, BOX]
    near = plan_text("é0Ḏ“★", CHARSET, "nearest")
    assert near.substitutions == {"é": "e", "0": "O", "Ḏ": "d", "“": "'"}
    assert near.requests == ("e", "O", "d", "'")
    assert [t.kind for t in near.paragraphs[0].lines[0][0].tokens][-1] == BOX
    assert plan_text(" a ", CHARSET).requests == ("a",)  # space is never missing
    with pytest.raises(ValueError, match="empty"):
        plan_text(" \n\t ", CHARSET)
    with pytest.raises(ValueError, match="nothing to write"):
        plan_text("é★", CHARSET, "skip")
    with pytest.raises(ValueError, match="missing must be"):
        plan_text("a", CHARSET, "drop")


# ------------------------------------------------------------------------------------------------
# Layout (pure: ink boxes given).


def test_typographic_classes_place_glyphs_on_the_baseline():
    xh = 20.0
    exact = _params(baseline_drift=0.0, size_variation=0.0, spacing_variation=0.0)
    (page,) = _layout("x g T p . a'", exact)
    by = {pl.char: pl for pl in page.placements}
    for c in "xa":
        assert by[c].bottom == pytest.approx(by[c].baseline) and by[c].height == pytest.approx(xh)
    for c in "gp":  # descenders go 0.6 xh below the baseline
        assert by[c].bottom == pytest.approx(by[c].baseline + 0.6 * xh)
        assert by[c].y == pytest.approx(by[c].baseline - xh)
    assert by["T"].y == pytest.approx(by["T"].baseline - 1.45 * xh)  # caps rise above x-height
    assert by["."].bottom == pytest.approx(by["."].baseline)
    assert by["."].height < 0.3 * xh and by["'"].bottom < by["'"].baseline - 0.9 * xh
    # A writer's own geometry overrides the defaults.
    own = _params(baseline_drift=0.0, size_variation=0.0, geometry={"x": (1.2, -0.1)})
    (page,) = _layout("x", own)
    (x,) = page.placements
    assert x.y == pytest.approx(x.baseline - 1.2 * xh)
    assert x.bottom == pytest.approx(x.baseline + 0.1 * xh)
    # With the default variation the classes still hold.
    (page,) = _layout("gTxp " * 20, _params())
    for pl in page.placements:
        if pl.char in "gp":
            assert pl.bottom > pl.baseline + 0.4 * xh
        if pl.char == "T":
            assert pl.y < pl.baseline - 1.25 * xh
        if pl.char == "x":
            assert abs(pl.y - (pl.baseline - xh)) < 0.2 * xh and abs(pl.bottom - pl.baseline) < 1


def _line_text(line):
    return "".join(p.char for p in line.placements)


@pytest.mark.parametrize("slant", [0.0, 0.35, -0.35])
def test_wrap_respects_the_width_and_breaks_at_spaces(slant):
    words = ["abe", "gap", "Txd", "yob", "He", "bad", "day", "age", "dog", "pod"] * 6
    params = _params(line_width_px=260.0, slant=slant)
    pages = _layout(" ".join(words), params)
    lines = [line for page in pages for line in page.lines]
    assert len(lines) > 4
    for line in lines:
        for pl in line.placements:
            left, _, right, _ = pl.ink_bounds()
            assert right <= params.text_right_px + 1e-6
            assert left >= params.text_left_px - 1e-6
    boundaries = set(np.cumsum([len(w) for w in words]).tolist())
    ends = np.cumsum([len(_line_text(line)) for line in lines]).tolist()
    assert set(ends) <= boundaries  # every line ends at the end of a word
    assert "".join(_line_text(line) for line in lines) == "".join(words)
    # Rasterised, no ink passes the right edge of the column.
    crops = {k: np.full((30, 14), 255, np.uint8) for k in range(len("".join(words)))}
    for page in pages:
        coverage = output.rasterize(page, crops)
        assert coverage.any()
        assert not coverage[:, math.ceil(params.text_right_px):].any()


def test_a_word_longer_than_a_line_is_split():
    params = _params(line_width_px=150.0)
    pages = _layout("ab " + "x" * 40 + " de", params)
    lines = [line for page in pages for line in page.lines]
    assert [_line_text(line) for line in lines][0] == "ab"
    assert "".join(_line_text(line) for line in lines) == "ab" + "x" * 40 + "de"
    assert len(lines) >= 4
    for pl in (p for line in lines for p in line.placements):
        assert pl.ink_bounds()[2] <= params.text_right_px + 1e-6


class BlankModel(FakeModel):
    """A barely trained model: every glyph it draws has no ink."""

    def glyphs(self, chars, writers, seed=0):
        return np.zeros_like(super().glyphs(chars, writers, seed))


@pytest.mark.parametrize("ink", ["blank", "normal", "every third blank"])
def test_every_glyph_lands_on_a_page_blank_or_not(ink):
    """A glyph drawn with no ink keeps its room on the line: long texts wrap and go on to more
    pages, and each requested glyph is placed exactly once (a blank style once put a whole
    letter on one line of one page)."""
    text = " ".join(["ab de pax"] * 220)
    plan = plan_text(text, CHARSET)
    size = {"blank": lambda k: (0, 0), "normal": lambda k: (30, 14),
            "every third blank": lambda k: (0, 0) if k % 3 == 0 else (30, 14)}[ink]
    params = _params(slant=0.3)
    pages = list(layout_pages(plan, size, params, seed=2))
    assert len(pages) >= 2
    placed = [pl.index for page in pages for pl in page.placements if pl.kind == GLYPH]
    assert placed == list(range(len(plan.requests)))
    for page in pages:
        assert len(page.lines) > 5
        for pl in page.placements:
            assert pl.ink_bounds()[2] <= params.text_right_px + 1e-6
            assert pl.bottom <= params.page_height_px - params.margin_px[2] + 0.4 * 20.0


def test_blank_glyphs_render_as_nothing_on_every_page():
    text = " ".join(["ab de pax"] * 220)
    params = layout.page_params("a5", dpi=60, margin_mm=5, x_height_mm=3)
    pages = list(render.render_pages(BlankModel(), text, writer="w0", params=params))
    assert len(pages) >= 2
    assert sum(len(page.placements) for page, _ in pages) == len(text.replace(" ", ""))
    assert not any(output.rasterize(page, crops).any() for page, crops in pages)
    pdf, n = output.encode_pages(iter(pages), "pdf", 60, (0, 0, 0), (255, 255, 255))
    # Each page's content says which glyphs it holds: together, all of them, in order.
    spans = output.pdf_glyph_spans(pdf)
    assert len(spans) == n == len(pages)
    assert [a for a, _, _ in spans] == [0] + [b + 1 for _, b, _ in spans[:-1]]
    assert sum(n for _, _, n in spans) == spans[-1][1] + 1 == len(text.replace(" ", ""))


def test_skipped_characters_take_room_and_wrap():
    params = _params(line_width_px=150.0)
    pages = _layout("Z" * 60 + " ab", params, missing="skip")
    (last,) = [pl for page in pages for pl in page.placements if pl.char == "a"]
    assert last.line >= 2  # sixty gaps of a letter's width fill lines before "ab"


def test_paragraphs_line_breaks_and_pages():
    params = _params(baseline_drift=0.0)
    (page,) = _layout("ab ab\nab\n\nab\n\n\nTe", params)
    lines = page.lines
    assert [_line_text(line) for line in lines] == ["abab", "ab", "ab", "Te"]
    assert [line.paragraph for line in lines] == [0, 0, 1, 2]
    pitch = params.line_spacing * params.x_height_px
    gaps = np.diff([line.baseline for line in lines])
    assert gaps[0] == pytest.approx(pitch)
    assert gaps[1] == pytest.approx(pitch * (1 + params.paragraph_spacing))
    assert gaps[2] == pytest.approx(pitch * (2 + params.paragraph_spacing))  # one more blank line
    for line in lines:  # each paragraph and hard line starts at the left edge
        assert line.placements[0].x == pytest.approx(params.text_left_px)
    pages = _layout("\n".join(["abe dog"] * 40), params)
    assert len(pages) > 2 and [p.index for p in pages] == list(range(len(pages)))
    slack = 0.4 * params.x_height_px  # glyphs larger than usual may reach into the margin
    for p in pages:
        for line in p.lines:
            for pl in line.placements:
                assert pl.y >= params.margin_px[0] - slack
                assert pl.bottom <= 800 - params.margin_px[2] + slack
    assert sum(len(p.lines) for p in pages) == 40


def test_layout_is_a_deterministic_function_of_its_inputs():
    text = "Tax bad, Oddxa egg.\n\nOo, yep-1'x."
    plan = plan_text(text, CHARSET)
    sizes = [(20 + k % 7, 10 + k % 5) for k in range(len(plan.requests))]
    asked = []

    def ink_size(k):
        asked.append(k)
        return sizes[k]

    a = list(layout_pages(plan, ink_size, _params(), seed=4))
    assert asked == list(range(len(plan.requests)))  # lazily, in order, once each
    assert a == list(layout_pages(plan, sizes, _params(), seed=4))
    b = list(layout_pages(plan, sizes, _params(), seed=5))
    assert [p.x for p in a[0].placements] != [p.x for p in b[0].placements]


def test_layout_params_checks():
    with pytest.raises(ValueError, match="wider than the page"):
        _params(line_width_px=1000.0)
    with pytest.raises(ValueError, match="letter"):
        layout.page_params("quarto")
    assert layout.parse_page("148x210mm") == (148.0, 210.0)
    assert layout.parse_page("a4-landscape") == (297.0, 210.0)
    p = layout.page_params("letter", dpi=100)
    assert (p.page_width_px, p.page_height_px) == (850, 1100)


# ------------------------------------------------------------------------------------------------
# Rendering with a real (tiny, untrained) export.


def test_each_occurrence_is_a_fresh_glyph_and_seeds_reproduce(model, tmp_path):
    params = layout.page_params("80x40mm", dpi=100, margin_mm=5)
    ((page, crops),) = list(render.render_pages(model, "aaa b", writer="w0", params=params))
    assert sorted(crops) == [0, 1, 2, 3]
    assert not np.array_equal(crops[0], crops[1]) or not np.array_equal(crops[1], crops[2])
    images = model.glyphs(["a", "a", "a"], "w0", render.chunk_seed(0, 0))
    assert not np.array_equal(images[0], images[1])

    def png(seed, name):
        out = tmp_path / name
        render.render_text(model, "ab, dog", writer="w1", out=out, seed=seed, page="80x40mm",
                           dpi=100, margin_mm=5)
        return out.read_bytes()

    a, b, c = png(3, "a.png"), png(3, "b.png"), png(4, "c.png")
    assert a == b and a != c
    img = Image.open(tmp_path / "a.png")
    assert img.size == (315, 157) and round(img.info["dpi"][0]) == 100


def test_png_colours_and_wrap(model, tmp_path):
    out = tmp_path / "w.png"
    res = render.render_text(model, " ".join(["abdeg"] * 30), writer="w0", out=out,
                             page="100x250mm", dpi=100, margin_mm=10, line_width_px=200,
                             ink="#ff0000", paper="#00ff00")
    assert res.paths == (out,) and res.pages == 1 and res.glyphs == 150
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    paper = (rgb == [0, 255, 0]).all(axis=2)
    left = round(10 * 100 / 25.4)
    assert paper[:, left + 200 + 1:].all()  # nothing beyond the wrap width
    # Every pixel lies between paper and ink; dense ink is the ink colour itself.
    assert (np.abs(rgb[..., 0] + rgb[..., 1] - 255) <= 1).all() and (rgb[..., 2] == 0).all()
    assert (rgb[..., 0] > 100).sum() > 100
    cov = np.array([[0, 128, 255]], np.uint8)
    assert np.asarray(output.page_image(cov, (10, 20, 30), (250, 240, 230)).convert(
        "RGB")).tolist() == [[[250, 240, 230], [130, 130, 130], [10, 20, 30]]]


def _pdf_check(data: bytes) -> int:
    """Checks the xref table against the objects and returns the page count."""
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", data).group(1))
    m = re.match(rb"xref\n0 (\d+)\n", data[start:])
    n = int(m.group(1))
    rows = data[start + m.end():].split(b"\n")[:n]
    for i, row in enumerate(rows[1:], 1):
        off = int(row[:10])
        assert data[off:].startswith(b"%d 0 obj" % i), i
    pages = len(re.findall(rb"/Type /Page\b", data))
    assert re.search(rb"/Type /Pages /Kids \[[^]]*\] /Count %d" % pages, data)
    return pages


def test_pdf_is_multi_page_vector(model, tmp_path):
    out = tmp_path / "letter.pdf"
    text = "\n\n".join(["The dog had a bad day, a'a-1."] * 12)
    res = render.render_text(model, text, writer="w1", out=out, page="80x60mm", dpi=100,
                             margin_mm=5, missing="skip")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-1.4") and res.pages >= 3
    assert _pdf_check(data) == res.pages
    streams = re.findall(rb"stream\n(.*?)\nendstream", data, re.S)
    content = zlib.decompress(streams[0]).decode()
    assert " c\n" in content and "f*" in content and "/Image" not in data.decode("latin-1")
    assert list(tmp_path.iterdir()) == [out]


def _svg_raster(svg: str, shape) -> np.ndarray:
    """Fills the SVG's paths (M, Q, T, Z; even-odd per path) by flattening the curves."""
    img = np.zeros(shape, np.uint8)
    for d in re.findall(r'<path d="([^"]+)"', svg):
        polys, cur, ctrl, start = [], None, None, None
        for cmd, args in re.findall(r"([MQTZ])([^MQTZ]*)", d):
            v = [float(x) for x in args.split()]
            if cmd == "M":
                cur = start = np.array(v)
                polys.append([cur])
            elif cmd in "QT":
                c = np.array(v[:2]) if cmd == "Q" else 2 * cur - ctrl
                end = np.array(v[-2:])
                for t in np.linspace(0.25, 1, 4):
                    polys[-1].append((1 - t) ** 2 * cur + 2 * (1 - t) * t * c + t * t * end)
                cur, ctrl = end, c
            else:
                cur = start
        mask = np.zeros(shape, np.uint8)
        # fillPoly fills the pixels whose index lies inside; pixel i is centred on i + 0.5.
        cv2.fillPoly(mask, [np.round((np.array(p) - 0.5) * 4).astype(np.int32) for p in polys],
                     1, shift=2)
        img |= mask
    return img


def test_svg_has_vector_paths_that_match_the_raster(model, tmp_path):
    out = tmp_path / "note.svg"
    params = dict(writer="w0", page="90x40mm", dpi=100, margin_mm=5, seed=2)
    res = render.render_text(model, "bad egg, 1 Hex", out=out, **params)
    svg = out.read_text()
    assert res.paths == (out,) and svg.count("<path ") == res.glyphs
    assert "<image" not in svg and 'fill-rule="evenodd"' in svg
    assert re.search(r'width="[\d.]+mm"', svg)
    # The outlines are the glyphs' (here rings, whose holes need the even-odd rule): filled,
    # they cover what the raster inks at the same level.
    fake = FakeModel()
    svg_params = dict(writer="w0", page="50x20mm", dpi=300, margin_mm=3, seed=1)
    render.render_text(fake, "bad egg", out=tmp_path / "rings.svg", **svg_params)
    ((page, crops),) = list(render.render_pages(fake, "bad egg", writer="w0", seed=1,
                                                params=layout.page_params("50x20mm", 300,
                                                                          margin_mm=3)))
    raster = output.rasterize(page, crops) >= output.OUTLINE_LEVEL
    vector = _svg_raster((tmp_path / "rings.svg").read_text(), raster.shape).astype(bool)
    iou = (raster & vector).sum() / (raster | vector).sum()
    assert raster.sum() > 1000 and iou > 0.9, iou
    assert vector[[int(p.y + p.height / 2) for p in page.placements],
                  [int(p.x + p.width / 2) for p in page.placements]].sum() == 0  # holes
    # Several pages: one SVG each.
    many = tmp_path / "many.svg"
    res = render.render_text(model, "\n".join(["bad egg"] * 12), out=many, **params)
    assert res.pages > 1 and res.paths == tuple(
        tmp_path / f"many-{i}.svg" for i in range(1, res.pages + 1))
    assert not many.exists()


def test_encode_pages_gives_the_bytes_write_pages_writes(tmp_path):
    """One page encoder: the in-memory document (the server's :write) is the file's bytes."""
    fake = FakeModel()
    ink, paper = output.parse_color("#1a1a40"), output.parse_color("#fff8e0")

    def pages(text, page):
        params = layout.page_params(page, 100, 3, 5, slant=0.2)
        return render.render_pages(fake, text, writer="w0", seed=2, params=params)

    for fmt in output.FORMATS:
        data, n = output.encode_pages(pages("bad egg", "60x30mm"), fmt, 100, ink, paper)
        (path,) = output.write_pages(pages("bad egg", "60x30mm"), tmp_path / f"one.{fmt}", fmt,
                                     100, ink, paper)
        assert n == 1 and data == path.read_bytes()
    long_text = "\n".join(["bad egg dog"] * 20)
    data, n = output.encode_pages(pages(long_text, "60x30mm"), "pdf", 100, ink, paper)
    written = output.write_pages(pages(long_text, "60x30mm"), tmp_path / "all.pdf", "pdf", 100,
                                 ink, paper)
    assert n > 1 and data == written[0].read_bytes()
    for fmt in ("png", "svg"):
        with pytest.raises(ValueError, match="more than one page: .* ask for format \"pdf\""):
            output.encode_pages(pages(long_text, "60x30mm"), fmt, 100, ink, paper)
    with pytest.raises(ValueError, match="no pages to write"):
        output.encode_pages(iter(()), "pdf", 100, ink, paper)


def test_missing_character_modes_render(model, tmp_path):
    with pytest.raises(ValueError, match=r"not in the model's charset: \['z', 'Q'\]"):
        render.render_text(model, "a z Q", writer="w0", out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    params = layout.page_params("80x30mm", dpi=100, margin_mm=5)
    (page, _), = render.render_pages(model, "aQb", writer="w0", params=params, missing="box")
    assert [p.kind for p in page.placements] == [GLYPH, BOX, GLYPH]
    box = page.placements[1]
    coverage = output.rasterize(page, {0: np.zeros((5, 5), np.uint8),
                                       1: np.zeros((5, 5), np.uint8)})
    inside = coverage[int(box.y) + 3:int(box.bottom) - 3, int(box.x) + 3:int(box.right) - 3]
    assert coverage.max() > 100 and inside.max() == 0  # an empty rectangle
    (page, _), = render.render_pages(model, "aQb", writer="w0", params=params, missing="skip")
    a, b = page.placements
    assert b.x - a.right > 0.5 * params.x_height_px  # a gap where Q was
    res = render.render_text(model, "A Ḏ", writer="w0", out=tmp_path / "n.svg",
                             missing="nearest")
    assert res.substitutions == {"A": "a", "Ḏ": "d"} and res.glyphs == 2


def test_outputs_are_atomic(model, tmp_path, monkeypatch):
    text = "\n".join(["bad egg"] * 12)
    kw = dict(writer="w0", page="90x40mm", dpi=100, margin_mm=5)
    (tmp_path / "keep.pdf").write_bytes(b"old")
    calls = {"n": 0}
    real_content, real_png = output.pdf_content, output.png_bytes

    def failing(real, at):
        def fn(*a, **k):
            calls["n"] += 1
            if calls["n"] == at:
                raise RuntimeError("disk on fire")
            return real(*a, **k)
        return fn

    monkeypatch.setattr(output, "pdf_content", failing(real_content, 2))
    with pytest.raises(RuntimeError, match="disk on fire"):
        render.render_text(model, text, out=tmp_path / "keep.pdf", **kw)
    calls["n"] = 0
    monkeypatch.setattr(output, "png_bytes", failing(real_png, 3))  # pages 1 and 2 staged
    with pytest.raises(RuntimeError, match="disk on fire"):
        render.render_text(model, text, out=tmp_path / "pages.png", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pdf"]
    assert (tmp_path / "keep.pdf").read_bytes() == b"old"


def test_errors_before_any_work(model, tmp_path):
    kw = dict(out=tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"unknown writer 'nobody'.*w0, w1"):
        render.render_text(model, "ab", writer="nobody", **kw)
    with pytest.raises(ValueError, match="name one.*w0"):
        render.render_text(model, "ab", **kw)
    with pytest.raises(ValueError, match="empty"):
        render.render_text(model, "  \n ", writer="w0", **kw)
    with pytest.raises(ValueError, match="output format"):
        render.render_text(model, "ab", writer="w0", out=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="not available for this model"):
        render.render_text(model, "ab", writer="w0", style="me.png", **kw)
    with pytest.raises(ValueError, match="colour"):
        render.render_text(model, "ab", writer="w0", ink="#12", **kw)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Streaming.


def test_pages_stream_with_bounded_memory(monkeypatch):
    fake = FakeModel()
    held = []

    class Watched(render.GlyphSource):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            held.append(self)

    monkeypatch.setattr(render.pages, "GlyphSource", Watched)  # the module render_pages is in
    text = "\n".join(["bad dog pad egg"] * 600)
    params = layout.page_params("a5", dpi=60, margin_mm=5, x_height_mm=3)
    pages = render.render_pages(fake, text, writer="w0", seed=1, params=params)
    page, crops = next(pages)
    n_total = len(text.replace(" ", "").replace("\n", ""))
    assert sum(n for n, _, _ in fake.calls) < 3 * render.CHUNK < n_total  # generated lazily
    peak, count = 0, 1
    for page, crops in pages:
        count += 1
        peak = max(peak, held[0].held)
        assert set(crops) == set(page.glyph_indices)
    assert count > 10 and peak < 3 * render.CHUNK
    assert all(n <= render.CHUNK for n, _, _ in fake.calls)
    assert sum(n for n, _, _ in fake.calls) == n_total
    assert len({s for _, _, s in fake.calls}) == len(fake.calls)  # a seed per block


def test_untrained_writer_is_refused_by_name():
    """A writer the model never trained (held out of a writer split) is named as such and left
    out of the writers offered."""
    from types import SimpleNamespace

    model = SimpleNamespace(uses_writer=True, writers=("w0", "held", "w1"),
                            untrained_writers=("held",))
    assert render.resolve_writer(model, "w1") == "w1"
    with pytest.raises(ValueError, match=r"'held' was held out.*never learned.*knows w0, w1$"):
        render.resolve_writer(model, "held")
    with pytest.raises(ValueError, match=r"name one \(known writers: w0, w1\)"):
        render.resolve_writer(model, "")


def test_families_without_writers_ignore_the_writer(tmp_path):
    fake = FakeModel(writers=(), uses_writer=False)
    res = render.render_text(fake, "bad", writer="anyone", out=tmp_path / "a.png")
    res2 = render.render_text(fake, "bad", out=tmp_path / "b.png")
    assert res.pages == res2.pages == 1
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert {w for _, w, _ in fake.calls} == {""}


# ------------------------------------------------------------------------------------------------
# CLI.


def test_write_cli(model, tmp_path, capsys):
    mdir = str(model.path)
    out = tmp_path / "letter.pdf"
    assert write_main(["--model", mdir, "--writer", "w1", "bad egg", "--out", str(out),
                       "--seed", "3", "--page", "90x60mm", "--dpi", "100"]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.read_bytes().startswith(b"%PDF")
    text_file = tmp_path / "t.txt"
    text_file.write_text("a dog\n\nQ?", encoding="utf-8")
    assert write_main(["--model", mdir, "--writer", "w1", "--text-file", str(text_file),
                       "--out", str(tmp_path / "t.svg"), "--missing", "box"]) == 0
    assert "['Q', '?']" in capsys.readouterr().err and (tmp_path / "t.svg").exists()

    def fails(*args, match):
        assert write_main(["--model", mdir, *args, "--out", str(tmp_path / "e.png")]) == 2
        err = capsys.readouterr().err
        assert re.search(match, err), err

    fails("--writer", "nobody", "ab", match=r"unknown writer 'nobody'.*w0, w1")
    fails("--writer", "w0", "a%b", match=r"not in the model's charset: \['%'\]")
    fails("--writer", "w0", "  ", match="empty")
    fails("--writer", "w0", match="no text")
    fails("--writer", "w0", "--style", str(text_file), "ab", match="not available for this model")
    fails("--writer", "w0", "--text-file", str(tmp_path / "none.txt"), match="does not exist")
    assert write_main(["--model", str(tmp_path / "nomodel"), "--writer", "w0", "ab", "--out",
                       str(tmp_path / "e.png")]) == 2
    assert "nomodel does not exist" in capsys.readouterr().err
    assert not (tmp_path / "e.png").exists()


def test_write_cli_writes_regular_files_only(model, tmp_path, capsys, monkeypatch):
    """Issue 20: --out never replaces a folder, a device, a FIFO, a read-only file or (without
    --overwrite) a symbolic link; each refusal is one line naming --out."""
    import os
    import stat

    base = ["--model", str(model.path), "--writer", "w0", "--page", "90x60mm", "--dpi", "100"]

    def fails(out, *extra, match):
        text = [] if "--text-file" in extra else ["bad egg"]
        assert write_main([*base, *text, "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(f"error: {match}\n", err), err

    fails(tmp_path, "--format", "png", match=f"--out {tmp_path} is a directory.*")
    fails("/dev/null", "--format", "pdf", match="--out /dev/null is a device.*")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    os.mkfifo(tmp_path / "fifo.png")
    fails(tmp_path / "fifo.png", match=".*fifo.png is a FIFO.*")
    target = tmp_path / "target.png"
    target.write_bytes(b"keep")
    (tmp_path / "link.png").symlink_to(target)
    fails(tmp_path / "link.png", match=".*link.png is a symbolic link; pass --overwrite.*")
    assert write_main([*base, "ab", "--out", str(tmp_path / "link.png"), "--overwrite"]) == 0
    assert not (tmp_path / "link.png").is_symlink() and target.read_bytes() == b"keep"
    ro = tmp_path / "ro.png"
    ro.write_bytes(b"old")
    ro.chmod(0o444)
    fails(ro, match=".*ro.png is read-only.*")
    assert ro.read_bytes() == b"old" and stat.S_IMODE(ro.stat().st_mode) == 0o444
    fails(tmp_path / "x.png", "--text-file", str(tmp_path), match=".*is a directory, not a text "
          "file")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(tmp_path / "sub")
                        else real_access(p, m))
    (tmp_path / "sub").mkdir()
    fails(tmp_path / "sub" / "x.png", match=f".*the folder {tmp_path / 'sub'} is not writable")
    monkeypatch.undo()
    with pytest.raises(SystemExit):
        write_main([*base, "ab", "--out", str(tmp_path / "x.png"), "--seed", str(2**64)])
    assert "out of range: seeds are int64" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists() and not list((tmp_path / "sub").iterdir())


def test_write_cli_disk_full_and_killed_runs_leave_nothing(model, tmp_path, capsys, monkeypatch):
    import errno
    import os
    import subprocess
    import sys

    from data_pipeline import atomic

    out = tmp_path / "letter.pdf"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f".letter.pdf.{dead.pid}-0123abcd.partial"  # as a kill -9 leaves it
    left.write_bytes(b"%PDF-half")
    base = ["--model", str(model.path), "--writer", "w0", "bad egg", "--out", str(out)]

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            self.f.close()

    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    assert write_main(base) == 2
    assert capsys.readouterr().err == f"error: {out}: no space left on the device (the disk " \
                                      "is full)\n"
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # the failed write and the killed one: both gone
    assert write_main(base) == 0 and [p.name for p in tmp_path.iterdir()] == ["letter.pdf"]


def test_a_shorter_document_removes_the_stale_pages_of_a_longer_one(model, tmp_path):
    text = "\n".join(["bad egg"] * 12)
    kw = dict(writer="w0", page="90x40mm", dpi=100, margin_mm=5)
    res = render.render_text(model, text, out=tmp_path / "name.png", **kw)
    assert res.pages >= 3 and (tmp_path / "name-3.png").exists()
    (tmp_path / f"name-{res.pages + 2}.png").write_bytes(b"PNG?")  # not in the series: kept
    (tmp_path / f"name-{res.pages + 1}.png").write_text("my notes")  # not a PNG: kept
    assert output.stale_pages(tmp_path / "name.png", "png", 1) == [
        tmp_path / f"name-{k}.png" for k in range(1, res.pages + 1)]
    render.render_text(model, "bad", out=tmp_path / "name.png", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["name.png", f"name-{res.pages + 1}.png", f"name-{res.pages + 2}.png"])
    render.render_text(model, "\n".join(["egg"] * 6), out=tmp_path / "name.png", **kw)
    assert not (tmp_path / "name.png").exists()  # the one-page document is replaced by pages
