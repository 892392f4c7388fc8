"""Simulated handwriting: the built-in dataset that needs no download.

Every character of the default charset has one or more pen-stroke skeletons (control points in
x-height units, baseline at y = 0, x-height at 1, y UP) that are drawn through with smooth
cardinal splines. A simulated writer is a fixed set of habits, seeded from (seed, writer index)
only, so writer 3 looks the same whatever `num_writers` or `charset` is:

  * letter-form choices (one- or two-storey a and g, barred 7, flagged 1, looped l/b/d/h/k,
    looped or hooked y/g/q tails, serifed I, crossed or cursive z, ...), driven by the writer's
    tendencies to loop, to add serifs and to add exit tails;
  * slant, width, cap / digit / ascender heights, descender depth, baseline tilt;
  * roundness (spline tension: round or angular), pen width and pen-pressure variation;
  * a persistent smooth warp of every character's skeleton (writer 3's "e" always differs from
    writer 5's the same way), and how they dot an i;
  * how sloppy they are: the size of the sample-to-sample variation and of pen lifts.

Each sample then adds natural variation: smooth motor noise on the control points, correlated
along each stroke, small rotation / scale / slant / baseline changes, pen-width changes and,
now and then, a pen lift at a corner. Images are fitted into the glyph box like every other
source (strokes.render_strokes); the pen width in the image follows from the writer's pen width
in x-heights and the glyph's size, so a "." becomes a big dot and an "o" is drawn a little
bolder than an "A", as happens when real glyphs are normalised. Geometry keeps the true size.

Randomness comes only from numpy Generators seeded with SeedSequence([seed, writer, ...]), so the
same arguments give byte-identical images, also with workers > 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Sequence

import numpy as np

from data_pipeline import charset as charset_lib
from data_pipeline.schema import Geometry, GlyphRecord
from data_pipeline.strokes import render_strokes

NAME = "simulated"
_MARGIN = 0.08  # render_strokes' default margin_frac: the ink fills (1 - 2 * margin) of the side
FILL = 1.0 - 2.0 * _MARGIN  # the share of the glyph image's side a glyph's extent fills

# Tags that a writer's habits weigh (see SimWriter.form_weight).
_TAGS = ("loop", "serif", "tail", "bar", "round")

# ---------------------------------------------------------------------------------------------
# Skeletons. Each character maps to a list of forms (tags, weight, spec). A spec is strokes
# separated by "|"; a stroke is whitespace-separated tokens, in hundredths of an x-height, y up:
#   "x,y"     a control point the curve passes through smoothly;
#   "x,y!"    a corner (the curve turns sharply there);
#   "@cx,cy,rx,ry,a0,a1,n"   n points on an elliptic arc from angle a0 to a1 (degrees, a1 > a0 is
#             counter-clockwise); a trailing "!" makes the arc's last point a corner;
#   ".x,y"    a full stop sized dot;  "*x,y"  an i/j dot drawn in the writer's own dot style.
# Lowercase letters span 0..100 with ascenders to 160 and descenders to -60; capitals reach 145,
# digits 140. Vertical proportions are remapped per writer (see _ymap).
# ---------------------------------------------------------------------------------------------

_BOWL = "70,84 48,100 20,92 6,56 10,20 28,2 50,4 70,34"  # the a/d/g/q bowl, ends at its right side
_LOOP_ASC = "0,84 20,120 30,150 22,162 10,150 8,100"  # a looped ascender coming down at x = 10

_GLYPHS: dict[str, list[tuple[str, float, str]]] = {
    # digits
    "0": [("", 1.0, "@40,70,38,70,100,468,11")],
    "1": [("", 1.0, "38,140 33,0"),
          ("", 1.2, "10,108 40,140! 34,0"),
          ("serif", 0.6, "10,108 40,140! 34,0 | 8,0 60,1")],
    "2": [("", 1.5, "8,108 20,132 42,141 62,130 68,105 58,78 30,42 4,0! 40,2 76,3"),
          ("loop", 0.8, "8,108 20,132 42,141 62,130 68,105 58,78 30,40 10,12 12,0 22,6 16,14 "
                        "8,6 30,0 76,3")],
    "3": [("", 1.5, "10,122 28,138 48,140 64,128 64,104 48,86 30,80! 52,76 70,58 72,30 58,8 "
                    "36,0 14,4 4,18"),
          ("", 0.6, "8,140 66,140! 30,88! 54,84 70,62 70,30 56,8 34,0 12,4 2,18")],
    "4": [("", 1.0, "56,140 4,46! 80,46 | 58,140 59,0"),
          ("", 1.0, "14,140 8,50! 80,52 | 62,102 60,0")],
    "5": [("", 1.0, "20,139 14,82! 36,92 56,90 72,70 72,36 58,10 36,0 14,4 2,18 | 20,139 68,140"),
          ("", 0.7, "68,141 20,139! 14,82! 36,92 56,90 72,70 72,36 58,10 36,0 14,4 2,18")],
    "6": [("", 1.0, "64,136 44,140 24,124 10,90 6,50 14,16 36,0 58,8 70,32 66,58 46,72 "
                    "24,66 10,46")],
    "7": [("", 1.2, "6,140 76,140! 50,90 34,40 26,0"),
          ("bar", 1.0, "6,140 76,140! 50,90 34,40 26,0 | 20,70 66,72"),
          ("serif", 0.4, "4,128 8,140! 76,140! 56,100 44,60 38,0")],
    "8": [("", 1.5, "62,120 56,136 38,141 18,132 14,112 24,94 46,80 66,62 72,38 62,12 38,0 "
                    "16,8 8,32 18,56 40,76 56,92 64,114 60,130"),
          ("", 0.6, "@38,110,24,30,-90,270,9 | @38,40,32,40,90,450,10")],
    "9": [("", 1.2, "66,116 56,136 36,140 16,128 12,104 24,86 46,82 64,94 68,116! 66,60 62,0"),
          ("round", 0.8, "66,116 56,136 36,140 16,128 12,104 24,86 46,82 64,94 68,116! 66,70 "
                         "58,30 40,4 14,0")],
    # capitals
    "A": [("", 1.0, "0,0 44,145! 88,0 | 18,56 72,58"),
          ("round", 0.5, "0,0 30,100 44,145! 58,100 88,0 | 18,56 72,58")],
    "B": [("", 1.0, "10,145 10,0 | 10,145 46,145 70,132 72,108 54,82 12,76! 56,74 82,54 80,22 "
                    "56,2 10,0"),
          ("", 0.7, "10,0 10,72 10,145! 46,145 70,132 72,108 54,82 12,76! 56,74 82,54 80,22 56,2 10,0")],
    "C": [("", 1.0, "@52,72,48,72,48,314,9")],
    "D": [("", 1.0, "10,145 10,0 | 10,145 48,140 76,116 86,72 76,28 48,4 8,0"),
          ("", 0.7, "10,0 10,72 10,145! 48,142 76,118 86,72 76,28 48,4 6,2")],
    "E": [("", 1.5, "74,145 10,145! 8,0! 76,0 | 10,76 60,76"),
          ("round", 0.6, "72,130 56,144 30,144 14,128 16,104 34,88 52,84! 28,80 8,62 4,34 "
                         "18,8 42,0 66,4 80,18")],
    "F": [("", 1.0, "78,145 12,145! 10,0 | 10,80 60,80"),
          ("", 0.7, "12,145 78,146 | 12,145 10,0 | 10,80 58,80")],
    "G": [("", 1.0, "@52,72,48,72,45,350,9! 62,62"),
          ("", 1.0, "@52,72,48,72,45,330,9 98,68! 64,68")],
    "H": [("", 1.0, "10,145 10,0 | 84,145 84,0 | 10,76 84,78")],
    "I": [("", 1.5, "30,145 30,0"),
          ("serif", 1.0, "30,145 30,0 | 4,145 56,145 | 4,0 58,0")],
    "J": [("", 1.0, "66,145 66,40 56,10 36,0 16,6 6,26"),
          ("serif", 0.8, "66,145 66,40 56,10 36,0 16,6 6,26 | 36,145 94,145")],
    "K": [("", 1.0, "10,145 10,0 | 80,145 12,64! 84,0"),
          ("", 0.7, "10,145 10,0 | 80,145 10,66 | 36,86 84,0")],
    "L": [("", 1.0, "12,145 10,0! 74,0")],
    "M": [("", 1.0, "0,0 8,145! 52,40! 96,145! 106,0"),
          ("", 0.7, "4,0 4,145! 50,50! 96,145! 96,0")],
    "N": [("", 1.0, "10,0 10,145! 82,0! 82,145")],
    "O": [("", 1.0, "@52,72,50,72,100,468,11")],
    "P": [("", 1.0, "10,145 10,0 | 10,145 48,145 72,132 78,110 66,84 40,72 10,72"),
          ("", 0.7, "10,0 10,72 10,145! 48,145 72,132 78,110 66,84 40,72 12,74")],
    "Q": [("", 1.0, "@52,72,50,72,100,468,11 | 56,34 96,-10"),
          ("round", 0.7, "@52,72,50,72,100,468,11 | 36,12 60,6 80,-6 102,-6")],
    "R": [("", 1.0, "10,145 10,0 | 10,145 48,145 72,132 78,110 66,84 40,72 10,72! 46,70 84,0"),
          ("", 0.7, "10,0 10,72 10,145! 48,145 72,132 78,110 66,84 40,72 12,72! 46,68 84,0")],
    "S": [("", 1.0, "80,128 62,142 38,144 16,132 12,108 28,88 56,74 78,56 80,28 62,6 36,0 "
                    "14,6 2,20")],
    "T": [("", 1.0, "0,145 90,145 | 45,145 44,0")],
    "U": [("", 1.2, "10,145 8,50 16,16 38,0 60,2 78,20 84,60 86,145"),
          ("tail", 0.8, "10,145 8,50 16,16 38,0 60,2 78,20 84,60 86,145! 87,40 88,0")],
    "V": [("", 1.0, "0,145 42,0! 86,145")],
    "W": [("", 1.0, "0,145 28,0! 58,100! 88,0! 118,145"),
          ("", 0.5, "0,145 26,0! 56,145! 86,0! 114,145")],
    "X": [("", 1.0, "4,145 84,0 | 84,145 4,0")],
    "Y": [("", 1.0, "0,145 42,72! 86,145 | 42,72 42,0"),
          ("", 0.6, "0,145 40,66 | 88,145 40,66! 38,0")],
    "Z": [("", 1.2, "4,145 84,145! 4,0! 88,0"),
          ("bar", 0.6, "4,145 84,145! 4,0! 88,0 | 24,72 68,74")],
    # lowercase
    "a": [("", 1.0, _BOWL + " 74,100! 74,20 80,4 90,2"),
          ("round", 0.7, "14,82 28,98 50,100 68,88 72,62 72,8 80,0 | 72,56 40,56 12,44 6,20 "
                         "22,2 48,4 71,26")],
    "b": [("", 1.0, "10,160 10,80 10,0! 11,22 12,44 30,80 54,98 72,78 72,28 52,4 28,0 10,8"),
          ("loop", 1.0, _LOOP_ASC + " 10,50 10,0! 11,22 12,44 30,80 54,98 72,78 72,28 52,4 28,0 10,8")],
    "c": [("", 1.0, "@42,50,40,50,42,318,8")],
    "d": [("", 1.0, _BOWL + " 74,160! 74,20 80,4 90,2"),
          ("loop", 1.0, _BOWL + " 84,120 86,152 76,162 66,150 70,110 74,30 80,4 92,2")],
    "e": [("", 1.0, "10,48 60,52 72,70 62,94 38,100 14,86 6,56 12,20 36,0 62,4 80,18")],
    "f": [("", 1.0, "76,142 60,160 40,156 30,136 28,100 28,0 | 4,96 62,98"),
          ("loop", 0.8, "76,140 60,160 40,156 30,136 28,60 26,-30 18,-48 6,-44 | 4,96 62,98")],
    "g": [("", 1.0, _BOWL + " 74,100! 72,10 68,-36 52,-58 26,-60 6,-44"),
          ("loop", 1.0, _BOWL + " 74,100! 72,10 68,-36 52,-58 28,-60 18,-44 34,-22 66,-4 86,6"),
          ("round", 0.4, "62,74 52,96 30,100 14,84 14,60 30,44 52,46 64,62 62,78 | 60,90 86,98 | "
                         "30,44 14,30 24,16 58,12 76,-8 72,-40 44,-58 14,-54 6,-32 24,-14 50,-4")],
    "h": [("", 1.0, "10,160 10,80 10,30 10,0! 11,24 12,48 28,84 50,100 68,86 72,56 72,0"),
          ("loop", 1.0, _LOOP_ASC + " 10,50 10,0! 11,24 12,48 28,84 50,100 68,86 72,56 72,0")],
    "i": [("", 1.0, "15,100 14,0 | *15,138"),
          ("tail", 1.0, "10,100 14,20 22,2 34,0 44,6 | *15,138")],
    "j": [("", 1.0, "36,100 36,-30 28,-54 12,-60 0,-50 | *36,138"),
          ("loop", 0.6, "36,100 36,-30 30,-56 16,-60 10,-44 26,-22 54,-4 | *36,138")],
    "k": [("", 1.0, "10,160 10,0 | 66,100 12,44! 70,0"),
          ("loop", 1.0, _LOOP_ASC + " 10,50 10,0! 11,20 12,40 40,86 62,92 66,74 46,56 14,46! 44,36 72,0"),
          ("", 0.6, "10,160 10,0 | 66,100 12,44 | 32,60 70,0")],
    "l": [("", 1.0, "12,160 10,0"),
          ("loop", 1.0, "0,30 20,80 32,130 28,158 16,160 8,140 8,80 12,20 22,2 38,4"),
          ("tail", 1.0, "12,160 11,24 18,4 30,0 40,6")],
    "m": [("", 1.0, "8,100 8,50 8,0! 9,30 10,58 24,88 38,100 50,90 54,64 54,30 54,0! 55,30 56,58 70,88 "
                    "84,100 96,90 100,64 100,0")],
    "n": [("", 1.0, "10,100 10,50 10,0! 11,28 12,56 28,88 48,100 66,90 72,62 72,0")],
    "o": [("", 1.0, "@40,50,38,50,95,458,9")],
    "p": [("", 1.0, "10,100 10,-60 | 10,60 28,90 52,100 70,80 70,26 50,2 26,0 10,10"),
          ("", 1.0, "10,100 10,20 10,-60! 11,-10 12,42 30,86 54,100 72,80 72,28 52,4 26,0 10,10")],
    "q": [("", 1.0, _BOWL + " 74,100! 72,-60"),
          ("tail", 0.8, _BOWL + " 74,100! 72,-40 76,-58! 90,-44")],
    "r": [("", 1.5, "10,100 10,50 10,0! 11,26 12,54 28,86 48,100 64,96"),
          ("round", 0.6, "10,100 10,50 10,0! 11,28 12,56 24,84 40,98 58,100 70,92")],
    "s": [("", 1.0, "66,86 50,100 24,98 10,82 16,62 40,52 62,40 68,20 54,2 30,0 10,6 2,16")],
    "t": [("tail", 1.0, "30,136 30,20 38,4 52,0 64,6 | 4,96 62,98"),
          ("", 1.0, "30,136 30,0 | 4,96 62,98")],
    "u": [("", 1.0, "8,100 6,40 16,10 34,0 54,6 68,30 72,100! 72,0"),
          ("tail", 1.0, "8,100 6,40 16,10 34,0 54,6 68,30 72,100! 72,20 76,4 86,0")],
    "v": [("", 1.0, "0,100 36,0! 74,100"),
          ("tail", 0.5, "0,100 36,0! 72,96 86,100")],
    "w": [("", 1.0, "0,100 24,0! 50,80! 76,0! 100,100")],
    "x": [("", 1.0, "4,100 70,0 | 70,100 4,0")],
    "y": [("", 1.0, "2,100 38,4 | 76,100 38,0 22,-40 10,-60"),
          ("", 0.8, "6,100 6,40 16,10 34,0 54,6 68,30 72,100! 72,0 66,-36 50,-58 26,-60 6,-46"),
          ("loop", 0.8, "6,100 6,40 16,10 34,0 54,6 68,30 72,100! 72,0 68,-36 52,-58 28,-60 "
                        "18,-44 34,-22 66,-4 86,6")],
    "z": [("", 1.5, "4,100 72,100! 4,0! 76,0"),
          ("loop", 0.3, "4,100 72,100! 28,50! 52,44 68,24 66,-16 50,-48 26,-60 6,-52"),
          ("bar", 0.5, "4,100 72,100! 4,0! 76,0 | 14,50 62,50")],
    # punctuation
    ".": [("", 1.0, ".6,6")],
    ",": [("", 1.0, "10,12 12,2 8,-14 0,-26")],
    ";": [("", 1.0, ".8,80 | 10,12 12,2 8,-14 0,-26")],
    ":": [("", 1.0, ".8,80 | .6,6")],
    "!": [("", 1.0, "10,145 6,40 | .6,6")],
    "?": [("", 1.0, "6,114 20,138 42,145 62,132 64,110 50,90 32,74 30,40 | .30,6")],
    "'": [("", 1.0, "8,145 2,106")],
    '"': [("", 1.0, "6,145 2,106 | 30,145 26,106")],
    "-": [("", 1.0, "0,50 56,52")],
    "(": [("", 1.0, "40,160 16,120 4,60 8,0 20,-30 40,-54")],
    ")": [("", 1.0, "0,160 24,120 36,60 32,0 20,-30 0,-54")],
    "/": [("", 1.0, "70,160 0,-24")],
    "&": [("", 1.0, "96,0 60,38 30,78 20,110 26,134 44,144 60,134 60,112 44,92 16,66 6,36 16,10 "
                    "40,0 66,10 84,40 92,60")],
}

# Vertical classes: how a writer's proportions remap a skeleton's y (see _ymap).
_CAP_CHARS = set(charset_lib.UPPER) | set("!?'\"&")
_DIGIT_CHARS = set(charset_lib.DIGITS)


def skeleton_chars() -> str:
    """The characters that have a skeleton (every single-character label must be one of them)."""
    return "".join(_GLYPHS)


# ---------------------------------------------------------------------------------------------
# Skeleton parsing (once per process, lazily).
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Stroke:
    points: np.ndarray  # (n, 2) float64, x-heights, y up
    corners: tuple[int, ...]  # interior point indices where the curve may turn sharply
    kind: str  # "line", "dot" (full stop) or "idot" (i/j dot in the writer's style)


@dataclasses.dataclass(frozen=True)
class _Form:
    char: str
    index: int
    tags: tuple[str, ...]
    weight: float
    strokes: tuple[_Stroke, ...]


def _parse_stroke(text: str) -> _Stroke:
    pts: list[tuple[float, float]] = []
    corners: list[int] = []
    tokens = text.split()
    if len(tokens) == 1 and tokens[0][0] in ".*":
        x, y = (float(v) / 100.0 for v in tokens[0][1:].split(","))
        return _Stroke(np.array([[x, y]]), (), "dot" if tokens[0][0] == "." else "idot")
    for tok in tokens:
        corner = tok.endswith("!")
        tok = tok.rstrip("!")
        if tok.startswith("@"):
            cx, cy, rx, ry, a0, a1, n = (float(v) for v in tok[1:].split(","))
            for a in np.linspace(math.radians(a0), math.radians(a1), int(n)):
                pts.append((cx + rx * math.cos(a), cy + ry * math.sin(a)))
        else:
            x, y = tok.split(",")
            pts.append((float(x), float(y)))
        if corner:
            corners.append(len(pts) - 1)
    arr = np.asarray(pts, np.float64) / 100.0
    corners = tuple(c for c in corners if 0 < c < len(arr) - 1)
    return _Stroke(arr, corners, "line")


_FORMS: dict[str, tuple[_Form, ...]] = {}


def _forms(char: str) -> tuple[_Form, ...]:
    if not _FORMS:
        for ch, forms in _GLYPHS.items():
            _FORMS[ch] = tuple(
                _Form(ch, i, tuple(t for t in tags.split(",") if t), weight,
                      tuple(_parse_stroke(s) for s in spec.split("|")))
                for i, (tags, weight, spec) in enumerate(forms))
    return _FORMS[char]


# ---------------------------------------------------------------------------------------------
# Writers.
# ---------------------------------------------------------------------------------------------

def _seq(*entropy: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(e) for e in entropy]))


_STYLE, _CHAR_STYLE, _SAMPLES = 1, 2, 3  # SeedSequence stream tags


@dataclasses.dataclass(frozen=True)
class SimWriter:
    index: int
    slant: float  # shear, x += slant * y
    width: float  # horizontal scale
    cap_h: float  # capital height in x-heights
    digit_h: float
    asc_h: float  # ascender height
    desc_d: float  # descender depth (positive)
    pen: float  # pen diameter in x-heights
    pressure: float  # render_strokes width_variation
    tension: float  # cardinal spline tension: < 0 rounder, > 0 more angular
    tilt: float  # baseline tilt tendency, radians
    traits: dict  # tag -> tendency in (0, 1)
    warp: float  # amplitude of the persistent per-character distortion
    sloppy: float  # scale of the sample-to-sample variation
    p_lift: float  # probability of an extra pen lift per sample
    dot_style: int  # 0 dot, 1 dash, 2 small circle
    dot_len: float  # length of a full stop's pen movement
    dot_angle: float

    @classmethod
    def make(cls, seed: int, index: int) -> "SimWriter":
        r = _seq(seed, index, _STYLE)
        u = r.uniform
        traits = {tag: float(np.clip(r.beta(0.7, 0.7), 0.03, 0.97)) for tag in _TAGS}
        cap_h = u(1.3, 1.75)
        return cls(
            index=index,
            slant=float(np.clip(r.normal(0.13, 0.14), -0.15, 0.45)),
            width=u(0.8, 1.22),
            cap_h=cap_h,
            digit_h=cap_h * u(0.85, 1.02),
            asc_h=u(1.4, 2.0),
            desc_d=u(0.42, 0.8),
            pen=u(0.04, 0.08) * 1.6 / FILL,  # 4-8 % of the side for a 1.6 x-height tall glyph
            pressure=0.0 if r.random() < 0.35 else u(0.08, 0.35),
            tension=u(-0.1, 0.45),
            tilt=float(np.clip(r.normal(0.0, 0.03), -0.06, 0.06)),
            traits=traits,
            warp=u(0.025, 0.055),
            sloppy=u(0.6, 1.4),
            p_lift=u(0.0, 0.2),
            dot_style=int(r.choice(3, p=[0.65, 0.25, 0.10])),
            dot_len=u(0.01, 0.07),
            dot_angle=u(-0.5, 1.2),
        )

    def form_weight(self, form: _Form) -> float:
        w = form.weight
        for tag in form.tags:
            t = self.traits[tag]
            w *= t / (1.0 - t)
        return w

    def ymap(self, char: str, pts: np.ndarray) -> np.ndarray:
        """Remaps design heights to this writer's proportions."""
        out = pts.copy()
        y = pts[:, 1]
        if char in _CAP_CHARS or char in _DIGIT_CHARS:
            top = 1.40 if char in _DIGIT_CHARS else 1.45
            h = self.digit_h if char in _DIGIT_CHARS else self.cap_h
            out[:, 1] = np.where(y > 0, y * (h / top), y * (self.desc_d / 0.6))
        else:
            out[:, 1] = np.where(y > 1.0, 1.0 + (y - 1.0) * ((self.asc_h - 1.0) / 0.6),
                                 np.where(y < 0.0, y * (self.desc_d / 0.6), y))
        return out


