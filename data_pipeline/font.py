"""Content images: characters rendered from the font shipped in the package (issue 18).

The few-shot family (hw_gan.models.fewshot) takes a character as an IMAGE, not as an id, so it can
draw any character the font covers, including ones nobody wrote in the training data (é, ß, €).

Font: DejaVu Sans (data_pipeline/fonts/DejaVuSans.ttf, Bitstream Vera licence with DejaVu's
changes in the public domain, LICENSE-DejaVu.txt beside it): Latin with accents, Greek, Cyrillic,
currency and most symbols, 0.76 MB. No system font is used.

Placement is TYPOGRAPHIC, the same for every character: one font size and one baseline per image
size, chosen so the font's ascent (capitals with accents) and descent (g, p, y) fit inside the
margin. So x-height, cap height and baseline sit on the same rows in every image and an accent's
ink lies above the x-height row. Horizontally the ink is centred. A glyph too big for the box
(a wide @ or a tall bracket) is drawn smaller about the box's centre. Images are uint8 ink-high
(schema.py's convention): 0 paper, 255 ink; `to_float` gives the model's [-1, 1].

Coverage comes from the font's own character map (its `cmap` table, read here without any font
library); a character the font lacks raises FontCoverageError naming it and its code point.
"""

from __future__ import annotations

import functools
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_pipeline.charset import char_info
from data_pipeline.scan.cells import normalize_glyph
from data_pipeline.schema import INK_THRESHOLD

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
FONT_NAME = "DejaVu Sans"
MARGIN_FRAC = 0.08  # the stroke renderer's margin (strokes.py), so both fill the box alike
SUPERSAMPLE = 4


class FontCoverageError(ValueError):
    """The content font has no glyph for a character; the message names it and its code point."""


@dataclass(frozen=True)
class Placement:
    """Rows (from the top, in pixels of a size x size image) of the typographic lines."""

    size: int
    baseline: float
    x_height: float  # the top of x, a, e ...
    cap_height: float  # the top of H
    font_px: float  # the font size (em) in pixels


# ------------------------------------------------------------------------------------------------
# Coverage: the font's cmap table (formats 4 and 12, the two every Unicode TrueType font has).


def _read_cmap(data: bytes) -> frozenset[int]:
    num_tables = struct.unpack(">H", data[4:6])[0]
    tables = {}
    for i in range(num_tables):
        tag, _, offset, _ = struct.unpack(">4sLLL", data[12 + 16 * i:28 + 16 * i])
        tables[tag] = offset
    base = tables[b"cmap"]
    n = struct.unpack(">H", data[base + 2:base + 4])[0]
    subtables = {}
    for i in range(n):
        pid, eid, off = struct.unpack(">HHL", data[base + 4 + 8 * i:base + 12 + 8 * i])
        subtables[(pid, eid)] = base + off
    codes = set()
    for key in ((3, 10), (0, 4), (0, 6)):  # full-Unicode tables (format 12)
        if key in subtables and struct.unpack(">H", data[subtables[key]:subtables[key] + 2])[0] == 12:
            off = subtables[key]
            groups = struct.unpack(">L", data[off + 12:off + 16])[0]
            for g in range(groups):
                start, end, gid = struct.unpack(">LLL", data[off + 16 + 12 * g:off + 28 + 12 * g])
                codes.update(c for c in range(start, end + 1) if gid + c - start)
            return frozenset(codes)
    off = subtables.get((3, 1), subtables.get((0, 3)))
    if off is None or struct.unpack(">H", data[off:off + 2])[0] != 4:
        raise ValueError(f"{FONT_PATH}: no Unicode cmap of format 4 or 12")
    segs = struct.unpack(">H", data[off + 6:off + 8])[0] // 2
    arr = lambda k: struct.unpack(f">{segs}H", data[off + 14 + k * 2 * segs + (2 if k else 0):
                                                    off + 14 + (k + 1) * 2 * segs + (2 if k else 0)])
    ends, starts, deltas, ranges = arr(0), arr(1), arr(2), arr(3)
    range_base = off + 16 + 6 * segs
    for s in range(segs):
        for c in range(starts[s], ends[s] + 1):
            if c == 0xFFFF:
                continue
            if ranges[s] == 0:
                gid = (c + deltas[s]) & 0xFFFF
            else:
                at = range_base + 2 * s + ranges[s] + 2 * (c - starts[s])
                gid = struct.unpack(">H", data[at:at + 2])[0]
                gid = (gid + deltas[s]) & 0xFFFF if gid else 0
            if gid:
                codes.add(c)
    return frozenset(codes)


