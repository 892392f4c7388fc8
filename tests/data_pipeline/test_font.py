"""Content images of the few-shot family (data_pipeline.font): the packaged font, its coverage,
typographic placement and errors."""

import unicodedata

import numpy as np
import pytest

from data_pipeline import font

ACCENTED = "éèêàâñöüåÉÀÖ"  # marks above; the cedilla hangs below
WIDE = "abcxyzABCXYZ0123456789éèêàâçñöüßåø€£@&$%#*+=?!()[]{}<>/\\|~^_'\",.;:-"


def _ink_rows(img, level=96):
    return np.where(img.max(axis=1) >= level)[0]


def test_font_is_packaged_with_its_licence_and_small():
    assert font.FONT_PATH.is_file() and font.FONT_PATH.stat().st_size < 10 * 2**20
    licence = (font.FONT_PATH.parent / "LICENSE-DejaVu.txt").read_text(encoding="utf-8")
    assert "Bitstream" in licence and "Permission is hereby granted" in licence


def test_wide_coverage_and_one_ink_high_image_per_character():
    assert not font.missing(WIDE)
    imgs = font.content_images(WIDE, 32)
    assert imgs.shape == (len(WIDE), 32, 32) and imgs.dtype == np.uint8
    assert all(img.max() >= 200 for img in imgs)  # ink is high, paper is 0
    assert (imgs[:, 0, :] == 0).all() and (imgs[:, :, 0] == 0).all()  # nothing at the edge
    assert not font.content_images(" ").any()  # whitespace: blank


def test_placement_is_typographic_and_accents_sit_above_the_x_height():
    p = font.placement(32)
    assert p.cap_height < p.x_height < p.baseline
    x, g, a = font.content_images("xga")
    # Same baseline for every letter, descenders below it, x-height letters below the line.
    for img in (x, a):
        assert abs(_ink_rows(img).max() + 1 - p.baseline) <= 1.0
        assert abs(_ink_rows(img).min() - p.x_height) <= 1.0
    assert _ink_rows(g).max() > p.baseline + 2
    for ch, img in zip(ACCENTED, font.content_images(ACCENTED)):
        base = font.content_image(unicodedata.normalize("NFD", ch)[0])
        top_row = p.cap_height if ch.isupper() else p.x_height
        accent = img.astype(int) - base.astype(int)
        above = accent[: int(top_row) - 1]
        assert above.max() >= 96, f"{ch}: no accent ink above row {top_row}"
        assert _ink_rows(img).max() <= _ink_rows(base).max() + 1, ch
    cedilla = font.content_image("ç")
    assert _ink_rows(cedilla).max() > p.baseline + 1


def test_combining_marks_are_normalised():
    np.testing.assert_array_equal(font.content_image("e\u0301"), font.content_image("é"))
    assert font.content_images(["e\u0301", "a"]).shape == (2, 32, 32)


def test_what_the_font_lacks_is_named():
    with pytest.raises(font.FontCoverageError, match=r"'ᚠ' \(U\+16A0\)") as err:
        font.content_images("aᚠb")
    assert "DejaVu Sans" in str(err.value)
    assert font.missing(["a", "\U000E0001", "a"]) == ["\U000E0001"]
    assert font.covers("ß") and not font.covers("ᚠ")


def test_sizes_and_caching():
    big = font.content_images("Q@", 64)
    assert big.shape == (2, 64, 64)
    a1, a2 = font.content_image("a"), font.content_image("a")
    np.testing.assert_array_equal(a1, a2)
    with pytest.raises(ValueError, match="size must be >= 8"):
        font.content_images("a", 4)
