"""Splits as NumPy arrays: load_glyphs, glyphs_in_charset and stack_sets (make_dataset:
test_tfrecords.py)."""

import numpy as np
import pytest

from data_pipeline import dataset, tfrecords
from tests.conftest import ListSource, make_records


@pytest.fixture
def data_dir(tmp_path):
    records = make_records(chars="abc", per=2)
    # "d" is in the charset but has no glyph: a model's charset need not hold it.
    tfrecords.write_dataset(ListSource(records), tmp_path / "ds", split="none", progress=False,
                            charset=["a", "b", "c", "d"])
    return tmp_path / "ds"


def test_load_glyphs_limit_and_order(data_dir):
    images, chars, writers = dataset.load_glyphs(data_dir, "train", 16)
    assert images.shape == (24, 16, 16, 1) and images.dtype == np.float32
    assert chars.dtype == np.int32 and writers.dtype == np.int32
    few = dataset.load_glyphs(data_dir, "train", 16, limit=5)
    assert len(few[0]) == 5 and np.array_equal(few[0], images[:5])
    with pytest.raises(tfrecords.DatasetError, match="no split 'test'"):
        dataset.load_glyphs(data_dir, "test", 16)


def test_glyphs_in_charset_remaps_char_ids(data_dir):
    images, chars, writers = dataset.load_glyphs(data_dir, "train", 16)
    labels = tfrecords.load_manifest(data_dir)["charset"]
    model_charset = ["x", "c", "a", "b"]
    m_images, m_chars, m_writers = dataset.glyphs_in_charset(data_dir, "train", model_charset, 16)
    assert np.array_equal(m_images, images) and np.array_equal(m_writers, writers)
    assert m_chars.dtype == np.int32
    assert [model_charset[i] for i in m_chars] == [labels[i] for i in chars]


def test_glyphs_in_charset_names_the_labels_it_lacks(data_dir):
    with pytest.raises(ValueError) as e:
        dataset.glyphs_in_charset(data_dir, "train", ["a", "x"], 16)
    assert str(data_dir) in str(e.value) and "['b', 'c']" in str(e.value)
    assert "'d'" not in str(e.value)  # no glyph of "d" in the split: not a problem


def test_stack_sets_pads_masks_and_cuts(data_dir):
    images, chars, _ = dataset.load_glyphs(data_dir, "train", 16)
    sets = [np.array([3, 0, 5]), np.array([7]), np.array([1, 2, 4, 6])]
    x, c, m = dataset.stack_sets(images, chars, sets, 3)
    assert x.shape == (3, 3, 16, 16, 1) and x.dtype == np.float32
    assert c.dtype == np.int32 and m.dtype == np.float32
    assert m.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 1]]
    assert np.array_equal(x[0], images[[3, 0, 5]]) and c[0].tolist() == chars[[3, 0, 5]].tolist()
    assert np.array_equal(x[2], images[[1, 2, 4]])  # longer than k: its first k
    assert (x[1, 1:] == -1).all() and c[1, 1:].tolist() == [0, 0]  # padding is blank paper
