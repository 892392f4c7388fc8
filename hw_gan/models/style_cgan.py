"""style_cgan: a GAN conditional on the character (content) and the writer (style).

Generator
    G({"z": z, "char": char, "writer": writer}, training=...) -> images [B, R, R, 1] float32 in
    [-1, 1] (tanh). z [B, latent_dim] float32, char [B] int32 in [0, num_chars), writer [B] int32
    in [0, num_writers). Content and style enter as separate inputs with separate Embeddings,
    "char_embedding" and "writer_embedding" (a keras Embedding with input_dim=num_writers, so a
    new writer can be added by extending or replacing its rows). Their concatenation joins z in
    the first Dense layer and modulates every up-block by FiLM (conditional normalisation; see
    `hw_gan.models.layers.generator_trunk`). G starts at 4x4 and upsamples to R.

Discriminator
    D({"image": x, "char": char, "writer": writer}, training=...) -> logits [B] float32.
    Residual down-blocks R -> 4, features h, then a projection head:
    logit = linear(h) + <char_embedding(char), h> + <writer_embedding(writer), h>.
    (The discriminator's projection embeddings carry the same layer names as the generator's.)
"""

from __future__ import annotations

import keras
from keras import layers

from hw_gan.config import ModelConfig
from hw_gan.models import layers as blocks

USES_WRITER = True


def build_generator(cfg: ModelConfig) -> keras.Model:
    blocks.check_config(cfg, USES_WRITER)
    inputs = blocks.generator_inputs(cfg, USES_WRITER)
    size = blocks.embedding_size(cfg)
    content = layers.Embedding(cfg.num_chars, size, name="char_embedding")(inputs["char"])
    style = layers.Embedding(cfg.num_writers, size, name="writer_embedding")(inputs["writer"])
    cond = layers.Concatenate(name="g_condition")([content, style])
    image = blocks.generator_trunk(cfg, inputs["z"], cond)
    return keras.Model(inputs, image, name="style_cgan_generator")


def build_discriminator(cfg: ModelConfig) -> keras.Model:
    blocks.check_config(cfg, USES_WRITER)
    inputs = blocks.discriminator_inputs(cfg, USES_WRITER)
    h = blocks.discriminator_trunk(cfg, inputs["image"])
    logits = blocks.projection_head(h, {
        "char": (inputs["char"], cfg.num_chars),
        "writer": (inputs["writer"], cfg.num_writers),
    })
    return keras.Model(inputs, logits, name="style_cgan_discriminator")
