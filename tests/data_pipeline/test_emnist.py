"""EMNIST source: label maps, orientation, limits, the offline failure and the manual_dir reader.

Nothing here touches the network: TFDS is mocked with `tfds.testing.mock_data`, the download
probe is either stubbed or pointed at a closed localhost port, and the manual_dir tests read a
tiny fake of NIST's gzip.zip written to a temporary directory.
"""

import gzip
import socket
import struct
import threading
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from data_pipeline import charset as charset_lib
from data_pipeline import sources
from data_pipeline.sources import emnist


def _upright_glyph(k: int = 0) -> np.ndarray:
    """An upright "L" (asymmetric under transposition), marked with k so examples differ."""
    img = np.zeros((28, 28), np.uint8)
    img[3:22, 4:7] = 255  # the stem, on the left, top to bottom
    img[19:22, 4:18] = 200  # the foot, along the bottom, to the right
    img[0, 27] = k  # a mark in the top right corner
    assert not np.array_equal(img, img.T)
    return img


def _stored(img: np.ndarray) -> np.ndarray:
    """How NIST (and so TFDS) stores an upright glyph: transposed."""
    return np.ascontiguousarray(img.T)


# ---------------------------------------------------------------------------------------------
# Label maps.


def test_charsets():
    sizes = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10,
             "mnist": 10}
    for config, n in sizes.items():
        labels = emnist.emnist_charset(config)
        assert len(labels) == n
        assert charset_lib.validate_charset(labels) == labels
    byclass = emnist.emnist_charset("byclass")
    assert byclass[:10] == tuple("0123456789") and byclass[10] == "A" and byclass[36] == "a"
    balanced = emnist.emnist_charset("balanced")
    assert balanced == emnist.emnist_charset("bymerge")
    assert balanced[10:13] == ("A", "B", "Cc")
    assert balanced[35] == "Zz" and balanced[36:] == tuple("abdefghnqrt")
    merged = [label for label in balanced if len(label) == 2]
    assert "".join(label[0] for label in merged) == "CIJKLMOPSUVWXYZ"
    # Every letter of both cases is served exactly once.
    served = "".join(balanced)
    assert sorted(served) == sorted(charset_lib.DIGITS + charset_lib.UPPER + charset_lib.LOWER)
    letters = emnist.emnist_charset("letters")
    assert letters[0] == "Aa" and letters[-1] == "Zz"
    assert emnist.label_offset("letters") == 1 and emnist.label_offset("balanced") == 0


# ---------------------------------------------------------------------------------------------
# Through (mocked) TFDS.


@pytest.fixture
def reachable(monkeypatch):
    """Pretend the download host answers; mock_data makes download_and_prepare a no-op."""
    monkeypatch.setattr(emnist, "_probe_download_host", lambda timeout: None)


def _mock_tfds(stored_labels, images=None):
    labels = np.asarray(stored_labels, np.int64)
    if images is None:
        images = np.stack([_stored(_upright_glyph(k)) for k in range(len(labels))])

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del self, split, decoders, read_config, kwargs
        return tf.data.Dataset.from_tensor_slices({"image": images[..., None], "label": labels})

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


@pytest.mark.parametrize("config, stored, chars", [
    ("balanced", [12, 36, 0, 46, 38], ["Cc", "a", "0", "t", "d"]),
    ("bymerge", [21, 45], ["Ll", "r"]),
    ("byclass", [12, 38, 61, 9], ["C", "c", "z", "9"]),
    ("letters", [1, 3, 26], ["Aa", "Cc", "Zz"]),
    ("digits", [7, 0], ["7", "0"]),
    ("mnist", [3], ["3"]),
])
def test_tfds_labels_and_upright(reachable, config, stored, chars):
    with _mock_tfds(stored):
        src = emnist.open_emnist(config=config, split="test")
        assert len(src) == len(stored)
        records = list(src)
    assert src.name == "emnist" and src.charset == emnist.emnist_charset(config)
    assert [r.char for r in records] == chars
    for k, r in enumerate(records):
        r.check()
        assert r.writer == "emnist" and r.source == "emnist" and r.geometry is None
        assert r.key == f"emnist/{config}/test:{k}"
        assert r.image.dtype == np.uint8 and r.image.shape == (28, 28)
        np.testing.assert_array_equal(r.image, _upright_glyph(k))
        assert r.image[0, 27] == k and r.image[20, 15] == 200  # foot at bottom right of stem


