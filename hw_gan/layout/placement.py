"""Placed glyphs: ink boxes (ink_box, crop_to_ink), a glyph's size (char_extent), the layout
results (Placement, Line, PageLayout) and the layouter that fills lines and pages
(layout_pages, layout_text)."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from data_pipeline import font
from data_pipeline.charset import CAP_HEIGHT, Charset, char_info
from data_pipeline.schema import INK_THRESHOLD
from hw_gan.layout.page import (BOX_BOTTOM, BOX_SIZE, BOX_TOP, BOX_WIDTH, DESCENDER_ROOM,
                                FIRST_BASELINE, LayoutParams)
from hw_gan.layout.text import BOX, GAP, GLYPH, Spaces, TextPlan, Token, Word, plan_text


_NOISE_BLOCK = 512
_TAG_GLYPH = 0x676C  # "gl"
_TAG_LINE = 0x6C69  # "li"


# ------------------------------------------------------------------------------------------------
# Ink boxes.


def ink_box(image: np.ndarray, threshold: int = INK_THRESHOLD) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) (exclusive ends) of the pixels of uint8 ink-high `image`
    ([H, W] or [H, W, 1]) above `threshold`; (0, 0, 0, 0) when there is no ink."""
    img = image[..., 0] if image.ndim == 3 else image
    mask = img > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0, 0
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def crop_to_ink(image: np.ndarray, threshold: int = INK_THRESHOLD) -> np.ndarray:
    """The ink box of `image` (uint8 ink-high, [H, W] or [H, W, 1]) as a [h, w] copy; [0, 0] when
    blank."""
    img = image[..., 0] if image.ndim == 3 else image
    t, l, b, r = ink_box(img, threshold)
    return np.ascontiguousarray(img[t:b, l:r])


def char_extent(char: str, geometry: Optional[Mapping[str, object]]) -> tuple[float, float, float]:
    """(top, bottom, typical width) in x-heights."""
    try:
        info = char_info(char)
        top, bottom, width = info.top, info.bottom, info.width
    except KeyError:  # an accented letter takes its base's with room for the mark
        top, bottom, width = font.composed_extent(char) or (CAP_HEIGHT, 0.0, 0.9)
    if geometry and char in geometry:
        g = geometry[char]
        if hasattr(g, "top"):
            top, bottom = float(g.top), float(g.bottom)
        else:
            top, bottom = float(g[0]), float(g[1])
        if not top > bottom:
            raise ValueError(f"geometry for {char!r}: top {top} is not above bottom {bottom}")
    return top, bottom, width


# ------------------------------------------------------------------------------------------------
# Layout results.


