"""Punctuation on the page: rendered marks measured against the line's baseline and x-height.

A duck-typed model draws each glyph from pen strokes with the project's stroke renderer, the way
the ink source draws UNIPEN's training glyphs (a mark smaller than the writer's x-height keeps its
size in the box: min_box). Lines are rendered to pixels and each mark's ink box is measured in
x-heights above the baseline, with the typographic classes (no geometry) and with a writer's
own sizes taken from ink records (data_pipeline.extents)."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline import charset, extents, sources
from data_pipeline.strokes import render_strokes
from hw_gan import layout, render
from hw_gan.render import output

XH_UNITS = 10.0  # the synthetic writer's x-height in pen units (y down)
MIN_BOX = 0.75
RES = 32
XH_PX = 40.0


def _line(x0, y0, x1, y1, n=8):
    return np.stack([np.linspace(x0, x1, n), np.linspace(y0, y1, n)], 1)


def _arc(cx, cy, rx, ry, a0, a1, n=24):
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _dot(x, y):
    return np.array([[x, y], [x + 0.3, y + 0.2], [x + 0.1, y + 0.4]])


def char_strokes(char: str) -> list[np.ndarray]:
    """Pen strokes of a character, x-height 10 units, baseline at y = 0 (y down)."""
    marks = {
        ".": [_dot(0, 0)],
        ",": [_line(0.6, -0.8, -0.4, 3.0)],
        ";": [_dot(0, -8), _line(0.6, -0.8, -0.4, 3.0)],
        ":": [_dot(0, -8), _dot(0, 0)],
        "!": [_line(0, -14, 0, -4), _dot(0, 0)],
        "?": [_arc(0, -11, 3, 3, np.pi, 2.6 * np.pi), _line(0, -8, 0, -4), _dot(0, 0)],
        "'": [_line(0, -14, -0.3, -10.5)],
        '"': [_line(0, -14, -0.3, -10.5), _line(2, -14, 1.7, -10.5)],
        "-": [_line(0, -5, 6, -5)],
        "(": [_arc(6, -5, 6, 11, 0.6 * np.pi, 1.4 * np.pi)],
        ")": [_arc(-6, -5, 6, 11, -0.4 * np.pi, 0.4 * np.pi)],
    }
    if char in marks:
        return marks[char]
    info = charset.char_info(char)  # letters: a ring as tall as the letter's class
    top, bottom = info.top * XH_UNITS, info.bottom * XH_UNITS
    return [_arc(0, -(top + bottom) / 2, 4, (top - bottom) / 2, 0, 2 * np.pi, 40)]


class StrokeModel:
    """Duck-typed export: glyphs drawn from `char_strokes` into a RES box that spans at least
    MIN_BOX x-heights; `scale` makes the writer's marks larger or smaller."""

    def __init__(self, chars, writers=("w0",), mark_scale=None):
        self.charset, self.writers, self.uses_writer = tuple(chars), tuple(writers), True
        self.resolution, self.family, self.info, self.signatures = RES, "strokes", {}, {}
        self.mark_scale = mark_scale or {}

    def glyphs(self, chars, writers, seed=0):
        out = np.zeros((len(chars), RES, RES, 1), np.uint8)
        for i, c in enumerate(chars):
            strokes = char_strokes(c)
            s = self.mark_scale.get(writers, 1.0) if c in charset.SYMBOLS else 1.0
            strokes = [st * s for st in strokes]
            out[i, :, :, 0] = render_strokes(strokes, RES, min_extent=MIN_BOX * XH_UNITS)
        return out


TEXT = 'Dear Sam, thank you. "Yes" (ok)-it is; no: hi! so?'
CHARS = sorted(set(TEXT) - {" "})


def _measure(text, model, writer="w0", seed=0, **kw):
    """[(char, top, bottom, height, width)] of each glyph's rendered ink, in x-heights above the
    baseline, on a page whose line wraps nowhere."""
    exact = dict(baseline_drift=0.0, size_variation=0.0, spacing_variation=0.0)
    exact.update(kw)
    params = layout.LayoutParams(page_width_px=3600, page_height_px=400, x_height_px=XH_PX,
                                 margin_px=(40.0, 40.0, 40.0, 40.0), **exact)
    ((page, crops),) = list(render.render_pages(model, text, writer=writer, seed=seed,
                                                params=params))
    coverage = output.rasterize(page, crops)
    (line,) = page.lines
    found = []
    for pl in line.placements:
        x0, x1 = int(np.floor(pl.x)) - 1, int(np.ceil(pl.right)) + 1
        y0, y1 = int(pl.baseline - 2.2 * XH_PX), int(pl.baseline + 1.2 * XH_PX)
        ink = coverage[y0:y1, x0:x1] > 0.5
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        top = (pl.baseline - (y0 + rows[0])) / XH_PX
        bottom = (pl.baseline - (y0 + rows[-1] + 1)) / XH_PX
        found.append((pl.char, top, bottom, top - bottom, (cols[-1] + 1 - cols[0]) / XH_PX))
    return found


def _by_char(found):
    out = {}
    for c, *box in found:
        out.setdefault(c, []).append(box)
    return out