@functools.lru_cache(maxsize=1)
def covered_code_points() -> frozenset[int]:
    """Every code point the content font maps to a glyph."""
    return _read_cmap(FONT_PATH.read_bytes())


def normalise(char: str) -> str:
    """The form characters are looked up and drawn in (NFC: "e" + U+0301 -> "é")."""
    return unicodedata.normalize("NFC", char)


def missing(chars: Union[str, Iterable[str]]) -> list[str]:
    """The characters (NFC) of `chars` that the font cannot draw, in order, without repeats."""
    covered = covered_code_points()
    out = []
    for label in _labels(chars):
        if any(ord(c) not in covered for c in label) and label not in out:
            out.append(label)
    return out


def covers(char: str) -> bool:
    return not missing([char])


def _describe(label: str) -> str:
    return f"{label!r} ({' '.join(f'U+{ord(c):04X}' for c in label)})"


def _labels(chars: Union[str, Iterable[str]]) -> list[str]:
    """A str is one label per code point after NFC; any other iterable is a list of labels."""
    if isinstance(chars, str):
        return list(normalise(chars))
    return [normalise(str(c)) for c in chars]


# ------------------------------------------------------------------------------------------------
# Rendering.


@functools.lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), px)


@functools.lru_cache(maxsize=8)
def placement(size: int) -> Placement:
    """The typographic lines of a size x size content image (the same for every character)."""
    big = size * SUPERSAMPLE
    avail = big * (1.0 - 2.0 * MARGIN_FRAC)
    probe = _font(1000)
    ascent, descent = probe.getmetrics()
    font_px = avail / ((ascent + descent) / 1000.0)
    font = _font(int(round(font_px)))
    asc, desc = font.getmetrics()
    top = (big - asc - desc) / 2.0
    baseline = top + asc
    x_top = font.getbbox("x", anchor="ls")[1]
    h_top = font.getbbox("H", anchor="ls")[1]
    s = float(SUPERSAMPLE)
    return Placement(size, baseline / s, (baseline + x_top) / s, (baseline + h_top) / s,
                     font.size / s)


def _render(label: str, size: int) -> np.ndarray:
    big = size * SUPERSAMPLE
    p = placement(size)
    margin = big * MARGIN_FRAC
    font_px = int(round(p.font_px * SUPERSAMPLE))
    font = _font(font_px)
    left, top, right, bottom = font.getbbox(label, anchor="ls")
    baseline = p.baseline * SUPERSAMPLE
    # Too big for the box: draw it smaller about the box's centre (the lines stay where they are
    # for every glyph that fits, which is all letters and digits).
    fit = min(1.0, (big - 2 * margin) / max(1, right - left),
              (big / 2.0 - margin) / max(1e-6, big / 2.0 - (baseline + top)) if baseline + top < margin else 1.0,
              (big / 2.0 - margin) / max(1e-6, baseline + bottom - big / 2.0) if baseline + bottom > big - margin else 1.0)
    if fit < 1.0:
        font = _font(max(1, int(font_px * fit)))
        left, top, right, bottom = font.getbbox(label, anchor="ls")
        baseline = big / 2.0 + (baseline - big / 2.0) * fit
    canvas = Image.new("L", (big, big), 0)
    x = big / 2.0 - (left + right) / 2.0
    ImageDraw.Draw(canvas).text((x, baseline), label, fill=255, font=font, anchor="ls")
    return cv2.resize(np.asarray(canvas), (size, size), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=4096)
def _cached(label: str, size: int) -> np.ndarray:
    img = _render(label, size)
    img.setflags(write=False)
    return img


def content_image(char: str, size: int = 32) -> np.ndarray:
    """uint8 [size, size] ink-high image of one character (see the module docstring)."""
    return content_images([char], size)[0]


def check_covered(chars: Union[str, Iterable[str]]) -> None:
    """FontCoverageError naming every character of `chars` the font lacks (nothing rendered)."""
    lacking = missing(chars)
    if lacking:
        raise FontCoverageError(
            f"the content font ({FONT_NAME}) has no glyph for "
            f"{', '.join(_describe(c) for c in lacking)}")


