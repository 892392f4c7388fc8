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


def test_accented_letters_are_laid_out_as_base_letter_and_mark():
    from data_pipeline.charset import char_info

    acute = font.composition("é")
    assert (acute.base, acute.mark) == ("e", "'")
    nfd = font.composition("e\u0301")  # NFD in, the same layout
    assert (nfd.char, nfd.base, nfd.mark) == ("é", "e", "'")
    np.testing.assert_array_equal(nfd.boxes, acute.boxes)
    base, mark, second = acute.boxes
    assert mark[2] <= base[0] + 0.5  # the acute sits above the letter's top (the x-height)
    assert base[0] > mark[0] and not second.any()
    assert acute.boxes.min() >= 0 and acute.boxes.max() <= 32
    # The layout fills the glyph as a written glyph does: the stroke renderer's margin.
    assert acute.boxes[:2, 0].min() == pytest.approx(32 * font.MARGIN_FRAC, abs=0.6)
    umlaut = font.composition("ö")
    assert umlaut.mark == "." and umlaut.boxes[2].any()
    assert umlaut.boxes[1, 3] <= umlaut.boxes[2, 1]  # two dots side by side, left then right
    cedilla = font.composition("ç")
    assert cedilla.mark == "," and cedilla.boxes[1, 0] >= cedilla.boxes[0, 2] - 0.5  # below
    assert font.composition("ø").mark == "/" and font.composition("Ü").base == "U"
    for plain in ("a", "ß", "í", "€", "ab"):  # í: the i's own dot would stay under the accent
        assert font.composition(plain) is None, plain
    # In x-heights: a letter's own extent, with the mark's room added where it goes.
    top, bottom, width = font.composed_extent("é")
    assert top > char_info("e").top + 0.2 and bottom == 0.0 and width == char_info("e").width
    assert font.composed_extent("ç")[1] < -0.2 and font.composed_extent("ß") is None


def test_the_composition_table_points_at_base_and_mark_rows():
    codes = np.array([ord(c) for c in "'.aeéöß"], np.int32)
    base, mark, boxes, composed = font.composition_table(codes)
    assert composed.tolist() == [False, False, False, False, True, False, False]  # no "o" row
    assert (base[4], mark[4]) == (3, 0)
    np.testing.assert_array_equal(boxes[4], font.composition("é").boxes)
    assert base[:4].tolist() == mark[:4].tolist() == [0, 1, 2, 3] and not boxes[5].any()