def _check_marks(by, tol=0.08):
    """The page's typography, in x-heights above the baseline (tol: baseline wobble)."""
    for top, bottom, height, width in by["."]:  # a full-stop-sized dot on the baseline
        assert abs(bottom) <= tol and height <= 0.3 and width <= 0.35
    for top, bottom, height, width in by[","]:  # a comma descends below the baseline
        assert bottom <= -0.2 and top <= 0.35 + tol and height <= 0.7
    for top, bottom, height, width in by[";"]:
        assert bottom <= -0.2 and 0.6 <= top <= 1.0 + tol
    for top, bottom, height, width in by[":"]:
        assert abs(bottom) <= tol and 0.6 <= top <= 1.0 + tol
    for top, bottom, height, width in by['"']:  # quotes sit high: cap height down
        assert abs(top - charset.CAP_HEIGHT) <= 0.1 + tol and bottom >= 0.9
    for top, bottom, height, width in by["-"]:  # a hyphen at mid x-height, a dash not a bar
        assert abs((top + bottom) / 2 - 0.5) <= 0.06 + tol and height <= 0.25
        assert 0.3 <= width <= 0.8
    for c in "()":  # brackets span ascender to descender
        for top, bottom, height, width in by[c]:
            assert top >= charset.ASCENDER_HEIGHT - 0.1 - tol and bottom <= -0.25
    for c in "!?":  # on the baseline, cap height tall
        for top, bottom, height, width in by[c]:
            assert abs(bottom) <= tol and abs(top - charset.CAP_HEIGHT) <= 0.1 + tol
    for top, bottom, height, width in by["a"] + by["e"]:  # and the letters keep their classes
        assert abs(top - 1.0) <= 0.06 + tol and abs(bottom) <= tol
    for top, bottom, height, width in by["y"]:
        assert bottom <= -0.5


def test_punctuation_sits_by_its_typographic_class():
    """No geometry (EMNIST, simulated writers, a model trained without sizes): the table."""
    found = _measure(TEXT, StrokeModel(CHARS))
    assert "".join(c for c, *_ in found) == TEXT.replace(" ", "")
    _check_marks(_by_char(found))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_punctuation_holds_with_the_default_variation(seed):
    params = dict(baseline_drift=0.12, size_variation=0.05, spacing_variation=0.05)
    _check_marks(_by_char(_measure(TEXT, StrokeModel(CHARS), seed=seed, **params)), tol=0.15)


def _ink_npz(path, writers, mark_scale):
    """A letters file of `writers` (x letters 10 units tall, at each writer's own scale) and a
    symbols file with their writer list reversed; each writer's marks times mark_scale."""
    def sample_arrays(names, rows):
        points, lengths, counts, labels, ids = [], [], [], [], []
        for w, ch, strokes in rows:
            for s in strokes:
                points.append(s)
                lengths.append(len(s))
            counts.append(len(strokes))
            labels.append(ch)
            ids.append(names.index(w))
        return dict(points=np.concatenate(points).astype(np.float32),
                    stroke_lengths=np.array(lengths, np.int32),
                    sample_stroke_counts=np.array(counts, np.int32), labels=np.array(labels),
                    writer_ids=np.array(ids, np.int32), writer_names=np.array(names))
    letters, marks = [], []
    for k, w in enumerate(writers):
        unit = 3.0 + 2 * k  # writers write at different tablet scales
        for ch in "aeonx" * 2:
            letters.append((w, ch, [s * unit + 100 for s in char_strokes(ch)]))
        for ch in ".,-'()":
            marks.append((w, ch, [s * unit * mark_scale[w] + 100 for s in char_strokes(ch)]))
    np.savez(path / "letters.npz", **sample_arrays(list(writers), letters))
    np.savez(path / "symbols.npz", **sample_arrays(list(writers)[::-1], marks))
    return f"{path / 'letters.npz'},{path / 'symbols.npz'}"


def test_a_writers_own_mark_sizes_from_ink_records(tmp_path):
    """Ink records carry each mark's size against its writer's letters; the writer's table
    (data_pipeline.extents) sizes the marks on the page, and the classes still place them."""
    scale = {"lab:big": 1.6, "lab:mid": 1.0, "lab:small": 0.7}
    path = _ink_npz(tmp_path, list(scale), scale)
    records = list(sources.open_source("ink", path=path))
    dot = {r.writer: r.size for r in records if r.char == "."}
    assert dot["lab:big"][0] > dot["lab:mid"][0] > dot["lab:small"][0]
    table = extents.writer_extents(records)
    assert set(table) == set(scale) and set(table["lab:mid"]) == set(".,-'()")
    assert table["lab:big"]["."][0] > table["lab:mid"]["."][0] > table["lab:small"]["."][0]
    assert table["lab:mid"]["."] == pytest.approx([0.18, 0.0])  # the median writer: the class
    model = StrokeModel(CHARS, writers=tuple(scale), mark_scale=scale)
    heights = {}
    for w in scale:
        by = _by_char(_measure_with(model, w, table[w]))
        heights[w] = by["."][0][2]
        if w == "lab:mid":  # the median writer's marks are the classes' marks
            _check_marks(by)
        for top, bottom, height, width in by["."]:
            assert abs(bottom) <= 0.08  # always on the baseline
        for top, bottom, height, width in by[","]:
            assert bottom <= -0.2  # always descending
        for top, bottom, height, width in by["-"]:
            assert abs((top + bottom) / 2 - 0.5) <= 0.1
    assert heights["lab:big"] > heights["lab:mid"] > heights["lab:small"]


def _measure_with(model, writer, geometry):
    model.info = {"writer_geometry": {writer: geometry}}
    return _measure(TEXT, model, writer=writer)
