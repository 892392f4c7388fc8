"""The glyph record: one layout for every source, and the one image convention of the project.

Image convention (everywhere in hwgan):
  * uint8 glyph images are INK-HIGH: 0 is blank paper, 255 is full ink (as EMNIST stores them).
  * float images for models are in [-1, 1]: -1 is paper, +1 is ink.
  `to_float` and `to_uint8` are the only conversions between the two; nothing else rescales.

Geometry: where a source knows it, a glyph's ink extent against its baseline, in units of the
writer's x-height, y upward from the baseline (top > bottom; a descender has bottom < 0) and x
rightward from the left edge of the glyph's writing box. Unknown geometry is stored as NaN.

Size: where a source knows a glyph's size against the writer's letters but not where it sat on a
baseline (UNIPEN's isolated characters), its ink (height, width) in units of the writer's
x-height, pen width included. A record with geometry has its size in the geometry; `size` is
stored only when known (the `size` feature is absent otherwise, so records of other sources are
unchanged).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

FORMAT_VERSION = 1
# The uint8 ink level that counts as ink: where the page crops a glyph, where a composed
# glyph's parts are found and placed, and where the accent score looks for a mark.
INK_THRESHOLD = 96

# TFRecord feature keys.
KEY = "key"
CHAR = "char"
WRITER = "writer"
SOURCE = "source"
IMAGE = "image"
HEIGHT = "height"
WIDTH = "width"
GEOMETRY = "geometry"
SIZE = "size"


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Ink extent against the baseline, in x-heights (see module docstring)."""

    top: float
    bottom: float
    left: float
    right: float

    def as_list(self) -> list[float]:
        return [self.top, self.bottom, self.left, self.right]

    @classmethod
    def from_list(cls, values) -> Optional["Geometry"]:
        values = [float(v) for v in values]
        if len(values) != 4 or any(math.isnan(v) for v in values):
            return None
        return cls(*values)


UNKNOWN_GEOMETRY = [math.nan] * 4


@dataclasses.dataclass(frozen=True)
class GlyphRecord:
    """One glyph. `image` is uint8 [H, W], ink-high. `key` identifies the record in its source
    (for error messages and provenance), e.g. "unipen:1234"."""

    char: str
    writer: str
    source: str
    image: np.ndarray
    geometry: Optional[Geometry] = None
    key: str = ""
    size: Optional[tuple[float, float]] = None  # ink (height, width) in the writer's x-heights

    @property
    def ink_size(self) -> Optional[tuple[float, float]]:
        """(height, width) in x-heights from the geometry, else the size; None if unknown."""
        if self.geometry is not None:
            g = self.geometry
            return g.top - g.bottom, g.right - g.left
        return self.size

    def check(self) -> "GlyphRecord":
        """Raises ValueError naming the record if a field is malformed."""
        where = f"record {self.key or '?'} (char {self.char!r}, writer {self.writer!r})"
        if not isinstance(self.char, str) or not self.char:
            raise ValueError(f"{where}: character must be a non-empty string")
        if not isinstance(self.writer, str) or not self.writer:
            raise ValueError(f"{where}: writer must be a non-empty string")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"{where}: source must be a non-empty string")
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 2:
            raise ValueError(f"{where}: image must be a 2-D uint8 array, got "
                             f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}")
        if img.shape[0] < 4 or img.shape[1] < 4:
            raise ValueError(f"{where}: image {img.shape} is too small")
        if self.geometry is not None:
            g = self.geometry
            if not all(math.isfinite(v) for v in g.as_list()) or g.top < g.bottom or g.right < g.left:
                raise ValueError(f"{where}: geometry {g} is not a box (top >= bottom, right >= left)")
        if self.size is not None:
            if len(self.size) != 2 or not all(math.isfinite(v) and v > 0 for v in self.size):
                raise ValueError(f"{where}: size {self.size} is not a (height, width) > 0")
        return self


