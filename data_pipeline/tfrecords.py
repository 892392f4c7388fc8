"""Sharded TFRecord datasets of glyphs on disk: the one writer, the manifest, reading records
back as GlyphRecords, and verification. Models read datasets through data_pipeline.dataset.

A dataset directory holds `<split>-NNNNN-of-MMMMM.tfrecord` shards, `manifest.json` and
`contact_sheet.png`. The manifest is the dataset's contract: charset and writers (their order
defines the integer labels the reader returns), resolution, counts per split, character and
writer, the source and its parameters, and every shard's record count, size and sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from data_pipeline import atomic, schema
from data_pipeline import charset as charset_lib
from data_pipeline.glyph import tile
from data_pipeline.progress import Progress

MANIFEST = "manifest.json"
CONTACT_SHEET = "contact_sheet.png"
SPLIT_METHODS = ("writer", "random", "none")
TRAIN, TEST = "train", "test"


class DatasetError(ValueError):
    """A dataset directory that is missing, incomplete or inconsistent with its manifest."""


# --------------------------------------------------------------------------------------------
# Writing


def _default_charset_order(labels: Iterable[str]) -> tuple[str, ...]:
    order = {c: i for i, c in enumerate(charset_lib.DEFAULT_CHARSET)}
    return tuple(sorted(set(labels), key=lambda s: (order.get(s[0], len(order)), s)))


def _shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def _assign_splits(writers: Sequence[str], method: str, test_fraction: float, seed: int,
                   n: int) -> tuple[np.ndarray, list[str]]:
    """Returns a boolean test mask over records and the sorted list of held-out writers."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    if method == "none" or test_fraction <= 0:
        return np.zeros(n, bool), []
    if method == "random":
        return rng.random(n) < test_fraction, []
    unique = sorted(set(writers))
    if len(unique) < 2:
        raise ValueError(f"cannot split by writer: the source has only {len(unique)} writer(s); "
                         f"use --split=random or --split=none")
    n_test = min(len(unique) - 1, max(1, int(round(test_fraction * len(unique)))))
    held = sorted(rng.permutation(unique)[:n_test].tolist())
    held_set = set(held)
    return np.array([w in held_set for w in writers], bool), held


