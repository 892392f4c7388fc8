"""Text -> glyph requests -> placed glyphs: the layout rules of `hwgan write`.

The layout is a pure function of (the text, the ink box of every generated glyph, the layout
parameters, the seed); it never looks at pixels. `plan_text` turns the text into tokens and the
list of glyphs to generate; `layout_pages` places them, one page at a time, asking for each
generated glyph's ink box (height, width in the generator's pixels) only when it reaches it, so a
caller can generate glyphs lazily and the whole text never needs to be in memory as images.

Rules (all lengths in x-heights, "xh", unless said otherwise; page y grows downward):

  * Text. "\\r\\n" and "\\r" read as "\\n"; a tab is four spaces, other Unicode whitespace a space.
    A blank line (empty or only spaces) ends a paragraph; each further blank line adds one empty
    line. A single "\\n" is a line break. Space is never a missing character.
  * One token per character occurrence. Characters the charset serves are GLYPH tokens, each with
    its own generation index `k` (0, 1, 2, ... in text order), so two "e"s are two glyphs.
    Characters it does not serve: missing="error" raises a ValueError listing them; "skip" leaves
    a gap of the character's usual width; "box" draws an empty rectangle (BOX token); "nearest"
    substitutes a similar character (other case, the letter without its accent, a look-alike
    digit/letter, plain quotes/dashes for typographic ones) and falls back to a box.
  * Glyph size and position. A glyph is cropped to its ink (`ink_box`) and scaled so its ink
    height equals its typographic extent (top - bottom, from `data_pipeline.charset.char_info`, or
    from the writer's own geometry table where one is given) times x_height_px times a seeded size
    factor; its ink bottom sits `bottom` xh above the baseline (below it for descenders). If the
    scaled glyph would be wider than `max_width` times its typical width (1 times for a flat
    mark, whose band is less than half its typical width), it is scaled down to that width and
    centred vertically in its band (so a "-" is a dash of the usual length and pen width, not a
    thick bar, and a "." a small dot). A substituted
    character (missing="nearest") is placed as the character drawn, not the one replaced.
  * Spacing. Glyphs follow each other with `letter_spacing` between ink boxes; a space adds
    `word_spacing`. Both vary a little per glyph (`spacing_variation`).
  * Variation (all seeded): each line's baseline drifts (a slight tilt plus a slow wave, at most
    about `baseline_drift` xh), each glyph sits a little above or below it; each glyph's size
    varies by `size_variation` (relative standard deviation), each word's and line's by less.
  * Slant: a shear about each glyph's baseline, x += slant * (height above the baseline), so
    slant=0.2 leans about 11 degrees to the right.
  * Lines and pages. Lines wrap at the text width (`line_width_px`, or the page width minus the
    margins), at spaces; a word longer than a whole line is split where it runs out of room. No
    glyph's (sheared) ink passes the right edge of the text column. Baselines are
    `line_spacing` xh apart, paragraphs `paragraph_spacing` lines further; the first baseline of a
    page is 1.75 xh below the top margin, and a line goes to the next page when its descender
    room (0.8 xh) would pass the bottom margin. Leading spaces of a wrapped line are dropped.

Randomness: glyph-level numbers are row `pos % 512` of a block of normals seeded with
(seed, "glyph", pos // 512), where `pos` counts the non-space tokens of the text; line-level
numbers are seeded with (seed, "line", line index). Nothing depends on page breaks, so the same
text, ink boxes, parameters and seed give the same pages.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from data_pipeline.charset import CAP_HEIGHT, Charset, char_info

GLYPH = "glyph"
BOX = "box"
GAP = "gap"
MISSING_MODES = ("error", "skip", "box", "nearest")

# A missing character drawn as an empty rectangle: its extent in x-heights, and the bitmap the
# renderers draw (uint8 ink-high, border BOX_BORDER px of BOX_SIZE).
BOX_TOP, BOX_BOTTOM, BOX_WIDTH = 1.2, 0.0, 0.8
BOX_SIZE = (30, 20)  # (height, width) px
BOX_BORDER = 2

PAGE_SIZES_MM = {
    "a4": (210.0, 297.0),
    "a5": (148.0, 210.0),
    "a3": (297.0, 420.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
}
MM_PER_INCH = 25.4

_NOISE_BLOCK = 512
_TAG_GLYPH = 0x676C  # "gl"
_TAG_LINE = 0x6C69  # "li"

FIRST_BASELINE = 1.75  # xh below the top margin
DESCENDER_ROOM = 0.8  # xh above the bottom margin

UNKNOWN_CHARS_MESSAGE = "not in the model's charset"


CHUNK = 512  # glyphs are generated in blocks of this many requests, in text order
INK_THRESHOLD = 96  # uint8 ink level that counts as ink when cropping


def chunk_seed(seed: int, chunk: int) -> int:
    """The `.glyphs` seed of block `chunk` (a non-negative int64) for document seed `seed`."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x7772, int(chunk)])
    return int(state.generate_state(1, np.uint64)[0] & np.uint64(0x7FFFFFFFFFFFFFFF))


