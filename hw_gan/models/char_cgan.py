"""char_cgan: a GAN conditional on the character only.

Generator
    G({"z": z, "char": char}, training=...) -> images [B, R, R, 1] float32 in [-1, 1] (tanh).
    z [B, latent_dim] float32, char [B] int32 in [0, num_chars). The char id goes through an
    Embedding named "char_embedding" (a one-hot times a matrix); the embedding is concatenated
    with z into the first Dense layer and modulates every up-block by FiLM (see
    `hw_gan.models.layers.generator_trunk`). G starts at 4x4 and upsamples to R = cfg.resolution.

Discriminator
    D({"image": x, "char": char}, training=...) -> logits [B] float32.
    Residual down-blocks R -> 4, features h, then a projection head:
    logit = linear(h) + <char_embedding(char), h>.

There is no "writer" input (USES_WRITER is False): Keras functional models reject unconnected
inputs, and calling a model with a key it lacks misaligns its inputs, so callers pass only the
keys the model has (`hw_gan.models.select_inputs`).
"""

from __future__ import annotations

import keras
from keras import layers

from hw_gan.config import ModelConfig
from hw_gan.models import layers as blocks

USES_WRITER = False


def build_generator(cfg: ModelConfig) -> keras.Model:
    blocks.check_config(cfg, USES_WRITER)
    inputs = blocks.generator_inputs(cfg, USES_WRITER)
    cond = layers.Embedding(cfg.num_chars, blocks.embedding_size(cfg),
                            name="char_embedding")(inputs["char"])
    image = blocks.generator_trunk(cfg, inputs["z"], cond)
    return keras.Model(inputs, image, name="char_cgan_generator")


def build_discriminator(cfg: ModelConfig) -> keras.Model:
    return blocks.char_discriminator(cfg, "char_cgan_discriminator")
