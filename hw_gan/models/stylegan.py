"""stylegan: a StyleGAN2-style generator whose style (w) is shared by every character it writes.

Content and style are separate: the character enters the SYNTHESIS network (it sets the 4x4
starting tensor and joins w in every layer's style affine), never the mapping network, so one w
is one way of writing, applied to any character. The writer is not an input: styles come from
z through the mapping network, or from real glyphs through the style encoder
(`hw_gan.models.stylegan_encoder`), so a new writer needs no new embedding.

Sub-models (each a functional keras.Model, found with `generator.get_layer(name)`):

    mapping     "mapping":   z [B, latent_dim] -> w [B, w_dim]
                (pixel norm, then `mapping_layers` Dense+LReLU with a learning-rate multiplier,
                as StyleGAN's, so W moves slowly)
    synthesis   "synthesis": {"ws": [B, L, w_dim], "char": [B] int32} -> image [B, R, R, 1] in
                [-1, 1]. L = num_ws(cfg) = 1 + 2 * log2(R / 4): one style per modulated conv
                (4x4 has one conv; each up-stage two, its ToRGB shares the second one's style).
                Modulated + demodulated 3x3 convs, per-layer noise with learned strength,
                skip-connected ToRGB outputs summed across resolutions, tanh at the end.

    generator   G({"z", "char"}) = synthesis(broadcast(mapping(z)), char): the same contract as
                the other families (USES_WRITER False), so the trainer, evaluation and export
                treat it like them. Style mixing and W / W+ inputs go through the sub-models.

Noise: in training each noise layer draws fresh per-pixel noise statelessly from a seed derived
from its input batch (so a training step is a pure function of its inputs and a resumed run
matches an uninterrupted one); at inference it uses a constant per-layer noise map, stored with
the weights (StyleGAN2-ADA's noise_mode="const"), so outputs are a deterministic function of the
style and the character.

Discriminator
    D({"image", "char"}) -> logits [B]: the residual trunk shared with the other families
    (features layer "d_features_act") and a projection head on the character.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops
import tensorflow as tf

from hw_gan.config import ModelConfig, scaled
from hw_gan.models import layers as blocks

USES_WRITER = False
_PACKAGE = "hw_gan"
# With Adam at the trainer's usual learning rate (2e-4, tuned for plain Keras layers) this puts
# the mapping's relative step near StyleGAN2's (0.0025 x 0.01 with equalised weights).
MAPPING_LR_MUL = 0.1


def w_dim(cfg: ModelConfig) -> int:
    """The style vector size after the width multiplier (at least 32)."""
    return scaled(cfg.w_dim, cfg.width, minimum=32)


def num_ws(cfg: ModelConfig) -> int:
    """Number of per-layer styles L the synthesis network takes (W+ has L vectors)."""
    return 1 + 2 * int(round(math.log2(cfg.resolution // 4)))


def ws_per_resolution(cfg: ModelConfig) -> dict[int, tuple[int, ...]]:
    """{spatial size: indices into ws used at that size}: 4: (0,), 8: (1, 2), 16: (3, 4), ..."""
    out, i, size = {4: (0,)}, 1, 8
    while size <= cfg.resolution:
        out[size] = (i, i + 1)
        i, size = i + 2, size * 2
    return out


# ------------------------------------------------------------------------------------------------
# Layers.


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EqualDense(layers.Layer):
    """Dense layer with an equalised learning rate: weights drawn from N(0, 1 / lr_mul) and scaled
    at run time by lr_mul / sqrt(fan_in) (Karras et al.), so Adam's step is lr_mul times smaller
    for this layer. Optional leaky-ReLU."""

    def __init__(self, units: int, lr_mul: float = 1.0, activation: bool = True,
                 bias_init: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_mul, self.activation, self.bias_init = (
            units, lr_mul, activation, bias_init)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_mul))
        self.bias = self.add_weight(name="bias", shape=(self.units,),
                                    initializer=keras.initializers.Constant(
                                        self.bias_init / self.lr_mul))
        self.scale = self.lr_mul / math.sqrt(fan_in)

    def call(self, x):
        y = ops.matmul(x, ops.cast(self.kernel, x.dtype) * self.scale) + ops.cast(
            self.bias, x.dtype) * self.lr_mul
        return ops.leaky_relu(y, blocks.LEAK) * math.sqrt(2.0) if self.activation else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "lr_mul": self.lr_mul,
                "activation": self.activation, "bias_init": self.bias_init}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ModulatedConv2D(layers.Layer):
    """StyleGAN2's modulated 3x3 (or 1x1) convolution, called on [x, style]:

        s = affine(style) (bias 1)          per input channel, [B, C_in]
        y = conv(x * s, W) * d              d = rsqrt(sum_{k,k,in} (W * s)^2 + eps), [B, C_out]

    which equals convolving with the per-example weight W * s demodulated to unit output
    variance ("fused_modconv=False": one shared convolution for the whole batch). W starts as
    N(0, 1/fan_in) and the affine is a plain Dense with bias 1, so both learn at the pace of
    the other (plain Keras) layers under one Adam learning rate. demodulate=False for ToRGB."""

    def __init__(self, filters: int, kernel_size: int = 3, demodulate: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.demodulate = filters, kernel_size, demodulate

    def build(self, input_shape):
        x_shape, style_shape = input_shape
        cin, sdim = int(x_shape[-1]), int(style_shape[-1])
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel", shape=(k, k, cin, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(cin * k * k)))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        self.affine = layers.Dense(cin, bias_initializer="ones", name="affine")
        self.affine.build((None, sdim))

    def call(self, inputs):
        x, style = inputs
        s = self.affine(style)  # [B, C_in]
        w = ops.cast(self.kernel, x.dtype)
        y = tf.nn.conv2d(x * ops.cast(s[:, None, None, :], x.dtype), w, strides=1,
                         padding="SAME")
        if self.demodulate:
            s32 = ops.cast(s, "float32")
            w32 = ops.cast(w, "float32")
            # sum over k, k, in of (w * s_in)^2 = s^2 @ sum_k,k w^2  -> [B, C_out]
            d = ops.rsqrt(ops.matmul(ops.square(s32), ops.sum(ops.square(w32), axis=(0, 1))) + 1e-8)
            y = y * ops.cast(d[:, None, None, :], y.dtype)
        return y + ops.cast(self.bias, y.dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "demodulate": self.demodulate}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NoiseInjection(layers.Layer):
    """x + strength * noise, strength per channel (initialised to 0), noise one channel per pixel.

    training=True: fresh noise, drawn statelessly from a seed derived from x itself (a pure
    function of the step's inputs). training=False: a constant noise map kept as a weight."""

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def build(self, input_shape):
        h, w, c = (int(v) for v in input_shape[1:])
        self.strength = self.add_weight(name="strength", shape=(c,), initializer="zeros")
        self.const_noise = self.add_weight(
            name="const_noise", shape=(1, h, w, 1), trainable=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed))

    def call(self, x, training=False):
        if training:
            x32 = tf.cast(x, tf.float32)
            # Two integers from the batch's own values: deterministic for a given input.
            a = tf.cast(tf.math.floormod(tf.reduce_sum(tf.abs(x32)) * 1024.0, 2.0 ** 30), tf.int64)
            seed = tf.stack([a, tf.constant(self.seed, tf.int64)])
            shape = tf.concat([tf.shape(x)[:3], [1]], axis=0)
            noise = tf.random.stateless_normal(shape, seed=seed, dtype=x.dtype)
        else:
            noise = ops.cast(self.const_noise, x.dtype)
        return x + noise * ops.cast(self.strength, x.dtype)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StyleAt(layers.Layer):
    """[ws [B, L, w_dim], content [B, E]] -> concat(ws[:, index], content) [B, w_dim + E]: the
    input of one layer's style affine (the character joins w here, not in the mapping)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, inputs):
        ws, content = inputs
        return ops.concatenate([ws[:, self.index], ops.cast(content, ws.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1] + input_shape[1][-1])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BroadcastW(layers.Layer):
    """w [B, w_dim] -> ws [B, L, w_dim] (the same style at every layer)."""

    def __init__(self, num: int, **kwargs):
        super().__init__(**kwargs)
        self.num = num

    def call(self, w):
        return ops.repeat(w[:, None, :], self.num, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num": self.num}


# ------------------------------------------------------------------------------------------------
# Networks.


def build_mapping(cfg: ModelConfig) -> keras.Model:
    z = keras.Input((cfg.latent_dim,), dtype="float32", name="z")
    x = blocks.PixelNorm(name="map_norm")(z)
    for i in range(cfg.mapping_layers):
        x = EqualDense(w_dim(cfg), lr_mul=MAPPING_LR_MUL, name=f"map_dense{i}")(x)
    w = layers.Activation("linear", dtype="float32", name="w")(x)
    return keras.Model(z, w, name="mapping")


def build_synthesis(cfg: ModelConfig) -> keras.Model:
    plan = blocks.channel_plan(cfg.resolution, cfg.width)
    L, wd = num_ws(cfg), w_dim(cfg)
    ws = keras.Input((L, wd), dtype="float32", name="ws")
    char = keras.Input((), dtype="int32", name="char")
    content = layers.Embedding(cfg.num_chars, blocks.embedding_size(cfg),
                               name="char_embedding")(char)
    # The character's 4x4 starting tensor (StyleGAN's learned constant, one per character).
    x = layers.Dense(16 * plan[4], name="g_const")(content)
    x = layers.Reshape((4, 4, plan[4]), name="g_const_reshape")(x)
    # Unit scale, as StyleGAN's N(0, 1) constant: demodulation normalises weights, not
    # activations, so the input's scale would otherwise carry through every layer.
    x = blocks.PixelNorm(name="g_const_norm")(x)
    index = ws_per_resolution(cfg)
    noise_seed = 1

    def styled_conv(x, channels, i, name):
        nonlocal noise_seed
        style = StyleAt(i, name=f"{name}_style")([ws, content])
        x = ModulatedConv2D(channels, 3, name=f"{name}_conv")([x, style])
        x = NoiseInjection(seed=noise_seed, name=f"{name}_noise")(x)
        noise_seed += 1
        return layers.LeakyReLU(blocks.LEAK, name=f"{name}_act")(x)

    def to_rgb(x, i, name):
        style = StyleAt(i, name=f"{name}_style")([ws, content])
        return ModulatedConv2D(1, 1, demodulate=False, dtype="float32", name=name)([x, style])

    x = styled_conv(x, plan[4], index[4][0], "g4")
    img = to_rgb(x, index[4][0], "g4_torgb")
    size = 8
    while size <= cfg.resolution:
        a, b = index[size]
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"g{size}_up")(x)
        x = styled_conv(x, plan[size], a, f"g{size}_a")
        x = styled_conv(x, plan[size], b, f"g{size}_b")
        img = layers.UpSampling2D(2, interpolation="bilinear", dtype="float32",
                                  name=f"g{size}_skip_up")(img)
        img = layers.Add(dtype="float32", name=f"g{size}_skip")(
            [img, to_rgb(x, b, f"g{size}_torgb")])
        size *= 2
    image = layers.Activation("tanh", dtype="float32", name="g_image")(img)
    return keras.Model({"ws": ws, "char": char}, image, name="synthesis")


def build_generator(cfg: ModelConfig) -> keras.Model:
    blocks.check_config(cfg, USES_WRITER)
    mapping, synthesis = build_mapping(cfg), build_synthesis(cfg)
    inputs = blocks.generator_inputs(cfg, USES_WRITER)
    w = mapping(inputs["z"])
    ws = BroadcastW(num_ws(cfg), name="broadcast_w")(w)
    image = synthesis({"ws": ws, "char": inputs["char"]})
    return keras.Model(inputs, image, name="stylegan_generator")


def build_discriminator(cfg: ModelConfig) -> keras.Model:
    return blocks.char_discriminator(cfg, "stylegan_discriminator")


# ------------------------------------------------------------------------------------------------
# Helpers used by the trainer, the style tools and the export.


def parts(generator) -> tuple[keras.Model, keras.Model]:
    """(mapping, synthesis) of a stylegan generator."""
    return generator.get_layer("mapping"), generator.get_layer("synthesis")


def w_statistics(generator, latent_dim: int, n: int = 8192, seed: int = 0):
    """(the centre of W: mean of mapping(z) over n seeded z, float32 [w_dim]; the mean squared
    distance of mapping styles from it, a float: the scale of "near the learned distribution")."""
    mapping, _ = parts(generator)
    z = tf.random.stateless_normal([n, latent_dim], seed=[seed, 7])
    w = tf.cast(mapping(z, training=False), tf.float32)
    w_avg = tf.reduce_mean(w, axis=0)
    return w_avg, float(tf.reduce_mean(tf.reduce_sum(tf.square(w - w_avg), -1)))


def synthesize(generator, ws, chars, training: bool = False):
    """Images from styles: ws [B, w_dim] (W, one style) or [B, L, w_dim] (W+) and chars [B]."""
    _, synthesis = parts(generator)
    ws = tf.convert_to_tensor(ws, tf.float32)
    if ws.shape.rank == 2:
        ws = tf.repeat(ws[:, None, :], synthesis.input["ws"].shape[1], axis=1)
    return synthesis({"ws": ws, "char": tf.cast(chars, tf.int32)}, training=training)


def truncate(ws, w_avg, psi: float):
    """The truncation trick: w_avg + psi * (w - w_avg) (psi 1: unchanged; 0: the mean style)."""
    return w_avg + psi * (ws - w_avg)


def mix_styles(ws_a, ws_b, layers_from_b):
    """W+ styles [B, L, w_dim] taking the layers in `layers_from_b` (indices) from ws_b, the rest
    from ws_a. Coarse layers (low indices, 4x4 and 8x8) carry structure, fine ones stroke."""
    L = ws_a.shape[1]
    mask = tf.constant([1.0 if i in set(layers_from_b) else 0.0 for i in range(L)],
                       tf.float32)[None, :, None]
    return ws_a * (1.0 - mask) + ws_b * mask
