"""EMNIST (NIST Special Database 19 in MNIST form) -> glyph records.

Every configuration of the TFDS `emnist` builder is served: byclass, bymerge, balanced, letters,
digits and mnist, each with a "train" and a "test" split. Images are 28x28 uint8, ink-high as
EMNIST stores them (0 paper, 255 ink), so only their orientation changes here.

Orientation: NIST stores every EMNIST image transposed (mirrored and rotated 90 degrees, i.e. the
row index runs along the glyph's x axis). TFDS passes the raw bytes through untouched (its
builder reuses MNIST's idx reader; see tensorflow_datasets/image_classification/mnist.py and
tensorflow/datasets#812), so both readers below transpose every image; records come out upright.

Labels, in class-id order (`emnist_charset`):
  * byclass: 62 classes, "0".."9", "A".."Z", "a".."z".
  * bymerge, balanced: 47 classes, digits, then the 26 upper-case letters where the 15 letters
    whose cases look alike (C I J K L M O P S U V W X Y Z) are one merged label "Cc", "Ii", ...,
    then the 11 distinct lower-case letters a b d e f g h n q r t.
  * letters: 26 merged labels "Aa".."Zz". The stored labels are 1-based (1 = "Aa"; TFDS declares
    37 classes, of which 0 and 27..36 never occur); an out-of-range label is an error.
  * digits, mnist: "0".."9".

Writers: EMNIST as distributed (and TFDS) carries no writer ids, so every record has writer
"emnist". Geometry is unknown (None): EMNIST glyphs are size-normalised into their box.

Where the data comes from:
  * Without `manual_dir`: TFDS. If the config is not already prepared in `data_dir` (the TFDS
    default, ~/tensorflow_datasets or $TFDS_DATA_DIR, when None), TFDS downloads NIST's gzip.zip
    (about 536 MiB) and prepares it. Before that, a bounded TCP probe of the download host (or
    of the https proxy, if one is configured) checks that it can be reached; when it cannot, the
    opener fails within `connect_timeout` seconds with a RuntimeError that says how to build from
    a local copy, rather than letting the download retry for minutes.
  * With `manual_dir`: NIST's own files, read directly with NumPy and streamed (nothing is
    extracted to disk and TFDS is not used). `manual_dir` is a directory holding gzip.zip as
    downloaded from NIST (or the path of that zip itself, or a directory holding its extracted
    emnist-<config>-<split>-{images-idx3,labels-idx1}-ubyte.gz files, directly or under gzip/).
    TFDS's own manual-download route (DownloadConfig(manual_dir=...), which finds gzip.zip by
    name) is not used: it would hash the zip, unpack the whole archive (every config) and write
    a second, TFRecord copy of the data, which the build then rewrites anyway; and as it checks
    the registered checksum and hard-codes each config's example counts, only NIST's exact file
    passes it. Use it yourself to prepare a TFDS data_dir if that copy is wanted.

Keys are f"emnist/{config}/{split}:{index}" with `index` the position in iteration order. The
two readers do not share that order: TFDS stores examples in its own (deterministic) shuffled
order, while the manual reader follows NIST's files.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import struct
import threading
import urllib.parse
import urllib.request
import zipfile
from typing import Iterator, Optional

import numpy as np

from data_pipeline import charset as charset_lib
from data_pipeline.schema import GlyphRecord

NAME = "emnist"
WRITER = "emnist"
CONFIGS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
SPLITS = ("train", "test")
IMAGE_SIZE = 28
# Where TFDS downloads EMNIST from (tensorflow_datasets/url_checksums/emnist.txt).
DOWNLOAD_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
ZIP_NAME = "gzip.zip"
_ZIP_DIR = "gzip"  # folder inside gzip.zip that holds the .gz files
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_CHUNK = 1024  # images decoded per read by the manual reader

# Letters whose upper and lower case EMNIST merges into one class (bymerge, balanced).
MERGED_LETTERS = "CIJKLMOPSUVWXYZ"
# Lower-case letters that keep a class of their own in bymerge and balanced.
DISTINCT_LOWER = "abdefghnqrt"


def emnist_charset(config: str) -> tuple[str, ...]:
    """The labels of an EMNIST config in class-id order (after `label_offset` is removed)."""
    _check_config(config)
    digits, upper, lower = charset_lib.DIGITS, charset_lib.UPPER, charset_lib.LOWER
    if config == "byclass":
        labels = list(digits + upper + lower)
    elif config in ("bymerge", "balanced"):
        labels = list(digits)
        labels += [u + u.lower() if u in MERGED_LETTERS else u for u in upper]
        labels += list(DISTINCT_LOWER)
    elif config == "letters":
        labels = [u + u.lower() for u in upper]
    else:  # digits, mnist
        labels = list(digits)
    return charset_lib.validate_charset(labels)


def label_offset(config: str) -> int:
    """What the stored label of class id 0 is: 1 for letters (1-based labels), else 0."""
    _check_config(config)
    return 1 if config == "letters" else 0


def _check_config(config: str) -> None:
    if config not in CONFIGS:
        raise ValueError(f"unknown EMNIST config {config!r}; valid configs: {', '.join(CONFIGS)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown EMNIST split {split!r}; valid splits: {', '.join(SPLITS)}")


def _file_names(config: str, split: str) -> tuple[str, str]:
    """Names of the images and labels files, as in NIST's gzip.zip and the TFDS builder."""
    return (f"emnist-{config}-{split}-images-idx3-ubyte.gz",
            f"emnist-{config}-{split}-labels-idx1-ubyte.gz")