def encode(record: GlyphRecord) -> bytes:
    """GlyphRecord -> serialized tf.train.Example."""
    import tensorflow as tf  # imported lazily: sources and workers do not need TensorFlow

    record.check()
    img = np.ascontiguousarray(record.image)

    def _bytes(v: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def _int(v: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    geometry = record.geometry.as_list() if record.geometry is not None else UNKNOWN_GEOMETRY
    features = {
        KEY: _bytes(record.key.encode("utf-8")),
        CHAR: _bytes(record.char.encode("utf-8")),
        WRITER: _bytes(record.writer.encode("utf-8")),
        SOURCE: _bytes(record.source.encode("utf-8")),
        IMAGE: _bytes(img.tobytes()),
        HEIGHT: _int(img.shape[0]),
        WIDTH: _int(img.shape[1]),
        GEOMETRY: tf.train.Feature(float_list=tf.train.FloatList(value=geometry)),
    }
    if record.size is not None:
        features[SIZE] = tf.train.Feature(float_list=tf.train.FloatList(value=list(record.size)))
    # deterministic: map entries in key order, so the bytes do not depend on the process
    # (protobuf orders a map by hash otherwise, and str hashes differ between processes).
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(
        deterministic=True)


def decode(serialized: bytes) -> GlyphRecord:
    """Serialized tf.train.Example -> GlyphRecord (the Python-side inverse of `encode`)."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    f = example.features.feature
    missing = [k for k in (KEY, CHAR, WRITER, SOURCE, IMAGE, HEIGHT, WIDTH, GEOMETRY) if k not in f]
    if missing:
        raise ValueError(f"glyph record lacks features {missing}")
    h, w = f[HEIGHT].int64_list.value[0], f[WIDTH].int64_list.value[0]
    raw = f[IMAGE].bytes_list.value[0]
    if len(raw) != h * w:
        raise ValueError(f"glyph record image has {len(raw)} bytes, expected {h}x{w}")
    return GlyphRecord(
        char=f[CHAR].bytes_list.value[0].decode("utf-8"),
        writer=f[WRITER].bytes_list.value[0].decode("utf-8"),
        source=f[SOURCE].bytes_list.value[0].decode("utf-8"),
        image=np.frombuffer(raw, np.uint8).reshape(h, w).copy(),
        geometry=Geometry.from_list(f[GEOMETRY].float_list.value),
        key=f[KEY].bytes_list.value[0].decode("utf-8"),
        size=_size(f[SIZE].float_list.value) if SIZE in f else None,
    )


def _size(values) -> Optional[tuple[float, float]]:
    if len(values) != 2:
        raise ValueError(f"glyph record size has {len(values)} values, expected 2")
    return float(values[0]), float(values[1])


def feature_spec(height: int, width: int) -> dict:
    """Fixed-length parsing spec for tf.io.parse_example on a batch of records."""
    import tensorflow as tf

    del height, width  # the image is a single bytes string; its size is checked after decoding
    return {
        KEY: tf.io.FixedLenFeature([], tf.string),
        CHAR: tf.io.FixedLenFeature([], tf.string),
        WRITER: tf.io.FixedLenFeature([], tf.string),
        SOURCE: tf.io.FixedLenFeature([], tf.string),
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        GEOMETRY: tf.io.FixedLenFeature([4], tf.float32),
    }


def to_float(images):
    """uint8 ink-high images -> float32 in [-1, 1] (paper -1, ink +1). NumPy or TF tensors."""
    if isinstance(images, np.ndarray):
        return images.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    import tensorflow as tf

    return tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0


def to_uint8(images):
    """float images in [-1, 1] -> uint8 ink-high, rounded and clipped. NumPy or TF tensors."""
    if isinstance(images, np.ndarray):
        return np.clip(np.rint((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    import tensorflow as tf

    scaled = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
    return tf.cast(tf.clip_by_value(scaled, 0.0, 255.0), tf.uint8)