def content_images(chars: Union[str, Iterable[str]], size: int = 32) -> np.ndarray:
    """uint8 [N, size, size] ink-high images of `chars`: a str is one image per character (after
    NFC), a list one image per label (a label may hold a letter and combining marks). Whitespace
    gives a blank image. FontCoverageError names every character the font lacks."""
    labels = _labels(chars)
    check_covered(labels)
    if size < 8:
        raise ValueError(f"content image size must be >= 8, got {size}")
    if not labels:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([_cached(label, size) for label in labels])


def fitted_images(chars: Union[str, Iterable[str]], size: int = 32) -> np.ndarray:
    """uint8 [N, size, size] ink-high images of `chars` placed as a handwritten SAMPLE is, not
    typographically: the ink's bounding box centred and scaled, aspect ratio kept, until its
    longer side fills the box inside MARGIN_FRAC (strokes.render_strokes' placement, the one
    every UNIPEN glyph has). A character with no ink (whitespace) gives a blank image."""
    labels = _labels(chars)
    check_covered(labels)
    out = np.zeros((len(labels), size, size), np.uint8)
    for i, label in enumerate(labels):
        big = _cached(label, size * SUPERSAMPLE).astype(np.float32) / 255.0
        ys, xs = np.nonzero(big >= INK_THRESHOLD / 255.0)
        if len(xs):
            out[i] = normalize_glyph(big, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), size)
    return out


def content_table(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(code points int32 [C] ascending, uint8 ink-high images [C, size, size]) of every code
    point the font covers that is drawn on its own (no whitespace, control or combining mark):
    what an export carries so that any of them can be drawn in a style with no font at run
    time."""
    codes = [c for c in sorted(covered_code_points())
             if not chr(c).isspace() and unicodedata.category(chr(c))[0] not in ("C", "M")]
    return (np.array(codes, np.int32),
            np.stack([_render(chr(c), size) for c in codes]).astype(np.uint8))


# ------------------------------------------------------------------------------------------------
# Accented letters as the writer's own base letter + a mark in their pen.
#
# A few-shot model draws a character it never saw from the font's shape alone; for an accented
# letter that loses both the letter (squeezed under the accent, judged as something else) and the
# accent (a smudge). Writers make an accented letter as the plain letter and a small mark, so it
# is drawn that way: the base letter and the mark's symbol ("'" for an acute, "." twice for a
# diaeresis, "," for a cedilla...) are each drawn in the style, then placed where the font puts
# the letter and its mark (hw_gan.models.fewshot.compose). `composition` gives that layout.

# combining mark -> (the symbol drawn for it, how many copies side by side)
MARK_SYMBOLS = {
    "\u0300": ("`", 1), "\u0301": ("'", 1), "\u0302": ("^", 1), "\u0303": ("~", 1),
    "\u0304": ("-", 1), "\u0306": ("u", 1), "\u0307": (".", 1), "\u0308": (".", 2),
    "\u030a": ("o", 1), "\u030b": ("'", 2), "\u030c": ("v", 1), "\u0327": (",", 1),
}
# letters with a stroke through them, which Unicode does not decompose: (base, mark symbol)
OVERLAYS = {"ø": ("o", "/"), "Ø": ("O", "/"), "ł": ("l", "/")}
LAYOUT_SCALE = 4  # the layout is read from images this many times the glyph size


@dataclass(frozen=True)
class Composition:
    """How `char` is drawn: `base` and `mark` (characters the model draws) placed into `boxes`,
    float32 [3, 4] (top, left, bottom, right) in pixels of the size x size glyph: the base's box,
    then one or two boxes for copies of the mark (an all-zero row: no copy). The boxes are the
    font's, fitted into the glyph with the stroke renderer's margin as a written glyph is."""

    char: str
    base: str
    mark: str
    boxes: np.ndarray


def _ink_box(mask: np.ndarray):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not rows.size:
        return None
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float64)


def _parts(char: str):
    """(base, mark symbol, copies) of a letter drawn as base + mark, else None."""
    if char in OVERLAYS:
        return OVERLAYS[char] + (1,)
    nfd = unicodedata.normalize("NFD", char)
    if len(nfd) != 2 or nfd[1] not in MARK_SYMBOLS:
        return None
    base = nfd[0]
    # i and j carry their own dot, which the accent replaces: drawn from the font's shape.
    if not (base.isascii() and base.isalpha()) or base in "ij":
        return None
    return (base,) + MARK_SYMBOLS[nfd[1]]


def _aligned(plain: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """`plain` (the base letter alone) shifted sideways onto where it lies in `whole`: the font
    centres each character's ink, so a mark wider than its letter (Ł, đ) moves the letter."""
    reach = plain.shape[1] // 4
    shifts = range(-reach, reach + 1)
    best = max(shifts, key=lambda dx: int((np.roll(plain, dx, 1) & whole).sum()))
    return np.roll(plain, best, 1)


@functools.lru_cache(maxsize=4096)
def composition(char: str, size: int = 32):
    """The Composition of one character at glyph size `size`, or None when it is drawn as it is
    (not an accented Latin letter, or a mark the font does not separate from its letter)."""
    parts = _parts(normalise(char)) if len(normalise(char)) == 1 else None
    if parts is None or missing([normalise(char), parts[0], parts[1]]):
        return None
    base, mark, copies = parts
    big = size * LAYOUT_SCALE
    whole = _render(normalise(char), big) > INK_THRESHOLD
    plain = _aligned(_render(base, big) > INK_THRESHOLD, whole)
    away = cv2.dilate(plain.astype(np.uint8), np.ones((3, 3), np.uint8),
                      iterations=LAYOUT_SCALE) > 0
    marks = whole & ~away
    base_box, mark_box = _ink_box(plain), _ink_box(marks)
    if base_box is None or mark_box is None:
        return None
    boxes = [mark_box]
    if copies == 2:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(marks.astype(np.uint8), 8)
        order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2] + 1 if n > 1 else []
        if len(order) == 2:
            boxes = sorted((_ink_box(labels == i) for i in order), key=lambda b: b[1])
        else:  # one blob: its two halves
            t, l, b, r = mark_box
            boxes = [np.array([t, l, b, (l + r) / 2]), np.array([t, (l + r) / 2, b, r])]
    every = np.stack([base_box] + list(boxes))
    top, left = every[:, 0].min(), every[:, 1].min()
    height, width = every[:, 2].max() - top, every[:, 3].max() - left
    margin = size * MARGIN_FRAC
    scale = (size - 2 * margin) / max(height, width)
    off = np.array([(size - scale * height) / 2, (size - scale * width) / 2])
    out = np.zeros((3, 4), np.float32)
    for i, box in enumerate(every):
        out[i, :2] = (box[:2] - [top, left]) * scale + off
        out[i, 2:] = (box[2:] - [top, left]) * scale + off
    return Composition(normalise(char), base, mark, out)