def box_bitmap() -> np.ndarray:
    """uint8 ink-high [BOX_SIZE]: the empty rectangle drawn for a missing character."""
    img = np.zeros(BOX_SIZE, np.uint8)
    b = BOX_BORDER
    img[:b, :] = img[-b:, :] = 255
    img[:, :b] = img[:, -b:] = 255
    return img


# ------------------------------------------------------------------------------------------------
# Parameters.


def parse_page(page: Union[str, Sequence[float]]) -> tuple[float, float]:
    """"a4", "a5", "a3", "letter", "legal" (add "-landscape" to turn it), "WxH" or "WxHmm" (mm),
    or a (width, height) pair in mm -> (width, height) in mm."""
    if not isinstance(page, str):
        w, h = (float(v) for v in page)
    else:
        name = page.strip().lower()
        landscape = name.endswith("-landscape")
        if landscape:
            name = name[: -len("-landscape")]
        if name in PAGE_SIZES_MM:
            w, h = PAGE_SIZES_MM[name]
        else:
            m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*[x×]\s*(\d+(?:\.\d*)?)\s*(?:mm)?", name)
            if not m:
                raise ValueError(f"page {page!r} is not one of {sorted(PAGE_SIZES_MM)} (optionally "
                                 "with -landscape) nor a size like '148x210mm'")
            w, h = float(m.group(1)), float(m.group(2))
        if landscape:
            w, h = max(w, h), min(w, h)
    if not (w > 0 and h > 0) or max(w, h) > 5000:
        raise ValueError(f"page size {w}x{h} mm is not a usable size")
    return w, h


