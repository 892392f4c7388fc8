"""ExportFewShotModel: a fewshot EXPORT (a SavedModel: a shipped model, or one rebuilt by
hw_gan.export.rebuild) as the held-out evaluation uses a style model (hw_gan.inversion.evaluate,
benchmarks/style_eval.py --export): FewShotModel's interface (`extract`, `generate`,
`generate_labels`, `mean_ws`) through the export's own signatures, so what is scored is what a
user of the export gets (`extract_style`, `glyphs_with_style` with no per-glyph variation,
`mean_style`), with no run directory.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import numpy as np
import tensorflow as tf

from data_pipeline.schema import to_float, to_uint8
from hw_gan import config as config_lib
from hw_gan.config import StyleError
from hw_gan.export.loader import resolve_export_path
from hw_gan.export.names import (EXTRACT_STYLE, GLYPHS_WITH_STYLE, MEAN_STYLE, METADATA_FILE,
                                 UNTRAINED_CHARS_KEY)
from hw_gan.inversion.fewshot_model import METHODS, per_glyph

__all__ = ["ExportFewShotModel"]


class ExportFewShotModel:
    family = "fewshot"
    methods = METHODS

    def __init__(self, path, holdout_chars=None):
        """`path`: an export (version dir, `.../name` or a shipped name); `holdout_chars`: the
        charset characters its training held out (default: what its hwgan.json records)."""
        self.path = resolve_export_path(path)
        info = json.loads((self.path / "assets" / METADATA_FILE).read_text(encoding="utf-8"))
        if info.get("family") != "fewshot":
            raise StyleError(f"{self.path} holds a {info.get('family')} export; this needs a "
                             "fewshot one")
        self.charset = list(info["charset"])
        self.resolution = int(info["resolution"])
        # How its extract_style reads a style (fewshot.reading_copies); an export made before
        # model_config recorded it reads the glyphs alone.
        self.style_read_copies = int(info.get("model_config", {}).get("style_read_copies", 0))
        self.holdout_chars = (info.get(UNTRAINED_CHARS_KEY, "") if holdout_chars is None
                              else holdout_chars)
        self.step = info.get("step")
        # What the evaluation reads of a run's config: the judges' defaults; no run directory
        # (the judges are cached beside the dataset).
        base = config_lib.ExperimentConfig()
        self.cfg = dataclasses.replace(base, runtime=dataclasses.replace(
            base.runtime, model_dir=str(self.path)))
        module = tf.saved_model.load(str(self.path))
        self._module = module  # keeps the signatures' variables alive
        self._extract = module.signatures[EXTRACT_STYLE]
        self._draw = module.signatures[GLYPHS_WITH_STYLE]
        self._mean = module.signatures[MEAN_STYLE]()["style"].numpy()[0]

    # -- styles ----------------------------------------------------------------------------------
    def extract(self, images, chars, mask=None, method: str = "encoder",
                projection=None) -> np.ndarray:
        """Styles [S, D] of S sets: images [S, K, R, R, 1] in [-1, 1], char ids [S, K], mask
        [S, K] (1 = a reference; default all): one extract_style call per set."""
        if method not in METHODS:
            raise StyleError(f"method {method!r} is not one of {METHODS}")
        images = np.asarray(images, np.float32)
        chars = np.asarray(chars)
        mask = np.ones(chars.shape, bool) if mask is None else np.asarray(mask) > 0
        out = []
        for x, c, m in zip(images, chars, mask):
            if not m.any():
                raise StyleError("a style needs at least one reference glyph; a set has none")
            out.append(self._extract(images=tf.constant(to_uint8(x[m])),
                                     chars=tf.constant([self.charset[int(i)] for i in c[m]]),
                                     steps=tf.constant(0))["style"].numpy()[0])
        return np.stack(out).astype(np.float32)

    def mean_ws(self, n: int) -> np.ndarray:
        return np.tile(self._mean[None], (n, 1))

    # -- drawing ---------------------------------------------------------------------------------
    def generate_labels(self, ws, labels: Sequence[str]) -> np.ndarray:
        """Float [-1, 1] glyphs [N, R, R, 1] of any characters the export's font covers, in
        styles [N, D] (or one for all): one glyphs_with_style call per distinct style."""
        labels = list(labels)
        ws = per_glyph(ws, len(labels))
        out = np.zeros((len(labels), self.resolution, self.resolution, 1), np.float32)
        styles, which = np.unique(ws, axis=0, return_inverse=True)
        for i, style in enumerate(styles):
            at = np.flatnonzero(which.reshape(-1) == i)
            drawn = self._draw(chars=tf.constant([labels[j] for j in at]),
                               style=tf.constant(style[None]), seed=tf.constant(0, tf.int64),
                               variation=tf.constant(0.0))["images"].numpy()
            out[at] = to_float(drawn)
        return out

    def generate(self, ws, chars) -> np.ndarray:
        """Like generate_labels, for training char ids [N]."""
        return self.generate_labels(ws, [self.charset[int(c)] for c in np.asarray(chars)])