@pytest.mark.parametrize("config, bad", [("letters", 0), ("letters", 27), ("balanced", 47),
                                         ("digits", 10)])
def test_tfds_label_out_of_range(reachable, config, bad):
    with _mock_tfds([1, bad]):
        src = emnist.open_emnist(config=config)
        with pytest.raises(ValueError, match=f"label {bad}, outside the valid range"):
            list(src)


def test_tfds_len_and_limit(reachable):
    with _mock_tfds(list(range(5))):
        assert len(emnist.open_emnist(config="digits")) == 5
        src = emnist.open_emnist(config="digits", limit=3)
        assert len(src) == 3 and [r.char for r in src] == ["0", "1", "2"]
        assert len(emnist.open_emnist(config="digits", limit=50)) == 5
        src = emnist.open_emnist(config="digits", limit=0)
        assert len(src) == 0 and list(src) == []
    assert src.params == {"config": "digits", "split": "train", "data_dir": None,
                          "manual_dir": None, "limit": 0, "connect_timeout": 3.0}


def test_unknown_config_and_split():
    with pytest.raises(ValueError, match="valid configs: byclass, bymerge, balanced, letters, "
                                         "digits, mnist"):
        emnist.open_emnist(config="byletter")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        emnist.open_emnist(split="validation")
    with pytest.raises(ValueError, match="limit"):
        emnist.open_emnist(limit=-1, manual_dir="/nonexistent")


# ---------------------------------------------------------------------------------------------
# Offline.


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to download is a test failure."""
    def refuse(*args, **kwargs):
        raise AssertionError("download_and_prepare must not run offline")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _clear_proxies(monkeypatch):
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_offline_fails_fast_with_help(monkeypatch, tmp_path, no_download):
    _clear_proxies(monkeypatch)
    monkeypatch.setattr(emnist, "DOWNLOAD_URL", f"https://127.0.0.1:{_closed_port()}/gzip.zip")
    start = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        emnist.open_emnist(config="balanced", data_dir=str(tmp_path), connect_timeout=2.0)
    assert time.monotonic() - start < 5.0
    message = str(info.value)
    assert "EMNIST could not be downloaded" in message
    assert "gzip.zip" in message and "manual_dir=DIR" in message
    assert "--source_param manual_dir=DIR" in message
    assert "python -m data_pipeline.build --source=emnist" in message
    assert str(tmp_path) in message


def test_probe_is_bounded_when_the_host_hangs(monkeypatch):
    _clear_proxies(monkeypatch)
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(emnist.socket, "create_connection", hang)
    try:
        start = time.monotonic()
        reason = emnist._probe_download_host(0.3)
        assert time.monotonic() - start < 2.0
        assert "did not answer within 0.3 s" in reason
    finally:
        release.set()


def test_probe_goes_through_https_proxy(monkeypatch):
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert emnist._probe_address("https://biometrics.nist.gov/x.zip") == ("proxy.example", 3128)
    monkeypatch.setenv("no_proxy", "biometrics.nist.gov")
    direct = ("biometrics.nist.gov", 443)
    assert emnist._probe_address("https://biometrics.nist.gov/x.zip") == direct


def test_probe_succeeds_on_a_listening_port(monkeypatch):
    _clear_proxies(monkeypatch)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        monkeypatch.setattr(emnist, "DOWNLOAD_URL",
                            f"https://127.0.0.1:{server.getsockname()[1]}/gzip.zip")
        assert emnist._probe_download_host(2.0) is None
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------
# manual_dir: a fake of NIST's gzip.zip.


def _idx_gz(images=None, labels=None, count=None) -> bytes:
    if images is not None:
        n = len(images) if count is None else count
        raw = struct.pack(">IIII", 0x803, n, 28, 28) + np.asarray(images, np.uint8).tobytes()
    else:
        n = len(labels) if count is None else count
        raw = struct.pack(">II", 0x801, n) + np.asarray(labels, np.uint8).tobytes()
    return gzip.compress(raw)


def _fake_files(config, split_labels, mapping=None):
    """{name: bytes} as laid out in NIST's gzip.zip (under gzip/)."""
    files = {}
    for split, labels in split_labels.items():
        images = np.stack([_stored(_upright_glyph(k)) for k in range(len(labels))])
        files[f"gzip/emnist-{config}-{split}-images-idx3-ubyte.gz"] = _idx_gz(images=images)
        files[f"gzip/emnist-{config}-{split}-labels-idx1-ubyte.gz"] = _idx_gz(labels=labels)
    if mapping is not None:
        files[f"gzip/emnist-{config}-mapping.txt"] = mapping.encode("ascii")
    return files


