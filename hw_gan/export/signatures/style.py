"""SavedModel signatures of a stylegan export (passed to `export_generator` as extra_signatures):

  extract_style
      images uint8 [K, R, R, 1] ink-high (the project's polarity), chars string [K],
      steps int32 [] (0: the encoder alone; N: then N projection steps with the default
      ProjectionConfig, the discriminator's features included in the export for this,
      hw_gan.inversion.project_styles)
    -> style float32 [L, w_dim] (W+), char_ids int32 [K]
      At most `max_style_images` images and `max_style_steps` steps (the export's limits).
  glyphs_with_style
      chars string [N], style float32 [L, w_dim], seed int64 [], variation float32 []
    -> images uint8 [N, R, R, 1], char_ids int32 [N]
      Each glyph gets style + variation * (mapping(z_i) - mean w), z_i from the seed: 0 draws
      every "a" alike, ~0.1-0.2 gives the natural variation of a hand. Deterministic per seed.
      A style or variation with NaN or infinity fails (InvalidArgumentError), as does a call over
      the export's limits (hw_gan.export.limits: max_glyphs, max_pixels).
  mean_style
    -> style float32 [L, w_dim]: the centre of W (a neutral hand; the truncation anchor).

`hwgan write --style alice.style` and the HTTP server use these; `extract_style` lets a server
take a writer's samples and answer in their hand without any Python-side model code.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from data_pipeline.schema import to_float
from hw_gan.export.module import tf_variable
from hw_gan.export.names import (EXTRACT_STYLE, GLYPHS_WITH_STYLE, MEAN_STYLE,
                                 STYLE_FINITE_MESSAGE, STYLE_IMAGE_CAP_MESSAGE,
                                 STYLE_IMAGE_COUNT_MESSAGE, STYLE_STEPS_MESSAGE,
                                 WRITE_WITH_STYLE)
from hw_gan.export.signatures import write as write_sig
from hw_gan.inversion import ProjectionConfig, project_styles
from hw_gan.models import stylegan

__all__ = ["stylegan_signatures"]


def glyphs_with_style_function(module, style_shape, ids_for, draw, char_ids_of):
    """The `glyphs_with_style` tf.function of a style family: checks (finite style and
    variation, the glyph count) before any work, `ids_for(chars)` -> what `draw` takes (asserting
    the characters), z_i = stateless_normal(seed=[seed, 1]) per glyph, `draw(ids, z, style,
    variation)` in blocks; -> {"images", "char_ids": char_ids_of(chars, ids)}."""

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="chars"),
        tf.TensorSpec(style_shape, tf.float32, name="style"),
        tf.TensorSpec([], tf.int64, name="seed"),
        tf.TensorSpec([], tf.float32, name="variation"),
    ])
    def fn(chars, style, seed, variation):
        finite = tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(style)) & tf.math.is_finite(variation),
            [STYLE_FINITE_MESSAGE])
        with tf.control_dependencies([finite]):
            n = module.check_count(tf.shape(chars)[0], tf.shape(chars)[0])
        with tf.control_dependencies([n]):
            ids = ids_for(chars)
        z = tf.random.stateless_normal(tf.stack([n, module.latent_dim]),
                                       seed=tf.stack([seed, tf.constant(1, tf.int64)]))
        images = module.in_blocks(lambda i, zz: draw(i, zz, style, variation), n, ids, z)
        return {"images": images, "char_ids": char_ids_of(chars, ids)}

    return fn


class _StyleSignatures:
    """The three builders and what they share. A plain object (not tracked by tf.Module): the
    Keras pieces are called by the functions, their variables saved through `track`."""

    def __init__(self, generator, encoder, w_avg, spread: float, feature_net,
                 projection: ProjectionConfig):
        self.mapping, self.synthesis = stylegan.parts(generator)
        if projection.feature == "discriminator" and feature_net is None:
            projection = dataclasses.replace(projection, feature="encoder")
        self.encoder, self.feature_net, self.projection = encoder, feature_net, projection
        self.spread = spread
        self.num_ws = int(self.synthesis.input["ws"].shape[1])
        self.w_dim = int(self.synthesis.input["ws"].shape[2])
        self.w_avg = tf.constant(tf.convert_to_tensor(w_avg, tf.float32))

    # -- what the functions call ------------------------------------------------------------------

    def synthesize(self, ws, chars):
        return self.synthesis({"ws": ws, "char": chars}, training=False)

    def features(self, images, chars):
        net = (self.feature_net if self.projection.feature == "discriminator"
               else self.encoder.glyph_net)
        return tf.cast(net({"image": images, "char": chars}, training=False), tf.float32)

    def track(self, module):
        """Saves the encoder's (and the projection's feature net's) variables and the centre of
        W with the module, once."""
        if not hasattr(module, "style_encoder_variables"):
            module.style_encoder_variables = [tf_variable(v) for v in self.encoder.weights]
            if self.projection.feature == "discriminator":
                module.style_feature_variables = [tf_variable(v)
                                                  for v in self.feature_net.weights]
            module.mean_w = tf.Variable(self.w_avg, trainable=False, name="mean_w")

    # -- the builders -----------------------------------------------------------------------------

    def extract_style(self, module):
        self.track(module)
        r = module.resolution
        features = self.features if self.projection.feature != "none" else None

        @tf.function(input_signature=[
            tf.TensorSpec([None, r, r, 1], tf.uint8, name="images"),
            tf.TensorSpec([None], tf.string, name="chars"),
            tf.TensorSpec([], tf.int32, name="steps"),
        ])
        def fn(images, chars, steps):
            lim = module.limits
            num_images = tf.shape(images)[0]
            caps = [tf.debugging.Assert(num_images <= lim.max_style_images,
                                        [STYLE_IMAGE_CAP_MESSAGE + f" ({lim.max_style_images});"
                                         " got", num_images]),
                    tf.debugging.Assert(steps <= lim.max_style_steps,
                                        [STYLE_STEPS_MESSAGE + f" ({lim.max_style_steps}); got",
                                         steps])]
            with tf.control_dependencies(caps):
                char_ids = module.char_ids_for(chars)
            k = tf.shape(char_ids)[0]
            check = tf.debugging.Assert(tf.logical_and(k > 0, tf.equal(k, num_images)),
                                        [STYLE_IMAGE_COUNT_MESSAGE, num_images, "images for", k],
                                        summarize=4)
            with tf.control_dependencies([check]):
                x = to_float(images)[None]
            ids = char_ids[None]
            w = self.encoder(x, ids, training=False)  # [1, w_dim]
            ws = tf.repeat(w[:, None, :], self.num_ws, axis=1)
            cfg = dataclasses.replace(self.projection, steps=tf.maximum(steps, 0))
            ws = project_styles(self.synthesize, features, x, ids, tf.ones_like(ids, tf.float32),
                                ws, ws, self.spread, cfg)
            return {"style": ws[0], "char_ids": char_ids}

        return fn

    def glyphs_with_style(self, module):
        self.track(module)
        return glyphs_with_style_function(
            module, (self.num_ws, self.w_dim), module.char_ids_for,
            lambda ids, z, style, v: self.draw_styled(module, ids, z, style, v),
            lambda chars, ids: ids)

    def draw_styled(self, module, char_ids, z, style, variation):
        """Glyphs of char_ids in `style`, each varied by variation x (mapping(z) - mean w)."""
        jitter = tf.cast(self.mapping(z, training=False), tf.float32) - module.mean_w
        return self.synthesize(style[None] + variation * jitter[:, None, :], char_ids)

    def write_with_style(self, module):
        self.track(module)
        keys, ids = write_sig.charset_keys(module)
        return write_sig.styled_write_function(
            module, keys, ids, lambda i, z, st, v: self.draw_styled(module, i, z, st, v),
            (self.num_ws, self.w_dim))

    def mean_style(self, module):
        self.track(module)
        num_ws = self.num_ws

        @tf.function(input_signature=[])
        def fn():
            return {"style": tf.repeat(module.mean_w[None], num_ws, axis=0)}

        return fn


def stylegan_signatures(generator, encoder, w_avg, spread: float, feature_net=None,
                        projection: ProjectionConfig = ProjectionConfig()) -> dict:
    """{name: builder(module)} for `export_generator(..., extra_signatures=...)`.

    feature_net: the discriminator's feature model ({"image", "char"} -> features), used by the
    projection when projection.feature == "discriminator" (its weights join the export); else
    the encoder's glyph features are used."""
    sigs = _StyleSignatures(generator, encoder, w_avg, spread, feature_net, projection)
    return {EXTRACT_STYLE: sigs.extract_style, GLYPHS_WITH_STYLE: sigs.glyphs_with_style,
            MEAN_STYLE: sigs.mean_style, WRITE_WITH_STYLE: sigs.write_with_style}
