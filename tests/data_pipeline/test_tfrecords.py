import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import build, dataset, tfrecords
from data_pipeline.schema import to_float
from tests.conftest import ListSource, make_records

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, name="ds", records=None, **kw):
    kw.setdefault("progress", False)
    return tfrecords.write_dataset(ListSource(make_records() if records is None else records), tmp_path / name, **kw)


def test_write_read_round_trip_and_manifest(tmp_path):
    records = make_records()
    manifest = _write(tmp_path, records=records, split="none", num_shards=3)
    out = tmp_path / "ds"
    assert sorted(p.name for p in out.iterdir()) == [
        "contact_sheet.png", "manifest.json", "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord", "train-00002-of-00003.tfrecord"]
    assert manifest["charset"] == ["a", "b", "c"] and manifest["writers"] == ["w0", "w1", "w2", "w3"]
    assert manifest["resolution"] == [16, 16] and manifest["has_geometry"] is True
    train = manifest["splits"]["train"]
    assert train["count"] == 36 and train["per_char"] == {"a": 12, "b": 12, "c": 12}
    assert [s["count"] for s in train["shards"]] == [12, 12, 12]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    back = {r.key: r for r in tfrecords.read_records(out, "train")}
    assert len(back) == 36
    for rec in records:
        got = back[rec.key]
        assert (got.char, got.writer, got.source) == (rec.char, rec.writer, rec.source)
        np.testing.assert_array_equal(got.image, rec.image)
        assert got.geometry.as_list() == pytest.approx(rec.geometry.as_list())


def test_same_input_and_seed_give_same_bytes(tmp_path):
    _write(tmp_path, "a", seed=3)
    _write(tmp_path, "b", seed=3)
    _write(tmp_path, "c", seed=4)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a/manifest.json").read_bytes() != (tmp_path / "c/manifest.json").read_bytes()