def _write_zip(directory, files):
    path = directory / "gzip.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


BALANCED_MAPPING = "\n".join(
    f"{i} {ord(label[0])}" for i, label in enumerate(emnist.emnist_charset("balanced"))) + "\n"
LETTERS_MAPPING = "\n".join(
    f"{i + 1} {ord(label[0])} {ord(label[1])}"
    for i, label in enumerate(emnist.emnist_charset("letters"))) + "\n"


@pytest.fixture
def offline_guard(monkeypatch, no_download):
    def refuse(timeout):
        raise AssertionError("the manual_dir reader must not probe the network")

    monkeypatch.setattr(emnist, "_probe_download_host", refuse)


def test_manual_dir_zip(tmp_path, offline_guard):
    _write_zip(tmp_path, _fake_files(
        "balanced", {"train": [12, 36, 0, 46], "test": [5]}, mapping=BALANCED_MAPPING))
    src = emnist.open_emnist(config="balanced", split="train", manual_dir=str(tmp_path))
    assert len(src) == 4
    records = list(src)
    assert [r.char for r in records] == ["Cc", "a", "0", "t"]
    for k, r in enumerate(records):
        r.check()
        assert r.key == f"emnist/balanced/train:{k}" and r.writer == "emnist"
        assert r.source == "emnist" and r.geometry is None
        np.testing.assert_array_equal(r.image, _upright_glyph(k))
    test = emnist.open_emnist(config="balanced", split="test", manual_dir=str(tmp_path))
    assert [r.char for r in test] == ["5"]
    limited = emnist.open_emnist(config="balanced", manual_dir=str(tmp_path), limit=2)
    assert len(limited) == 2 and [r.char for r in limited] == ["Cc", "a"]
    # The zip's own path works too.
    assert len(emnist.open_emnist(config="balanced", manual_dir=str(tmp_path / "gzip.zip"))) == 4


def test_manual_dir_letters_and_chunks(tmp_path, offline_guard, monkeypatch):
    monkeypatch.setattr(emnist, "_CHUNK", 2)  # several reads, one partial
    labels = [1, 2, 3, 26, 13]
    _write_zip(tmp_path, _fake_files("letters", {"train": labels}, mapping=LETTERS_MAPPING))
    src = emnist.open_emnist(config="letters", manual_dir=str(tmp_path))
    records = list(src)
    assert [r.char for r in records] == ["Aa", "Bb", "Cc", "Zz", "Mm"]
    for k, r in enumerate(records):
        np.testing.assert_array_equal(r.image, _upright_glyph(k))


def test_manual_dir_extracted_files(tmp_path, offline_guard):
    folder = tmp_path / "gzip"
    folder.mkdir()
    for name, data in _fake_files("digits", {"train": [4, 2]}).items():
        (tmp_path / name).write_bytes(data)
    src = emnist.open_emnist(config="digits", manual_dir=str(tmp_path))
    assert [r.char for r in src] == ["4", "2"]


def test_manual_dir_through_the_registry_with_string_params(tmp_path, offline_guard):
    _write_zip(tmp_path, _fake_files("byclass", {"train": [12, 38, 61]}))
    src = sources.open_source("emnist", config="byclass", manual_dir=str(tmp_path), limit="2")
    assert len(src) == 2 and [r.char for r in src] == ["C", "c"]
    assert src.params["limit"] == 2 and src.params["manual_dir"] == str(tmp_path)