def _help_local(config: str) -> str:
    return (f"To build from a local copy, download NIST's {ZIP_NAME} ({DOWNLOAD_URL}, about "
            f"536 MiB) where there is network access, put it in a directory DIR and pass "
            f"manual_dir=DIR: python -m data_pipeline.build --source=emnist "
            f"--source_param manual_dir=DIR"
            + (f" --source_param config={config}" if config != "balanced" else "")
            + f" (or open_emnist(config={config!r}, manual_dir=DIR)).")


# --------------------------------------------------------------------------------------------
# Connectivity probe.


def _probe_address(url: str) -> tuple[str, int]:
    """(host, port) that a download of `url` connects to first: the https proxy if one is set
    in the environment (and the host is not exempt from it), else the URL's own host."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if p.hostname:
            return p.hostname, p.port or (443 if p.scheme == "https" else 80)
    return host, port


def _probe_download_host(timeout: float) -> Optional[str]:
    """None if a TCP connection to the download host (or proxy) opens within `timeout` seconds,
    else a short reason. Bounded in wall time: name resolution, which a socket timeout does not
    cover, runs in a daemon thread that is abandoned when the time is up."""
    host, port = _probe_address(DOWNLOAD_URL)
    outcome: list[Optional[str]] = []

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as e:
            outcome.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=attempt, name="emnist-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"{host}:{port} did not answer within {timeout:g} s"
    if outcome[0] is not None:
        return f"cannot connect to {host}:{port} ({outcome[0]})"
    return None


# --------------------------------------------------------------------------------------------
# Reading NIST's files directly (manual_dir).


class _ManualFiles:
    """Locates one config/split of EMNIST in a manual_dir and streams it."""

    def __init__(self, manual_dir: str, config: str, split: str):
        self.config, self.split = config, split
        images_name, labels_name = _file_names(config, split)
        self.zip_path: Optional[str] = None
        self.images_path = self.labels_path = ""
        if os.path.isfile(manual_dir):
            if not zipfile.is_zipfile(manual_dir):
                raise ValueError(f"EMNIST manual_dir {manual_dir} is a file but not a zip; pass "
                                 f"the directory that holds NIST's {ZIP_NAME} (or that zip)")
            self.zip_path = manual_dir
        elif os.path.isdir(manual_dir):
            candidate = os.path.join(manual_dir, ZIP_NAME)
            if os.path.isfile(candidate):
                self.zip_path = candidate
            else:
                for folder in (manual_dir, os.path.join(manual_dir, _ZIP_DIR)):
                    im, lb = os.path.join(folder, images_name), os.path.join(folder, labels_name)
                    if os.path.isfile(im) and os.path.isfile(lb):
                        self.images_path, self.labels_path = im, lb
                        break
        else:
            raise FileNotFoundError(f"EMNIST manual_dir {manual_dir} does not exist. "
                                    + _help_local(config))
        if self.zip_path is not None:
            try:
                with zipfile.ZipFile(self.zip_path) as zf:
                    names = set(zf.namelist())
            except zipfile.BadZipFile as e:
                raise ValueError(f"{self.zip_path} is not a readable zip file: {e}") from e
            want = [f"{_ZIP_DIR}/{images_name}", f"{_ZIP_DIR}/{labels_name}"]
            missing = [n for n in want if n not in names]
            if missing:
                raise FileNotFoundError(
                    f"{self.zip_path} lacks {missing}; it does not look like NIST's EMNIST "
                    f"{ZIP_NAME} (which holds {_ZIP_DIR}/emnist-<config>-<split>-...-ubyte.gz)")
            self.images_path, self.labels_path = want
            self.mapping_path = f"{_ZIP_DIR}/emnist-{config}-mapping.txt"
            if self.mapping_path not in names:
                self.mapping_path = None
        elif not self.images_path:
            raise FileNotFoundError(
                f"EMNIST manual_dir {manual_dir} holds neither {ZIP_NAME} nor {images_name} and "
                f"{labels_name} (directly or under {_ZIP_DIR}/). " + _help_local(config))
        else:
            mapping = os.path.join(os.path.dirname(self.images_path),
                                   f"emnist-{config}-mapping.txt")
            self.mapping_path = mapping if os.path.isfile(mapping) else None
        self.where = self.zip_path or os.path.dirname(self.images_path)
        with self._open(self.images_path) as f:
            n_images = self._header(f, self.images_path, _IMAGES_MAGIC, 3)
        with self._open(self.labels_path) as f:
            n_labels = self._header(f, self.labels_path, _LABELS_MAGIC, 1)
        if n_images != n_labels:
            raise ValueError(f"EMNIST {config}/{split} in {self.where}: {n_images} images but "
                             f"{n_labels} labels")
        self.num_examples = n_images

    @contextlib.contextmanager
    def _open(self, name: str):
        """A binary stream of a .gz file's decompressed content, from the zip or the disk."""
        with contextlib.ExitStack() as stack:
            if self.zip_path is not None:
                zf = stack.enter_context(zipfile.ZipFile(self.zip_path))
                raw = stack.enter_context(zf.open(name))
                yield stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            else:
                yield stack.enter_context(gzip.open(name, "rb"))

    def _read_text(self, name: str) -> str:
        if self.zip_path is not None:
            with zipfile.ZipFile(self.zip_path) as zf:
                return zf.read(name).decode("ascii")
        with open(name, "rb") as f:
            return f.read().decode("ascii")

    def _header(self, f, name: str, magic: int, ndim: int) -> int:
        where = f"{self.where}:{name}" if self.zip_path else name
        try:
            head = f.read(4 + 4 * ndim)
        except (OSError, EOFError) as e:
            raise ValueError(f"{where} is not a readable gzip file: {e}") from e
        if len(head) != 4 + 4 * ndim:
            raise ValueError(f"{where} is truncated: no complete idx header")
        values = struct.unpack(f">{1 + ndim}I", head)
        if values[0] != magic:
            raise ValueError(f"{where}: idx magic number {values[0]:#010x}, expected {magic:#010x}")
        if ndim == 3 and values[2:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"{where}: images are {values[2]}x{values[3]}, expected "
                             f"{IMAGE_SIZE}x{IMAGE_SIZE}")
        return values[1]

    def check_mapping(self, labels: tuple[str, ...], offset: int) -> None:
        """Checks NIST's emnist-<config>-mapping.txt ("label code [code...]" per line), where
        present, against `labels`."""
        if self.mapping_path is None:
            return
        text = self._read_text(self.mapping_path)
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            stored, codes = int(fields[0]), [chr(int(c)) for c in fields[1:]]
            i = stored - offset
            ok = 0 <= i < len(labels) and codes and labels[i][0] == codes[0] and all(
                c in labels[i] for c in codes)
            if not ok:
                raise ValueError(f"EMNIST {self.config} mapping {self.mapping_path} in "
                                 f"{self.where} maps label {stored} to {''.join(codes)!r}, which "
                                 f"disagrees with the expected labels {list(labels)}")

    def iterate(self, limit: Optional[int]) -> Iterator[tuple[np.ndarray, int]]:
        """(raw transposed image [28, 28], stored label) pairs in file order."""
        n = self.num_examples if limit is None else min(limit, self.num_examples)
        size = IMAGE_SIZE * IMAGE_SIZE
        with self._open(self.images_path) as fi, self._open(self.labels_path) as fl:
            fi.read(16)
            fl.read(8)
            done = 0
            while done < n:
                k = min(_CHUNK, n - done)
                buf, lab = fi.read(k * size), fl.read(k)
                if len(buf) != k * size or len(lab) != k:
                    raise ValueError(f"EMNIST {self.config}/{self.split} in {self.where} is "
                                     f"truncated after about {done} of {self.num_examples} "
                                     f"examples")
                images = np.frombuffer(buf, np.uint8).reshape(k, IMAGE_SIZE, IMAGE_SIZE)
                for image, label in zip(images, np.frombuffer(lab, np.uint8)):
                    yield image, int(label)
                done += k


