"""Online pen strokes (UNIPEN layout) -> glyph records.

The file is an .npz with the keys of `REQUIRED_KEYS` (see ../shared/data/unipen/README.md for
their meaning): flat pen-down points, stroke lengths, strokes per sample, and per-sample labels
and writer ids indexing `writer_names`. `category`, `contributor` and `quality` are optional.

Samples were written in isolated boxes, so their size and baseline position carry no meaning:
geometry is unknown (None) and each glyph is fitted into the image box.

`InkSource` makes the records from `StrokeSamples` (the same arrays, in memory), so every
source of pen strokes (this one, and `unipen`, which reads the published release) gives the same
records for the same strokes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from data_pipeline import charset as charset_lib
from data_pipeline.schema import GlyphRecord
from data_pipeline.strokes import render_strokes

REQUIRED_KEYS = ("points", "stroke_lengths", "sample_stroke_counts", "labels", "writer_ids",
                 "writer_names")
QUALITIES = ("any", "ok")


def as_list(value) -> Optional[list[str]]:
    """A list of names from a list or a comma-separated string; None for None or ""."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


@dataclasses.dataclass(frozen=True)
class StrokeSamples:
    """Pen-stroke samples in the .npz layout: `points (P, 2)` (x right, y down), `stroke_lengths
    (S,)`, `sample_stroke_counts (N,)`, `labels (N,)`, `writer_ids (N,)` indexing `writer_names`,
    and optionally `quality (N,)` ("OK" where a labeller checked)."""

    points: np.ndarray
    stroke_lengths: np.ndarray
    sample_stroke_counts: np.ndarray
    labels: np.ndarray
    writer_ids: np.ndarray
    writer_names: np.ndarray
    quality: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.sample_stroke_counts)

    @functools.cached_property
    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """(first point of each stroke, first stroke of each sample), each with the total last."""
        return (np.concatenate([[0], np.cumsum(self.stroke_lengths)]).astype(np.int64),
                np.concatenate([[0], np.cumsum(self.sample_stroke_counts)]).astype(np.int64))

    def strokes(self, i: int) -> list[np.ndarray]:
        """Sample i's strokes, (n, 2) views of `points`."""
        offs, first = self.offsets
        return [self.points[offs[j]:offs[j + 1]] for j in range(first[i], first[i + 1])]