# ---------------------------------------------------------------------------------------------
# Splines: sampled points are a fixed linear map of the control points (B @ ctrl), built once
# per writer and character, so each sample costs a few small matrix products.
# ---------------------------------------------------------------------------------------------

def _hermite(u: np.ndarray):
    u2, u3 = u * u, u * u * u
    return 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2


def _piece_matrix(q: np.ndarray, tension: float, step: float) -> np.ndarray:
    """Cardinal-spline sampling matrix (m, k) for one smooth run of k control points q."""
    k = len(q)
    if k == 1:
        return np.ones((1, 1))
    d = np.maximum(np.linalg.norm(np.diff(q, axis=0), axis=1), 1e-6)  # chord lengths (k-1,)
    s = 1.0 - tension
    # Tangent at point i, as a row over q, for the segment of chord dj that it bounds: the
    # neighbours' difference scaled to that chord (a chord-length weighted cardinal spline, which
    # does not overshoot where control points are unevenly spaced); one-sided at the ends.
    def tangent(i: int, dj: float) -> np.ndarray:
        t = np.zeros(k)
        if i == 0 or i == k - 1:
            a, b = (0, 1) if i == 0 else (k - 2, k - 1)
            t[b], t[a] = s, -s
        else:
            w = s * dj / (d[i - 1] + d[i])
            t[i + 1], t[i - 1] = w, -w
        return t

    rows = []
    for j in range(k - 1):
        m0, m1 = tangent(j, d[j]), tangent(j + 1, d[j])
        n = int(np.clip(math.ceil(d[j] / step), 1, 12))
        u = np.arange(n) / n
        h00, h10, h01, h11 = _hermite(u)
        seg = h10[:, None] * m0[None, :] + h11[:, None] * m1[None, :]
        seg[:, j] += h00
        seg[:, j + 1] += h01
        rows.append(seg)
    last = np.zeros((1, k))
    last[0, k - 1] = 1.0
    rows.append(last)
    return np.concatenate(rows, axis=0)


