"""Accented letters drawn in a style (issue 18): is each mark where it belongs, and is the letter
under it still read as its base letter?

A few-shot model draws an accented letter as its base letter and a mark, both in the style,
placed as the content font lays them out (data_pipeline.font.composition). For each glyph whose
mark sits above or below its letter:

  mark       "above" (acute, grave, circumflex, tilde, diaeresis, ring): ink in the rows above
             the base letter's top, i.e. above the x-height (capitals: the cap height); "below"
             (cedilla): ink under the base letter's bottom, the baseline.
  base read  the glyph with everything outside the base letter's box cleared, fitted back into
             the glyph box as a written glyph is (scan.cells.normalize_glyph, cut at half ink),
             then read by a character judge: it must be the base letter (é -> e, Ü -> U).

A stroke through the letter (ø) is neither: it is drawn, shown, and not scored.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from data_pipeline import font
from data_pipeline.scan.cells import normalize_glyph
from data_pipeline.schema import INK_THRESHOLD, to_float

ACCENTED = "éèêàâçñöüåÉÜ"  # what benchmarks/accents.py scores and the docs picture shows
SHOWN_TOO = "øß"  # shown beside them: a stroke through o; ß from the font's shape alone
MIN_MARK_PIXELS = 3  # a mark has at least this many ink pixels where it belongs


def _where(comp) -> str:
    base, mark = comp.boxes[0], comp.boxes[1]
    if mark[2] <= base[0] + 1.0:
        return "above"
    if mark[0] >= base[2] - 1.0:
        return "below"
    return "through"


def mark_pixels(glyph: np.ndarray, comp) -> int:
    """Ink pixels of uint8 ink-high `glyph` [R, R] where `comp`'s mark belongs (module doc)."""
    ink = glyph > INK_THRESHOLD
    base = comp.boxes[0]
    top, bottom = int(np.floor(base[0])), int(np.ceil(base[2]))
    where = _where(comp)
    if where == "above":
        return int(ink[:max(top, 0)].sum())
    if where == "below":
        return int(ink[bottom:].sum())
    raise ValueError(f"{comp.char!r}: its mark goes through the letter, not above or below")


def base_part(glyph: np.ndarray, comp) -> np.ndarray:
    """uint8 [R, R]: the glyph's ink inside its base letter's box (1 px of slack), fitted into
    the box as a written glyph is, cut at half ink so the enlarged letter stays crisp (resampled
    as it is, a letter of 13 rows comes back blurred and the judge misreads it); all paper when
    there is none."""
    size = glyph.shape[0]
    t, l, b, r = comp.boxes[0]
    keep = np.zeros(glyph.shape, bool)
    keep[max(int(t) - 1, 0):int(np.ceil(b)) + 1, max(int(l) - 1, 0):int(np.ceil(r)) + 1] = True
    ink = np.where(keep, glyph.astype(np.float32) / 255.0, 0.0)
    inked = ink * 255 > INK_THRESHOLD
    rows, cols = np.flatnonzero(inked.any(1)), np.flatnonzero(inked.any(0))
    if not rows.size:
        return np.zeros((size, size), np.uint8)
    return normalize_glyph(ink, (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1), size,
                           threshold=0.5)


def accent_report(glyphs, labels: Sequence[str], judge, judge_charset: Sequence[str]) -> list:
    """Per glyph (uint8 ink-high [N, R, R, 1] or [N, R, R], drawn for `labels`): {char, base,
    mark ("above" / "below"), mark_pixels, mark_ok, read (the judge's reading of the base part),
    base_ok}. Labels that are not put together (ß) or whose mark goes through (ø) are left out. `judge` is a
    hw_gan.evaluation.judge.Judge whose predicted ids index `judge_charset`."""
    glyphs = np.asarray(glyphs)
    glyphs = glyphs[..., 0] if glyphs.ndim == 4 else glyphs
    size = glyphs.shape[1]
    rows, parts = [], []
    for glyph, label in zip(glyphs, labels):
        comp = font.composition(label, size)
        if comp is None or _where(comp) == "through":
            continue
        n = mark_pixels(glyph, comp)
        rows.append({"char": comp.char, "base": comp.base, "mark": _where(comp),
                     "mark_pixels": n, "mark_ok": n >= MIN_MARK_PIXELS})
        parts.append(base_part(glyph, comp))
    if rows:
        ids = judge.predict(to_float(np.stack(parts))[..., None])
        for row, i in zip(rows, ids):
            row["read"] = judge_charset[int(i)]
            row["base_ok"] = row["base"] in row["read"]  # a merged label ("Oo") counts
    return rows


def summary(rows: list) -> dict:
    """{glyphs, mark_ok, base_ok, both_ok} as fractions of the glyphs scored."""
    n = len(rows)
    if not n:
        return {"glyphs": 0, "mark_ok": None, "base_ok": None, "both_ok": None}
    return {"glyphs": n, "mark_ok": sum(r["mark_ok"] for r in rows) / n,
            "base_ok": sum(r["base_ok"] for r in rows) / n,
            "both_ok": sum(r["mark_ok"] and r["base_ok"] for r in rows) / n}