@dataclasses.dataclass(frozen=True)
class LayoutParams:
    """Everything the layout depends on besides the text, the ink boxes and the seed.

    Pixel quantities are page pixels (at the output dpi); the rest are in x-heights.
    `geometry`: the writer's own extents, {char: (top, bottom)} in x-heights above the baseline
    (or objects with .top/.bottom such as data_pipeline.schema.Geometry); characters it lacks use
    the charset defaults.
    """

    page_width_px: int
    page_height_px: int
    x_height_px: float
    margin_px: tuple[float, float, float, float] = (120.0, 120.0, 120.0, 120.0)  # t, r, b, l
    line_width_px: Optional[float] = None
    letter_spacing: float = 0.15
    word_spacing: float = 0.9
    line_spacing: float = 3.1
    paragraph_spacing: float = 0.5
    indent: float = 0.0
    slant: float = 0.0
    baseline_drift: float = 0.12
    size_variation: float = 0.05
    spacing_variation: float = 0.05
    max_width: float = 2.0
    geometry: Optional[Mapping[str, object]] = None

    def __post_init__(self):
        if self.page_width_px < 1 or self.page_height_px < 1:
            raise ValueError(f"page size {self.page_width_px}x{self.page_height_px} px is empty")
        if not self.x_height_px > 0:
            raise ValueError(f"x_height_px must be > 0, got {self.x_height_px}")
        if len(self.margin_px) != 4 or any(m < 0 for m in self.margin_px):
            raise ValueError(f"margin_px must be 4 values >= 0 (top, right, bottom, left), got "
                             f"{self.margin_px}")
        if not -1.0 <= self.slant <= 1.0:
            raise ValueError(f"slant {self.slant} is out of range [-1, 1] (a shear factor)")
        if self.line_spacing <= 0:
            raise ValueError(f"line_spacing must be > 0, got {self.line_spacing}")
        top, right, bottom, left = self.margin_px
        avail = self.page_width_px - left - right
        if self.line_width_px is not None:
            if self.line_width_px <= 0:
                raise ValueError(f"line_width_px must be > 0, got {self.line_width_px}")
            if self.line_width_px > avail + 1e-6:
                raise ValueError(f"line_width_px {self.line_width_px:g} is wider than the page's "
                                 f"text area ({avail:g} px between the margins)")
        xh = self.x_height_px
        if self.text_width_px < 4 * xh:
            raise ValueError(f"the text column is {self.text_width_px:g} px wide: too narrow for "
                             f"an x-height of {xh:g} px")
        if (FIRST_BASELINE + DESCENDER_ROOM) * xh > self.page_height_px - top - bottom:
            raise ValueError(f"no line of x-height {xh:g} px fits between the top and bottom "
                             f"margins")

    @property
    def text_left_px(self) -> float:
        return float(self.margin_px[3])

    @property
    def text_width_px(self) -> float:
        avail = self.page_width_px - self.margin_px[1] - self.margin_px[3]
        return float(self.line_width_px if self.line_width_px is not None else avail)

    @property
    def text_right_px(self) -> float:
        return self.text_left_px + self.text_width_px


def page_params(page: Union[str, Sequence[float]] = "a4", dpi: float = 150.0,
                x_height_mm: float = 3.0, margin_mm: Union[float, Sequence[float]] = 20.0,
                line_width_px: Optional[float] = None, **kwargs) -> LayoutParams:
    """LayoutParams for a page ("a4", "letter", "148x210mm", ...) at `dpi`, with the x-height and
    margins (one value, or top, right, bottom, left) in mm; kwargs are LayoutParams fields."""
    if not 10 <= dpi <= 2400:
        raise ValueError(f"dpi {dpi} is out of range [10, 2400]")
    w_mm, h_mm = parse_page(page)
    px = dpi / MM_PER_INCH
    margins = [float(margin_mm)] * 4 if np.isscalar(margin_mm) else [float(m) for m in margin_mm]
    if len(margins) != 4:
        raise ValueError(f"margin_mm must be one value or 4 (top, right, bottom, left), got "
                         f"{margin_mm}")
    if not x_height_mm > 0:
        raise ValueError(f"x_height_mm must be > 0, got {x_height_mm}")
    return LayoutParams(page_width_px=int(round(w_mm * px)), page_height_px=int(round(h_mm * px)),
                        x_height_px=x_height_mm * px, margin_px=tuple(m * px for m in margins),
                        line_width_px=line_width_px, **kwargs)


# ------------------------------------------------------------------------------------------------
# Text -> tokens.


@dataclasses.dataclass(frozen=True)
class Token:
    """One non-space character of the text.

    char: as in the text; kind: GLYPH (generated), BOX (empty rectangle) or GAP (skipped: blank);
    request: what the model is asked for (the char itself or its substitute; "" unless GLYPH);
    index: generation index k of a GLYPH (-1 otherwise); pos: index among all tokens (noise).
    """

    char: str
    kind: str
    request: str
    index: int
    pos: int


@dataclasses.dataclass(frozen=True)
class Word:
    tokens: tuple[Token, ...]


@dataclasses.dataclass(frozen=True)
class Spaces:
    count: int


