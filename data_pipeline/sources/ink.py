"""Online pen strokes (UNIPEN layout) -> glyph records.

The file is an .npz with the keys of `REQUIRED_KEYS` (see ../shared/data/unipen/README.md for
their meaning): flat pen-down points, stroke lengths, strokes per sample, and per-sample labels
and writer ids indexing `writer_names`. `category`, `contributor` and `quality` are optional.

Several files (`path=a.npz,b.npz`, e.g. UNIPEN's letters and its symbols) are read as one:
writers are matched by name, so a writer's letters and symbols are one writer's.

Samples were written in isolated boxes, so their position against a baseline is unknown
(geometry None). Their size against the same writer's letters is known (one writer, one tablet):
each writer's x-height is the median height of their x-height letters (`a c e m n o r s u v w x
z`; failing those, of their capitals and digits divided by `CAP_TO_X_HEIGHT`), and each record
carries its ink `size` (height, width) in those x-heights, pen included (schema.py). Each glyph
is fitted into the image box, but the box spans at least `min_box` of the writer's x-heights, so
`.` `,` `'` stay small marks drawn near the letters' pen width instead of pen jitter blown up to
the box. Points at exactly (0, 0), a recording
glitch of the UNIPEN tablets, are dropped (`zero_points=drop`) and counted in `counts`.

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
from data_pipeline.strokes import MARGIN_FRAC, fit_transform, render_strokes

REQUIRED_KEYS = ("points", "stroke_lengths", "sample_stroke_counts", "labels", "writer_ids",
                 "writer_names")
QUALITIES = ("any", "ok")
ZERO_POINTS = ("drop", "keep")
X_HEIGHT_LETTERS = "acemnorsuvwxz"  # no ascender, no descender: their height is the x-height
TALL_CHARS = charset_lib.UPPER + charset_lib.DIGITS  # cap height, when a writer has no x letters
MIN_SCALE_SAMPLES = 3  # samples a writer's x-height (or cap height) is measured from
# Cap height / x-height of isolated UNIPEN characters: the median over the 281 writers of
# unipen_train_strokes.npz with both (quartiles 1.50, 1.92). A constant, so that each record
# depends only on its own writer's samples, whichever other writers are read.
CAP_TO_X_HEIGHT = 1.65


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


def stroke_paths(path) -> list[str]:
    """One path, a list of paths or a comma-separated string of them -> a list of paths."""
    if isinstance(path, os.PathLike):
        return [os.fspath(path)]
    paths = as_list(path)
    if not paths:
        raise ValueError("ink source: parameter 'path' is empty: give an .npz file (or several, "
                         "comma-separated)")
    return [os.fspath(p) for p in paths]


def merge_samples(parts: Sequence[StrokeSamples]) -> StrokeSamples:
    """Several files' samples as one, in file order; writers are matched by name (the first
    file's writer list first, then each later file's new names)."""
    if len(parts) == 1:
        return parts[0]
    names: dict[str, int] = {}
    for part in parts:
        for name in part.writer_names:
            names.setdefault(str(name), len(names))
    writer_ids = [np.array([names[str(n)] for n in part.writer_names], np.int64)[part.writer_ids]
                  for part in parts]
    quality = (np.concatenate([p.quality for p in parts])
               if all(p.quality is not None for p in parts) else None)
    return StrokeSamples(
        points=np.concatenate([p.points for p in parts]),
        stroke_lengths=np.concatenate([p.stroke_lengths for p in parts]),
        sample_stroke_counts=np.concatenate([p.sample_stroke_counts for p in parts]),
        labels=np.concatenate([p.labels.astype(str) for p in parts]).astype(str),
        writer_ids=np.concatenate(writer_ids), writer_names=np.array(list(names), dtype=str),
        quality=quality)


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
    options); key: sample index -> the record's key. min_box: the fitted box spans at least this
    many of the writer's x-heights (0: every glyph fills the box); zero_points: "drop" or "keep"
    points at exactly (0, 0); require_chars: a charset spec whose every character must have a
    sample after the filters (so a build that lacks, say, the symbols file fails by name).
    `counts`: what was measured and dropped (the manifest's `source.counts`).
    """

    def __init__(self, samples: StrokeSamples, *, name: str, where: str, params: dict,
                 key: Callable[[int], str], image_size: int = 32, pen_width: float = 0.055,
                 width_variation: float = 0.0, quality: str = "any", writers=None, chars=None,
                 min_points: int = 2, limit: Optional[int] = None, seed: int = 0,
                 min_box: float = 0.75, zero_points: str = "drop", require_chars=None):
        image_size, min_points, seed = int(image_size), int(min_points), int(seed)
        pen_width, width_variation = float(pen_width), float(width_variation)
        min_box = float(min_box)
        if image_size < 8:
            raise ValueError(f"{name} image_size {image_size} is too small (>= 8)")
        if not 0.0 < pen_width < 0.5:
            raise ValueError(f"{name} pen_width {pen_width} is outside (0, 0.5)")
        if not 0.0 <= width_variation < 1.0:
            raise ValueError(f"{name} width_variation {width_variation} is outside [0, 1)")
        if not 0.0 <= min_box <= 4.0:
            raise ValueError(f"{name} min_box {min_box} is outside [0, 4] (writer x-heights)")
        if zero_points not in ZERO_POINTS:
            raise ValueError(f"{name} zero_points={zero_points!r} is not one of {ZERO_POINTS}")
        limit = None if limit in (None, "", "none") else int(limit)
        self.name = name
        self.where = where
        self.key = key
        self.image_size = image_size
        self.pen_width = pen_width
        self.width_variation = width_variation
        self.min_box = min_box
        self.zero_points = zero_points
        self.seed = seed
        wanted_writers = as_list(writers)
        self.params = {
            **params, "image_size": image_size, "pen_width": pen_width,
            "width_variation": width_variation, "quality": quality, "writers": wanted_writers,
            "chars": chars, "min_points": min_points, "limit": limit, "seed": seed,
            "min_box": min_box, "zero_points": zero_points, "require_chars": require_chars,
        }
        self._samples = samples
        self._stroke_offsets, self._sample_offsets = samples.offsets
        self._labels = samples.labels
        self._writer_names = samples.writer_names
        self._writer_ids = samples.writer_ids
        self.counts: dict = {}
        self._extents = self._measure(samples)  # (N, 2) ink height, width in stroke units
        self._x_heights = self._writer_x_heights()
        self._select(samples, quality, wanted_writers, chars, min_points, limit)
        self._require(require_chars)

    # -- measuring --------------------------------------------------------------------------

    def _measure(self, samples: StrokeSamples) -> np.ndarray:
        """Each sample's (height, width) in stroke units, NaN when it has no point (left)."""
        points = samples.points
        zero = (points == 0).all(axis=1)
        starts = self._stroke_offsets[self._sample_offsets[:-1]]
        self._zeros = (np.add.reduceat(zero.astype(np.int64), starts) if len(samples)
                       else np.zeros(0, np.int64))
        if self.zero_points == "drop" and zero.any():
            points = np.where(zero[:, None], np.float32(np.nan), points)
        if not len(samples):
            return np.zeros((0, 2), np.float32)
        with np.errstate(invalid="ignore"):
            low = np.fmin.reduceat(points, starts, axis=0)
            high = np.fmax.reduceat(points, starts, axis=0)
        return (high - low)[:, ::-1].astype(np.float32)

    def _writer_x_heights(self) -> np.ndarray:
        """Each writer's x-height in stroke units (NaN where the letters do not tell)."""
        labels, ids = self._labels, self._writer_ids
        height = self._extents[:, 0]
        n_writers = len(self._writer_names)

        def medians(mask):
            out = np.full(n_writers, np.nan)
            ok = mask & np.isfinite(height) & (height > 0)
            order = np.argsort(ids[ok], kind="stable")
            w, h = ids[ok][order], height[ok][order]
            bounds = np.flatnonzero(np.diff(w)) + 1
            for group_w, group_h in zip(np.split(w, bounds), np.split(h, bounds)):
                if len(group_h) >= MIN_SCALE_SAMPLES:
                    out[group_w[0]] = np.median(group_h)
            return out

        x_height = medians(np.isin(labels, list(X_HEIGHT_LETTERS)))
        cap = medians(np.isin(labels, list(TALL_CHARS)))
        self._scaled_by_caps = ~np.isfinite(x_height) & np.isfinite(cap)
        x_height[self._scaled_by_caps] = cap[self._scaled_by_caps] / CAP_TO_X_HEIGHT
        return x_height

    @property
    def pen_x_heights(self) -> float:
        """The pen's diameter in x-heights, as drawn in a glyph fitted to one x-height."""
        return self.pen_width / (1.0 - 2.0 * MARGIN_FRAC - self.pen_width)

    def size(self, i: int) -> Optional[tuple[float, float]]:
        """Sample i's ink (height, width) in its writer's x-heights, pen included; None if the
        writer's letters give no scale."""
        xh = self._x_heights[self._writer_ids[i]]
        if not np.isfinite(xh):
            return None
        h, w = self._extents[i] / xh + self.pen_x_heights
        return float(np.float32(h)), float(np.float32(w))

    # -- selecting --------------------------------------------------------------------------

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
        with np.errstate(invalid="ignore"):
            keep &= np.nan_to_num(self._extents.max(axis=1), nan=0.0) > 0
        self._indices = np.flatnonzero(keep).astype(np.int64)
        if limit is not None:
            self._indices = self._indices[:limit]
        if len(self._indices) == 0:
            raise ValueError(f"{self.where}: no sample passes the filters {self.params}")
        # What was measured and dropped, over the samples kept.
        kept_writers = np.unique(self._writer_ids[self._indices])
        zeros = self._zeros[self._indices]
        self.counts.update({
            "zero_point_samples": int((zeros > 0).sum()), "zero_points": int(zeros.sum()),
            "writers_scaled_by_caps": int(self._scaled_by_caps[kept_writers].sum()),
            "writers_without_scale": int((~np.isfinite(self._x_heights[kept_writers])).sum()),
            "samples_without_size": int(
                (~np.isfinite(self._x_heights[self._writer_ids[self._indices]])).sum()),
        })

    def _require(self, require_chars) -> None:
        if not require_chars:
            return
        wanted = "".join(charset_lib.parse_charset(str(require_chars)))
        present = set(self._labels[self._indices].tolist())
        absent = "".join(c for c in wanted if c not in present)
        if absent:
            raise ValueError(
                f"{self.where}: require_chars={require_chars!r}, but no sample is one of "
                f"{absent!r} after the filters; give the file that holds them too (UNIPEN's "
                f"symbols: path=unipen_train_strokes.npz,unipen_train_symbols_strokes.npz)")

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def writers(self) -> list[str]:
        """Writer names present after filtering, in file order of their ids."""
        ids = np.unique(self._writer_ids[self._indices])
        return [str(self._writer_names[i]) for i in ids]

    def _strokes(self, i: int) -> list[np.ndarray]:
        strokes = self._samples.strokes(i)
        if self.zero_points == "drop":
            strokes = [s[~(s == 0).all(axis=1)] for s in strokes]
            strokes = [s for s in strokes if len(s)]
        return strokes

    def draw(self, i: int, pen_width: Optional[float] = None,
             image_size: Optional[int] = None) -> tuple[np.ndarray, float]:
        """Sample i as its record's image (defaults), or re-drawn with another pen width (a
        fraction of the image side) or image size: (uint8 ink-high image, the writer's x-height
        in its pixels; NaN when the writer's letters give no scale)."""
        pen_width = self.pen_width if pen_width is None else float(pen_width)
        size = self.image_size if image_size is None else int(image_size)
        rng = None
        if self.width_variation > 0:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(i)]))
        xh = self._x_heights[self._writer_ids[i]]
        min_extent = self.min_box * xh if np.isfinite(xh) else 0.0
        strokes = self._strokes(i)
        transform = fit_transform(strokes, size, pen_width * size, min_extent=min_extent)
        image = render_strokes(strokes, size, pen_width, self.width_variation, rng,
                               transform=transform)
        return image, float(xh * transform[0])

    @functools.cached_property
    def _by_key(self) -> dict[str, int]:
        return {self.key(int(i)): int(i) for i in self._indices}

    def sample_index(self, key: str) -> int:
        """The sample behind a record key (KeyError for a key this source does not yield)."""
        return self._by_key[key]

    def sample_label(self, i: int) -> tuple[str, str]:
        """(character, writer name) of sample i."""
        return str(self._labels[i]), str(self._writer_names[self._writer_ids[i]])

    def __iter__(self) -> Iterator[GlyphRecord]:
        for i in self._indices:
            char, writer = self.sample_label(int(i))
            yield GlyphRecord(
                char=char,
                writer=writer,
                source=self.name,
                image=self.draw(int(i))[0],
                geometry=None,
                key=self.key(int(i)),
                size=self.size(int(i)),
            )


