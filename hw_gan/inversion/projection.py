"""Projection: fitting S stylegan styles (W+) to S sets of glyphs at once, in plain TensorFlow
(a tf.while_loop with a hand-written Adam), so the export can hold it as a signature too."""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from hw_gan import losses
from hw_gan.config import ProjectionConfig

# The hand-written Adam of the projection (Adam's usual betas: there is no adversary here).
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8


def projection_loss_fn(synthesize: Callable, features: Optional[Callable], images, chars, mask,
                       anchor, spread, cfg: ProjectionConfig) -> Callable:
    """loss(ws [S, L, w_dim]) -> [S]: for each style the masked mean over its glyphs of pixel L1
    + feature_weight x feature L1 (losses.reconstruction_per_example), + reg_weight x
    |ws - anchor|^2 / spread + layer_weight x the spread of ws across layers. Arguments as
    project_styles' (anchor already broadcast to [S, L, w_dim])."""
    s, k = tf.shape(chars)[0], tf.shape(chars)[1]
    r = images.shape[2]
    flat_images = tf.reshape(images, [-1, r, r, 1])
    flat_chars = tf.reshape(chars, [-1])
    flat_mask = tf.reshape(mask, [-1])
    norm = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)  # glyphs per style [S]
    use_features = features is not None and cfg.feature_weight > 0
    target_feats = tf.stop_gradient(features(flat_images, flat_chars)) if use_features else None
    spread = tf.cast(spread, tf.float32)

    def loss_fn(ws):
        if not cfg.wplus:
            ws = tf.repeat(tf.reduce_mean(ws, axis=1, keepdims=True), ws.shape[1], axis=1)
        per_glyph_ws = tf.repeat(ws, k, axis=0)  # [S*K, L, w_dim]
        fake = tf.cast(synthesize(per_glyph_ws, flat_chars), tf.float32)
        per_glyph, _ = losses.reconstruction_per_example(
            fake, flat_images, cfg.feature_weight,
            features(fake, flat_chars) if use_features else None, target_feats)
        per_style = tf.reduce_sum(tf.reshape(per_glyph * flat_mask, [s, k]), axis=1) / norm
        reg = tf.reduce_mean(tf.reduce_sum(tf.square(ws - anchor), -1), -1) / spread
        centre = tf.reduce_mean(ws, axis=1, keepdims=True)
        layer = tf.reduce_mean(tf.reduce_sum(tf.square(ws - centre), -1), -1) / spread
        return per_style + cfg.reg_weight * reg + cfg.layer_weight * layer  # [S]

    return loss_fn


def adam_descent(loss_fn: Callable, init_ws, steps: int, lr: float):
    """`steps` steps of Adam on the sum of loss_fn(ws) [S] from init_ws (the styles are
    independent: their sum's gradient is each one's own), as a tf.while_loop."""

    def body(i, ws, m, v):
        with tf.GradientTape() as tape:
            tape.watch(ws)
            total = tf.reduce_sum(loss_fn(ws))  # styles are independent: sum, not mean
        g = tape.gradient(total, ws)
        m = ADAM_BETA1 * m + (1 - ADAM_BETA1) * g
        v = ADAM_BETA2 * v + (1 - ADAM_BETA2) * tf.square(g)
        t = tf.cast(i + 1, tf.float32)
        step = lr * (m / (1 - ADAM_BETA1 ** t)) / (tf.sqrt(v / (1 - ADAM_BETA2 ** t))
                                                    + ADAM_EPSILON)
        return i + 1, ws - step, m, v

    zeros = tf.zeros_like(init_ws)
    _, ws, _, _ = tf.while_loop(lambda i, *_: i < steps, body,
                                (tf.constant(0), init_ws, zeros, zeros))
    return ws


def project_styles(synthesize: Callable, features: Optional[Callable], images, chars, mask,
                   init_ws, anchor, spread, cfg: ProjectionConfig):
    """Projection (see the package doc) of S styles at once; returns ws float32 [S, L, w_dim].

    synthesize(ws [N, L, w_dim], chars [N]) -> images [N, R, R, 1]; features(images, chars) ->
    [N, F] or None; images [S, K, R, R, 1] in [-1, 1]; chars int32 [S, K]; mask float [S, K]
    (1 = a given glyph); init_ws [S, L, w_dim]; anchor [S, L, w_dim] or [w_dim]; spread: the
    mean squared distance of mapping styles from the mean w (scale of the penalty)."""
    images = tf.convert_to_tensor(images, tf.float32)
    chars = tf.cast(chars, tf.int32)
    mask = tf.cast(mask, tf.float32)
    init_ws = tf.convert_to_tensor(init_ws, tf.float32)
    anchor = tf.broadcast_to(tf.convert_to_tensor(anchor, tf.float32), tf.shape(init_ws))
    L = init_ws.shape[1]
    loss_fn = projection_loss_fn(synthesize, features, images, chars, mask, anchor, spread, cfg)
    ws = adam_descent(loss_fn, init_ws, cfg.steps, cfg.lr)
    if not cfg.wplus:
        ws = tf.repeat(tf.reduce_mean(ws, axis=1, keepdims=True), L, axis=1)
    return ws
