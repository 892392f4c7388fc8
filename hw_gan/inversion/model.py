"""StyleModel: a trained stylegan run, as style extraction uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from hw_gan.config import FEATURES, ProjectionConfig, StyleError
from hw_gan.inversion.projection import project_styles
from hw_gan.models import stylegan
from hw_gan.training import run_dir

METHODS = ("encoder", "projection", "both")


def restore_run(model, model_dir, checkpoint: Optional[str]):
    """Sets model.trainer (the run's, restored), .cfg, .step, .charset, .resolution from the run
    in `model_dir`, which must be of `model.family`; returns the config. StyleError otherwise."""
    model_dir = Path(model_dir)
    try:
        cfg, info = run_dir.load_run_config(model_dir)
        if cfg.model.family != model.family:
            raise StyleError(f"{model_dir} holds a {cfg.model.family} model; this needs "
                             f"--model={model.family}")
        model.trainer = run_dir.restore_trainer(model_dir, checkpoint, run=(cfg, info))
    except run_dir.RunDirError as e:
        raise StyleError(str(e)) from None
    model.cfg = cfg
    model.step = int(model.trainer.step.numpy())
    model.charset = list(info["charset"])
    model.resolution = cfg.model.resolution
    return cfg


class StyleModel:
    """The pieces style extraction needs, from a stylegan run directory (latest checkpoint):
    the EMA generator, the EMA style encoder, the discriminator's feature net, the mean w."""

    family = "stylegan"
    methods = METHODS

    def __init__(self, model_dir, checkpoint: Optional[str] = None):
        cfg = restore_run(self, model_dir, checkpoint)
        self.generator = self.trainer.ema_generator
        self.encoder = self.trainer.ema_encoder
        self.mapping, self.synthesis = stylegan.parts(self.generator)
        self.num_ws = stylegan.num_ws(cfg.model)
        self.w_dim = stylegan.w_dim(cfg.model)
        self.w_avg, self.spread = stylegan.w_statistics(self.generator, cfg.model.latent_dim)
        self._d_features = self.trainer.d_feature_net
        self._projectors = {}  # ProjectionConfig -> its tf.function (traced once per shape)

    # -- pieces ----------------------------------------------------------------------------------
    def synthesize(self, ws, chars):
        return stylegan.synthesize(self.generator, ws, chars)

    def feature_fn(self, name: str):
        if name == "none":
            return None
        if name == "encoder":
            net = self.encoder.glyph_net
            return lambda x, c: tf.cast(net({"image": x, "char": c}, training=False), tf.float32)
        if name == "discriminator":
            net = self._d_features
            return lambda x, c: tf.cast(net({"image": x, "char": c}, training=False), tf.float32)
        raise StyleError(f"unknown feature {name!r}; expected one of {FEATURES}")

    def encode(self, images, chars, mask=None) -> tf.Tensor:
        """ws [S, L, w_dim] from the encoder (one w per style, repeated over layers)."""
        w = self.encoder(images, chars, mask, training=False)
        return tf.repeat(w[:, None, :], self.num_ws, axis=1)

    def mean_ws(self, n: int) -> tf.Tensor:
        return tf.tile(self.w_avg[None, None, :], [n, self.num_ws, 1])

    def extract(self, images, chars, mask=None, method: str = "both",
                projection: ProjectionConfig = ProjectionConfig()) -> np.ndarray:
        """ws float32 [S, L, w_dim] for S sets of glyphs (see the package doc)."""
        if method not in METHODS:
            raise StyleError(f"method {method!r} is not one of {METHODS}")
        images = tf.convert_to_tensor(images, tf.float32)
        chars = tf.cast(chars, tf.int32)
        if mask is None:
            mask = tf.ones(tf.shape(chars), tf.float32)
        n = int(chars.shape[0])
        if method == "encoder":
            return self.encode(images, chars, mask).numpy()
        projection.validate()
        if method == "both":
            init = self.encode(images, chars, mask)
            anchor = init
        else:
            init = self.mean_ws(n)
            anchor = self.w_avg
        fn = self._projectors.get(projection)
        if fn is None:
            fn = self._projectors[projection] = tf.function(
                lambda im, ch, ma, ini, an: project_styles(
                    self.synthesize, self.feature_fn(projection.feature), im, ch, ma, ini, an,
                    self.spread, projection), reduce_retracing=True)
        return fn(images, chars, tf.cast(mask, tf.float32), init, anchor).numpy()

    def generate(self, ws, chars) -> np.ndarray:
        """Float [-1, 1] glyphs [N, R, R, 1]: ws [N, L, w_dim] (or [L, w_dim] for all) x
        chars [N]."""
        chars = np.asarray(chars, np.int32)
        ws = np.asarray(ws, np.float32)
        if ws.ndim == 2:
            ws = np.broadcast_to(ws, (len(chars), *ws.shape))
        out = [self.synthesize(ws[i:i + 512], chars[i:i + 512]).numpy()
               for i in range(0, len(chars), 512)]
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 1),
                                                         np.float32)

    def model_info(self) -> dict:
        return {"family": "stylegan", "resolution": self.resolution, "w_dim": self.w_dim,
                "num_ws": self.num_ws, "charset": self.charset}