# --------------------------------------------------------------------------------------------
# The source.


class EmnistSource:
    """EMNIST glyphs of one config and split (see the module docstring)."""

    name = NAME

    def __init__(self, config: str, split: str, data_dir: Optional[str],
                 manual_dir: Optional[str], limit: Optional[int], connect_timeout: float):
        _check_config(config)
        _check_split(split)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        if not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be > 0 seconds, got {connect_timeout}")
        self.config, self.split, self.limit = config, split, limit
        self.params = {
            "config": config, "split": split,
            "data_dir": os.fspath(data_dir) if data_dir is not None else None,
            "manual_dir": os.fspath(manual_dir) if manual_dir is not None else None,
            "limit": limit, "connect_timeout": connect_timeout,
        }
        self.charset: tuple[str, ...] = emnist_charset(config)
        self._offset = label_offset(config)
        self._manual: Optional[_ManualFiles] = None
        self._builder = None
        if manual_dir is not None:
            self._manual = _ManualFiles(os.path.expanduser(os.fspath(manual_dir)), config, split)
            self._manual.check_mapping(self.charset, self._offset)
            total = self._manual.num_examples
        else:
            self._builder = self._prepare_tfds(data_dir, connect_timeout)
            total = self._tfds_num_examples()
        self._len = total if limit is None else min(limit, total)

    def _prepare_tfds(self, data_dir, connect_timeout: float):
        import tensorflow_datasets as tfds

        builder = tfds.builder(f"emnist/{self.config}",
                               data_dir=os.fspath(data_dir) if data_dir is not None else None)
        # (data_path is checked first: is_prepared() warns about a version folder that is absent)
        if not (builder.data_path.exists() and builder.is_prepared()):
            reason = _probe_download_host(connect_timeout)
            if reason is not None:
                raise RuntimeError(
                    f"EMNIST could not be downloaded: {reason}, and emnist/{self.config} is not "
                    f"prepared in the TFDS data_dir {builder.data_dir_root}. "
                    + _help_local(self.config))
            builder.download_and_prepare()
        return builder

    def _tfds_dataset(self):
        ds = self._builder.as_dataset(split=self.split, shuffle_files=False)
        if self.limit is not None:
            ds = ds.take(self.limit)
        return ds

    def _tfds_num_examples(self) -> int:
        n = int(self._builder.as_dataset(split=self.split, shuffle_files=False).cardinality())
        if n < 0:  # unknown cardinality: fall back on the recorded split size
            n = int(self._builder.info.splits[self.split].num_examples)
        return n

    def __len__(self) -> int:
        return self._len

    def _record(self, index: int, raw: np.ndarray, stored: int) -> GlyphRecord:
        i = stored - self._offset
        if not 0 <= i < len(self.charset):
            lo, hi = self._offset, self._offset + len(self.charset) - 1
            raise ValueError(f"EMNIST {self.config}/{self.split} example {index} has label "
                             f"{stored}, outside the valid range {lo}..{hi}")
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.shape != (IMAGE_SIZE, IMAGE_SIZE) or raw.dtype != np.uint8:
            raise ValueError(f"EMNIST {self.config}/{self.split} example {index}: image "
                             f"{raw.dtype} {raw.shape}, expected uint8 {IMAGE_SIZE}x{IMAGE_SIZE}")
        return GlyphRecord(char=self.charset[i], writer=WRITER, source=NAME,
                           image=np.ascontiguousarray(raw.T), geometry=None,
                           key=f"emnist/{self.config}/{self.split}:{index}")

    def __iter__(self) -> Iterator[GlyphRecord]:
        if self._manual is not None:
            pairs = self._manual.iterate(self.limit)
        else:
            import tensorflow_datasets as tfds

            pairs = ((ex["image"], int(ex["label"])) for ex in tfds.as_numpy(self._tfds_dataset()))
        for index, (raw, stored) in enumerate(pairs):
            yield self._record(index, raw, stored)


