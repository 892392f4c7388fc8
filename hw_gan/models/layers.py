"""Building blocks shared by the conditional GAN families (char_cgan, style_cgan).

Everything here follows the global Keras dtype policy (float32, mixed_float16, mixed_bfloat16);
the few places that must stay float32 (normalisation statistics, logits, the output image) say so.

Generator trunk (`generator_trunk`): [z, cond] -> Dense -> 4x4xC(4) -> residual up-blocks
(nearest upsample + 3x3 convs), each normalised with a batch-independent pixel norm and then
modulated by FiLM from the condition vector -> 3x3 conv to one channel -> tanh (float32).
No batch norm: outputs do not depend on the other examples of the batch nor on training=...

Discriminator trunk (`discriminator_trunk`): image -> 3x3 conv -> residual down-blocks
(conv, average-pool, conv; pooled 1x1 shortcut) down to 4x4 -> flatten -> Dense -> features h.
`ProjectionLogits` then turns h and class embeddings into one logit per example (Miyato & Koyama
2018, "cGANs with projection discriminator"): logit = w.h + b + sum_k <embed_k(id_k), h>.
No normalisation in D (the trainer regularises it with R1).

Channel plan (`channel_plan`): stage channels double from 32 at the output resolution toward
4x4, capped at 256, then are multiplied by the width (`hw_gan.config.scaled`). At width 1.0 and
resolution 32 the generator goes 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x32 and the
discriminator mirrors it (32x32x32 -> 16x16x64 -> 8x8x128 -> 4x4x256).
"""

from __future__ import annotations

from typing import Optional

import keras
from keras import layers, ops

from hw_gan.config import ModelConfig, scaled

LEAK = 0.2
MAX_CHANNELS = 256
OUTPUT_CHANNELS = 32  # channels of the last stage (the output resolution) at width 1.0
_PACKAGE = "hw_gan"


# ------------------------------------------------------------------------------------------------
# Sizes.


