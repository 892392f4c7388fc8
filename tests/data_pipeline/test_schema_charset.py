import math

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import charset, schema
from data_pipeline.schema import Geometry, GlyphRecord


def test_default_charset_contents_and_classes():
    cs = charset.DEFAULT_CHARSET
    assert len(cs) == 10 + 26 + 26 + 13
    assert "".join(cs[:10]) == "0123456789" and "&" in cs and '"' in cs
    assert charset.char_info("g").cls == charset.DESCENDER and charset.char_info("g").bottom < 0
    assert charset.char_info("x").cls == charset.XHEIGHT and charset.char_info("x").top == 1.0
    assert charset.char_info("A").cls == charset.CAP and charset.char_info("A").top > 1.2
    assert charset.char_info("k").cls == charset.ASCENDER
    assert charset.char_info(".").cls == charset.PUNCT and charset.char_info(".").top < 0.5
    assert charset.char_info("'").bottom > 0.9  # apostrophe sits high
    assert charset.char_info("Cc").char == "C"  # a merged label takes its first character's class


def test_charset_lookup_with_merged_labels():
    cs = charset.Charset(["0", "Cc", "a"])
    assert cs.char_id("C") == cs.char_id("c") == cs.label_id("Cc") == 1
    assert "c" in cs and "z" not in cs
    assert cs.missing("Cab zz!") == ["b", "z", "!"]
    with pytest.raises(KeyError, match=r"'z' is not in the charset \['0', 'Cc', 'a'\]"):
        cs.char_id("z")
    # Messages list a charset whole up to SHOWN_LABELS labels, else its size and beginning.
    assert charset.describe_labels("abc") == "'abc'"
    long = [chr(0x100 + i) for i in range(charset.SHOWN_LABELS + 1)]
    assert charset.describe_labels(long) == (
        f"{charset.SHOWN_LABELS + 1} characters, beginning {''.join(long[:-1])!r}")
    assert charset.describe_labels(["Cc"] * 3, limit=2) == "3 labels, beginning ['Cc', 'Cc']"


def test_charset_validation_and_specs():
    with pytest.raises(ValueError, match="served by two"):
        charset.validate_charset(["Cc", "c"])
    with pytest.raises(ValueError, match="empty"):
        charset.validate_charset([])
    assert charset.parse_charset("digits+punct") == tuple("0123456789" + charset.PUNCTUATION)
    assert charset.parse_charset("abca") == ("a", "b", "c")
    with pytest.raises(ValueError, match=r"only in the model: 'c'.*only in data: 'd'"):
        charset.check_same_charset("abc", "abd", "the model", "data")


def _record(**kw):
    img = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    base = dict(char="é", writer="writer 1", source="test", image=img,
                geometry=Geometry(1.4, -0.5, 0.1, 0.9), key="t:1")
    base.update(kw)
    return GlyphRecord(**base)


def test_record_round_trip_keeps_every_field():
    rec = _record()
    back = schema.decode(schema.encode(rec))
    assert (back.char, back.writer, back.source, back.key) == ("é", "writer 1", "test", "t:1")
    np.testing.assert_array_equal(back.image, rec.image)
    assert back.geometry.as_list() == pytest.approx(rec.geometry.as_list())
    unknown = schema.decode(schema.encode(_record(geometry=None)))
    assert unknown.geometry is None


def test_record_check_names_the_record():
    with pytest.raises(ValueError, match=r"record t:1 .*2-D uint8"):
        _record(image=np.zeros((8, 8), np.float32)).check()
    with pytest.raises(ValueError, match="character must be"):
        _record(char="").check()
    with pytest.raises(ValueError, match="not a box"):
        _record(geometry=Geometry(0.0, 1.0, 0.0, 1.0)).check()


def test_image_conversions_are_inverse_and_share_polarity():
    u8 = np.array([0, 1, 127, 128, 254, 255], np.uint8)
    f = schema.to_float(u8)
    assert f[0] == -1.0 and f[-1] == 1.0 and f.dtype == np.float32
    np.testing.assert_array_equal(schema.to_uint8(f), u8)
    np.testing.assert_array_equal(schema.to_uint8(tf.constant(f)).numpy(), u8)
    np.testing.assert_allclose(schema.to_float(tf.constant(u8)).numpy(), f, atol=1e-6)
    assert schema.to_uint8(np.array([-3.0, 3.0])).tolist() == [0, 255]
    assert math.isnan(schema.UNKNOWN_GEOMETRY[0])


def test_size_round_trips_and_is_absent_where_unknown():
    img = np.zeros((8, 8), np.uint8)
    plain = schema.GlyphRecord("a", "w", "ink", img, key="k")
    sized = schema.GlyphRecord(".", "w", "ink", img, key="k", size=(0.25, 0.1875))
    assert schema.decode(schema.encode(sized)).size == (0.25, 0.1875)
    assert schema.decode(schema.encode(plain)).size is None
    assert schema.SIZE.encode() not in schema.encode(plain)  # other sources' bytes unchanged
    assert sized.ink_size == (0.25, 0.1875) and plain.ink_size is None
    with pytest.raises(ValueError, match=r"record k .*size \(0.0, 1.0\) is not"):
        schema.GlyphRecord(".", "w", "ink", img, key="k", size=(0.0, 1.0)).check()


def test_every_symbol_has_a_typographic_class():
    assert charset.parse_charset("symbols") == tuple(charset.SYMBOLS) and len(charset.SYMBOLS) == 32
    for c in charset.SYMBOLS:
        info = charset.char_info(c)
        assert info.cls == charset.PUNCT and info.mark in charset.MARK_CLASSES
        assert info.top > info.bottom
    assert charset.char_info(",").extent_of_height(0.8) == pytest.approx((0.18, -0.62))
    assert charset.char_info(".").extent_of_height(0.3) == (0.3, 0.0)
    assert charset.char_info("-").extent_of_height(0.1) == pytest.approx((0.55, 0.45))
