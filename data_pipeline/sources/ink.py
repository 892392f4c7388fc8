"""Online pen strokes (UNIPEN layout) -> glyph records.

The file is an .npz with the keys of `REQUIRED_KEYS` (see ../shared/data/unipen/README.md for
their meaning): flat pen-down points, stroke lengths, strokes per sample, and per-sample labels
and writer ids indexing `writer_names`. `category`, `contributor` and `quality` are optional.

Samples were written in isolated boxes, so their size and baseline position carry no meaning:
geometry is unknown (None) and each glyph is fitted into the image box.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional, Sequence

import numpy as np

from data_pipeline import charset as charset_lib
from data_pipeline.schema import GlyphRecord
from data_pipeline.strokes import render_strokes

REQUIRED_KEYS = ("points", "stroke_lengths", "sample_stroke_counts", "labels", "writer_ids",
                 "writer_names")
QUALITIES = ("any", "ok")


def _as_list(value) -> Optional[list[str]]:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class InkSource:
    name = "ink"

    def __init__(self, path: str, image_size: int, pen_width: float, width_variation: float,
                 quality: str, writers: Optional[Sequence[str]], chars: Optional[str],
                 min_points: int, limit: Optional[int], seed: int):
        self.path = os.fspath(path)
        self.image_size = image_size
        self.pen_width = pen_width
        self.width_variation = width_variation
        self.seed = seed
        self.params = {
            "path": self.path, "image_size": image_size, "pen_width": pen_width,
            "width_variation": width_variation, "quality": quality,
            "writers": list(writers) if writers else None, "chars": chars,
            "min_points": min_points, "limit": limit, "seed": seed,
        }
        self._load(quality, writers, chars, min_points, limit)

    def _load(self, quality, writers, chars, min_points, limit):
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"ink file {self.path} does not exist")
        try:
            data = np.load(self.path, allow_pickle=False)
        except Exception as e:  # np.load raises several types for a file that is not an npz
            raise ValueError(f"ink file {self.path} is not a readable .npz: {e}") from e
        missing = [k for k in REQUIRED_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"ink file {self.path} lacks key(s) {missing}; "
                             f"it has {sorted(data.files)}")
        points = data["points"]
        lengths = data["stroke_lengths"].astype(np.int64)
        counts = data["sample_stroke_counts"].astype(np.int64)
        labels = data["labels"].astype(str)
        writer_ids = data["writer_ids"].astype(np.int64)
        names = data["writer_names"].astype(str)
        n = len(counts)

        def bad(key, why):
            return ValueError(f"ink file {self.path}: key {key!r} is malformed: {why}")

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

        self._points = points.astype(np.float32)
        self._stroke_offsets = np.concatenate([[0], np.cumsum(lengths)])
        self._sample_offsets = np.concatenate([[0], np.cumsum(counts)])
        self._labels = labels
        self._writer_names = names
        self._writer_ids = writer_ids

        keep = np.ones(n, bool)
        if quality not in QUALITIES:
            raise ValueError(f"ink quality filter {quality!r} is not one of {QUALITIES}")
        if quality == "ok":
            if "quality" not in data.files:
                raise ValueError(f"ink file {self.path} has no 'quality' key to filter on")
            keep &= data["quality"].astype(str) == "OK"
        wanted_writers = _as_list(writers)
        if wanted_writers:
            unknown = [w for w in wanted_writers if w not in set(names)]
            if unknown:
                raise ValueError(f"ink file {self.path} has no writer(s) {unknown[:10]}")
            keep &= np.isin(names[writer_ids], wanted_writers)
        if chars:
            wanted = set("".join(charset_lib.parse_charset(chars)))
            keep &= np.isin(labels, sorted(wanted))
        # Quality: drop samples with too few points or no extent (a tap, not a character).
        pts_per_sample = np.add.reduceat(lengths, self._sample_offsets[:-1]) if n else np.zeros(0)
        keep &= pts_per_sample >= min_points
        self._indices = np.flatnonzero(keep)
        self._indices = np.array([i for i in self._indices if self._extent(i) > 0], np.int64)
        if limit is not None:
            self._indices = self._indices[:limit]
        if len(self._indices) == 0:
            raise ValueError(f"ink file {self.path}: no sample passes the filters {self.params}")

    def _strokes(self, i: int) -> list[np.ndarray]:
        s0, s1 = self._sample_offsets[i], self._sample_offsets[i + 1]
        offs = self._stroke_offsets
        return [self._points[offs[j]:offs[j + 1]] for j in range(s0, s1)]

    def _extent(self, i: int) -> float:
        p0 = self._stroke_offsets[self._sample_offsets[i]]
        p1 = self._stroke_offsets[self._sample_offsets[i + 1]]
        pts = self._points[p0:p1]
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
            image = render_strokes(self._strokes(i), self.image_size, self.pen_width,
                                   self.width_variation, rng)
            yield GlyphRecord(
                char=str(self._labels[i]),
                writer=str(self._writer_names[self._writer_ids[i]]),
                source="ink",
                image=image,
                geometry=None,
                key=f"ink:{os.path.basename(self.path)}:{int(i)}",
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
    image_size, min_points = int(image_size), int(min_points)
    pen_width, width_variation = float(pen_width), float(width_variation)
    if image_size < 8:
        raise ValueError(f"ink image_size {image_size} is too small (>= 8)")
    if not 0.0 < pen_width < 0.5:
        raise ValueError(f"ink pen_width {pen_width} is outside (0, 0.5)")
    if not 0.0 <= width_variation < 1.0:
        raise ValueError(f"ink width_variation {width_variation} is outside [0, 1)")
    limit = None if limit in (None, "", "none") else int(limit)
    return InkSource(path, image_size, pen_width, width_variation, quality, writers, chars,
                     min_points, limit, int(seed))
