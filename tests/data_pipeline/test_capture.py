"""Another capture set-up (data_pipeline/capture.py): synthetic pen-stroke glyphs re-drawn with
a thicker pen, written into printed template sheets, photographed and extracted come back to
the right record, changed but alike; what extraction loses is counted; a dataset whose strokes
do not re-draw to its images is refused."""

from collections import Counter

import numpy as np
import pytest

from data_pipeline import capture, dataset, schema, sheet_sim, tfrecords
from data_pipeline.sources.ink import open_ink

WRITERS = ("lab:ann", "lab:bob")
CHARS = "oxlv-"  # o x v: x-height letters (each writer's scale), l tall, - a small mark
PER = 3  # samples per writer and character: more than `repeats`, so two sheet sets


def _shape(ch: str, rng) -> list[np.ndarray]:
    """One sample of a character: random pen strokes, every sample its own shape (tall for
    'l', a short flat mark for '-'), in tablet units."""
    if ch == "-":
        x = np.sort(rng.uniform(-3, 3, 4))
        return [np.stack([x, rng.uniform(-0.6, 0.6, 4)], 1) * 3 + 100]
    h = 9.0 if ch == "l" else 5.0
    return [np.stack([rng.uniform(-4, 4, 6), rng.uniform(-h, h, 6)], 1) * 3 + 100
            for _ in range(2)]


def _strokes(path, seed=0, jitter=0.0):
    rng = np.random.default_rng(seed)
    points, lengths, counts, labels, writer_ids = [], [], [], [], []
    for wi in range(len(WRITERS)):
        for ch in CHARS:
            for _ in range(PER):
                strokes = _shape(ch, rng)
                for s in strokes:
                    points.append(s + jitter * rng.normal(size=s.shape))
                    lengths.append(len(s))
                counts.append(len(strokes))
                labels.append(ch)
                writer_ids.append(wi)
    np.savez(path, points=np.concatenate(points).astype(np.float32),
             stroke_lengths=np.array(lengths, np.int32),
             sample_stroke_counts=np.array(counts, np.int32), labels=np.array(labels),
             writer_ids=np.array(writer_ids, np.int32), writer_names=np.array(WRITERS))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture")
    strokes = _strokes(root / "strokes.npz")
    out = root / "ds"
    tfrecords.write_dataset(open_ink(strokes, image_size=32), out, split="none", progress=False)
    return {"root": root, "strokes": strokes, "data_dir": out}


SETUP = capture.CaptureSetup(pen_width=0.1, size=48, dpi=150, repeats=2, seed=3)


def test_recaptured_glyphs_come_back_to_their_records_changed_but_alike(data, tmp_path):
    images, chars, writers = dataset.load_glyphs(data["data_dir"], "train", 32)
    n = len(images)
    asked = np.arange(n) % 5 != 4  # not all of them: the others stay unasked
    got = capture.recapture_split(data["data_dir"], "train", np.flatnonzero(asked), SETUP,
                                  workdir=tmp_path / "photos")
    rep = got.report
    assert rep["asked"] == asked.sum() and rep["captured"] + rep["lost"] == rep["asked"]
    assert rep["lost"] == 0, rep["lost_glyphs"]
    assert np.array_equal(got.asked, asked) and np.array_equal(got.captured, asked)
    assert rep["writers"] == 2 and rep["sheet_pages"] == 4  # 2 writers x 2 sheet sets x 1 page
    assert len(list((tmp_path / "photos").glob("*.jpg"))) == 4
    assert list(got.keys) == dataset.split_keys(data["data_dir"], "train")
    assert not got.glyphs[~asked].any()
    clean = schema.to_uint8(images[..., 0])
    back = got.glyphs
    idx = np.flatnonzero(asked)
    # Each glyph is its own record's strokes drawn with the setup's pen (normalised as
    # extraction does), and far less like any other record's: the map back is exact.
    source = open_ink(data["strokes"], image_size=32)
    drawn = np.stack([sheet_sim.reference_glyph(source.draw(
        source.sample_index(k), SETUP.pen_width, SETUP.size)[0], 32) for k in got.keys])
    iou = np.array([[sheet_sim.soft_iou(drawn[j], back[i]) for j in range(n)] for i in idx])
    own = iou[np.arange(len(idx)), idx]
    iou[np.arange(len(idx)), idx] = 0
    assert own.min() > 0.7 and (own > iou.max(axis=1) + 0.05).all(), (own, iou.max(axis=1))
    # Against the clean glyph: a letter is changed (the thicker pen) but alike; a small mark,
    # kept small in the dataset's box (min_box), fills the box as extraction draws every glyph.
    to_clean = np.array([sheet_sim.soft_iou(clean[i], back[i]) for i in idx])
    labels = tfrecords.load_manifest(data["data_dir"])["charset"]
    mark = np.array([labels[c] == "-" for c in chars[idx]])
    assert 0.6 < to_clean[~mark].min() and to_clean[~mark].max() < 0.9, to_clean
    ink_ratio = back[idx].sum(axis=(1, 2)) / clean[idx].sum(axis=(1, 2))
    assert ink_ratio[~mark].min() > 1.1 and np.median(ink_ratio[~mark]) > 1.2, ink_ratio
    width = np.array([[np.ptp(np.flatnonzero(g.max(axis=0) > 127)) for g in glyphs[idx]]
                      for glyphs in (clean, back)])
    assert mark.sum() >= 4 and (width[1, mark] > 1.3 * width[0, mark]).all(), width
    assert np.array_equal(got.images[idx], schema.to_float(back[idx])[..., None])
    # The .npz round trip.
    got.save(tmp_path / "cap.npz")
    again = capture.Recapture.load(tmp_path / "cap.npz")
    assert again.setup == SETUP and again.report == rep
    for field in ("keys", "glyphs", "asked", "captured"):
        assert np.array_equal(getattr(again, field), getattr(got, field))


