"""Where a document's glyphs come from: GlyphSource (generated lazily, in blocks, cropped to
ink), the writer check (resolve_writer), and an export seen through a style (StyledExport,
apply_style) for writing in a hand the model was not trained on."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from hw_gan.export.signatures.style import EXTRACT_STYLE, GLYPHS_WITH_STYLE, MEAN_STYLE
from hw_gan.inversion import StyleError, load_style
from hw_gan.layout import CHUNK, INK_THRESHOLD, chunk_seed, crop_to_ink
from hw_gan.models.stylegan import truncate

STYLE_VARIATION = 0.12  # default spread of each glyph's style around the given one


class GlyphSource:
    """Generates glyph k on demand, in blocks of `chunk` requests (one `.glyphs` call each), and
    keeps each glyph's ink crop until `release_before` drops it."""

    def __init__(self, model, requests: Sequence[str], writer: Optional[str], seed: int,
                 chunk: int = CHUNK, threshold: int = INK_THRESHOLD):
        self.model = model
        self.requests = tuple(requests)
        self.writer = writer if writer is not None else ""
        self.seed = int(seed)
        self.chunk = int(chunk)
        self.threshold = threshold
        self._crops: dict[int, np.ndarray] = {}
        self._loaded: set[int] = set()
        self.calls = 0

    def _load(self, c: int) -> None:
        lo, hi = c * self.chunk, min(len(self.requests), (c + 1) * self.chunk)
        images = self.model.glyphs(list(self.requests[lo:hi]), self.writer,
                                   chunk_seed(self.seed, c))
        self.calls += 1
        if images.shape[0] != hi - lo:
            raise RuntimeError(f"the model returned {images.shape[0]} glyphs for {hi - lo}")
        for i in range(hi - lo):
            self._crops[lo + i] = crop_to_ink(images[i], self.threshold)
        self._loaded.add(c)

    def crop(self, k: int) -> np.ndarray:
        """uint8 ink-high [h, w]: glyph k cropped to its ink ([0, 0] if it has none)."""
        if k not in self._crops:
            c = k // self.chunk
            if c in self._loaded:
                raise KeyError(f"glyph {k} was released")
            if not 0 <= k < len(self.requests):
                raise IndexError(f"glyph {k} out of range [0, {len(self.requests)})")
            self._load(c)
        return self._crops[k]

    def ink_size(self, k: int) -> tuple[int, int]:
        h, w = self.crop(k).shape
        return h, w

    def release_before(self, k: int) -> None:
        for key in [key for key in self._crops if key < k]:
            del self._crops[key]

    @property
    def held(self) -> int:
        return len(self._crops)


def resolve_writer(model, writer: Optional[str]) -> Optional[str]:
    """Checks `writer` against the model: required and known for families with writers, ignored
    (None) for those without. ValueError names a few known writers."""
    if not getattr(model, "uses_writer", True):
        return None
    untrained = set(getattr(model, "untrained_writers", ()))
    writers = tuple(w for w in getattr(model, "writers", ()) if w not in untrained)
    shown = ", ".join(writers[:8]) + (f", ... ({len(writers)} in all)" if len(writers) > 8 else "")
    if not writer:
        raise ValueError(f"this model writes in the hand of one of its writers: name one "
                         f"(known writers: {shown})")
    if writer in untrained:
        raise ValueError(f"writer {writer!r} was held out when this model was trained: it has "
                         f"a name here but its style was never learned; the model knows {shown}")
    if writer not in writers:
        raise ValueError(f"unknown writer {writer!r}: the model knows {shown}")
    return writer


class StyledExport:
    """An export seen through a style: `.glyphs(chars, writer, seed)` draws every glyph in the
    given style (W+ styles from `hwgan style extract`) through the export's `glyphs_with_style`
    signature, each glyph's style varied by `variation` (seeded) as a real hand varies.

    (Not to be confused with hw_gan.inversion.StyleModel, the encoder that extracts a style.)"""

    def __init__(self, model, ws, variation: float = STYLE_VARIATION):
        self.model = model
        self.ws = np.asarray(ws, np.float32)
        self.variation = float(variation)
        self.charset = getattr(model, "style_charset", None) or model.charset
        self.uses_writer = False
        self.writers = ()
        self.family = model.family
        self.resolution = model.resolution
        self.info = {k: v for k, v in (getattr(model, "info", None) or {}).items()
                     if k != "writer_geometry"}
        self.signatures = model.signatures

    def glyphs(self, chars, writers=None, seed: int = 0) -> np.ndarray:
        chars = list(chars)
        out = self.signatures[GLYPHS_WITH_STYLE](
            chars=tf.constant(chars, tf.string, shape=[len(chars)]),
            style=tf.constant(self.ws), seed=tf.constant(int(seed), tf.int64),
            variation=tf.constant(self.variation, tf.float32))
        return out["images"].numpy()


def apply_style(model, style, variation: float = STYLE_VARIATION, truncation: float = 1.0):
    """`model` unchanged when style is None; else a StyledExport. style: a style file path or a
    ws array [L, w_dim]; truncation psi in [0, 1] pulls it toward the mean hand (StyleGAN's
    truncation trick: mean + psi * (style - mean); 1 keeps it, lower is neater and less
    personal). ValueError when the model has no style support or the style does not fit it."""
    if style is None:
        return model
    sigs = getattr(model, "signatures", {})
    if EXTRACT_STYLE not in sigs or GLYPHS_WITH_STYLE not in sigs:
        raise ValueError(f"a style sample (--style) is not available for this model (family "
                         f"{getattr(model, 'family', '?')!r}: its export has no "
                         f"{EXTRACT_STYLE!r} signature); pick one of its writers instead")
    if not 0.0 <= float(variation) <= 2.0:
        raise ValueError(f"style variation {variation} must be in [0, 2]")
    if not 0.0 <= float(truncation) <= 1.0:
        raise ValueError(f"style truncation {truncation} must be in [0, 1]")
    mean = sigs[MEAN_STYLE]()["style"].numpy()
    if isinstance(style, (str, os.PathLike)):
        ws = _load_style_file(model, style, mean)
    else:
        ws = np.asarray(style, np.float32)
        if ws.shape != mean.shape:
            raise ValueError(f"style of shape {ws.shape} does not fit this model ({mean.shape})")
    ws = truncate(ws, mean, float(truncation))
    return StyledExport(model, ws, variation)


def _load_style_file(model, path, mean: np.ndarray) -> np.ndarray:
    """The ws of a style file, checked against the model (ValueError when it does not fit)."""
    info = {"family": model.family, "resolution": int(model.resolution),
            "w_dim": int(mean.shape[1]), "num_ws": int(mean.shape[0]),
            "charset": list(model.charset)}
    try:
        ws, _ = load_style(path, info)
    except StyleError as e:
        raise ValueError(str(e)) from None
    return ws
