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


def content_images(chars: Union[str, Iterable[str]], size: int = 32) -> np.ndarray:
    """uint8 [N, size, size] ink-high images of `chars`: a str is one image per character (after
    NFC), a list one image per label (a label may hold a letter and combining marks). Whitespace
    gives a blank image. FontCoverageError names every character the font lacks."""
    labels = _labels(chars)
    lacking = missing(labels)
    if lacking:
        raise FontCoverageError(
            f"the content font ({FONT_NAME}) has no glyph for "
            f"{', '.join(_describe(c) for c in lacking)}")
    if size < 8:
        raise ValueError(f"content image size must be >= 8, got {size}")
    if not labels:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([_cached(label, size) for label in labels])


def content_table(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(code points int32 [C] ascending, uint8 ink-high images [C, size, size]) of every code
    point the font covers that is drawn on its own (no whitespace, control or combining mark):
    what an export carries so that any of them can be drawn in a style with no font at run
    time."""
    codes = [c for c in sorted(covered_code_points())
             if not chr(c).isspace() and unicodedata.category(chr(c))[0] not in ("C", "M")]
    return (np.array(codes, np.int32),
            np.stack([_render(chr(c), size) for c in codes]).astype(np.uint8))