def _stroke_params(pts: np.ndarray) -> np.ndarray:
    """Normalised arc-length position 0..1 of each control point along its stroke."""
    if len(pts) == 1:
        return np.zeros(1)
    c = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return c / max(c[-1], 1e-9)


_NOISE_K = 4  # smooth noise basis per stroke: offset, linear drift, one bulge, one wave


def _noise_basis(t: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(t), t - 0.5, np.sin(np.pi * t), np.sin(2 * np.pi * t)], axis=1)


_NOISE_SCALE = np.array([1.0, 1.0, 0.8, 0.45])
_WARP_SCALE = np.array([1.0, 1.0, 0.7, 0.7, 0.7, 0.5])


class CharModel:
    """One writer's way of writing one label: control points, spline matrix, noise basis."""

    def __init__(self, writer: SimWriter, label: str, seed: int, size: int):
        self.writer = writer
        self.label = label
        chars = list(label)
        r = _seq(seed, writer.index, _CHAR_STYLE, *[ord(c) for c in label])
        self.variants = [self._variant(writer, c, r, size) for c in chars]
        self.rng = _seq(seed, writer.index, _SAMPLES, *[ord(c) for c in label])

    @staticmethod
    def _variant(w: SimWriter, char: str, r: np.random.Generator, size: int) -> dict:
        forms = _forms(char)
        weights = np.array([w.form_weight(f) for f in forms])
        form = forms[int(r.choice(len(forms), p=weights / weights.sum()))]
        ctrl_parts, corner_flags = [], []
        for st in form.strokes:
            pts = st.points
            if st.kind != "line":
                pts = _dot_points(w, st.kind, pts[0], r)
            pts = w.ymap(char, pts)
            ctrl_parts.append(pts)
            corner_flags.append(st.corners if st.kind == "line" else ())
        allpts = np.concatenate(ctrl_parts, axis=0)
        # Persistent warp: a smooth random quadratic field over the glyph box.
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.1)
        uv = (allpts - centre) / half
        feats = np.stack([uv[:, 0], uv[:, 1], uv[:, 0] ** 2 - 0.5, uv[:, 0] * uv[:, 1],
                          uv[:, 1] ** 2 - 0.5, np.sin(np.pi * uv[:, 0]) * uv[:, 1]], axis=1)
        # (small glyphs get a proportionally small warp, so a comma stays a comma)
        coef = r.normal(0.0, 1.0, (feats.shape[1], 2)) * _WARP_SCALE[:, None] * (
            w.warp * min(1.0, float(half.max()) / 0.5))
        warped = allpts + feats @ coef
        # Per-character habits on top of the writer's: width, slant and tilt.
        char_w = float(np.exp(r.normal(0.0, 0.07)))
        char_slant = float(r.normal(0.0, 0.05))
        char_rot = float(r.normal(0.0, 0.02))
        # Spline matrix with a sampling step that gives ~2.5 px chords in the final image.
        lin = _linear(w.slant + char_slant, w.width * char_w, 1.0, w.tilt + char_rot)
        approx = warped @ lin.T
        ext = float(max(np.ptp(approx[:, 0]), np.ptp(approx[:, 1])))
        px_per_unit = size * FILL / (ext + w.pen)
        step_px = 2.5 * max(1.0, size / 32.0) ** 0.5
        step = step_px / px_per_unit
        blocks, strokes, basis = [], [], []
        col = row = 0
        ncols = len(allpts)
        for pts, corners in zip(ctrl_parts, corner_flags):
            k = len(pts)
            q = approx[col:col + k]
            cuts = [0, *corners, k - 1]
            srow = row
            stroke_corners = []
            for a, b in zip(cuts[:-1], cuts[1:]):
                m = _piece_matrix(q[a:b + 1], w.tension, step)
                if b != k - 1:
                    m = m[:-1]  # the corner point starts the next piece
                full = np.zeros((len(m), ncols))
                full[:, col + a:col + b + 1] = m
                blocks.append(full)
                row += len(m)
                if b != k - 1:
                    stroke_corners.append(row)
            strokes.append((srow, row, tuple(stroke_corners)))
            g = np.zeros((k, _NOISE_K * len(ctrl_parts)))
            si = len(basis)
            g[:, si * _NOISE_K:(si + 1) * _NOISE_K] = _noise_basis(_stroke_params(pts)) * _NOISE_SCALE
            basis.append(g)
            col += k
        return {
            "char": char, "form": form.index, "ctrl": warped, "B": np.concatenate(blocks, axis=0),
            "G": np.concatenate(basis, axis=0), "strokes": strokes,
            "char_w": char_w, "char_slant": char_slant, "char_rot": char_rot,
        }

    def sample(self, size: int) -> tuple[np.ndarray, Geometry]:
        w, r = self.writer, self.rng
        v = self.variants[0] if len(self.variants) == 1 else self.variants[
            int(r.integers(len(self.variants)))]
        ctrl, G = v["ctrl"], v["G"]
        z = r.standard_normal(G.shape[1] * 2 + len(ctrl) * 2 + 8)
        ng = G.shape[1] * 2
        amp = 0.028 * w.sloppy
        jitter = G @ z[:ng].reshape(-1, 2) * amp
        jitter += z[ng:ng + len(ctrl) * 2].reshape(-1, 2) * (0.004 * w.sloppy)
        e = z[-8:]
        lin = _linear(w.slant + v["char_slant"] + 0.025 * w.sloppy * e[0],
                      w.width * v["char_w"] * math.exp(0.04 * w.sloppy * e[1]),
                      math.exp(0.035 * w.sloppy * e[2]),
                      w.tilt + v["char_rot"] + 0.022 * w.sloppy * e[3])
        shift = np.array([0.03 * e[4], 0.03 * w.sloppy * e[5]])
        pts = v["B"] @ ((ctrl + jitter) @ lin.T) + shift
        pen = w.pen * math.exp(0.06 * e[6])
        strokes = [pts[a:b] for a, b, _ in v["strokes"]]
        if w.p_lift > 0 and r.random() < w.p_lift:
            strokes = _pen_lift(strokes, v["strokes"], r, pen)
            pts = np.concatenate(strokes, axis=0)
        xmin, ymin = pts.min(axis=0)
        xmax, ymax = pts.max(axis=0)
        extent = max(xmax - xmin, ymax - ymin)
        rad = pen / 2
        geom = Geometry(top=float(ymax + rad), bottom=float(ymin - rad),
                        left=float(xmin - rad), right=float(xmax + rad))
        pen_frac = FILL * pen / (extent + pen)
        flip = np.array([1.0, -1.0])
        image = render_strokes([s * flip for s in strokes], size, pen_width=pen_frac,
                               width_variation=w.pressure, rng=r if w.pressure > 0 else None,
                               margin_frac=_MARGIN)
        return image, geom