def test_glyphs_extraction_loses_are_counted_with_their_reason(data, monkeypatch):
    """Writer 0's second sheet comes out blank (no markers): its glyphs are lost with the sheet
    set; one cell of writer 1 is left unwritten: that glyph is lost as an empty cell."""
    photograph, place = sheet_sim.random_photograph, capture._place
    photos, placed = [], []

    def blank_second(page, rng):
        photos.append(1)
        return photograph(np.full_like(page, 255) if len(photos) == 2 else page, rng)

    def skip_one(page, cell, *args):
        placed.append(cell["char"])
        return False if len(placed) == len(CHARS) * PER + 1 else place(page, cell, *args)

    monkeypatch.setattr(sheet_sim, "random_photograph", blank_second)
    monkeypatch.setattr(capture, "_place", skip_one)
    source = open_ink(data["strokes"], image_size=32)
    records = list(source)
    out, rep = capture.recapture(source, [r.key for r in records], SETUP)
    assert len(photos) == 4 and len(placed) == len(records)
    lost = {e["key"]: e for e in rep["lost_glyphs"]}
    per_set = len(CHARS) * SETUP.repeats
    seen, second_set = Counter(), set()  # the j-th glyph of a character: sheet set j // repeats
    for r in records:
        if r.writer == WRITERS[0] and seen[r.char] >= SETUP.repeats:
            second_set.add(r.key)
        seen[r.char] += r.writer == WRITERS[0]
    assert rep["asked"] == len(records) and rep["lost"] == len(lost) == len(records) - rep[
        "captured"]
    assert rep["lost_by_reason"] == {"no glyph from the sheet set": len(CHARS) * PER - per_set,
                                     "cell read as empty": 1}
    assert {k for k, e in lost.items() if e["reason"] != "cell read as empty"} == second_set
    empty = [e for e in lost.values() if e["reason"] == "cell read as empty"]
    assert empty[0]["writer"] == WRITERS[1] and empty[0]["char"] == placed[len(CHARS) * PER]
    for r, o in zip(records, out):
        assert (o is None) == (r.key in lost)
    assert rep["photos_refused"] == 1


def test_other_strokes_and_bad_settings_are_refused(data, tmp_path):
    moved = _strokes(tmp_path / "other.npz", jitter=0.5)  # the same samples, slightly moved
    with pytest.raises(ValueError, match="do not match the stroke files"):
        capture.recapture_split(data["data_dir"], "train", [0, 1], SETUP, strokes=moved)
    assert capture.CaptureSetup.parse("pen=0.07, dpi=300") == capture.CaptureSetup(
        pen_width=0.07, dpi=300)
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        capture.CaptureSetup.parse("thickness=2")
    with pytest.raises(ValueError, match="is not a number"):
        capture.CaptureSetup.parse("pen=thick")
    with pytest.raises(ValueError, match="outside"):
        capture.CaptureSetup.parse("pen=0.7")