@dataclasses.dataclass(frozen=True)
class Paragraph:
    lines: tuple[tuple[Union[Word, Spaces], ...], ...]  # hard lines ("\n"-separated)
    blank_lines_before: int = 0  # empty lines beyond the one blank line that separates paragraphs


@dataclasses.dataclass(frozen=True)
class TextPlan:
    paragraphs: tuple[Paragraph, ...]
    requests: tuple[str, ...]  # model request for generation index k
    substitutions: Mapping[str, str]  # missing char -> substitute ("nearest")
    missing: tuple[str, ...]  # characters the charset does not serve
    num_tokens: int


_LOOKALIKES = {
    "0": "Oo", "O": "0", "o": "0",
    "1": "lI|i", "l": "1I|", "I": "l1|", "|": "lI1", "i": "l1",
    "2": "Zz", "Z": "2", "z": "2",
    "5": "Ss", "S": "5", "s": "5",
    "8": "B", "B": "8", "6": "b", "b": "6", "9": "gq", "g": "9", "q": "9",
    "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"',
    "‘": "'", "’": "'", "‚": ",", "‛": "'", "`": "'", "´": "'", "′": "'",
    '"': "'", "'": '"',
    "–": "-", "—": "-", "‒": "-", "―": "-", "−": "-", "‐": "-", "‑": "-", "_": "-", "~": "-",
    "…": ".", "·": ".", "•": ".",
    "[": "(", "{": "(", "<": "(", "]": ")", "}": ")", ">": ")", "\\": "/",
    ";": ":,", ":": ";", "+": "&", "×": "xX",
}


def nearest_char(char: str, known: Callable[[str], bool]) -> Optional[str]:
    """A similar character `known` accepts: the other case, the base letter of an accented one,
    a look-alike (and look-alikes of those, two steps at most); None if there is none."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    level = [char] + ([base] if len(base) == 1 and base != char else [])
    seen = set(level)
    order: list[str] = []
    for _ in range(3):
        nxt = []
        for c in level:
            for alt in [c.swapcase(), *_LOOKALIKES.get(c, "")]:
                if len(alt) == 1 and alt not in seen:
                    seen.add(alt)
                    nxt.append(alt)
        order += level
        level = nxt
    order += level
    for c in order:
        if c != char and known(c):
            return c
    return None


def normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "".join(" " if (c.isspace() and c != "\n") else c for c in text)


def plan_text(text: str, charset: Union[Charset, Sequence[str]],
              missing: str = "error") -> TextPlan:
    """Splits text into paragraphs, hard lines, words and spaces, and numbers the glyphs to
    generate. Raises ValueError for empty text, for missing characters with missing="error"
    (listing all of them), and when nothing would be drawn."""
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {MISSING_MODES}, got {missing!r}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    cs = charset if isinstance(charset, Charset) else Charset(charset)
    text = normalise_text(text)
    if not text.strip():
        raise ValueError("the text is empty: nothing to write")
    missing_chars = cs.missing(text, ignore=" \n")
    if missing_chars and missing == "error":
        chars = "".join(cs.labels) if all(len(x) == 1 for x in cs.labels) else list(cs.labels)
        raise ValueError(
            f"characters {UNKNOWN_CHARS_MESSAGE}: {missing_chars}; to write the rest, choose "
            f"missing 'skip', 'box' or 'nearest' (--missing of hwgan write); the charset is "
            f"{chars!r}")
    subs: dict[str, str] = {}
    if missing == "nearest":
        for c in missing_chars:
            alt = nearest_char(c, lambda x: x in cs)
            if alt is not None:
                subs[c] = alt

    requests: list[str] = []
    pos = 0
    paragraphs: list[Paragraph] = []
    current: list[tuple] = []
    blank_run = 0
    drawn = 0

    def tokenise(line: str) -> tuple:
        nonlocal pos, drawn
        items: list[Union[Word, Spaces]] = []
        for m in re.finditer(r" +|[^ ]+", line):
            run = m.group(0)
            if run[0] == " ":
                items.append(Spaces(len(run)))
                continue
            tokens = []
            for c in run:
                if c in cs:
                    tok = Token(c, GLYPH, c, len(requests), pos)
                elif c in subs:
                    tok = Token(c, GLYPH, subs[c], len(requests), pos)
                elif missing == "skip":
                    tok = Token(c, GAP, "", -1, pos)
                else:  # box, or nearest without a substitute
                    tok = Token(c, BOX, "", -1, pos)
                if tok.kind == GLYPH:
                    requests.append(tok.request)
                if tok.kind != GAP:
                    drawn += 1
                tokens.append(tok)
                pos += 1
            items.append(Word(tuple(tokens)))
        return tuple(items)

    pending_blank = 0
    for raw in text.split("\n"):
        if raw.strip() == "":
            blank_run += 1
            continue
        if blank_run and current:
            paragraphs.append(Paragraph(tuple(current), pending_blank))
            current = []
            pending_blank = blank_run - 1
        elif blank_run and not current:
            pending_blank += blank_run  # blank lines at the very start
        blank_run = 0
        current.append(tokenise(raw))
    if current:
        paragraphs.append(Paragraph(tuple(current), pending_blank))
    if drawn == 0:
        raise ValueError(f"nothing to write: every character of the text is {UNKNOWN_CHARS_MESSAGE}"
                         f" and was skipped ({missing_chars})")
    return TextPlan(tuple(paragraphs), tuple(requests), subs, tuple(missing_chars), pos)


# ------------------------------------------------------------------------------------------------
# Ink boxes.


def ink_box(image: np.ndarray, threshold: int = 96) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) (exclusive ends) of the pixels of uint8 ink-high `image`
    ([H, W] or [H, W, 1]) above `threshold`; (0, 0, 0, 0) when there is no ink."""
    img = image[..., 0] if image.ndim == 3 else image
    mask = img > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0, 0
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def crop_to_ink(image: np.ndarray, threshold: int = 96) -> np.ndarray:
    """The ink box of `image` (uint8 ink-high, [H, W] or [H, W, 1]) as a [h, w] copy; [0, 0] when
    blank."""
    img = image[..., 0] if image.ndim == 3 else image
    t, l, b, r = ink_box(img, threshold)
    return np.ascontiguousarray(img[t:b, l:r])


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