def composition_table(code_points, size: int = 32):
    """For a content table's code points [C]: (base rows int32 [C], mark rows int32 [C], boxes
    float32 [C, 3, 4], composed bool [C]); a row drawn as it is has its own row as base and mark
    and zero boxes."""
    codes = [int(c) for c in code_points]
    where = {c: i for i, c in enumerate(codes)}
    base = np.arange(len(codes), dtype=np.int32)
    mark = base.copy()
    boxes = np.zeros((len(codes), 3, 4), np.float32)
    composed = np.zeros(len(codes), bool)
    for i, c in enumerate(codes):
        comp = composition(chr(c), size)
        if comp is None or ord(comp.base) not in where or ord(comp.mark) not in where:
            continue
        base[i], mark[i] = where[ord(comp.base)], where[ord(comp.mark)]
        boxes[i], composed[i] = comp.boxes, True
    return base, mark, boxes, composed


def composed_extent(char: str):
    """(top, bottom, width) in x-heights of an accented letter drawn as base + mark: its base
    letter's typographic extent (charset.char_info), stretched to take the mark where the font
    puts it (an acute above, a cedilla below); None for a character not put together."""
    comp = composition(char)
    if comp is None:
        return None
    try:
        info = char_info(comp.base)
    except KeyError:
        return None
    boxes = comp.boxes[np.any(comp.boxes != 0, 1)]
    base = comp.boxes[0]
    unit = (info.top - info.bottom) / max(float(base[2] - base[0]), 1e-6)
    top = info.top + (float(base[0]) - float(boxes[:, 0].min())) * unit
    bottom = info.bottom - (float(boxes[:, 2].max()) - float(base[2])) * unit
    return top, bottom, info.width
