"""The `unipen` source on release files the tests write (the layout and format of train_r01_v07),
and, where ../shared is present, on the raw sample of the real release."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_pipeline import build, sources, tfrecords
from data_pipeline.sources import unipen

ROOT = Path(__file__).resolve().parents[2]
RAW_SAMPLE = ROOT.parent / "shared/data/unipen/raw_sample"


def _pen(down, pts):
    return [".PEN_DOWN" if down else ".PEN_UP"] + [" ".join(str(v) for v in p) for p in pts]


def _bar(x, n=5):
    """A vertical bar of n points at x: (x, 0) .. (x, 40), plus a T column (ignored)."""
    return [(x, 10 * k, 7 * k) for k in range(n)]


# The pen data of writer "w1" of lab "abc": .COORD X Y T comes from the .doc file that the .dat
# includes first; components (blocks with points) are numbered 0..8, bare .PEN_UPs are not.
PEN = "\n".join(
    [".WRITER_ID w1", ".INCLUDE abc/more.inc"]  # nested include: components 0 and 1
    + _pen(True, _bar(100)) + [".PEN_UP"]  # 2
    + _pen(True, _bar(200)) + _pen(False, [(0, 0, 0), (5, 5, 5)])  # 3, 4 (pen-up movement)
    + _pen(True, _bar(300)) + [".PEN_UP"]  # 5
    + _pen(True, [(400, 0, 0), (0, 0, 1), (400, 40, 2)]) + [".PEN_UP"]  # 6: a (0, 0) glitch
    + _pen(True, [(0, 0, 0), (0, 0, 1)]) + [".PEN_UP"]  # 7: nothing but glitch
    + _pen(True, _bar(500)) + [".PEN_UP", ""])  # 8
MORE = "\n".join(_pen(True, _bar(10)) + [".PEN_UP"] + _pen(True, _bar(20)) + [".PEN_UP", ""])
DOC = ".COORD X Y T\n.X_POINTS_PER_INCH 1000\n.SETUP\n    Site: somewhere\n"
HEAD = ".VERSION 1.0\n.INCLUDE abc/abc.doc\n.INCLUDE abc/data/w1.dat\n"


def _segments(*lines):
    return "".join(f".SEGMENT {line}\n" for line in lines)


def write_release(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def base_files(**extra) -> dict:
    files = {
        "include/abc/abc.doc": DOC,
        "include/abc/more.inc": MORE,
        "include/abc/data/w1.dat": PEN,
        "data/1a/abc/w1.dat": HEAD + _segments(
            'CHARACTER 0 OK "1"', 'CHARACTER 3-5 ? "7"', 'WORD 0-8 ? "17"'),
        "data/1b/abc/w1.dat": HEAD + _segments('CHARACTER 3:1-3:3 OK "L"', 'CHARACTER 1,5 ? "T"'),
        "data/1c/abc/w1.dat": HEAD + _segments('CHARACTER 8 ? "l"', 'CHARACTER 6 ? "i"',
                                               'CHARACTER 7 ? "j"', 'CHARACTER 9 ? "k"',
                                               'CHARACTER 8:2-8:9 ? "k"', 'CHARACTER 8 ? "ll"'),
        "data/1d/abc/w1.dat": HEAD + _segments(
            r'CHARACTER 0 OK "\""', r'CHARACTER 1 OK "\\"', r'CHARACTER 2 ? "\@"',
            'CHARACTER 3 ? "@"', 'CHARACTER 5 OK ","'),
    }
    files.update(extra)
    return files


@pytest.fixture
def release(tmp_path):
    return write_release(tmp_path / "train_r01_v07", base_files())


def _bar_points(x, n=5):
    return np.array([(x, -10 * k) for k in range(n)], np.float32)


def _strokes(rel, i):
    return rel.samples.strokes(i)


def test_reads_components_segments_writers_and_labels(release):
    rel = unipen.read_release(release)
    s = rel.samples
    assert list(s.labels) == ["1", "7", "L", "T", "l", "i", '"', "\\", "@", ","]
    assert list(rel.categories) == ["1a"] * 2 + ["1b"] * 2 + ["1c"] * 2 + ["1d"] * 4
    assert list(s.quality) == ["OK", "?", "OK", "?", "?", "?", "OK", "OK", "?", "OK"]
    assert list(s.writer_names) == ["abc:w1"] and set(s.writer_ids) == {0}
    assert rel.keys[0] == "unipen:data/1a/abc/w1.dat:4" and rel.keys[2] == "unipen:data/1b/abc/w1.dat:4"
    # Component 0 comes from the nested include; y is negated; the T column is left out.
    np.testing.assert_array_equal(_strokes(rel, 0)[0], _bar_points(10))
    # 3-5: components 3 and 5 are pen-down strokes, 4 is pen-up movement and is left out.
    seven = _strokes(rel, 1)
    assert len(seven) == 2
    np.testing.assert_array_equal(seven[0], _bar_points(200))
    np.testing.assert_array_equal(seven[1], _bar_points(300))
    # 3:1-3:3 is points 1 to 3 of component 3, both included; "1,5" two components.
    np.testing.assert_array_equal(_strokes(rel, 2)[0], _bar_points(200)[1:4])
    assert [len(x) for x in _strokes(rel, 3)] == [5, 5]
    # The (0, 0) point inside component 6 is dropped.
    np.testing.assert_array_equal(_strokes(rel, 5)[0], [[400, 0], [400, -40]])
    c = rel.counts
    assert c["dat_files"] == 4 and c["segments"] == 15 and c["other_segments"] == 1
    assert c["ligatures_dropped"] == 1 and c["labels_not_a_character"] == 1
    assert c["delineations_past_data"] == 2  # component 9, and point 9 of a 5-point component
    assert c["zero_point_samples"] == 2 and c["zero_points"] == 3  # "i" and "j"
    assert c["segments_without_ink"] == 1  # "j": nothing but (0, 0)
    assert c["samples"] == 10 and c["writers"] == 1 and c["missing_includes"] == []


def test_zero_points_kept_on_request_and_categories_and_labs(release, tmp_path):
    rel = unipen.read_release(release, zero_points="keep")
    i = list(rel.samples.labels).index("i")
    np.testing.assert_array_equal(_strokes(rel, i)[0], [[400, 0], [0, 0], [400, -40]])
    assert "j" in list(rel.samples.labels) and rel.counts["segments_without_ink"] == 0
    only = unipen.read_release(release, categories="1d,1a")
    assert list(only.categories) == ["1a"] * 2 + ["1d"] * 4  # the release's order, not the given one
    assert set(unipen.read_release(release, categories=["1b"]).samples.labels) == {"L", "T"}
    assert len(unipen.read_release(release, labs="abc").samples) == 10
    with pytest.raises(ValueError, match=r"categories=2: choose among 1a \(digits\)"):
        unipen.read_release(release, categories="2")
    with pytest.raises(ValueError, match="labs=xyz: not under .*; labs there: abc"):
        unipen.read_release(release, labs="xyz")
    with pytest.raises(ValueError, match="zero_points='sometimes'"):
        unipen.read_release(release, zero_points="sometimes")


def test_order_is_category_then_lab_then_file_then_segment(release):
    pen = ".WRITER_ID w2\n" + "\n".join(_pen(True, _bar(1)) + _pen(True, _bar(2))) + "\n"
    write_release(release, {
        "include/aaa/w2.pen": pen,
        "data/1a/aaa/w2.dat": '.INCLUDE aaa/w2.pen\n.SEGMENT CHARACTER 0 OK "5"\n',
        "data/1d/aaa/w2.dat": '.INCLUDE aaa/w2.pen\n.SEGMENT CHARACTER 1 OK "!"\n',
        "data/1a/abc/a0.dat": HEAD + _segments('CHARACTER 0 OK "0"')})
    rel = unipen.read_release(release)
    assert list(rel.samples.labels) == ["5", "0", "1", "7", "L", "T", "l", "i",
                                        "!", '"', "\\", "@", ","]
    assert list(rel.labs[:4]) == ["aaa", "abc", "abc", "abc"]
    assert list(rel.samples.writer_names) == ["aaa:w2", "abc:w1"]
    assert rel.keys[1] == "unipen:data/1a/abc/a0.dat:4"


def test_records_equal_the_ink_sources_for_the_same_strokes(release, tmp_path):
    rel = unipen.read_release(release)
    s = rel.samples
    npz = tmp_path / "same.npz"
    np.savez(npz, points=s.points, stroke_lengths=s.stroke_lengths,
             sample_stroke_counts=s.sample_stroke_counts, labels=s.labels,
             writer_ids=s.writer_ids, writer_names=s.writer_names, quality=s.quality)
    options = dict(image_size=24, width_variation=0.3, seed=3, quality="any")
    mine = list(sources.open_source("unipen", path=str(release), **options))
    theirs = list(sources.open_source("ink", path=str(npz), **options))
    assert len(mine) == len(theirs) == 10
    for a, b in zip(mine, theirs):
        assert (a.char, a.writer, a.geometry) == (b.char, b.writer, b.geometry)
        np.testing.assert_array_equal(a.image, b.image)
    assert {r.source for r in mine} == {"unipen"} and mine[0].key == rel.keys[0]
    ok = sources.open_source("unipen", path=str(release), quality="ok", chars="digits")
    assert [r.char for r in ok] == ["1"]
    assert ok.params["categories"] == ["1a", "1b", "1c", "1d"] and ok.params["zero_points"] == "drop"


def test_build_writes_the_counts_into_the_manifest(release, tmp_path):
    manifest = build.build("unipen", str(tmp_path / "ds"), {"path": str(release)}, split="none",
                           progress=False)
    assert manifest["source"]["name"] == "unipen"
    counts = manifest["source"]["counts"]
    assert counts["ligatures_dropped"] == 1 and counts["zero_points"] == 3
    assert manifest["writers"] == ["abc:w1"] and manifest["splits"]["train"]["count"] == 10
    assert tfrecords.verify_dataset(tmp_path / "ds") == []
    on_disk = json.loads((tmp_path / "ds" / tfrecords.MANIFEST).read_text())
    assert on_disk["source"]["counts"] == counts
    # Other sources' manifests do not change.
    assert "counts" not in build.build("simulated", str(tmp_path / "sim"), {
        "num_writers": 2, "samples_per_char": 1, "charset": "ab"}, split="none",
        progress=False)["source"]


def test_a_missing_include_skips_its_file_and_is_counted(release, capsys):
    write_release(release, {"data/1a/xyz/w2.dat": ".INCLUDE xyz/data/w2.dat\n"
                                                  '.SEGMENT CHARACTER 0 OK "3"\n'})
    rel = unipen.read_release(release)
    assert rel.counts["dat_files_skipped"] == 1
    assert rel.counts["missing_includes"] == ["data/1a/xyz/w2.dat:1: include/xyz/data/w2.dat"]
    assert len(rel.samples) == 10
    src = sources.open_source("unipen", path=str(release))
    assert "1 .dat file(s) skipped" in capsys.readouterr().err and len(src) == 10
    only = write_release(release.parent / "other", {
        "include/.keep": "", "data/1a/xyz/w2.dat": "\n.INCLUDE xyz/data/w2.dat\n"})
    with pytest.raises(ValueError, match=r"no \.dat file of .*other could be read: each "
                                         r"\.INCLUDEs a missing file, e\.g\. .*other/data/1a/xyz/"
                                         r"w2\.dat:2 names include/xyz/data/w2\.dat"):
        unipen.read_release(only, categories="1a")


def test_a_directory_that_is_not_the_release_names_the_path(tmp_path, release):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        unipen.read_release(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"is not the UNIPEN release train_r01_v07: it has no "
                                         r"data/ directory .*; .*train_r01_v07 has one: give that"):
        unipen.read_release(tmp_path)  # the folder above the release
    write_release(tmp_path / "noinc", {"data/1a/abc/w.dat": ""})
    with pytest.raises(ValueError, match="noinc is not the .* no include/ directory"):
        unipen.read_release(tmp_path / "noinc")
    write_release(tmp_path / "nocat", {"data/1a/abc/w.dat": "", "include/x": ""})
    with pytest.raises(ValueError, match=r"nocat/data/1b does not exist \(category 1b, upper"):
        unipen.read_release(tmp_path / "nocat")
    write_release(tmp_path / "nodat", {"data/1a/abc/w.txt": "", "include/x": ""})
    with pytest.raises(ValueError, match=r"no \.dat files under .*nodat/data/\{1a\}/<lab>/"):
        unipen.read_release(tmp_path / "nodat", categories="1a")


@pytest.mark.parametrize("dat_lines, extra, message", [
    ('.SEGMENT CHARACTER 0-x OK "1"', {}, r"delineation '0-x' is not a comma-separated list"),
    ('.SEGMENT CHARACTER 3-1 OK "1"', {}, r"delineation '3-1' runs backwards"),
    ('.SEGMENT CHARACTER 3:4-3:2 OK "1"', {}, r"delineation '3:4-3:2' runs backwards"),
    ('.SEGMENT CHARACTER 0 OK', {}, r'has no "<label>"'),
    ('.SEGMENT CHARACTER', {}, r"is not <level> <delineation>"),
    ('.SEGMENT CHARACTER 0 OK "\\x"', {}, r'label "\\x" has an escape other than'),
    ('.SEGMENT CHARACTER 0 OK "\\"', {}, r"has an escape other than"),
    (".INCLUDE", {}, r"\.INCLUDE names no file"),
    (".INCLUDE abc/loop.inc", {"include/abc/loop.inc": ".INCLUDE abc/loop.inc\n"},
     r"loop\.inc:1: \.INCLUDE abc/loop\.inc includes itself"),
    (".INCLUDE abc/bad.inc", {"include/abc/bad.inc": ".WRITER_ID w\n.PEN_DOWN\n1 2\n3 x\n"},
     r"bad\.inc:4: point line '3 x' is not an x y pair of numbers"),
    (".INCLUDE abc/bad.inc", {"include/abc/bad.inc": ".WRITER_ID w\n.PEN_DOWN\n1 2\n3\n"},
     r"bad\.inc:4: point line '3' is not"),
    (".INCLUDE abc/bad.inc", {"include/abc/bad.inc": ".COORD T P\n"},
     r"bad\.inc:1: \.COORD 'T P' does not name the X and Y columns"),
    (".INCLUDE abc/bad.inc", {"include/abc/bad.inc": ".WRITER_ID\n"},
     r"bad\.inc:1: \.WRITER_ID names no writer"),
    (".INCLUDE abc/nowriter.inc\n.SEGMENT CHARACTER 0 OK \"1\"",
     {"include/abc/nowriter.inc": ".PEN_DOWN\n1 2\n3 4\n"},
     r"w9\.dat:2: no \.WRITER_ID is in force"),
])
def test_malformed_lines_name_file_and_line(release, dat_lines, extra, message):
    write_release(release, {"data/1a/abc/w9.dat": dat_lines + "\n", **extra})
    with pytest.raises(unipen.UnipenFormatError, match=message) as info:
        unipen.read_release(release)
    assert "\n" not in str(info.value)
    if "w9" not in message and "inc" not in message:
        assert str(info.value).startswith(f"{release}/data/1a/abc/w9.dat:1: ")


def test_cli_error_is_one_line_without_traceback(release, tmp_path):
    write_release(release, {"data/1c/abc/w9.dat": '.SEGMENT CHARACTER 1-0 OK "a"\n'})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for path, expect in ((release, f"{release}/data/1c/abc/w9.dat:1: delineation '1-0' runs"),
                         (tmp_path / "none", "does not exist")):
        r = subprocess.run([sys.executable, "-m", "hw_gan.cli", "build", "--source=unipen",
                            "--source_param", f"path={path}", "--out", str(tmp_path / "out")],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and expect in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not RAW_SAMPLE.is_dir(), reason="needs ../shared/data/unipen/raw_sample")
def test_raw_sample_matches_the_shared_files():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "unipen_release.py")],
                       capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["total"]["keep_matched"] == out["total"]["keep_rows"] == 6941
    assert out["total"]["drop_matched"] == out["total"]["drop_rows"] == 6941
    assert out["records"]["equal"] == out["records"]["ink"] == 6941
    assert out["letters"]["keep"]["same_order"] and out["symbols"]["keep"]["same_order"]