def char_extent(char: str, geometry: Optional[Mapping[str, object]]) -> tuple[float, float, float]:
    """(top, bottom, typical width) in x-heights."""
    try:
        info = char_info(char)
        top, bottom, width = info.top, info.bottom, info.width
    except KeyError:
        top, bottom, width = CAP_HEIGHT, 0.0, 0.9
    if geometry and char in geometry:
        g = geometry[char]
        if hasattr(g, "top"):
            top, bottom = float(g.top), float(g.bottom)
        else:
            top, bottom = float(g[0]), float(g[1])
        if not top > bottom:
            raise ValueError(f"geometry for {char!r}: top {top} is not above bottom {bottom}")
    return top, bottom, width


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
        if h <= 0 or w <= 0:  # a blank glyph: keep its place
            return _Metric(tok, GAP, 0, 0, typical * xh * size, 0.0, 0.0, gap, 0.0, 0.0, 0.0)
        band = (top - bottom) * xh * size
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
        if m.kind != GAP and x + m.ink_right > right + 1e-6:
            break
        x += m.width + m.gap_after
        n += 1
    return n


def layout_pages(plan: TextPlan,
                 ink_size: Union[Callable[[int], tuple[int, int]], Sequence[tuple[int, int]]],
                 params: LayoutParams, seed: int = 0) -> Iterator[PageLayout]:
    """Yields the pages of `plan`, one at a time. `ink_size(k)` (or `ink_size[k]`) is the ink box
    (height, width) in source pixels of generated glyph k; it is asked for in increasing k, each
    glyph once, just before the glyph is placed."""
    if not callable(ink_size):
        sizes = ink_size
        if len(sizes) < len(plan.requests):
            raise ValueError(f"{len(sizes)} ink boxes for {len(plan.requests)} glyphs")
        ink_size = sizes.__getitem__
    lay = _Layouter(plan, ink_size, params, seed)
    p, xh = params, params.x_height_px
    top_margin, _, bottom_margin, _ = p.margin_px
    first_baseline = top_margin + FIRST_BASELINE * xh
    last_baseline = p.page_height_px - bottom_margin - DESCENDER_ROOM * xh
    pitch = p.line_spacing * xh
    page = {"index": 0, "lines": [], "baseline": first_baseline}
    done: list[PageLayout] = []

    def emit_line(placed: list[Placement], paragraph: int, line_noise: np.ndarray,
                  extra_before: float) -> None:
        """Puts a finished line on the page; a full page moves to `done`."""
        b = page["baseline"] + (extra_before if page["lines"] else 0.0)
        if b > last_baseline + 1e-6:
            if page["lines"]:
                done.append(PageLayout(page["index"], p.page_width_px, p.page_height_px, xh,
                                       tuple(page["lines"])))
                page["index"] += 1
                page["lines"] = []
            b = first_baseline
        placed = _finish_line(placed, b, line_noise, lay, p)
        page["lines"].append(Line(lay.line_index, paragraph, b, lay.left, tuple(placed)))
        lay.line_index += 1
        page["baseline"] = b + pitch

    for pi, para in enumerate(plan.paragraphs):
        extra = (p.paragraph_spacing if pi > 0 else 0.0) * pitch + para.blank_lines_before * pitch
        for li, hard_line in enumerate(para.lines):
            line_noise = lay.noise.line(lay.line_index)
            placed: list[Placement] = []
            x = lay.left + (p.indent * xh if li == 0 else 0.0)
            pending_space = 0.0
            last_pos = -1
            for item in hard_line:
                if isinstance(item, Spaces):
                    n = lay.noise.glyph(max(0, last_pos))
                    w = p.word_spacing + p.spacing_variation * float(np.clip(n[4], -2.5, 2.5))
                    pending_space += item.count * max(0.3, w) * xh
                    continue
                last_pos = item.tokens[-1].pos
                metrics = lay.word_metrics(item, lay.line_size(line_noise))
                start = max(x + pending_space, lay.line_start(metrics))
                pending_space = 0.0
                if (start > lay.line_start(metrics) + 1e-9
                        and _fits(metrics, start, lay.right) < len(metrics)):
                    # The word goes to a new line (or, first on its line after leading spaces or
                    # an indent, to the line's left edge); the spaces before it are dropped.
                    if placed:
                        emit_line(placed, pi, line_noise, extra)
                        extra = 0.0
                        yield from _drain(done)
                        line_noise = lay.noise.line(lay.line_index)
                        metrics = lay.word_metrics(item, lay.line_size(line_noise))
                    placed, start = [], lay.line_start(metrics)
                x = start
                while True:
                    n = _fits(metrics, x, lay.right)
                    if n == 0 and not placed:
                        n = 1  # wider than the whole line: place it anyway
                    end = x
                    for m in metrics[:n]:
                        if m.kind != GAP:
                            placed.append(_place(m, x, lay))
                        end = x + m.width
                        x = end + m.gap_after
                    metrics = metrics[n:]
                    if not metrics:
                        break
                    # A word longer than the line: split it where it runs out of room.
                    emit_line(placed, pi, line_noise, extra)
                    extra = 0.0
                    yield from _drain(done)
                    line_noise = lay.noise.line(lay.line_index)
                    placed, x = [], lay.line_start(metrics)
                x = end  # letter spacing after a word's last glyph gives way to the space
            emit_line(placed, pi, line_noise, extra)
            extra = 0.0
            yield from _drain(done)
    if page["lines"]:
        yield PageLayout(page["index"], p.page_width_px, p.page_height_px, xh,
                         tuple(page["lines"]))


def _drain(done: list) -> Iterator[PageLayout]:
    while done:
        yield done.pop(0)


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
