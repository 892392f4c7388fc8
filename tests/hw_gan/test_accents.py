"""hw_gan.evaluation.accents: where an accented glyph's mark is found, and the base part the
judge reads (the package test reads real ones with the shipped judge)."""

import cv2
import numpy as np
import pytest

from data_pipeline import font
from hw_gan.evaluation import accents
from hw_gan.models import fewshot


def _ring(size=32):
    img = np.zeros((size, size), np.uint8)
    cv2.ellipse(img, (16, 16), (11, 13), 0, 0, 360, 255, 3)
    return img


def _as_float(img):
    return (img.astype(np.float32) / 127.5 - 1.0)[None, ..., None]


def _composed(label, mark_img):
    comp = font.composition(label)
    out = fewshot.compose(_as_float(_ring()), _as_float(mark_img), comp.boxes[None], [True])
    return np.clip(np.rint((out.numpy()[0, ..., 0] + 1) * 127.5), 0, 255).astype(np.uint8), comp


class _Judge:
    """Reads a glyph as "o" when its ink fills the box like the ring, else as "."."""

    def __init__(self):
        self.seen = []

    def predict(self, images):
        self.seen.append(np.asarray(images))
        ink = np.asarray(images)[..., 0] > 0
        return np.array([0 if m.any(1).sum() >= 24 else 1 for m in ink])


def test_marks_above_and_below_are_found_and_the_base_part_is_the_letter_again():
    stroke = np.zeros((32, 32), np.uint8)
    cv2.line(stroke, (16, 3), (16, 28), 255, 3)
    umlaut, comp = _composed("ö", stroke)
    assert accents.mark_pixels(umlaut, comp) >= accents.MIN_MARK_PIXELS
    part = accents.base_part(umlaut, comp)
    rows = np.flatnonzero((part > 96).any(1))
    # The letter alone, fitted back to fill the box as a written glyph does (8 % margin).
    assert rows[0] <= 4 and rows[-1] >= 27 and part.max() == 255
    cedilla, comp_c = _composed("ç", stroke)
    assert accents.mark_pixels(cedilla, comp_c) >= accents.MIN_MARK_PIXELS
    blank = np.zeros((32, 32), np.uint8)
    bare, _ = _composed("ö", blank)
    assert accents.mark_pixels(bare, comp) == 0  # the mark is missing: nothing above the letter
    judge = _Judge()
    rows = accents.accent_report(np.stack([umlaut, bare, cedilla, _ring()]), ["ö", "ö", "ç", "ß"],
                                 judge, ["o", "."])
    assert [(r["char"], r["mark"], r["mark_ok"]) for r in rows] == [
        ("ö", "above", True), ("ö", "above", False), ("ç", "below", True)]
    assert [r["read"] for r in rows] == ["o", "o", "o"] and judge.seen[0].shape == (3, 32, 32, 1)
    assert [r["base_ok"] for r in rows] == [True, True, False]  # ç's base is c, read as o
    assert accents.summary(rows) == {"glyphs": 3, "mark_ok": 2 / 3, "base_ok": 2 / 3,
                                     "both_ok": 1 / 3}
    with pytest.raises(ValueError, match="goes through the letter"):
        accents.mark_pixels(umlaut, font.composition("ø"))