def test_manual_dir_errors(tmp_path, offline_guard):
    with pytest.raises(FileNotFoundError, match="neither gzip.zip"):
        emnist.open_emnist(manual_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        emnist.open_emnist(manual_dir=str(tmp_path / "missing"))
    # A zip without this config.
    _write_zip(tmp_path, _fake_files("digits", {"train": [1]}))
    with pytest.raises(FileNotFoundError, match="emnist-balanced-train-images"):
        emnist.open_emnist(config="balanced", manual_dir=str(tmp_path))
    # A mapping that disagrees with the label map.
    wrong = BALANCED_MAPPING.replace("12 67", "12 68")
    _write_zip(tmp_path, _fake_files("balanced", {"train": [1]}, mapping=wrong))
    with pytest.raises(ValueError, match="mapping"):
        emnist.open_emnist(config="balanced", manual_dir=str(tmp_path))
    # Out-of-range stored label.
    _write_zip(tmp_path, _fake_files("letters", {"train": [0]}))
    with pytest.raises(ValueError, match="label 0, outside the valid range 1..26"):
        list(emnist.open_emnist(config="letters", manual_dir=str(tmp_path)))
    # Counts that disagree, and a header promising more than the file holds.
    files = _fake_files("digits", {"train": [1, 2]})
    files["gzip/emnist-digits-train-labels-idx1-ubyte.gz"] = _idx_gz(labels=[1])
    _write_zip(tmp_path, files)
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        emnist.open_emnist(config="digits", manual_dir=str(tmp_path))
    files = _fake_files("digits", {"train": [1, 2]})
    images = np.zeros((2, 28, 28), np.uint8)
    files["gzip/emnist-digits-train-images-idx3-ubyte.gz"] = _idx_gz(images=images[:1], count=2)
    _write_zip(tmp_path, files)
    src = emnist.open_emnist(config="digits", manual_dir=str(tmp_path))
    with pytest.raises(ValueError, match="truncated"):
        list(src)
    # Not a gzip member.
    files["gzip/emnist-digits-train-images-idx3-ubyte.gz"] = b"not gzip at all"
    _write_zip(tmp_path, files)
    with pytest.raises(ValueError, match="not a readable gzip"):
        emnist.open_emnist(config="digits", manual_dir=str(tmp_path))


def test_manual_dir_not_a_zip(tmp_path, offline_guard):
    bogus = tmp_path / "gzip.zip"
    bogus.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable zip"):
        emnist.open_emnist(manual_dir=str(tmp_path))
    with pytest.raises(ValueError, match="not a zip"):
        emnist.open_emnist(manual_dir=str(bogus))


# ---------------------------------------------------------------------------------------------
# A really prepared TFDS dataset (not mocked): TFDS prepares emnist/digits from the fake zip
# through its own manual_dir route, with its checksum check and fixed example counts patched
# out, and the opener then reads the prepared TFRecords without probing the network.


def test_prepared_tfds_dataset_is_read_upright(tmp_path, monkeypatch):
    from tensorflow_datasets.core.download import download_manager
    from tensorflow_datasets.image_classification import mnist

    manual = tmp_path / "manual"
    manual.mkdir()
    _write_zip(manual, _fake_files("digits", {"train": [4, 2, 7], "test": [1]}))
    monkeypatch.setattr(download_manager.DownloadManager, "_register_or_validate_checksums",
                        lambda self, **kwargs: None)
    config = next(c for c in mnist.EMNIST.BUILDER_CONFIGS if c.name == "digits")
    monkeypatch.setattr(config, "train_examples", 3)
    monkeypatch.setattr(config, "test_examples", 1)
    monkeypatch.setattr(emnist, "_probe_download_host", lambda timeout: pytest.fail("probed"))
    data_dir = str(tmp_path / "data")
    builder = tfds.builder("emnist/digits", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))

    src = emnist.open_emnist(config="digits", data_dir=data_dir)
    assert len(src) == 3
    records = list(src)
    assert sorted(r.char for r in records) == ["2", "4", "7"]
    for r in records:
        r.check()
        k = int(r.image[0, 27])  # the example's mark, wherever TFDS's shuffle put it
        np.testing.assert_array_equal(r.image, _upright_glyph(k))
        assert r.char == "427"[k]
    assert [r.char for r in emnist.open_emnist(config="digits", split="test",
                                               data_dir=data_dir)] == ["1"]
    assert len(emnist.open_emnist(config="digits", data_dir=data_dir, limit=2)) == 2