def _linear(slant: float, sx: float, sy: float, rot: float) -> np.ndarray:
    """Rotation @ shear @ scale, acting on column vectors (x, y) with y up."""
    c, s = math.cos(rot), math.sin(rot)
    return np.array([[c, -s], [s, c]]) @ np.array([[1.0, slant], [0.0, 1.0]]) @ np.diag([sx, sy])


def _dot_points(w: SimWriter, kind: str, p: np.ndarray, r: np.random.Generator) -> np.ndarray:
    style = w.dot_style if kind == "idot" else 0
    if style == 0:
        length = w.dot_len * (1.0 if kind == "dot" else 0.8) * math.exp(r.normal(0, 0.3))
        d = np.array([math.cos(w.dot_angle), math.sin(w.dot_angle)]) * length / 2
        return np.stack([p - d, p + d])
    if style == 1:
        ang = 0.35 + r.normal(0, 0.15)
        d = np.array([math.cos(ang), math.sin(ang)]) * 0.09
        return np.stack([p - d, p + d])
    a = np.linspace(0.3, 0.3 + 2 * math.pi * 1.05, 8)
    return p + 0.06 * np.stack([np.cos(a), np.sin(a)], axis=1)


def _pen_lift(strokes: list, layout: list, r: np.random.Generator, pen: float) -> list:
    """Splits one stroke at one of its corners, nudging the second part (a pen lift)."""
    choices = [(i, c - layout[i][0]) for i, (_, _, cs) in enumerate(layout) for c in cs]
    if not choices:
        return strokes
    i, c = choices[int(r.integers(len(choices)))]
    s = strokes[i]
    nudge = r.normal(0.0, 0.5 * pen + 0.02, 2)
    return strokes[:i] + [s[:c + 1], s[c:] + nudge] + strokes[i + 1:]