def _contact_sheet(samples: dict[tuple[str, str], np.ndarray], writers: Sequence[str],
                   labels: Sequence[str], max_writers: int = 24) -> bytes:
    """A PNG grid: one row per writer (up to max_writers), one column per label, dark on white,
    with the labels across the top and writer names down the left."""
    import cv2

    shown = list(writers)[:max_writers]
    if not samples:
        raise ValueError("nothing to draw on the contact sheet")
    h, w = next(iter(samples.values())).shape
    cell = max(32, h)
    name_w = 150
    top = 24
    sheet = np.full((top + cell * len(shown), name_w + cell * len(labels)), 255, np.uint8)
    for j, label in enumerate(labels):
        cv2.putText(sheet, label[:2], (name_w + j * cell + cell // 4, 17),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
    cells = np.zeros((len(shown) * len(labels), cell, cell), np.uint8)
    blank = []
    for i, writer in enumerate(shown):
        y = top + i * cell
        cv2.putText(sheet, writer[:18], (4, y + cell // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1,
                    cv2.LINE_AA)
        for j, label in enumerate(labels):
            img = samples.get((writer, label))
            blank.append(img is None)
            if img is not None and img.shape[0] != cell:
                img = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
            if img is not None:
                cells[i * len(labels) + j] = img
    sheet[top:, name_w:] = tile(cells, len(labels), rows=len(shown), invert=True, blank=blank)
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("could not encode the contact sheet")
    return png.tobytes()


def write_dataset(source, out_dir, *, split: str = "writer", test_fraction: float = 0.1,
                  seed: int = 0, shard_mb: float = 32.0, num_shards: Optional[int] = None,
                  overwrite: bool = False, progress: bool = True,
                  charset: Optional[Sequence[str]] = None) -> dict:
    """Writes every record of `source` into a sharded dataset at `out_dir`; returns the manifest.

    split: "writer" holds out a seeded `test_fraction` of the writers (none of their glyphs are in
      train), "random" holds out that fraction of glyphs, "none" writes everything to train.
    shard_mb / num_shards: shards per split are as equal as possible, about `shard_mb` each unless
      `num_shards` fixes their number.
    charset: the dataset's labels; by default the source's `charset` attribute, else the labels
      present, in DEFAULT_CHARSET order. A record whose label is not in it is an error.
    The directory appears only when complete (written to a temporary sibling, then renamed).
    """
    if split not in SPLIT_METHODS:
        raise ValueError(f"--split={split!r} is not one of {SPLIT_METHODS}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test_fraction={test_fraction} is outside [0, 1)")
    if num_shards is not None and num_shards < 1:
        raise ValueError(f"--num_shards={num_shards} must be >= 1")
    out_dir = Path(out_dir)
    with atomic.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        got = _collect(source, progress)
        labels = _dataset_labels(source, got.chars, charset)
        writer_list = sorted(set(got.writers))
        is_test, held_out = _assign_splits(got.writers, split, test_fraction, seed,
                                           len(got.serialized))
        manifest = {
            "format_version": schema.FORMAT_VERSION,
            "image_convention": "uint8, ink-high (0 paper, 255 ink); readers give float [-1, 1]",
            "resolution": [int(got.shape[0]), int(got.shape[1])],
            "charset": list(labels),
            "writers": writer_list,
            "has_geometry": bool(got.has_geometry),
            "has_size": bool(got.has_size),
            "source": {"name": source.name, "params": getattr(source, "params", {})},
            "split": {"method": split, "test_fraction": test_fraction, "seed": seed,
                      "test_writers": held_out},
            "splits": _write_splits(tmp, got, is_test, seed, shard_mb, num_shards),
        }
        if getattr(source, "counts", None) is not None:  # what a source read and dropped
            manifest["source"]["counts"] = source.counts
        atomic.write_bytes(tmp / CONTACT_SHEET, _contact_sheet(got.thumbs, writer_list, labels))
        atomic.write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


@dataclasses.dataclass
class _Collected:
    """Every record of a source, serialized, with what the manifest and contact sheet need."""
    serialized: list[bytes]
    chars: list[str]
    writers: list[str]
    thumbs: dict[tuple[str, str], np.ndarray]  # the first image of each (writer, char)
    shape: Optional[tuple[int, ...]] = None
    has_geometry: bool = False
    has_size: bool = False


def _collect(source, progress: bool) -> _Collected:
    """Reads and serializes the whole source (one image shape for all); ValueError if empty."""
    got = _Collected([], [], [], {})
    total = len(source) if hasattr(source, "__len__") else None
    bar = Progress(f"build {source.name}", total, "glyphs", enabled=progress)
    for record in source:
        if got.shape is None:
            got.shape = record.image.shape
        elif record.image.shape != got.shape:
            raise ValueError(f"record {record.key}: image shape {record.image.shape} differs "
                             f"from the dataset's {got.shape}")
        got.serialized.append(schema.encode(record))
        got.chars.append(record.char)
        got.writers.append(record.writer)
        got.has_geometry |= record.geometry is not None
        got.has_size |= record.size is not None
        got.thumbs.setdefault((record.writer, record.char), record.image)
        bar.update()
    bar.close()
    if not got.serialized:
        raise ValueError(f"source {source.name} {getattr(source, 'params', '')} produced no records")
    return got


def _dataset_labels(source, chars: Sequence[str], charset: Optional[Sequence[str]]
                    ) -> tuple[str, ...]:
    """The dataset's charset (given, the source's, or the labels present); every record's label
    must be in it."""
    labels = tuple(charset) if charset is not None else (
        tuple(source.charset) if getattr(source, "charset", None) else _default_charset_order(chars))
    labels = charset_lib.validate_charset(labels)
    label_set = set(labels)
    for rec_key, c in enumerate(chars):
        if c not in label_set:
            raise ValueError(f"record {rec_key} of source {source.name}: label {c!r} is not in "
                             f"the charset {''.join(labels)!r}")
    return labels


def _write_splits(tmp: Path, got: _Collected, is_test: np.ndarray, seed: int, shard_mb: float,
                  num_shards: Optional[int]) -> dict:
    """Writes each split's shards (records in a seeded order that mixes writers); returns the
    manifest's "splits"."""
    splits = {}
    order_rng = np.random.default_rng(np.random.SeedSequence([seed, 104729]))
    for split_name, mask in ((TRAIN, ~is_test), (TEST, is_test)):
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            continue
        idx = idx[order_rng.permutation(len(idx))]  # mix writers across shards
        size = sum(len(got.serialized[i]) for i in idx)
        n_shards = num_shards or max(1, math.ceil(size / (shard_mb * 2**20)))
        n_shards = min(n_shards, len(idx))
        shards = []
        for s, part in enumerate(np.array_split(idx, n_shards)):
            name = _shard_name(split_name, s, n_shards)
            shards.append(_write_shard(tmp / name, (got.serialized[i] for i in part), len(part)))
        splits[split_name] = {
            "count": int(len(idx)),
            "per_char": dict(sorted(Counter(got.chars[i] for i in idx).items())),
            "per_writer": dict(sorted(Counter(got.writers[i] for i in idx).items())),
            "shards": shards,
        }
    return splits


def _write_shard(path: Path, records: Iterable[bytes], count: int) -> dict:
    import tensorflow as tf

    digest = hashlib.sha256()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for rec in records:
            writer.write(rec)
    with open(path, "rb") as f:
        data = f.read()
    digest.update(data)
    return {"file": path.name, "count": int(count), "bytes": len(data), "sha256": digest.hexdigest()}


# --------------------------------------------------------------------------------------------
# Reading


def load_manifest(data_dir) -> dict:
    """Reads and sanity-checks `manifest.json`; DatasetError naming the directory otherwise."""
    path = Path(data_dir) / MANIFEST
    if not Path(data_dir).is_dir():
        raise DatasetError(f"dataset directory {data_dir} does not exist")
    if not path.exists():
        raise DatasetError(f"{data_dir} has no {MANIFEST}: it is not a built dataset (or its build "
                           f"did not finish); build it with `python -m data_pipeline.build`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path} is not a manifest (a JSON object)")
    for key in ("format_version", "resolution", "charset", "writers", "splits"):
        if key not in manifest:
            raise DatasetError(f"{path} lacks the key {key!r}")
    if manifest["format_version"] != schema.FORMAT_VERSION:
        raise DatasetError(f"{path} has format_version {manifest['format_version']}, this hwgan "
                           f"reads {schema.FORMAT_VERSION}")
    return manifest


def writers_without_glyphs(manifest: dict, split: str) -> list[str]:
    """The manifest's writers with no glyph in `split`, in id order. A model trained on `split`
    of a writer-split dataset has a writer row for each of them that it never trained (every
    manifest writer gets an id): their "style" is nobody's."""
    per_writer = manifest["splits"].get(split, {}).get("per_writer", {})
    return [w for w in manifest["writers"] if per_writer.get(w, 0) == 0]


def shard_paths(data_dir, split: str, manifest: Optional[dict] = None,
                check_sizes: bool = True) -> list[str]:
    manifest = manifest or load_manifest(data_dir)
    if split not in manifest["splits"]:
        raise DatasetError(f"{data_dir} has no split {split!r}; it has {sorted(manifest['splits'])}")
    paths = []
    for shard in manifest["splits"][split]["shards"]:
        path = Path(data_dir) / shard["file"]
        if not path.exists():
            raise DatasetError(f"shard {path} listed in the manifest is missing")
        if check_sizes and path.stat().st_size != shard["bytes"]:
            raise DatasetError(f"shard {path} has {path.stat().st_size} bytes, the manifest says "
                               f"{shard['bytes']}: it is truncated or was changed; run "
                               f"`python -m data_pipeline.build verify {data_dir}`")
        paths.append(str(path))
    return paths


def read_records(data_dir, split: str) -> Iterable[schema.GlyphRecord]:
    """Every record of a split as GlyphRecords, in shard order (for tools and tests)."""
    import tensorflow as tf

    for path in shard_paths(data_dir, split):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            yield schema.decode(raw)


# --------------------------------------------------------------------------------------------
# Verification


def verify_dataset(data_dir, deep: bool = True) -> list[str]:
    """Checks every shard against the manifest. Returns a list of problems (empty when sound).

    Always: each listed shard exists with the listed size and sha256, and no stray shard lies
    beside them. deep=True also reads every record: it parses, the count matches, its label and
    writer are in the manifest, its image has the manifest's resolution; a corrupted record is
    reported with its file and record index.
    """
    manifest = load_manifest(data_dir)
    data_dir = Path(data_dir)
    problems: list[str] = []
    listed = set()
    for split, info in manifest["splits"].items():
        total = 0
        for shard in info["shards"]:
            path = data_dir / shard["file"]
            listed.add(shard["file"])
            if not path.exists():
                problems.append(f"{path}: missing")
                continue
            data = path.read_bytes()
            if len(data) != shard["bytes"]:
                problems.append(f"{path}: {len(data)} bytes, manifest says {shard['bytes']} (truncated?)")
            elif hashlib.sha256(data).hexdigest() != shard["sha256"]:
                problems.append(f"{path}: sha256 differs from the manifest (corrupted or changed)")
            total += shard["count"]
            if deep:
                problems.extend(_record_problems(path, shard["count"], manifest))
        if total != info["count"]:
            problems.append(f"split {split}: shards list {total} records, manifest count is {info['count']}")
    for path in sorted(data_dir.glob("*.tfrecord")):
        if path.name not in listed:
            problems.append(f"{path}: shard not listed in the manifest")
    return problems


def _record_problems(path: Path, count: int, manifest: dict) -> list[str]:
    """Reads every record of one shard: each must parse and fit the manifest (label, writer,
    resolution), and there must be `count` of them."""
    import tensorflow as tf

    labels, writers = set(manifest["charset"]), set(manifest["writers"])
    height, width = manifest["resolution"]
    problems: list[str] = []
    n = 0
    try:
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            try:
                rec = schema.decode(raw)
            except Exception as e:  # a malformed proto can raise several error types
                problems.append(f"{path}: record {n} does not parse: {e}")
                n += 1
                continue
            if rec.char not in labels:
                problems.append(f"{path}: record {n} ({rec.key}) has label {rec.char!r} "
                                f"outside the charset")
            if rec.writer not in writers:
                problems.append(f"{path}: record {n} ({rec.key}) has unknown writer {rec.writer!r}")
            if rec.image.shape != (height, width):
                problems.append(f"{path}: record {n} ({rec.key}) image {rec.image.shape} "
                                f"is not {height}x{width}")
            n += 1
    except tf.errors.DataLossError as e:
        problems.append(f"{path}: corrupted at record {n} ({e.message.splitlines()[0]})")
        return problems
    if n != count:
        problems.append(f"{path}: {n} records, manifest says {count}")
    return problems


def summarize(manifest: dict) -> dict:
    """A short JSON-able overview of a manifest (for CLIs)."""
    return {
        "source": manifest["source"]["name"],
        "resolution": manifest["resolution"],
        "charset_size": len(manifest["charset"]),
        "writers": len(manifest["writers"]),
        "splits": {k: {"count": v["count"], "shards": len(v["shards"]),
                       "writers": len(v["per_writer"])} for k, v in manifest["splits"].items()},
    }