def load_npz(path: str) -> StrokeSamples:
    """Reads and checks an ink .npz; ValueError naming the file and key if it is malformed."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"ink file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # np.load raises several types for a file that is not an npz
        raise ValueError(f"ink file {path} is not a readable .npz: {e}") from e
    missing = [k for k in REQUIRED_KEYS if k not in data.files]
    if missing:
        raise ValueError(f"ink file {path} lacks key(s) {missing}; it has {sorted(data.files)}")
    points = data["points"]
    lengths = data["stroke_lengths"].astype(np.int64)
    counts = data["sample_stroke_counts"].astype(np.int64)
    labels = data["labels"].astype(str)
    writer_ids = data["writer_ids"].astype(np.int64)
    names = data["writer_names"].astype(str)
    n = len(counts)

    def bad(key, why):
        return ValueError(f"ink file {path}: key {key!r} is malformed: {why}")

    if points.ndim != 2 or points.shape[1] != 2:
        raise bad("points", f"shape {points.shape}, expected (P, 2)")
    if lengths.ndim != 1 or (lengths < 1).any():
        raise bad("stroke_lengths", "must be 1-D with every stroke >= 1 point")
    if lengths.sum() != len(points):
        raise bad("stroke_lengths", f"sums to {lengths.sum()}, but there are {len(points)} points")
    if counts.ndim != 1 or (counts < 1).any() or counts.sum() != len(lengths):
        raise bad("sample_stroke_counts",
                  f"must be >= 1 each and sum to the {len(lengths)} strokes (sums to {counts.sum()})")
    for key, arr in (("labels", labels), ("writer_ids", writer_ids)):
        if arr.shape != (n,):
            raise bad(key, f"shape {arr.shape}, expected ({n},) like sample_stroke_counts")
    if n and (writer_ids.min() < 0 or writer_ids.max() >= len(names)):
        raise bad("writer_ids", f"values must index the {len(names)} writer_names")
    if not np.isfinite(points).all():
        raise bad("points", "contains NaN or infinite values")
    quality = data["quality"].astype(str) if "quality" in data.files else None
    return StrokeSamples(points.astype(np.float32), lengths, counts, labels, writer_ids, names,
                         quality)


class InkSource:
    """Glyph records drawn from pen-stroke samples, filtered (quality, writers, chars, min_points,
    limit) and rendered with the one stroke renderer.

    name: the records' `source`; where: how error messages name the input ("ink file X");
    params: what produced the samples (the manifest gets them with the rendering and filter
    options); key: sample index -> the record's key.
    """

    def __init__(self, samples: StrokeSamples, *, name: str, where: str, params: dict,
                 key: Callable[[int], str], image_size: int = 32, pen_width: float = 0.055,
                 width_variation: float = 0.0, quality: str = "any", writers=None, chars=None,
                 min_points: int = 2, limit: Optional[int] = None, seed: int = 0):
        image_size, min_points, seed = int(image_size), int(min_points), int(seed)
        pen_width, width_variation = float(pen_width), float(width_variation)
        if image_size < 8:
            raise ValueError(f"{name} image_size {image_size} is too small (>= 8)")
        if not 0.0 < pen_width < 0.5:
            raise ValueError(f"{name} pen_width {pen_width} is outside (0, 0.5)")
        if not 0.0 <= width_variation < 1.0:
            raise ValueError(f"{name} width_variation {width_variation} is outside [0, 1)")
        limit = None if limit in (None, "", "none") else int(limit)
        self.name = name
        self.where = where
        self.key = key
        self.image_size = image_size
        self.pen_width = pen_width
        self.width_variation = width_variation
        self.seed = seed
        wanted_writers = as_list(writers)
        self.params = {
            **params, "image_size": image_size, "pen_width": pen_width,
            "width_variation": width_variation, "quality": quality, "writers": wanted_writers,
            "chars": chars, "min_points": min_points, "limit": limit, "seed": seed,
        }
        self._samples = samples
        self._stroke_offsets, self._sample_offsets = samples.offsets
        self._labels = samples.labels
        self._writer_names = samples.writer_names
        self._writer_ids = samples.writer_ids
        self._select(samples, quality, wanted_writers, chars, min_points, limit)

    def _select(self, samples: StrokeSamples, quality, wanted_writers, chars, min_points, limit):
        n = len(samples)
        names, labels = self._writer_names, self._labels
        keep = np.ones(n, bool)
        if quality not in QUALITIES:
            raise ValueError(f"{self.name} quality filter {quality!r} is not one of {QUALITIES}")
        if quality == "ok":
            if samples.quality is None:
                raise ValueError(f"{self.where} has no 'quality' key to filter on")
            keep &= samples.quality == "OK"
        if wanted_writers:
            unknown = [w for w in wanted_writers if w not in set(names)]
            if unknown:
                raise ValueError(f"{self.where} has no writer(s) {unknown[:10]}")
            keep &= np.isin(names[self._writer_ids], wanted_writers)
        if chars:
            wanted = set("".join(charset_lib.parse_charset(chars)))
            keep &= np.isin(labels, sorted(wanted))
        # Quality: drop samples with too few points or no extent (a tap, not a character).
        lengths = samples.stroke_lengths
        pts_per_sample = np.add.reduceat(lengths, self._sample_offsets[:-1]) if n else np.zeros(0)
        keep &= pts_per_sample >= min_points
        self._indices = np.flatnonzero(keep)
        self._indices = np.array([i for i in self._indices if self._extent(i) > 0], np.int64)
        if limit is not None:
            self._indices = self._indices[:limit]
        if len(self._indices) == 0:
            raise ValueError(f"{self.where}: no sample passes the filters {self.params}")

    def _extent(self, i: int) -> float:
        p0 = self._stroke_offsets[self._sample_offsets[i]]
        p1 = self._stroke_offsets[self._sample_offsets[i + 1]]
        pts = self._samples.points[p0:p1]
        return float(np.ptp(pts, axis=0).max())

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def writers(self) -> list[str]:
        """Writer names present after filtering, in file order of their ids."""
        ids = np.unique(self._writer_ids[self._indices])
        return [str(self._writer_names[i]) for i in ids]

    def __iter__(self) -> Iterator[GlyphRecord]:
        for i in self._indices:
            rng = None
            if self.width_variation > 0:
                rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(i)]))
            image = render_strokes(self._samples.strokes(i), self.image_size, self.pen_width,
                                   self.width_variation, rng)
            yield GlyphRecord(
                char=str(self._labels[i]),
                writer=str(self._writer_names[self._writer_ids[i]]),
                source=self.name,
                image=image,
                geometry=None,
                key=self.key(int(i)),
            )


def open_ink(path: str, image_size: int = 32, pen_width: float = 0.055,
             width_variation: float = 0.0, quality: str = "any", writers=None, chars=None,
             min_points: int = 2, limit: Optional[int] = None, seed: int = 0) -> InkSource:
    """Opens an .npz of pen strokes.

    pen_width: pen diameter as a fraction of the image side; width_variation: pressure-like spread
    of the width along strokes (0 = constant; seeded per sample from `seed`); quality: "any" or
    "ok" (only samples a labeller checked); writers: names (list or comma-separated) to keep;
    chars: a charset spec (see charset.parse_charset) to keep; min_points: drop shorter samples.
    """
    path = os.fspath(path)
    base = os.path.basename(path)
    return InkSource(load_npz(path), name="ink", where=f"ink file {path}", params={"path": path},
                     key=lambda i: f"ink:{base}:{i}", image_size=image_size,
                     pen_width=pen_width, width_variation=width_variation, quality=quality,
                     writers=writers, chars=chars, min_points=min_points, limit=limit, seed=seed)