def channel_plan(resolution: int, width: float) -> dict[int, int]:
    """{spatial size: channels} for 4, 8, ..., resolution (see the module docstring)."""
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    plan = {}
    size = 4
    while size <= resolution:
        base = min(MAX_CHANNELS, OUTPUT_CHANNELS * resolution // size)
        plan[size] = scaled(base, width)
        size *= 2
    return plan


def embedding_size(cfg: ModelConfig) -> int:
    """Size of the generator's char / writer embeddings."""
    return scaled(cfg.embed_dim, cfg.width, minimum=16)


def check_config(cfg: ModelConfig, uses_writer: bool) -> None:
    """Raises ValueError when cfg cannot build a conditional model."""
    if cfg.resolution not in (32, 64):
        raise ValueError(f"resolution must be 32 or 64, got {cfg.resolution}")
    if cfg.num_chars < 1:
        raise ValueError(f"num_chars must be >= 1 (from the dataset manifest), got {cfg.num_chars}")
    if uses_writer and cfg.num_writers < 1:
        raise ValueError(
            f"num_writers must be >= 1 (from the dataset manifest), got {cfg.num_writers}")
    if cfg.latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {cfg.latent_dim}")


# ------------------------------------------------------------------------------------------------
# Inputs.


def generator_inputs(cfg: ModelConfig, uses_writer: bool) -> dict[str, keras.KerasTensor]:
    """Named Inputs "z" [B, latent_dim] float32, "char" [B] int32 and (if used) "writer" [B]."""
    inputs = {
        "z": keras.Input((cfg.latent_dim,), dtype="float32", name="z"),
        "char": keras.Input((), dtype="int32", name="char"),
    }
    if uses_writer:
        inputs["writer"] = keras.Input((), dtype="int32", name="writer")
    return inputs


def discriminator_inputs(cfg: ModelConfig, uses_writer: bool) -> dict[str, keras.KerasTensor]:
    """Named Inputs "image" [B, R, R, 1] float32, "char" [B] int32 and (if used) "writer" [B]."""
    inputs = {
        "image": keras.Input((cfg.resolution, cfg.resolution, 1), dtype="float32", name="image"),
        "char": keras.Input((), dtype="int32", name="char"),
    }
    if uses_writer:
        inputs["writer"] = keras.Input((), dtype="int32", name="writer")
    return inputs


# ------------------------------------------------------------------------------------------------
# Custom layers.


def pixel_norm(x, epsilon: float = 1e-8):
    """x scaled to unit RMS over its last axis, computed in float32, returned in x's dtype."""
    x32 = ops.cast(x, "float32")
    x32 = x32 * ops.rsqrt(ops.mean(ops.square(x32), axis=-1, keepdims=True) + epsilon)
    return ops.cast(x32, x.dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PixelNorm(layers.Layer):
    """Normalises each pixel's feature vector to unit RMS over channels (Karras et al. 2018).

    Batch-independent, stateless; statistics are computed in float32 (squares of float16
    activations overflow easily) and the result is cast back to the compute dtype."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        return ops.cast(pixel_norm(x, self.epsilon), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FiLM(layers.Layer):
    """Feature-wise linear modulation: x * (1 + gamma(cond)) + beta(cond).

    Called on [x, cond] with x [B, H, W, C] (or [B, C]) and cond [B, D]; gamma and beta are affine
    in cond. This is the conditional part of conditional batch norm, applied after PixelNorm."""

    def build(self, input_shape):
        x_shape, cond_shape = input_shape
        channels, cond_dim = int(x_shape[-1]), int(cond_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(cond_dim, 2 * channels), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(2 * channels,), initializer="zeros")
        self._channels = channels

    def call(self, inputs):
        x, cond = inputs
        params = ops.matmul(cond, self.kernel) + self.bias  # [B, 2C]
        gamma, beta = params[:, : self._channels], params[:, self._channels:]
        for _ in range(len(x.shape) - 2):
            gamma = ops.expand_dims(gamma, 1)
            beta = ops.expand_dims(beta, 1)
        return x * (1.0 + gamma) + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProjectionLogits(layers.Layer):
    """Projection-discriminator output: [h, linear, e_1, ..., e_k] -> linear[:, 0] + sum_k <e_k, h>.

    h [B, C] features, linear [B, 1] (a Dense(1) of h), e_k [B, C] class embeddings. Returns
    logits [B]. Build it with dtype="float32" so that logits are float32 under mixed precision."""

    def call(self, inputs):
        h, linear, *embeddings = inputs
        logits = linear[:, 0]
        for e in embeddings:
            logits = logits + ops.sum(e * h, axis=-1)
        return logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)


# ------------------------------------------------------------------------------------------------
# Blocks.


def _conv(channels: int, kernel: int, name: str) -> layers.Conv2D:
    return layers.Conv2D(channels, kernel, padding="same", name=name)


def up_block(x, cond, channels: int, name: str):
    """Residual generator block, doubling the spatial size (BigGAN-style, pixel norm + FiLM):

    main:     PixelNorm, FiLM(cond), LReLU, upsample x2, conv3x3 -> PixelNorm, FiLM, LReLU, conv3x3
    shortcut: conv1x1 (when channels change), upsample x2."""
    h = PixelNorm(name=f"{name}_norm1")(x)
    h = FiLM(name=f"{name}_film1")([h, cond])
    h = layers.LeakyReLU(LEAK, name=f"{name}_act1")(h)
    h = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(h)
    h = _conv(channels, 3, f"{name}_conv1")(h)
    h = PixelNorm(name=f"{name}_norm2")(h)
    h = FiLM(name=f"{name}_film2")([h, cond])
    h = layers.LeakyReLU(LEAK, name=f"{name}_act2")(h)
    h = _conv(channels, 3, f"{name}_conv2")(h)
    s = x
    if int(x.shape[-1]) != channels:
        s = _conv(channels, 1, f"{name}_skip")(s)
    s = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_skip_up")(s)
    return layers.Add(name=f"{name}_out")([h, s])


def image_trunk(image, plan: dict, resolution: int, prefix: str, until: int = 4,
                maps: Optional[dict] = None):
    """conv3x3 "<prefix>_from_image", then residual `down_block`s "<prefix>_block<size>" from
    `resolution` down to `until` px: the encoders' image stems. `maps`: filled with each size's
    map on the way down ({resolution: the stem's, ..., until: the returned one})."""
    x = layers.Conv2D(plan[resolution], 3, padding="same", name=f"{prefix}_from_image")(image)
    size = resolution
    if maps is not None:
        maps[size] = x
    while size > until:
        size //= 2
        x = down_block(x, plan[size], name=f"{prefix}_block{size}")
        if maps is not None:
            maps[size] = x
    return x


def down_block(x, channels: int, name: str, preactivate: bool = True):
    """Residual discriminator block, halving the spatial size:

    main:     [LReLU], conv3x3 (C_in), LReLU, avgpool x2, conv3x3 (C_out)
    shortcut: avgpool x2, conv1x1 (when channels change)."""
    cin = int(x.shape[-1])
    h = layers.LeakyReLU(LEAK, name=f"{name}_act1")(x) if preactivate else x
    h = _conv(cin, 3, f"{name}_conv1")(h)
    h = layers.LeakyReLU(LEAK, name=f"{name}_act2")(h)
    h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    h = _conv(channels, 3, f"{name}_conv2")(h)
    s = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(x)
    if cin != channels:
        s = _conv(channels, 1, f"{name}_skip")(s)
    return layers.Add(name=f"{name}_out")([h, s])


# ------------------------------------------------------------------------------------------------
# Trunks.


def generator_trunk(cfg: ModelConfig, z, cond):
    """[z, cond] -> image [B, R, R, 1] float32 in [-1, 1].

    z [B, latent_dim]; cond [B, D] the condition vector (concatenated embeddings). cond enters
    the first Dense (concatenated with z) and every block through FiLM."""
    plan = channel_plan(cfg.resolution, cfg.width)
    c4 = plan[4]
    x = layers.Concatenate(name="g_input")([z, cond])
    x = layers.Dense(4 * 4 * c4, name="g_dense")(x)
    x = layers.Reshape((4, 4, c4), name="g_reshape")(x)
    size = 4
    while size < cfg.resolution:
        size *= 2
        x = up_block(x, cond, plan[size], name=f"g_block{size}")
    x = PixelNorm(name="g_out_norm")(x)
    x = FiLM(name="g_out_film")([x, cond])
    x = layers.LeakyReLU(LEAK, name="g_out_act")(x)
    x = _conv(1, 3, "g_out_conv")(x)
    return layers.Activation("tanh", dtype="float32", name="g_image")(x)


def discriminator_trunk(cfg: ModelConfig, image):
    """image [B, R, R, 1] -> features h [B, C(4)] (after LReLU)."""
    plan = channel_plan(cfg.resolution, cfg.width)
    x = _conv(plan[cfg.resolution], 3, "d_from_image")(image)
    size = cfg.resolution
    while size > 4:
        size //= 2
        x = down_block(x, plan[size], name=f"d_block{size}")
    x = layers.LeakyReLU(LEAK, name="d_out_act")(x)
    x = layers.Flatten(name="d_flatten")(x)
    x = layers.Dense(plan[4], name="d_features")(x)
    return layers.LeakyReLU(LEAK, name="d_features_act")(x)


def char_discriminator(cfg: ModelConfig, name: str):
    """The discriminator of the families without writers: trunk + projection on the character."""
    check_config(cfg, False)
    inputs = discriminator_inputs(cfg, False)
    h = discriminator_trunk(cfg, inputs["image"])
    logits = projection_head(h, {"char": (inputs["char"], cfg.num_chars)})
    return keras.Model(inputs, logits, name=name)


def projection_head(h, conditions: dict):
    """Projection logits [B] float32 from features h [B, C] and {name: (ids [B], num_classes)}.

    Each condition gets a float32 Embedding named "<name>_embedding" of width C (the same names
    as the generator's embeddings, so code that adds a writer finds both by name)."""
    channels = int(h.shape[-1])
    linear = layers.Dense(1, dtype="float32", name="d_linear")(h)
    embeddings = [
        layers.Embedding(num, channels, dtype="float32", name=f"{key}_embedding")(ids)
        for key, (ids, num) in conditions.items()
    ]
    return ProjectionLogits(dtype="float32", name="d_logits")([h, linear, *embeddings])