# ---------------------------------------------------------------------------------------------
# The source.
# ---------------------------------------------------------------------------------------------

def writer_id(index: int) -> str:
    return f"sim-{index:03d}"


def _render_writer(job: tuple) -> list[GlyphRecord]:
    """All records of one writer (module level so that a multiprocessing Pool can pickle it)."""
    seed, index, labels, samples, size = job
    writer = SimWriter.make(seed, index)
    wid = writer_id(index)
    out = []
    for label in labels:
        model = CharModel(writer, label, seed, size)
        for s in range(samples):
            image, geom = model.sample(size)
            out.append(GlyphRecord(char=label, writer=wid, source=NAME, image=image,
                                   geometry=geom, key=f"{NAME}:{wid}:{label}:{s}"))
    return out


def _pool_init() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover - cv2 is a dependency of strokes.py anyway
        pass


def _pool_context():
    """"spawn" (safe even when the parent has TensorFlow's threads running), unless the main
    module cannot be re-imported by a spawned child (a script read from stdin), where spawn would
    fail in every child; then the platform default."""
    import multiprocessing
    import os
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.exists(main_file):
        return multiprocessing.get_context()
    return multiprocessing.get_context("spawn")


class SimulatedSource:
    name = NAME

    def __init__(self, num_writers: int, samples_per_char: int, image_size: int,
                 charset: str, seed: int, workers: int, labels: Sequence[str]):
        self.params = {"num_writers": num_writers, "samples_per_char": samples_per_char,
                       "image_size": image_size, "charset": charset, "seed": seed,
                       "workers": workers}
        self.labels = tuple(labels)
        self._n, self._k, self._size, self._seed = num_writers, samples_per_char, image_size, seed
        self._workers = workers

    def __len__(self) -> int:
        return self._n * len(self.labels) * self._k

    def _jobs(self):
        return ((self._seed, w, self.labels, self._k, self._size) for w in range(self._n))

    def __iter__(self) -> Iterator[GlyphRecord]:
        if self._workers > 1 and self._n > 1:
            with _pool_context().Pool(min(self._workers, self._n), initializer=_pool_init) as pool:
                for records in pool.imap(_render_writer, self._jobs(), chunksize=1):
                    yield from records
        else:
            for job in self._jobs():
                yield from _render_writer(job)

    def __repr__(self) -> str:
        return f"SimulatedSource({self.params})"


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"simulated source: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"simulated source: {name} must be >= {minimum}, got {value}")
    return int(value)