def open_emnist(config: str = "balanced", split: str = "train", data_dir: str | None = None,
                manual_dir: str | None = None, limit: int | None = None,
                connect_timeout: float = 3.0) -> EmnistSource:
    """Opens EMNIST `config` ("byclass", "bymerge", "balanced", "letters", "digits", "mnist"),
    split "train" or "test", as upright uint8 ink-high 28x28 glyph records with writer "emnist"
    (EMNIST has no writer ids) and no geometry.

    data_dir: TFDS data directory (None: the TFDS default). manual_dir: a directory holding
    NIST's gzip.zip, read directly instead of through TFDS. limit: at most this many records.
    connect_timeout: seconds allowed to reach the download host before failing with a
    RuntimeError when the dataset is not prepared and no manual_dir is given.
    Parameters may also be strings, as the build CLI passes them (--source_param key=value).
    """
    if isinstance(limit, str):
        limit = None if limit.strip().lower() in ("", "none") else int(limit)
    if isinstance(connect_timeout, str):
        connect_timeout = float(connect_timeout)
    if isinstance(data_dir, str) and data_dir.strip().lower() in ("", "none"):
        data_dir = None
    if isinstance(manual_dir, str) and manual_dir.strip().lower() in ("", "none"):
        manual_dir = None
    return EmnistSource(config, split, data_dir, manual_dir, limit, connect_timeout)
