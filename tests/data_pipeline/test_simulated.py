import json

import numpy as np
import pytest

from data_pipeline import sources
from data_pipeline.charset import DEFAULT_CHARSET
from data_pipeline.sources.simulated import open_simulated


def _records(**kw):
    return list(open_simulated(**kw))


def test_shapes_labels_writers_keys_and_order():
    src = open_simulated(num_writers=2, samples_per_char=2, image_size=24)
    assert src.name == "simulated"
    assert len(src) == 2 * len(DEFAULT_CHARSET) * 2
    recs = list(src)
    assert len(recs) == len(src)
    for r in recs:
        r.check()
        assert r.source == "simulated"
        assert r.image.dtype == np.uint8 and r.image.shape == (24, 24)
        assert r.image.max() > 200, f"{r.key} has no full ink"
        assert r.geometry is not None
    assert {r.char for r in recs} == set(DEFAULT_CHARSET)
    assert [r.writer for r in recs[:: len(recs) // 2]] == ["sim-000", "sim-001"]
    # writer-major, then char, then sample
    expected = [f"simulated:sim-{w:03d}:{c}:{s}"
                for w in range(2) for c in DEFAULT_CHARSET for s in range(2)]
    assert [r.key for r in recs] == expected
    assert [r.char for r in recs[:4]] == ["0", "0", "1", "1"]


def test_params_are_json_and_registry_opens_it():
    src = sources.open_source("simulated", num_writers=1, samples_per_char=1, charset="digits",
                              image_size=16)
    assert json.loads(json.dumps(src.params)) == src.params
    assert src.params["num_writers"] == 1 and src.params["charset"] == "digits"
    recs = list(src)
    assert [r.char for r in recs] == list("0123456789")
    assert all(r.image.shape == (16, 16) for r in recs)


def test_deterministic_and_seed_dependent():
    kw = dict(num_writers=2, samples_per_char=2, charset="aB3?", image_size=20)
    a, b = _records(**kw), _records(**kw)
    assert [r.image.tobytes() for r in a] == [r.image.tobytes() for r in b]
    assert [r.geometry for r in a] == [r.geometry for r in b]
    c = _records(seed=1, **kw)
    same = sum(np.array_equal(x.image, y.image) for x, y in zip(a, c))
    assert same == 0


def test_writer_is_stable_across_num_writers_and_charset():
    small = _records(num_writers=2, samples_per_char=2, charset="agQ", image_size=20)
    big = _records(num_writers=3, samples_per_char=2, charset="xagQ7", image_size=20)
    w1_small = {r.key: r.image.tobytes() for r in small if r.writer == "sim-001"}
    w1_big = {r.key: r.image.tobytes() for r in big if r.writer == "sim-001"}
    assert w1_small and all(w1_big[k] == v for k, v in w1_small.items())


def test_workers_match_single_process():
    kw = dict(num_writers=3, samples_per_char=2, charset="a1&", image_size=16)
    serial = _records(**kw)
    pooled = _records(workers=2, **kw)
    assert [r.key for r in serial] == [r.key for r in pooled]
    assert [r.image.tobytes() for r in serial] == [r.image.tobytes() for r in pooled]
    assert [r.geometry for r in serial] == [r.geometry for r in pooled]


def test_geometry_is_sensible():
    recs = _records(num_writers=12, samples_per_char=2, charset="gpyxoAHM.-", image_size=16)
    by_char = {}
    for r in recs:
        g = r.geometry
        assert g.top > g.bottom and g.right > g.left
        by_char.setdefault(r.char, []).append(g)
    for c in "gpy":
        assert all(g.bottom < -0.2 for g in by_char[c]), c
        assert np.median([g.top for g in by_char[c]]) == pytest.approx(1.0, abs=0.25)
    for c in "xo":
        tops = [g.top for g in by_char[c]]
        bottoms = [g.bottom for g in by_char[c]]
        assert all(abs(t - 1.0) <= 0.4 for t in tops), (c, tops)
        assert all(abs(b) <= 0.35 for b in bottoms), (c, bottoms)
        assert np.median(tops) == pytest.approx(1.0, abs=0.2)
        assert np.median(bottoms) == pytest.approx(0.0, abs=0.15)
    for c in "AHM":
        assert all(g.top > 1.2 for g in by_char[c]), c
        assert all(abs(g.bottom) < 0.4 for g in by_char[c]), c
    # geometry keeps the true size of small marks...
    assert all(g.top < 0.4 and g.right - g.left < 0.5 for g in by_char["."])
    assert all(0.2 < g.bottom and g.top < 0.85 for g in by_char["-"])
    # ...while the image is normalised: a full stop becomes a big dot
    dots = [r.image for r in recs if r.char == "."]
    assert np.mean([np.mean(im > 128) for im in dots]) > 0.3


def test_style_consistency_within_writer():
    """Two samples of one writer's character are closer than the same character by two writers."""
    chars = "aegkrtyABGQ47?"
    k = 2
    recs = _records(num_writers=6, samples_per_char=k, charset=chars, image_size=24)
    imgs = {}
    for r in recs:
        imgs.setdefault((r.writer, r.char), []).append(r.image.astype(np.float32) / 255.0)
    writers = sorted({r.writer for r in recs})
    within, between = [], []
    for c in chars:
        for i, w in enumerate(writers):
            a, b = imgs[(w, c)]
            within.append(np.abs(a - b).mean())
            for v in writers[i + 1:]:
                between.append(np.abs(a - imgs[(v, c)][0]).mean())
    assert np.mean(within) < 0.7 * np.mean(between), (np.mean(within), np.mean(between))
    # ...but samples are not copies of each other
    assert np.mean(within) > 0.01


def test_larger_images_fit_the_box():
    recs = _records(num_writers=1, samples_per_char=1, charset="Wl/", image_size=64)
    for r in recs:
        assert r.image.shape == (64, 64)
        edge = np.concatenate([r.image[0], r.image[-1], r.image[:, 0], r.image[:, -1]])
        assert edge.max() < 64, r.key  # the ink is fitted inside the margin


@pytest.mark.parametrize("kw, word", [
    (dict(num_writers=0), "num_writers"),
    (dict(samples_per_char=0), "samples_per_char"),
    (dict(image_size=7), "image_size"),
    (dict(num_writers=2.5), "num_writers"),
    (dict(seed=-1), "seed"),
    (dict(workers=-1), "workers"),
    (dict(charset="ab\u00e9"), "charset"),
    (dict(charset=""), "charset"),
])
def test_bad_arguments(kw, word):
    with pytest.raises(ValueError, match=word):
        open_simulated(**kw)


def test_registry_rejects_unknown_parameter():
    with pytest.raises(ValueError, match="num_writers"):
        sources.open_source("simulated", writers=3)
