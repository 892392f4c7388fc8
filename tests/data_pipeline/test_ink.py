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