def open_ink(path, image_size: int = 32, pen_width: float = 0.055,
             width_variation: float = 0.0, quality: str = "any", writers=None, chars=None,
             min_points: int = 2, limit: Optional[int] = None, seed: int = 0,
             min_box: float = 0.75, zero_points: str = "drop", require_chars=None) -> InkSource:
    """Opens one .npz of pen strokes or several (a list, or comma-separated), read as one with
    writers matched by name (UNIPEN: `unipen_train_strokes.npz,unipen_train_symbols_strokes.npz`).

    pen_width: pen diameter as a fraction of the image side; width_variation: pressure-like spread
    of the width along strokes (0 = constant; seeded per sample from `seed`); quality: "any" or
    "ok" (only samples a labeller checked); writers: names (list or comma-separated) to keep;
    chars: a charset spec (see charset.parse_charset) to keep; min_points: drop shorter samples;
    min_box: the smallest box a glyph is fitted into, in its writer's x-heights; zero_points:
    "drop" (default) or "keep" points at exactly (0, 0); require_chars: a charset spec that must
    all be present (e.g. "alnum+symbols").
    """
    paths = stroke_paths(path)
    parts = [load_npz(p) for p in paths]
    firsts = np.cumsum([0] + [len(part) for part in parts])
    samples = merge_samples(parts)
    del parts
    bases = [os.path.basename(p) for p in paths]
    if len(paths) == 1:
        where = f"ink file {paths[0]}"

        def key(i: int) -> str:
            return f"ink:{bases[0]}:{i}"
    else:
        where = f"ink files {', '.join(paths)}"

        def key(i: int) -> str:
            f = int(np.searchsorted(firsts, i, side="right")) - 1
            return f"ink:{bases[f]}:{i - int(firsts[f])}"
    return InkSource(samples, name="ink", where=where,
                     params={"path": paths[0] if len(paths) == 1 else paths}, key=key,
                     image_size=image_size, pen_width=pen_width,
                     width_variation=width_variation, quality=quality, writers=writers,
                     chars=chars, min_points=min_points, limit=limit, seed=seed,
                     min_box=min_box, zero_points=zero_points, require_chars=require_chars)
