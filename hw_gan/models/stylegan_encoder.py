"""The style encoder: k glyphs of one writer, with their characters -> one style w.

    glyph net  "style_glyph_encoder": {"image": [N, R, R, 1] in [-1, 1], "char": [N] int32}
               -> per-glyph features [N, F]. A small residual conv trunk on the image; the
               character's embedding is concatenated before the last two Dense layers, so the
               net can judge a glyph against what that character usually looks like.
    set head   "style_set_head": pooled features [G, F] -> w [G, w_dim], linear last layer (W is
               not bounded). Pooling is a masked mean over the set, so one encoder takes any k.

`StyleEncoder(images [G, K, R, R, 1], chars [G, K], mask [G, K] or None) -> w [G, w_dim]`.
It is trained with the generator (`hw_gan.training.stylegan_trainer`): mapping styles are
recovered from the glyphs they generate (latent cycle), and real writers' held-out glyphs are
reconstructed from the style of their other glyphs.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from hw_gan.config import ModelConfig, scaled
from hw_gan.models import layers as blocks
from hw_gan.models import stylegan

FEATURES = 256  # per-glyph feature size at width 1.0


def build_glyph_encoder(cfg: ModelConfig) -> keras.Model:
    plan = blocks.channel_plan(cfg.resolution, cfg.width)
    feats = scaled(FEATURES, cfg.width, minimum=64)
    image = keras.Input((cfg.resolution, cfg.resolution, 1), dtype="float32", name="image")
    char = keras.Input((), dtype="int32", name="char")
    x = blocks.image_trunk(image, plan, cfg.resolution, "e")
    x = layers.LeakyReLU(blocks.LEAK, name="e_out_act")(x)
    x = layers.Flatten(name="e_flatten")(x)
    content = layers.Embedding(cfg.num_chars, blocks.embedding_size(cfg),
                               name="e_char_embedding")(char)
    x = layers.Concatenate(name="e_with_char")([x, content])
    x = layers.Dense(feats, name="e_dense1")(x)
    x = layers.LeakyReLU(blocks.LEAK, name="e_dense1_act")(x)
    x = layers.Dense(feats, name="e_dense2")(x)
    x = layers.LeakyReLU(blocks.LEAK, dtype="float32", name="e_features")(x)
    return keras.Model({"image": image, "char": char}, x, name="style_glyph_encoder")


def build_set_head(cfg: ModelConfig) -> keras.Model:
    feats = scaled(FEATURES, cfg.width, minimum=64)
    pooled = keras.Input((feats,), dtype="float32", name="pooled")
    x = layers.Dense(feats, name="e_head1")(pooled)
    x = layers.LeakyReLU(blocks.LEAK, name="e_head1_act")(x)
    w = layers.Dense(stylegan.w_dim(cfg), dtype="float32", name="e_w")(x)
    return keras.Model(pooled, w, name="style_set_head")


class StyleEncoder(tf.Module):
    """Glyph net + masked mean + set head (see the module doc). Tracks both Keras models."""

    def __init__(self, cfg: ModelConfig, name: str = "style_encoder"):
        super().__init__(name=name)
        self.glyph_net = build_glyph_encoder(cfg)
        self.set_head = build_set_head(cfg)
        self.resolution = cfg.resolution

    @property
    def models(self) -> list:
        return [self.glyph_net, self.set_head]

    @property
    def trainable_variables(self):
        return self.glyph_net.trainable_variables + self.set_head.trainable_variables

    @property
    def weights(self):
        return self.glyph_net.weights + self.set_head.weights

    def __call__(self, images, chars, mask=None, training: bool = False):
        images = tf.convert_to_tensor(images, tf.float32)
        chars = tf.cast(chars, tf.int32)
        r = self.resolution
        flat = self.glyph_net({"image": tf.reshape(images, [-1, r, r, 1]),
                               "char": tf.reshape(chars, [-1])}, training=training)
        return self._pool(flat, tf.shape(chars), mask, training)

    def encode_sets(self, sets, training: bool = False) -> list:
        """[w [G_i, w_dim]] of several sets (images [G_i, K_i, R, R, 1], chars [G_i, K_i]), with
        ONE glyph-net pass over all their glyphs: what calling the encoder on each returns."""
        r = self.resolution
        images = [tf.reshape(tf.convert_to_tensor(im, tf.float32), [-1, r, r, 1])
                  for im, _ in sets]
        chars = [tf.cast(c, tf.int32) for _, c in sets]
        flat = self.glyph_net({"image": tf.concat(images, 0),
                               "char": tf.concat([tf.reshape(c, [-1]) for c in chars], 0)},
                              training=training)
        parts = tf.split(flat, [tf.shape(im)[0] for im in images], axis=0)
        return [self._pool(part, tf.shape(c), None, training) for part, c in zip(parts, chars)]

    def _pool(self, flat, set_shape, mask, training: bool):
        """Per-glyph features [G * K, F] -> w [G, w_dim]: masked mean over each set, set head."""
        flat = tf.cast(flat, tf.float32)
        feats = tf.reshape(flat, tf.stack([set_shape[0], set_shape[1], tf.shape(flat)[-1]]))
        if mask is None:
            pooled = tf.reduce_mean(feats, axis=1)
        else:
            m = tf.cast(mask, tf.float32)[:, :, None]
            pooled = tf.reduce_sum(feats * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
        return tf.cast(self.set_head(pooled, training=training), tf.float32)