def test_two_processes_build_the_same_bytes(tmp_path):
    """Across processes too (str hashing differs between them, and an Example's feature map
    used to be serialized in hash order)."""
    for name, hashseed in (("p1", "1"), ("p2", "2")):
        out = subprocess.run(
            [sys.executable, "-m", "data_pipeline.build", "--source=simulated",
             f"--out={tmp_path / name}", "--quiet", "--source_param", "num_writers=2", "--source_param", "samples_per_char=1",
             "--source_param", "charset=ab"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": hashseed, "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert out.returncode == 0, out.stderr[-2000:]
    for f in sorted((tmp_path / "p1").iterdir()):
        assert f.read_bytes() == (tmp_path / "p2" / f.name).read_bytes(), f.name


def test_writer_split_holds_out_whole_writers(tmp_path):
    m = _write(tmp_path, split="writer", test_fraction=0.25)
    train_w, test_w = set(m["splits"]["train"]["per_writer"]), set(m["splits"]["test"]["per_writer"])
    assert len(test_w) == 1 and not train_w & test_w and train_w | test_w == set(m["writers"])
    assert m["split"]["test_writers"] == sorted(test_w)
    # A model trained on "train" has rows for the held-out writers that it never trains.
    assert tfrecords.writers_without_glyphs(m, "train") == sorted(test_w)
    assert tfrecords.writers_without_glyphs(m, "test") == [w for w in m["writers"]
                                                          if w in train_w]
    assert tfrecords.writers_without_glyphs(m, "nope") == m["writers"]
    r = _write(tmp_path, "r", split="random", test_fraction=0.3)
    assert r["splits"]["train"]["count"] + r["splits"]["test"]["count"] == 36
    assert 0 < r["splits"]["test"]["count"] < 36
    with pytest.raises(ValueError, match="only 1 writer"):
        _write(tmp_path, "one", records=make_records(writers=("solo",)), split="writer")


def test_bad_sources_leave_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="produced no records"):
        _write(tmp_path, "empty", records=[None][:0])
    assert not (tmp_path / "empty").exists()

    class Interrupted(ListSource):
        def __iter__(self):
            yield from self.records
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C half-way

    with pytest.raises(KeyboardInterrupt):
        tfrecords.write_dataset(Interrupted(make_records()[:5]), tmp_path / "int", progress=False)
    assert not (tmp_path / "int").exists()
    assert list(tmp_path.iterdir()) == [], "temporary build directories must be removed"
    mixed = make_records(size=16) + make_records(writers=("wx",), size=20)
    with pytest.raises(ValueError, match=r"record list:wx:a:0: image shape \(20, 20\)"):
        _write(tmp_path, "mixed", records=mixed)
    with pytest.raises(ValueError, match="not in the charset"):
        _write(tmp_path, "cs", charset=["a", "b"])


def test_existing_output_is_not_overwritten_without_flag(tmp_path):
    _write(tmp_path, seed=1)
    before = (tmp_path / "ds/manifest.json").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        _write(tmp_path, seed=2)
    assert (tmp_path / "ds/manifest.json").read_bytes() == before
    _write(tmp_path, seed=2, overwrite=True)
    assert (tmp_path / "ds/manifest.json").read_bytes() != before


def test_verify_detects_corruption_truncation_and_strays(tmp_path):
    _write(tmp_path, split="none", num_shards=2)
    ds = tmp_path / "ds"
    assert tfrecords.verify_dataset(ds) == []
    shard = ds / "train-00001-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte inside a record's payload
    shard.write_bytes(bytes(data))
    problems = tfrecords.verify_dataset(ds)
    assert any("sha256" in p and shard.name in p for p in problems)
    assert any("corrupted at record" in p and shard.name in p for p in problems)
    shard.write_bytes(bytes(data[: len(data) - 100]))
    problems = tfrecords.verify_dataset(ds)
    assert any("truncated" in p and shard.name in p for p in problems)
    with pytest.raises(tfrecords.DatasetError, match=f"{shard.name}.*truncated"):
        dataset.make_dataset(ds, "train", 4)
    (ds / "extra.tfrecord").write_bytes(b"")
    assert any("not listed" in p for p in tfrecords.verify_dataset(ds, deep=False))
    assert build.main(["verify", str(ds)]) == 1


def test_manifest_errors(tmp_path):
    with pytest.raises(tfrecords.DatasetError, match="does not exist"):
        tfrecords.load_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(tfrecords.DatasetError, match="has no manifest.json"):
        dataset.make_dataset(tmp_path / "empty", "train", 4)
    _write(tmp_path, split="none")
    with pytest.raises(tfrecords.DatasetError, match="no split 'test'"):
        dataset.make_dataset(tmp_path / "ds", "test", 4)
    m = json.loads((tmp_path / "ds/manifest.json").read_text())
    m["splits"]["train"]["count"] += 1
    (tmp_path / "ds/manifest.json").write_text(json.dumps(m))
    assert any("manifest count" in p for p in tfrecords.verify_dataset(tmp_path / "ds"))
    (tmp_path / "ds/manifest.json").write_text("{not json")
    with pytest.raises(tfrecords.DatasetError, match="not valid JSON"):
        tfrecords.load_manifest(tmp_path / "ds")
    with pytest.raises(ValueError, match="charset mismatch"):
        _write(tmp_path, "cs", split="none")
        dataset.make_dataset(tmp_path / "cs", "train", 4, expected_charset=["a", "b", "x"])


def test_reader_spec_values_and_labels(tmp_path):
    records = make_records()
    _write(tmp_path, records=records, split="none", num_shards=2)
    ds = dataset.make_dataset(tmp_path / "ds", "train", 8, shuffle=False, repeat=False,
                              with_geometry=True)
    spec = ds.element_spec
    assert spec["image"].shape.as_list() == [8, 16, 16, 1] and spec["image"].dtype == tf.float32
    assert spec["char"].dtype == tf.int32 and spec["writer"].dtype == tf.int32
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 36 // 8  # drop_remainder
    by_pixels = {(int(r.image[0, 0]), int(r.image[0, 1]), int(r.image[0, 2])): r for r in records}
    for b in batches:
        assert b["image"].min() >= -1 and b["image"].max() <= 1
        for img, c, w, g in zip(b["image"], b["char"], b["writer"], b["geometry"]):
            u8 = np.rint((img[..., 0] + 1) * 127.5).astype(int)
            rec = by_pixels[(u8[0, 0], u8[0, 1], u8[0, 2])]
            np.testing.assert_allclose(img[..., 0], to_float(rec.image), atol=1e-6)
            assert c == "abc".index(rec.char) and w == int(rec.writer[1])
            np.testing.assert_allclose(g, rec.geometry.as_list(), atol=1e-6)


def _order(ds, n=4):
    return [tuple(b["image"][:, 0, 0, 0].tolist()) for b in ds.take(n).as_numpy_iterator()]


def test_reader_shuffle_is_seeded(tmp_path):
    _write(tmp_path, split="none", num_shards=3)
    a = _order(dataset.make_dataset(tmp_path / "ds", "train", 6, seed=1))
    b = _order(dataset.make_dataset(tmp_path / "ds", "train", 6, seed=1))
    c = _order(dataset.make_dataset(tmp_path / "ds", "train", 6, seed=2))
    plain = _order(dataset.make_dataset(tmp_path / "ds", "train", 6, shuffle=False))
    assert a == b and a != c and a != plain


@pytest.mark.parametrize("num_shards", [1, 4])
def test_reader_input_context_shards_between_workers(tmp_path, num_shards):
    _write(tmp_path, split="none", num_shards=num_shards)
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid,
                                         num_replicas_in_sync=2)
        ds = dataset.make_dataset(tmp_path / "ds", "train", 4, shuffle=False, repeat=False,
                                  input_context=ctx, drop_remainder=False)
        batches = list(ds.as_numpy_iterator())
        assert all(b["image"].shape[0] <= 2 for b in batches)  # per-replica batch = 4 / 2
        seen.append({tuple(img[0, :3, 0]) for b in batches for img in b["image"]})
    assert not seen[0] & seen[1] and len(seen[0]) + len(seen[1]) == 36