def open_simulated(num_writers: int = 20, samples_per_char: int = 4, image_size: int = 32,
                   charset: str = "default", seed: int = 0, workers: int = 0) -> SimulatedSource:
    """Simulated handwriting of `num_writers` writers, `samples_per_char` samples of every label
    of `charset` (a charset.parse_charset spec) each, as uint8 image_size^2 ink-high glyphs.
    Records come writer-major, then label, then sample; workers > 1 renders writers in a
    process pool with identical output."""
    num_writers = _check_int("num_writers", num_writers, 1)
    samples_per_char = _check_int("samples_per_char", samples_per_char, 1)
    image_size = _check_int("image_size", image_size, 8)
    seed = _check_int("seed", seed, 0)
    workers = _check_int("workers", workers, 0)
    if charset is not None and not isinstance(charset, str):
        raise ValueError(f"simulated source: charset must be a charset spec string, got {charset!r}")
    try:
        labels = charset_lib.parse_charset(charset)
    except ValueError as exc:
        raise ValueError(f"simulated source: charset {charset!r}: {exc}") from None
    missing = sorted({ch for label in labels for ch in label if ch not in _GLYPHS})
    if missing:
        raise ValueError(f"simulated source: charset {charset!r} has characters without a "
                         f"stroke skeleton: {''.join(missing)!r}; simulated characters are "
                         f"{skeleton_chars()!r}")
    return SimulatedSource(num_writers, samples_per_char, image_size,
                           "default" if charset is None else charset, seed, workers, labels)
