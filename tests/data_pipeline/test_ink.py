import numpy as np
import pytest

from data_pipeline import sources


def _strokes_npz(path, drop=None, **override):
    """Three writers, each writing 'l' (a vertical bar), '-' and 'o' (a circle) as pen strokes."""
    t = np.linspace(0, 2 * np.pi, 20)
    shapes = {
        "l": [np.stack([np.zeros(10), np.linspace(0, 100, 10)], 1)],
        "-": [np.stack([np.linspace(0, 100, 10), np.zeros(10)], 1)],
        "o": [np.stack([50 + 40 * np.cos(t), 50 + 40 * np.sin(t)], 1)],
    }
    points, lengths, counts, labels, writer_ids, quality = [], [], [], [], [], []
    for w in range(3):
        for ch, strokes in shapes.items():
            for s in strokes:
                points.append(s * (1 + w))
                lengths.append(len(s))
            counts.append(len(strokes))
            labels.append(ch)
            writer_ids.append(w)
            quality.append("OK" if ch != "-" else "?")
    data = dict(points=np.concatenate(points).astype(np.float32),
                stroke_lengths=np.array(lengths, np.int32),
                sample_stroke_counts=np.array(counts, np.int32), labels=np.array(labels),
                writer_ids=np.array(writer_ids, np.int32),
                writer_names=np.array(["lab:a", "lab:b", "lab:c"]), quality=np.array(quality))
    data.update(override)
    if drop:
        del data[drop]
    np.savez(path, **data)
    return str(path)


def test_ink_renders_shapes_labels_and_writers(tmp_path):
    src = sources.open_source("ink", path=_strokes_npz(tmp_path / "s.npz"), image_size=24)
    recs = list(src)
    assert len(src) == len(recs) == 9
    assert [r.char for r in recs[:3]] == ["l", "-", "o"]
    assert {r.writer for r in recs} == {"lab:a", "lab:b", "lab:c"}
    assert all(r.image.shape == (24, 24) and r.image.dtype == np.uint8 for r in recs)
    assert all(r.geometry is None and r.source == "ink" for r in recs)
    bar, dash, ring = recs[0].image, recs[1].image, recs[2].image
    # The vertical bar's ink is in a central column spanning the height, the dash in a row.
    cols, rows = np.flatnonzero(bar.max(0) > 128), np.flatnonzero(bar.max(1) > 128)
    assert cols.max() - cols.min() <= 4 and rows.max() - rows.min() >= 16
    assert np.ptp(np.flatnonzero(dash.max(1) > 128)) <= 4
    assert ring[12, 12] < 30 and ring.max() == 255  # a ring: blank in the middle, ink high
    # Same shape at another scale (writer b writes twice as large) renders the same after fitting.
    assert np.abs(recs[0].image.astype(int) - recs[3].image.astype(int)).mean() < 3