@dataclasses.dataclass(frozen=True)
class Placement:
    """A glyph on a page. Its ink box (source pixels: src_h x src_w) is scaled onto the page box
    x, y, width, height (page px, before the shear), then sheared about `baseline`:
    page x += slant * (baseline - page y)."""

    char: str
    kind: str  # GLYPH or BOX
    index: int  # generation index k (GLYPH), -1 for BOX
    x: float
    y: float
    width: float
    height: float
    baseline: float
    slant: float
    line: int  # line index in the whole text
    src_h: int
    src_w: int

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def right(self) -> float:
        return self.x + self.width

    def affine(self) -> np.ndarray:
        """2x3 float64 matrix: source continuous coords (u, v) in [0, src_w] x [0, src_h] -> page
        continuous coords (x right, y down)."""
        sx = self.width / self.src_w if self.src_w else 0.0
        sy = self.height / self.src_h if self.src_h else 0.0
        return np.array([[sx, -self.slant * sy, self.x + self.slant * (self.baseline - self.y)],
                         [0.0, sy, self.y]], np.float64)

    def ink_bounds(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the sheared box on the page."""
        a = self.slant * (self.baseline - self.y)
        b = self.slant * (self.baseline - self.bottom)
        return (self.x + min(a, b), self.y, self.right + max(a, b), self.bottom)


@dataclasses.dataclass(frozen=True)
class Line:
    index: int  # in the whole text
    paragraph: int
    baseline: float  # page y of the baseline at the line's left end
    left: float
    placements: tuple[Placement, ...]


@dataclasses.dataclass(frozen=True)
class PageLayout:
    index: int
    width: int
    height: int
    x_height_px: float
    lines: tuple[Line, ...]

    @property
    def placements(self) -> tuple[Placement, ...]:
        return tuple(p for line in self.lines for p in line.placements)

    @property
    def glyph_indices(self) -> range:
        ks = [p.index for p in self.placements if p.kind == GLYPH]
        return range(min(ks), max(ks) + 1) if ks else range(0)


# ------------------------------------------------------------------------------------------------
# Layout.


class _Noise:
    """Seeded standard normals: per token position (5: size, rise, letter gap, word size, space
    after) and per line (6: tilt, wave amplitude, period, phase, -, size)."""

    def __init__(self, seed: int):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self._block_id = -1
        self._block = None

    def glyph(self, pos: int) -> np.ndarray:
        b = pos // _NOISE_BLOCK
        if b != self._block_id:
            rng = np.random.default_rng([self.seed, _TAG_GLYPH, b])
            self._block = rng.standard_normal((_NOISE_BLOCK, 5))
            self._block_id = b
        return self._block[pos % _NOISE_BLOCK]

    def line(self, index: int) -> np.ndarray:
        return np.random.default_rng([self.seed, _TAG_LINE, index]).standard_normal(6)


@dataclasses.dataclass
class _Metric:
    tok: Token
    kind: str  # GLYPH, BOX, GAP
    src_h: int
    src_w: int
    width: float  # page px
    height: float
    up: float  # px from the glyph's baseline up to its box top
    gap_after: float  # px to the next glyph of the word
    rise: float  # px the glyph sits above the line's baseline (jitter)
    ink_left: float  # sheared ink extent relative to x
    ink_right: float


class _Layouter:
    def __init__(self, plan: TextPlan, ink_size: Callable[[int], tuple[int, int]],
                 params: LayoutParams, seed: int):
        self.plan, self.ink_size, self.p = plan, ink_size, params
        self.noise = _Noise(seed)
        self.xh = params.x_height_px
        self.left = params.text_left_px
        self.right = params.text_right_px
        self.line_index = 0

    def metric(self, tok: Token, line_size: float, word_size: float) -> _Metric:
        p, xh = self.p, self.xh
        n = self.noise.glyph(tok.pos)
        gap = (p.letter_spacing + p.spacing_variation * float(np.clip(n[2], -2.5, 2.5))) * xh
        gap = max(gap, -0.05 * xh)
        rise = 0.35 * p.baseline_drift * float(np.clip(n[1], -2.5, 2.5)) * xh
        size = line_size * word_size * math.exp(p.size_variation * float(np.clip(n[0], -3, 3)))
        if tok.kind == GAP:
            _, _, width = char_extent(tok.char, None)
            return _Metric(tok, GAP, 0, 0, width * xh * size, 0.0, 0.0, gap, 0.0, 0.0, 0.0)
        if tok.kind == BOX:
            top, bottom, typical = BOX_TOP, BOX_BOTTOM, BOX_WIDTH
            h, w = BOX_SIZE
        else:  # a substitute ("nearest") sits as the character it is
            top, bottom, typical = char_extent(tok.request, p.geometry)
            h, w = (int(v) for v in self.ink_size(tok.index))
        band = (top - bottom) * xh * size
        if h <= 0 or w <= 0:
            # A glyph drawn with no ink (a barely trained model can draw them) is still placed:
            # an empty box of the character's usual width and band, so it takes its room on the
            # line, wraps like any glyph and lands on a page (nothing is drawn for it).
            h = w = 0
            width, height, up = typical * xh * size, band, top * xh * size
        else:
            scale = band / h
            flat = (top - bottom) < 0.5 * typical  # a mark wider than tall, such as "-"
            max_w = (1.0 if flat else p.max_width) * typical * xh * size
            if w * scale > max_w:
                scale = max_w / w
            width, height = w * scale, h * scale
            centre = (top + bottom) / 2 * xh * size
            up = top * xh * size if height >= band - 1e-9 else centre + height / 2
        s = p.slant
        a, b = s * up, s * (up - height)  # shear offsets at the box top and bottom
        return _Metric(tok, tok.kind, h, w, width, height, up, gap, rise, min(a, b),
                       width + max(a, b))

    def line_start(self, metrics: Sequence[_Metric]) -> float:
        """Where a line's first glyph goes: at the left edge, or right of it by as much as the
        shear moves its ink left (descenders with slant > 0, ascenders with slant < 0)."""
        return self.left - min(0.0, metrics[0].ink_left) if metrics else self.left

    def line_size(self, line_noise: np.ndarray) -> float:
        return math.exp(0.3 * self.p.size_variation * float(np.clip(line_noise[5], -3, 3)))

    def word_metrics(self, word: Word, line_size: float) -> list[_Metric]:
        first = self.noise.glyph(word.tokens[0].pos)
        word_size = math.exp(0.5 * self.p.size_variation * float(np.clip(first[3], -3, 3)))
        return [self.metric(t, line_size, word_size) for t in word.tokens]


def _fits(metrics: Sequence[_Metric], x: float, right: float) -> int:
    """How many glyphs of `metrics`, placed from x, keep their ink left of `right`."""
    n = 0
    for m in metrics:
        # A gap (missing="skip") takes its width of the line like any glyph: a run of gaps
        # wraps instead of running off the right edge.
        if x + (m.width if m.kind == GAP else m.ink_right) > right + 1e-6:
            break
        x += m.width + m.gap_after
        n += 1
    return n


class _Pages:
    """The page being filled (its lines and next baseline); full pages wait in `done`."""

    def __init__(self, params: LayoutParams):
        self.p = params
        xh = params.x_height_px
        top_margin, _, bottom_margin, _ = params.margin_px
        self.first_baseline = top_margin + FIRST_BASELINE * xh
        self.last_baseline = params.page_height_px - bottom_margin - DESCENDER_ROOM * xh
        self.pitch = params.line_spacing * xh
        self.index = 0
        self.lines: list[Line] = []
        self.baseline = self.first_baseline
        self.done: list[PageLayout] = []

    def page(self) -> PageLayout:
        p = self.p
        return PageLayout(self.index, p.page_width_px, p.page_height_px, p.x_height_px,
                          tuple(self.lines))

    def add_line(self, lay: _Layouter, placed: list[Placement], paragraph: int,
                 line_noise: np.ndarray, extra_before: float) -> None:
        """Puts a finished line on the page; a full page moves to `done`."""
        b = self.baseline + (extra_before if self.lines else 0.0)
        if b > self.last_baseline + 1e-6:
            if self.lines:
                self.done.append(self.page())
                self.index += 1
                self.lines = []
            b = self.first_baseline
        placed = _finish_line(placed, b, line_noise, lay, self.p)
        self.lines.append(Line(lay.line_index, paragraph, b, lay.left, tuple(placed)))
        lay.line_index += 1
        self.baseline = b + self.pitch

    def drain(self) -> Iterator[PageLayout]:
        while self.done:
            yield self.done.pop(0)


class _HardLine:
    """Lays out one hard line of the text ("\\n" to "\\n"): words go on the current line while
    they fit, else on a new one; a word longer than a whole line is split where it runs out of
    room. Each finished line goes to `pages`; the full pages are yielded as they come."""

    def __init__(self, lay: _Layouter, pages: _Pages, paragraph: int, indent: float,
                 extra: float):
        self.lay, self.pages, self.paragraph = lay, pages, paragraph
        self.extra = extra  # space above the first line (paragraph spacing, blank lines)
        self.line_noise = lay.noise.line(lay.line_index)
        self.placed: list[Placement] = []
        self.x = lay.left + indent
        self.pending_space = 0.0
        self.last_pos = -1

    def spaces(self, item: Spaces) -> None:
        p, lay = self.lay.p, self.lay
        n = lay.noise.glyph(max(0, self.last_pos))
        w = p.word_spacing + p.spacing_variation * float(np.clip(n[4], -2.5, 2.5))
        self.pending_space += item.count * max(0.3, w) * lay.xh

    def end_line(self) -> Iterator[PageLayout]:
        self.pages.add_line(self.lay, self.placed, self.paragraph, self.line_noise, self.extra)
        self.extra = 0.0
        yield from self.pages.drain()

    def word(self, word: Word) -> Iterator[PageLayout]:
        lay = self.lay
        self.last_pos = word.tokens[-1].pos
        metrics = lay.word_metrics(word, lay.line_size(self.line_noise))
        start = max(self.x + self.pending_space, lay.line_start(metrics))
        self.pending_space = 0.0
        if (start > lay.line_start(metrics) + 1e-9
                and _fits(metrics, start, lay.right) < len(metrics)):
            # The word goes to a new line (or, first on its line after leading spaces or an
            # indent, to the line's left edge); the spaces before it are dropped.
            if self.placed:
                yield from self.end_line()
                self.line_noise = lay.noise.line(lay.line_index)
                metrics = lay.word_metrics(word, lay.line_size(self.line_noise))
            self.placed, start = [], lay.line_start(metrics)
        yield from self.place_word(metrics, start)

    def place_word(self, metrics: list[_Metric], x: float) -> Iterator[PageLayout]:
        lay = self.lay
        while True:
            n = _fits(metrics, x, lay.right)
            if n == 0 and not self.placed:
                n = 1  # wider than the whole line: place it anyway
            end = x
            for m in metrics[:n]:
                if m.kind != GAP:
                    self.placed.append(_place(m, x, lay))
                end = x + m.width
                x = end + m.gap_after
            metrics = metrics[n:]
            if not metrics:
                break
            # A word longer than the line: split it where it runs out of room.
            yield from self.end_line()
            self.line_noise = lay.noise.line(lay.line_index)
            self.placed, x = [], lay.line_start(metrics)
        self.x = end  # letter spacing after a word's last glyph gives way to the space

    def layout(self, items) -> Iterator[PageLayout]:
        for item in items:
            if isinstance(item, Spaces):
                self.spaces(item)
            else:
                yield from self.word(item)
        yield from self.end_line()


def _ink_size_function(plan: TextPlan, ink_size) -> Callable[[int], tuple[int, int]]:
    if callable(ink_size):
        return ink_size
    if len(ink_size) < len(plan.requests):
        raise ValueError(f"{len(ink_size)} ink boxes for {len(plan.requests)} glyphs")
    return ink_size.__getitem__


def layout_pages(plan: TextPlan,
                 ink_size: Union[Callable[[int], tuple[int, int]], Sequence[tuple[int, int]]],
                 params: LayoutParams, seed: int = 0) -> Iterator[PageLayout]:
    """Yields the pages of `plan`, one at a time. `ink_size(k)` (or `ink_size[k]`) is the ink box
    (height, width) in source pixels of generated glyph k; it is asked for in increasing k, each
    glyph once, just before the glyph is placed."""
    lay = _Layouter(plan, _ink_size_function(plan, ink_size), params, seed)
    pages = _Pages(params)
    p, xh, pitch = params, params.x_height_px, pages.pitch
    for pi, para in enumerate(plan.paragraphs):
        extra = (p.paragraph_spacing if pi > 0 else 0.0) * pitch + para.blank_lines_before * pitch
        for li, hard_line in enumerate(para.lines):
            indent = p.indent * xh if li == 0 else 0.0
            yield from _HardLine(lay, pages, pi, indent, extra).layout(hard_line)
            extra = 0.0
    if pages.lines:
        yield pages.page()


def _place(m: _Metric, x: float, lay: _Layouter) -> Placement:
    """A placement with the glyph's own rise; the line's baseline is added by _finish_line."""
    return Placement(m.tok.char, m.kind, m.tok.index, x, -m.up - m.rise, m.width, m.height,
                     -m.rise, lay.p.slant, lay.line_index, m.src_h, m.src_w)


def _finish_line(placed: list[Placement], baseline: float, n: np.ndarray, lay: _Layouter,
                 p: LayoutParams) -> list[Placement]:
    """Moves a line's placements (made relative to baseline 0) onto the page baseline, with the
    line's drift: a slight tilt plus a slow wave, about baseline_drift xh at most."""
    xh, width = lay.xh, max(1.0, lay.right - lay.left)
    d = p.baseline_drift * xh
    tilt = 0.8 * d * float(np.clip(n[0], -2, 2)) / 2 / width
    amp = 0.4 * d * abs(float(np.clip(n[1], -2, 2))) / 2
    period = width * (0.6 + 0.4 * (float(np.clip(n[2], -2, 2)) + 2) / 2)
    phase = float(n[3]) * math.pi
    out = []
    for pl in placed:
        cx = pl.x + pl.width / 2 - lay.left
        dy = tilt * cx + amp * (math.sin(2 * math.pi * cx / period + phase) - math.sin(phase))
        shift = baseline + dy
        out.append(dataclasses.replace(pl, y=pl.y + shift, baseline=pl.baseline + shift))
    return out


def layout_text(text: str, charset: Union[Charset, Sequence[str]],
                ink_size: Union[Callable[[int], tuple[int, int]], Sequence[tuple[int, int]]],
                params: LayoutParams, seed: int = 0, missing: str = "error") -> list[PageLayout]:
    """plan_text + layout_pages, all pages as a list."""
    return list(layout_pages(plan_text(text, charset, missing), ink_size, params, seed))