def test_reader_pads_or_resizes_to_model_resolution(tmp_path):
    _write(tmp_path, records=make_records(size=28), split="none")
    padded = next(iter(dataset.make_dataset(tmp_path / "ds", "train", 4, image_size=32,
                                            shuffle=False)))["image"].numpy()
    assert padded.shape == (4, 32, 32, 1)
    assert (padded[:, :2] == -1).all() and (padded[:, -2:] == -1).all()  # 2-pixel paper border
    resized = next(iter(dataset.make_dataset(tmp_path / "ds", "train", 4, image_size=64)))
    assert resized["image"].shape == (4, 64, 64, 1)
    small = next(iter(dataset.make_dataset(tmp_path / "ds", "train", 4, image_size=16)))
    assert small["image"].shape == (4, 16, 16, 1)
    assert float(tf.reduce_min(small["image"])) >= -1.0 and float(tf.reduce_max(small["image"])) <= 1.0


def test_build_cli_params_and_errors(tmp_path, capsys):
    assert build.parse_params(["a=1", "b=0.5", "c=true", "d=none", "e=x=y"]) == {
        "a": 1, "b": 0.5, "c": True, "d": None, "e": "x=y"}
    assert build.main(["--source=nosuch", f"--out={tmp_path / 'x'}"]) == 2
    assert "unknown source 'nosuch'" in capsys.readouterr().err
    assert build.main(["--source=ink", "--source_param", "oops", f"--out={tmp_path / 'x'}"]) == 2
    assert "not key=value" in capsys.readouterr().err
    assert build.main(["verify", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "x").exists()