def test_ink_filters_and_width_variation(tmp_path):
    path = _strokes_npz(tmp_path / "s.npz")
    assert len(sources.open_source("ink", path=path, quality="ok")) == 6
    assert {r.writer for r in sources.open_source("ink", path=path, writers="lab:b")} == {"lab:b"}
    assert {r.char for r in sources.open_source("ink", path=path, chars="o")} == {"o"}
    a = [r.image for r in sources.open_source("ink", path=path, width_variation=0.5, seed=1)]
    b = [r.image for r in sources.open_source("ink", path=path, width_variation=0.5, seed=1)]
    c = [r.image for r in sources.open_source("ink", path=path, width_variation=0.5, seed=2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_ink_bad_input_messages(tmp_path):
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['writer_ids'\]"):
        sources.open_source("ink", path=_strokes_npz(tmp_path / "a.npz", drop="writer_ids"))
    with pytest.raises(ValueError, match="'stroke_lengths' is malformed"):
        sources.open_source("ink", path=_strokes_npz(
            tmp_path / "b.npz", stroke_lengths=np.array([5, 5], np.int32)))
    with pytest.raises(ValueError, match="no sample passes"):
        sources.open_source("ink", path=_strokes_npz(tmp_path / "c.npz"), chars="xyz")
    with pytest.raises(ValueError, match="no writer"):
        sources.open_source("ink", path=_strokes_npz(tmp_path / "d.npz"), writers="nobody")
    bad = tmp_path / "e.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        sources.open_source("ink", path=str(bad))
    with pytest.raises(FileNotFoundError):
        sources.open_source("ink", path=str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="does not take parameter"):
        sources.open_source("ink", path="x", colour="red")
    with pytest.raises(ValueError, match="unknown source 'foo'"):
        sources.open_source("foo")


def _letters_and_marks(tmp_path, zero_glitch=False):
    """Writer a writes small (x-height 10 units), writer b large (40); the symbols file lists
    the writers in the other order. Returns "letters.npz,symbols.npz"."""
    t = np.linspace(0, 2 * np.pi, 24)
    ring = np.stack([5 * np.cos(t), 5 * np.sin(t)], 1)  # an "o", 10 units tall
    dot = np.array([[0, 0], [0.4, 0.3], [0.2, 0.6]])  # a "." of 0.06 x-heights
    rows_l, rows_s = [], []
    for w, unit in (("lab:a", 1.0), ("lab:b", 4.0)):
        rows_l += [(w, ch, ring * unit + 50) for ch in "oooxxe"]
        pts = dot * unit + 50
        rows_s += [(w, ".", np.concatenate([pts, [[0, 0]]]) if zero_glitch else pts)]
    files = []
    for name, rows, names in (("letters", rows_l, ["lab:a", "lab:b"]),
                              ("symbols", rows_s, ["lab:b", "lab:a"])):
        pts = [r[2] for r in rows]
        np.savez(tmp_path / f"{name}.npz", points=np.concatenate(pts).astype(np.float32),
                 stroke_lengths=np.array([len(p) for p in pts], np.int32),
                 sample_stroke_counts=np.ones(len(rows), np.int32),
                 labels=np.array([r[1] for r in rows]),
                 writer_ids=np.array([names.index(r[0]) for r in rows], np.int32),
                 writer_names=np.array(names))
        files.append(str(tmp_path / f"{name}.npz"))
    return ",".join(files)


def test_ink_reads_letters_and_symbols_as_one_and_sizes_marks(tmp_path):
    """Several files are one source, writers matched by name; each record's size is in its
    writer's x-heights (pen included), and a mark smaller than min_box x-heights stays small in
    its box instead of being blown up into pen jitter."""
    path = _letters_and_marks(tmp_path)
    src = sources.open_source("ink", path=path, image_size=32)
    recs = list(src)
    assert len(recs) == 14 and src.writers == ["lab:a", "lab:b"]
    assert src.params["path"] == path.split(",")
    dots = [r for r in recs if r.char == "."]
    assert [r.writer for r in dots] == ["lab:a", "lab:b"]  # ids index the reversed names
    assert dots[1].key.startswith("ink:symbols.npz:")
    pen = src.pen_x_heights
    for r in dots:  # the same dot against each writer's letters: 0.06 x-heights plus the pen
        assert r.size == pytest.approx((0.06 + pen, 0.04 + pen), abs=1e-3)
        rows, cols = np.flatnonzero(r.image.max(1) > 96), np.flatnonzero(r.image.max(0) > 96)
        assert np.ptp(rows) <= 5 and np.ptp(cols) <= 5  # a dot, not a box-filling scribble
    assert np.array_equal(dots[0].image, dots[1].image)
    o = next(r for r in recs if r.char == "o")
    assert o.size == pytest.approx((1 + pen, 1 + pen), abs=5e-3)
    blown = [r for r in sources.open_source("ink", path=path, min_box=0) if r.char == "."]
    assert np.ptp(np.flatnonzero(blown[0].image.max(1) > 96)) >= 20
    counts = src.counts
    assert counts["writers_without_scale"] == 0 and counts["samples_without_size"] == 0


def test_ink_drops_zero_points_and_requires_chars(tmp_path):
    path = _letters_and_marks(tmp_path, zero_glitch=True)
    src = sources.open_source("ink", path=path)
    assert src.counts["zero_point_samples"] == 2 and src.counts["zero_points"] == 2
    dot = next(r for r in src if r.char == ".")
    assert dot.size[0] < 0.2  # the (0, 0) point does not stretch the box
    kept = sources.open_source("ink", path=path, zero_points="keep")
    assert next(r for r in kept if r.char == ".").size[0] > 1
    assert sources.open_source("ink", path=path, require_chars="o.").counts
    letters = path.split(",")[0]
    with pytest.raises(ValueError, match=r"require_chars='alnum\+symbols'.*'0123.*path="):
        sources.open_source("ink", path=letters, require_chars="alnum+symbols")
    with pytest.raises(FileNotFoundError, match="ink file .*nope.npz does not exist"):
        sources.open_source("ink", path=letters + "," + str(tmp_path / "nope.npz"))
    with pytest.raises(ValueError, match="parameter 'path' is empty"):
        sources.open_source("ink", path="")
    with pytest.raises(ValueError, match="zero_points='some' is not one of"):
        sources.open_source("ink", path=letters, zero_points="some")
    with pytest.raises(ValueError, match="min_box -1.0 is outside"):
        sources.open_source("ink", path=letters, min_box=-1)


def test_ink_redraws_a_record_by_key_with_another_pen(tmp_path):
    """`draw` with the defaults is the record's image; another pen or size re-draws the same
    strokes (data_pipeline.capture), and the writer's x-height in pixels scales with the size."""
    src = sources.open_source("ink", path=_letters_and_marks(tmp_path), image_size=32)
    for rec in src:
        i = src.sample_index(rec.key)
        image, xh = src.draw(i)
        assert np.array_equal(image, rec.image)
        thick, xh_thick = src.draw(i, pen_width=0.09)
        assert int(thick.sum()) > int(rec.image.sum())
        big, xh_big = src.draw(i, pen_width=0.09, image_size=64)
        assert big.shape == (64, 64) and xh_big == pytest.approx(2 * xh_thick)
        if rec.char == "o":  # the ring is one x-height tall; a thicker pen leaves less room
            assert xh_thick < xh < 32
    with pytest.raises(KeyError):
        src.sample_index("ink:letters.npz:999")
