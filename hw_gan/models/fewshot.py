"""The few-shot family (issue 18): a writer's glyph of ANY character the font covers, from k glyphs
of that writer and the character's font image (the FUNIT / DG-Font / LF-Font / MX-Font design:
content from a reference font, style from a few reference glyphs, one decoder).

Unlike the other families the generator takes no character id, no writer id and no noise:

    G {"content":        [B, R, R, 1]     the character's font image (data_pipeline.font), [-1, 1]
       "style_images":   [B, K, R, R, 1]  k reference glyphs of ONE writer per row, [-1, 1]
       "style_contents": [B, K, R, R, 1]  the font images of those references' characters
       "style_mask":     [B, K] float     1 for a reference, 0 for padding (any K, any order)}
      -> glyph [B, R, R, 1] float32 in [-1, 1]

Parts (`parts(generator)`), so a trainer can encode each reference once and pool many ways:
  style glyph net  "fewshot_style_glyph": [N, R, R, 2] (reference glyph, its font image) ->
                   features [N, F]. Seeing the font image beside the glyph lets it read how THIS
                   writer departs from the plain form, for any character, with no character id.
  pooling          masked mean over the k references (`masked_mean`): permutation invariant,
                   any k >= 1 (DeepSets: mean, then the head).
  style head       "fewshot_style_head": [B, F] -> style code [B, S].
  decoder          "fewshot_decoder": {"content", "style"} -> glyph. The content encoder keeps an
                   8x8 map of the font image (where the strokes go); the style code modulates
                   every decoder block through pixel norm + FiLM (AdaIN-like, as FUNIT) on the
                   way back up to R.
  local tokens     with cfg.style_tokens = T > 0 the style is [global code, T tokens]: T learned
                   queries read each reference's 8x8 map (TokenSums), pooled by the same masked
                   mean and turned into one softmax over all references' positions (TokenSlots
                   in the head); the decoder's 8x8 and 16x16 maps attend to them
                   (TokenAttention), FiLM reads the global code only.

The discriminator is the conditional one of the other families (residual trunk, projection on
the character and the writer, "d_features_act" features for the trainer's feature loss and
auxiliary classifiers). Characters and writers there are the TRAINING set's ids: D judges only
training glyphs; the generator itself never sees an id.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from data_pipeline import font
from data_pipeline.schema import INK_THRESHOLD
from hw_gan.config import ModelConfig, scaled
from hw_gan.models import layers as blocks

USES_WRITER = True  # the discriminator's writer projection (the generator takes no writer id)
STYLE_FEATURES = 256  # per-reference features at width 1.0
STYLE_DIM = 256  # style code at width 1.0
CONTENT_SIZE = 8  # spatial size of the content map
SET_STYLE, STYLE_HEAD, DECODER = "fewshot_set_style", "fewshot_style_head", "fewshot_decoder"
TABLES = "fewshot_tables"  # the serving generator's FontAndStyles layer


TOKEN_DIM = 32  # width of one local style token
TOKEN_KEY = 16  # width of the attention keys (reference positions, decoder positions)
TOKEN_MAP = 8  # the references' feature map the tokens are read from (TOKEN_MAP^2 positions)
LOGIT_BOUND = 8.0  # token attention logits are soft-clipped to +-this, so exp() needs no shift


def decoder_width(cfg: ModelConfig) -> float:
    """The decoder's and the style code's channel multiplier (--decoder_width, else --width)."""
    return cfg.decoder_width or cfg.width


def global_features(cfg: ModelConfig) -> int:
    return scaled(STYLE_FEATURES, decoder_width(cfg), minimum=32)


def global_style_dim(cfg: ModelConfig) -> int:
    """The global style code's size (what modulates every decoder block)."""
    return scaled(STYLE_DIM, decoder_width(cfg), minimum=32)


def style_features(cfg: ModelConfig) -> int:
    """Per-reference features: the global ones, then per local token its attention-weighted
    value sum (TOKEN_DIM) and weight sum (1) over the reference's positions."""
    return global_features(cfg) + cfg.style_tokens * (TOKEN_DIM + 1)


def style_dim(cfg: ModelConfig) -> int:
    """A style's size: the global code, then style_tokens local tokens of TOKEN_DIM."""
    return global_style_dim(cfg) + cfg.style_tokens * TOKEN_DIM


def _check(cfg: ModelConfig) -> None:
    if cfg.resolution not in (32, 64):
        raise ValueError(f"resolution must be 32 or 64, got {cfg.resolution}")


def _bounded(logits):
    return LOGIT_BOUND * ops.tanh(logits / LOGIT_BOUND)


@keras.saving.register_keras_serializable(package="hw_gan")
class TokenSums(layers.Layer):
    """A reference's feature map [N, H, W, C] -> [N, T * (TOKEN_DIM + 1)]: for each of T learned
    queries, sum_p e_p v_p and sum_p e_p over the map's positions p, e_p = exp(bounded q . k_p),
    keys and values linear in the features (keys with a learned position term). Sums, not a
    softmax, so that the masked mean over k references followed by TokenSlots' ratio is exactly
    one softmax over the positions of all k references: order-free, any k."""

    def __init__(self, tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.tokens = int(tokens)

    def build(self, input_shape):
        _, h, w, c = input_shape
        self.queries = self.add_weight(name="queries", shape=(self.tokens, TOKEN_KEY),
                                       initializer="random_normal")
        self.key = self.add_weight(name="key", shape=(c, TOKEN_KEY), initializer="glorot_uniform")
        self.position = self.add_weight(name="position", shape=(h * w, TOKEN_KEY),
                                        initializer="random_normal")
        self.value = self.add_weight(name="value", shape=(c, TOKEN_DIM),
                                     initializer="glorot_uniform")

    def call(self, x):
        c = x.shape[-1]
        flat = ops.reshape(x, (-1, x.shape[1] * x.shape[2], c))  # [N, P, C]
        keys = ops.matmul(flat, self.key) + self.position  # [N, P, A]
        logits = ops.einsum("ta,npa->ntp", self.queries, keys) / float(np.sqrt(TOKEN_KEY))
        e = ops.exp(_bounded(logits))  # [N, T, P]
        sums = ops.einsum("ntp,npd->ntd", e, ops.matmul(flat, self.value))  # [N, T, D]
        return ops.concatenate([ops.reshape(sums, (-1, self.tokens * TOKEN_DIM)),
                                ops.sum(e, axis=-1)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.tokens * (TOKEN_DIM + 1))

    def get_config(self):
        return {**super().get_config(), "tokens": self.tokens}


@keras.saving.register_keras_serializable(package="hw_gan")
class TokenSlots(layers.Layer):
    """Pooled TokenSums [N, T * (TOKEN_DIM + 1)] -> tokens [N, T, TOKEN_DIM]: value sums over
    weight sums (the attention's softmax over every reference position)."""

    def __init__(self, tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.tokens = int(tokens)

    def call(self, x):
        sums = ops.reshape(x[:, :self.tokens * TOKEN_DIM], (-1, self.tokens, TOKEN_DIM))
        weights = x[:, self.tokens * TOKEN_DIM:]
        return sums / ops.maximum(weights, 1e-6)[..., None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.tokens, TOKEN_DIM)

    def get_config(self):
        return {**super().get_config(), "tokens": self.tokens}


@keras.saving.register_keras_serializable(package="hw_gan")
class TokenAttention(layers.Layer):
    """A decoder map [B, H, W, C] attends to local style tokens [B, T, TOKEN_DIM]: each position's
    query (from its pixel-normalised features) picks the tokens it needs; the result, projected
    to C channels, is added to the map (the output projection starts at zero, so the block
    starts as the identity)."""

    def build(self, input_shape):
        x_shape, _ = input_shape
        c = int(x_shape[-1])
        self.query = self.add_weight(name="query", shape=(c, TOKEN_KEY),
                                     initializer="glorot_uniform")
        self.key = self.add_weight(name="key", shape=(TOKEN_DIM, TOKEN_KEY),
                                   initializer="glorot_uniform")
        self.value = self.add_weight(name="value", shape=(TOKEN_DIM, c),
                                     initializer="glorot_uniform")
        self.out = self.add_weight(name="out", shape=(c, c), initializer="zeros")

    def call(self, inputs):
        x, tokens = inputs
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        flat = ops.reshape(x, (-1, h * w, c))
        logits = ops.einsum("bpa,bta->bpt", ops.matmul(blocks.pixel_norm(flat), self.query),
                            ops.matmul(tokens, self.key)) / float(np.sqrt(TOKEN_KEY))
        picked = ops.matmul(ops.softmax(logits, axis=-1), ops.matmul(tokens, self.value))
        return x + ops.reshape(ops.matmul(picked, self.out), (-1, h, w, c))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def build_style_glyph_net(cfg: ModelConfig) -> keras.Model:
    plan = blocks.channel_plan(cfg.resolution, cfg.width)
    pair = keras.Input((cfg.resolution, cfg.resolution, 2), dtype="float32", name="pair")
    if cfg.style_tokens:
        fine = blocks.image_trunk(pair, plan, cfg.resolution, "s", until=TOKEN_MAP)
        x = blocks.down_block(fine, plan[TOKEN_MAP // 2], name=f"s_block{TOKEN_MAP // 2}")
    else:
        x = blocks.image_trunk(pair, plan, cfg.resolution, "s")
    x = layers.LeakyReLU(blocks.LEAK, name="s_out_act")(x)
    x = layers.Flatten(name="s_flatten")(x)
    x = layers.Dense(global_features(cfg), name="s_features")(x)
    x = layers.LeakyReLU(blocks.LEAK, name="s_features_act")(x)
    if cfg.style_tokens:
        fine = layers.LeakyReLU(blocks.LEAK, name="s_tokens_act")(fine)
        x = layers.Concatenate(name="s_all")([x, TokenSums(cfg.style_tokens, dtype="float32",
                                                            name="s_tokens")(fine)])
    return keras.Model(pair, x, name="fewshot_style_glyph")


def build_style_head(cfg: ModelConfig) -> keras.Model:
    pooled = keras.Input((style_features(cfg),), dtype="float32", name="pooled")
    g = global_features(cfg)
    x = pooled[:, :g] if cfg.style_tokens else pooled
    x = layers.Dense(global_style_dim(cfg), name="h_dense1")(x)
    x = layers.LeakyReLU(blocks.LEAK, name="h_act1")(x)
    x = layers.Dense(global_style_dim(cfg), name="h_style")(x)
    if cfg.style_tokens:
        tokens = TokenSlots(cfg.style_tokens, dtype="float32", name="h_slots")(pooled[:, g:])
        tokens = layers.Dense(TOKEN_DIM, name="h_tokens")(tokens)
        x = layers.Concatenate(name="h_all")([x, layers.Flatten(name="h_tokens_flat")(tokens)])
    return keras.Model(pooled, x, name=STYLE_HEAD)


def build_decoder(cfg: ModelConfig) -> keras.Model:
    plan = blocks.channel_plan(cfg.resolution, decoder_width(cfg))
    r = cfg.resolution
    content = keras.Input((r, r, 1), dtype="float32", name="content")
    style = style_in = keras.Input((style_dim(cfg),), dtype="float32", name="style")
    tokens = None
    if cfg.style_tokens:
        g = global_style_dim(cfg)
        tokens = layers.Reshape((cfg.style_tokens, TOKEN_DIM), name="g_tokens")(style[:, g:])
        style = style[:, :g]  # the global code modulates, the tokens are attended to
    maps = {}
    x = blocks.image_trunk(content, plan, r, "c", until=CONTENT_SIZE, maps=maps)
    size = CONTENT_SIZE
    # One style-modulated block at the content map's size, then up to R.
    h = blocks.PixelNorm(name="g_mid_norm")(x)
    h = blocks.FiLM(name="g_mid_film")([h, style])
    h = layers.LeakyReLU(blocks.LEAK, name="g_mid_act")(h)
    h = layers.Conv2D(plan[size], 3, padding="same", name="g_mid_conv")(h)
    x = layers.Add(name="g_mid_out")([x, h])
    if tokens is not None:
        x = TokenAttention(name=f"g_attend{size}")([x, tokens])
    while size < r:
        size *= 2
        x = blocks.up_block(x, style, plan[size], name=f"g_block{size}")
        if cfg.content_skip and size < r:  # the font image's detail at this size (config.py)
            skip = layers.Conv2D(plan[size], 1, kernel_initializer="zeros",
                                 name=f"g_content{size}")(maps[size])
            x = layers.Add(name=f"g_content{size}_add")([x, skip])
        if tokens is not None and size <= 2 * CONTENT_SIZE:
            x = TokenAttention(name=f"g_attend{size}")([x, tokens])
    x = blocks.PixelNorm(name="g_out_norm")(x)
    x = blocks.FiLM(name="g_out_film")([x, style])
    x = layers.LeakyReLU(blocks.LEAK, name="g_out_act")(x)
    x = layers.Conv2D(1, 3, padding="same", name="g_out_conv")(x)
    image = layers.Activation("tanh", dtype="float32", name="g_image")(x)
    return keras.Model({"content": content, "style": style_in}, image, name=DECODER)


def masked_mean(features, mask):
    """features [..., K, F], mask [..., K] (1 = reference) -> [..., F]; ValueError-free for an
    all-zero row (its mean is 0), which callers refuse before it gets here."""
    m = ops.cast(mask, features.dtype)[..., None]
    return ops.sum(features * m, axis=-2) / ops.maximum(ops.sum(m, axis=-2), 1.0)


@keras.saving.register_keras_serializable(package="hw_gan")
class SetStyle(layers.Layer):
    """(style_images, style_contents [B, K, R, R, 1], style_mask [B, K]) -> pooled [B, F]: the
    style glyph net on every reference, then the masked mean (any K, order-free)."""

    def __init__(self, glyph_net: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.glyph_net = glyph_net

    def call(self, images, contents, mask):
        shape = ops.shape(images)
        pairs = ops.concatenate([images, contents], axis=-1)
        flat = ops.reshape(pairs, (-1, images.shape[2], images.shape[3], 2))
        feats = self.glyph_net(flat)
        feats = ops.reshape(feats, (shape[0], shape[1], feats.shape[-1]))
        return masked_mean(feats, mask)

    def compute_output_shape(self, images_shape, contents_shape=None, mask_shape=None):
        return (images_shape[0], int(self.glyph_net.output.shape[-1]))


FADE = 0.3  # at full strength, a reference's ink is faded by up to this much


def disturb_references(images, strength: float, seed, draws=None):
    """Glyphs [N, R, R, 1] in [-1, 1] as another capture might give them, each by its own seeded
    draw (`seed`: a stateless-RNG seed, so a resumed run draws the same): its pen made thicker
    (60 %) or thinner by a 3 x 3 dilation or erosion mixed in by up to `strength`, blurred (a
    3 x 3 binomial kernel) by up to `strength`, its ink faded by up to FADE x `strength`.
    `draws`: the uniform draws [N, 4] to use instead of `seed`'s."""
    images = tf.convert_to_tensor(images, tf.float32)
    u = (tf.random.stateless_uniform([tf.shape(images)[0], 4], seed) if draws is None
         else tf.convert_to_tensor(draws, tf.float32))
    ink = (images + 1.0) / 2.0
    thick = tf.nn.max_pool2d(ink, 3, 1, "SAME")
    thin = -tf.nn.max_pool2d(-ink, 3, 1, "SAME")
    pen = tf.where((u[:, 3] < 0.6)[:, None, None, None], thick, thin)
    ink += (strength * u[:, 0])[:, None, None, None] * (pen - ink)
    k = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.reshape(k[:, None] * k[None, :], [3, 3, 1, 1])
    blurred = tf.nn.conv2d(ink, kernel, 1, "SAME")
    ink += (strength * u[:, 1])[:, None, None, None] * (blurred - ink)
    ink *= (1.0 - FADE * strength * u[:, 2])[:, None, None, None]
    return tf.clip_by_value(ink, 0.0, 1.0) * 2.0 - 1.0


# A style is read from a person's references and from READ_STRENGTH-disturbed copies of them
# (disturb_references, --style_read_copies copies, fixed draws): the encoder, tuned on disturbed
# references (--style_ref_augment), then sees the glyphs as it was trained to, whoever captured
# them. Chosen on the 31 held-out UNIPEN writers of the wide run and checked on the shipped
# model (docs/results.md, "Reading a style from disturbed copies").
READ_STRENGTH = 0.5
READ_SEED = 1009


def reading_copies(images, copies: int):
    """References [S, K, R, R, 1] in [-1, 1] -> [S, K x (copies + 1), R, R, 1]: the references,
    then `copies` disturbed copies of them. Copy i of the reference at position k of a set takes
    the draw of row k of stateless_uniform([K, 4], [READ_SEED, i]) whatever the set, so that a
    set read alone (an export's extract_style) and among others (Python) read alike."""
    images = tf.convert_to_tensor(images, tf.float32)
    if copies <= 0:
        return images
    shape = tf.shape(images)
    s, k = shape[0], shape[1]
    flat = tf.reshape(images, tf.concat([[s * k], shape[2:]], 0))
    out = [images]
    for i in range(int(copies)):
        draws = tf.tile(tf.random.stateless_uniform([k, 4], [READ_SEED, i]), [s, 1])
        out.append(tf.reshape(disturb_references(flat, READ_STRENGTH, None, draws), shape))
    return tf.concat(out, 1)


def build_generator(cfg: ModelConfig) -> keras.Model:
    _check(cfg)
    r = cfg.resolution
    inputs = {
        "content": keras.Input((r, r, 1), dtype="float32", name="content"),
        "style_images": keras.Input((None, r, r, 1), dtype="float32", name="style_images"),
        "style_contents": keras.Input((None, r, r, 1), dtype="float32", name="style_contents"),
        "style_mask": keras.Input((None,), dtype="float32", name="style_mask"),
    }
    glyph_net, head, decoder = build_style_glyph_net(cfg), build_style_head(cfg), build_decoder(cfg)
    pooled = SetStyle(glyph_net, name=SET_STYLE)(
        inputs["style_images"], inputs["style_contents"], inputs["style_mask"])
    style = head(pooled)
    image = decoder({"content": inputs["content"], "style": style})
    return keras.Model(inputs, image, name="fewshot_generator")


def set_style_parts(generator: keras.Model) -> tuple[layers.Layer, keras.Model]:
    """(the SetStyle layer, the style head) of a built generator: references -> style code."""
    return generator.get_layer(SET_STYLE), generator.get_layer(STYLE_HEAD)


def parts(generator: keras.Model) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(style glyph net, style head, decoder) of a built generator (shared weights)."""
    set_style, head = set_style_parts(generator)
    return set_style.glyph_net, head, generator.get_layer(DECODER)


def build_discriminator(cfg: ModelConfig) -> keras.Model:
    _check(cfg)
    blocks.check_config(cfg, True)
    inputs = blocks.discriminator_inputs(cfg, True)
    h = blocks.discriminator_trunk(cfg, inputs["image"])
    logits = blocks.projection_head(h, {"char": (inputs["char"], cfg.num_chars),
                                        "writer": (inputs["writer"], cfg.num_writers)})
    return keras.Model(inputs, logits, name="fewshot_discriminator")


# -- accented letters: the base letter and its mark, each drawn in the style, put together ---------

COMPOSE_SUPERSAMPLE = 4  # placed layers are sampled this many times finer, then area-averaged
INK_LEVEL = -1.0 + 2.0 * INK_THRESHOLD / 255  # a [-1, 1] pixel above this is ink


def ink_extent(images):
    """(top, left, bottom, right) float32 [N, 4] of the ink of [-1, 1] glyphs [N, R, R, 1]
    (exclusive ends, pixels); the whole box for a blank glyph."""
    ink = images[..., 0] > INK_LEVEL

    def span(any_ink):  # [N, R] -> first, last + 1
        n = tf.shape(any_ink)[1]
        as_int = tf.cast(any_ink, tf.int32)
        first = tf.argmax(as_int, 1, output_type=tf.int32)
        last = n - tf.argmax(tf.reverse(as_int, [1]), 1, output_type=tf.int32)
        has = tf.reduce_any(any_ink, 1)
        return tf.where(has, first, 0), tf.where(has, last, n)

    top, bottom = span(tf.reduce_any(ink, 2))
    left, right = span(tf.reduce_any(ink, 1))
    return tf.cast(tf.stack([top, left, bottom, right], 1), tf.float32)


def place(images, boxes):
    """Each [-1, 1] glyph's ink, scaled (aspect kept) and centred into its box [N, 4] (top, left,
    bottom, right in output pixels), area-sampled: [N, R, R, 1] with -1 (paper) outside."""
    images = tf.convert_to_tensor(images, tf.float32)
    r = images.shape[1]
    src = ink_extent(images)
    size = tf.maximum(src[:, 2:] - src[:, :2], 1.0)
    want = tf.maximum(boxes[:, 2:] - boxes[:, :2], 1e-3)
    scale = tf.reduce_min(want / size, 1, keepdims=True)  # [N, 1]
    start = (boxes[:, :2] + boxes[:, 2:]) / 2 - scale * size / 2  # output px of the ink's corner
    ss = COMPOSE_SUPERSAMPLE
    first, last = 0.5 / ss, r - 0.5 / ss  # output sample centres at the two ends

    def source(u):  # output coordinate -> source pixel index, normalised for crop_and_resize
        return (src[:, :2] + (u - start) / scale - 0.5) / (r - 1)

    crop = tf.concat([source(first), source(last)], 1)
    fine = tf.image.crop_and_resize(images, crop, tf.range(tf.shape(images)[0]), [ss * r, ss * r],
                                    extrapolation_value=-1.0)
    return tf.nn.avg_pool2d(fine, ss, ss, "VALID")


def compose(base, mark, boxes, composed):
    """Glyphs [N, R, R, 1] in [-1, 1]: where `composed` [N], the `base` glyph put into boxes[:, 0]
    and the `mark` glyph into boxes[:, 1] and boxes[:, 2] (an all-zero box: no copy), the mark's
    ink brought back to full strength after shrinking (a pen's mark stays as dark as its
    letter); elsewhere `base` as it is. Layouts: data_pipeline.font.composition."""
    base = tf.convert_to_tensor(base, tf.float32)
    mark = tf.convert_to_tensor(mark, tf.float32)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    ink = (place(base, boxes[:, 0]) + 1.0) / 2.0
    for i in (1, 2):
        there = tf.reduce_any(boxes[:, i] != 0.0, 1)[:, None, None, None]
        m = (place(mark, boxes[:, i]) + 1.0) / 2.0
        m = tf.clip_by_value(m / tf.maximum(tf.reduce_max(m, [1, 2, 3], keepdims=True), 0.25),
                             0.0, 1.0)
        ink = tf.maximum(ink, tf.where(there, m, 0.0))
    out = ink * 2.0 - 1.0
    return tf.where(tf.reshape(tf.cast(composed, tf.bool), [-1, 1, 1, 1]), out, base)


# -- the serving generator: the other families' {z, char, writer} contract --------------------------


def limit_untrained(styles, trained, mean, spread, clip):
    """Styles [B, D] of glyphs whose character the model never trained on (`trained` [B] bool
    False) kept within mean +- clip x spread in each dimension (mean, spread [D]: the training
    writers'); the others unchanged. The decoder draws a character it never saw from its font
    image well only near the mean style: a writer's far-off dimensions turn it into a scrawl
    (docs/results.md, issue 18). clip None: every style unchanged."""
    styles = tf.convert_to_tensor(styles, tf.float32)
    if clip is None:
        return styles
    bound = float(clip) * tf.convert_to_tensor(spread, tf.float32)
    mean = tf.convert_to_tensor(mean, tf.float32)
    limited = tf.clip_by_value(styles, mean - bound, mean + bound)
    return tf.where(tf.reshape(tf.cast(trained, tf.bool), [-1, 1]), styles, limited)


@keras.saving.register_keras_serializable(package="hw_gan")
class FontAndStyles(layers.Layer):
    """{z, char, writer} -> (content [B, R, R, 1] in [-1, 1], style [B, D]) from two tables it
    holds as weights: the font's content images (uint8 [C, R, R], every code point the content
    font covers, `rows[i]` the row of training char i) and the training writers' style codes
    [W, D]. Each glyph's style is jittered by `variation` x the writers' spread x z (the first D
    entries of z, tiled when D > latent_dim), so repeated letters are not identical. A content
    row whose character training never saw (`trained` 0) is drawn in its style limited to the
    mean +- `untrained_clip` x spread (limit_untrained; None: not limited)."""

    def __init__(self, num_contents: int, resolution: int, num_chars: int, num_writers: int,
                 style_size: int, variation: float = 0.0, untrained_clip=None, **kwargs):
        super().__init__(**kwargs)
        self.num_contents, self.resolution = int(num_contents), int(resolution)
        self.num_chars, self.num_writers = int(num_chars), int(num_writers)
        self.style_size, self.variation = int(style_size), float(variation)
        self.untrained_clip = None if untrained_clip is None else float(untrained_clip)

    def build(self, input_shape=None):
        r = self.resolution
        self.contents = self.add_weight(shape=(self.num_contents, r, r), dtype="uint8",
                                        trainable=False, initializer="zeros", name="contents")
        self.rows = self.add_weight(shape=(self.num_chars,), dtype="int32", trainable=False,
                                    initializer="zeros", name="char_rows")
        self.styles = self.add_weight(shape=(self.num_writers, self.style_size),
                                      dtype="float32", trainable=False, initializer="zeros",
                                      name="writer_styles")
        self.spread = self.add_weight(shape=(self.style_size,), dtype="float32",
                                      trainable=False, initializer="zeros", name="style_spread")
        # Per content row, how it is drawn (data_pipeline.font.composition_table): the rows of
        # its base letter and mark, their boxes, and whether it is put together at all.
        c = self.num_contents
        self.base_rows = self.add_weight(shape=(c,), dtype="int32", trainable=False,
                                         initializer="zeros", name="base_rows")
        self.mark_rows = self.add_weight(shape=(c,), dtype="int32", trainable=False,
                                         initializer="zeros", name="mark_rows")
        self.boxes = self.add_weight(shape=(c, 3, 4), dtype="float32", trainable=False,
                                     initializer="zeros", name="composition_boxes")
        self.composed = self.add_weight(shape=(c,), dtype="int32", trainable=False,
                                        initializer="zeros", name="composed")
        self.trained = self.add_weight(shape=(c,), dtype="int32", trainable=False,
                                       initializer="ones", name="trained_rows")

    def mean_style(self):
        """[D]: the mean of the trained writers' styles (rows not all zero)."""
        trained = tf.reduce_sum(tf.abs(self.styles), 1) > 0
        return tf.reduce_mean(tf.boolean_mask(tf.convert_to_tensor(self.styles), trained), 0)

    def limit(self, style, rows):
        """`style` [B, D] of content rows [B], limited where training never saw the row's
        character (limit_untrained)."""
        if self.untrained_clip is None:
            return style
        return limit_untrained(style, tf.gather(self.trained, rows) > 0, self.mean_style(),
                               self.spread, self.untrained_clip)

    def content_rows(self, rows):
        """Font images [B, R, R, 1] in [-1, 1] of content-table rows [B]."""
        img = ops.cast(ops.take(self.contents, rows, axis=0), "float32")
        return (img * (2.0 / 255.0) - 1.0)[..., None]

    def draw(self, decoder, rows, style):
        """Glyphs [B, R, R, 1] in [-1, 1] of content rows [B] in styles [B, D]: each row's font
        image through `decoder`; the accented letters among them (only those: their marks are
        decoded and placed, the rest pass as drawn) as their base letter + mark (compose)."""
        rows = ops.cast(rows, "int32")
        base_rows = ops.take(self.base_rows, rows, axis=0)
        base = tf.cast(decoder({"content": self.content_rows(base_rows),
                                "style": self.limit(style, base_rows)}, training=False),
                       tf.float32)
        at = tf.where(tf.gather(self.composed, rows) > 0)  # [M, 1]: the accented glyphs

        def put_together():
            mine = tf.gather(rows, at[:, 0])
            mark_rows = tf.gather(self.mark_rows, mine)
            mark = decoder({"content": self.content_rows(mark_rows),
                            "style": self.limit(tf.gather(style, at[:, 0]), mark_rows)},
                           training=False)
            done = compose(tf.gather(base, at[:, 0]), mark, tf.gather(self.boxes, mine),
                           tf.ones_like(mine, tf.bool))
            return tf.tensor_scatter_nd_update(base, at, done)

        # No decoder call on an empty batch: oneDNN's graph rewrite fails on one.
        return tf.cond(tf.size(at) > 0, put_together, lambda: base)

    def jitter(self, z, variation):
        reps = -(-self.style_size // int(z.shape[-1]))
        noise = ops.tile(z, (1, reps))[:, :self.style_size] if reps > 1 else \
            z[:, :self.style_size]
        return variation * self.spread[None] * noise

    def call(self, z, chars, writers):
        rows = ops.take(self.rows, ops.cast(chars, "int32"), axis=0)
        style = ops.take(self.styles, ops.cast(writers, "int32"), axis=0)
        style = style + self.jitter(ops.cast(z, "float32"), self.variation)
        return self.content_rows(rows), self.limit(style, rows)

    def get_config(self):
        return {**super().get_config(), "num_contents": self.num_contents,
                "resolution": self.resolution, "num_chars": self.num_chars,
                "num_writers": self.num_writers, "style_size": self.style_size,
                "variation": self.variation, "untrained_clip": self.untrained_clip}


def build_serving_generator(cfg: ModelConfig, decoder: keras.Model, contents, char_rows,
                            writer_styles, variation: float = 0.1,
                            composition=None, trained_rows=None,
                            untrained_clip=None) -> keras.Model:
    """The exportable generator: {z [B, latent_dim], char [B], writer [B]} -> glyph, like the
    other families, with `decoder` (shared weights) drawing each character's font image
    (`contents` uint8 [C, R, R], `char_rows` [num_chars]) in its writer's style
    (`writer_styles` [W, D], from their training glyphs). Layer TABLES holds the
    tables for the style signatures (any character the font covers, any style), with
    `composition` (font.composition_table of the content rows: accented letters drawn as base +
    mark; None: every row as it is) and `trained_rows` (bool per content row: training saw its
    character; None: every row) with `untrained_clip` (FontAndStyles)."""
    contents = np.asarray(contents, np.uint8)
    writer_styles = np.asarray(writer_styles, np.float32)
    r = cfg.resolution
    inputs = {"z": keras.Input((cfg.latent_dim,), dtype="float32", name="z"),
              "char": keras.Input((), dtype="int32", name="char"),
              "writer": keras.Input((), dtype="int32", name="writer")}
    tables = FontAndStyles(len(contents), r, len(char_rows), len(writer_styles),
                           writer_styles.shape[1], variation, untrained_clip, name=TABLES)
    content, style = tables(inputs["z"], inputs["char"], inputs["writer"])
    image = decoder({"content": content, "style": style})
    model = keras.Model(inputs, image, name="fewshot_serving_generator")
    trained = writer_styles[np.abs(writer_styles).sum(1) > 0]
    tables.contents.assign(contents)
    tables.rows.assign(np.asarray(char_rows, np.int32))
    tables.styles.assign(writer_styles)
    tables.spread.assign(trained.std(0) if len(trained) > 1 else np.zeros(
        writer_styles.shape[1], np.float32))
    if trained_rows is not None:
        tables.trained.assign(np.asarray(trained_rows, bool).astype(np.int32))
    if composition is not None:
        base_rows, mark_rows, boxes, composed = composition
        tables.base_rows.assign(np.asarray(base_rows, np.int32))
        tables.mark_rows.assign(np.asarray(mark_rows, np.int32))
        tables.boxes.assign(np.asarray(boxes, np.float32))
        tables.composed.assign(np.asarray(composed, np.int32))
    else:
        tables.base_rows.assign(np.arange(len(contents), dtype=np.int32))
        tables.mark_rows.assign(np.arange(len(contents), dtype=np.int32))
    return model


def font_serving_generator(cfg: ModelConfig, decoder: keras.Model, charset, writer_styles,
                           variation: float, untrained_chars: str = "",
                           untrained_clip=None):
    """build_serving_generator with the content font's tables (data_pipeline.font): every code
    point it draws, each training char's row, the accented letters' composition, and which rows
    training saw (the charset but `untrained_chars`). Returns (model, the table's code points);
    a ValueError names a training character that is not one code point of the table."""
    codes, contents = font.content_table(cfg.resolution)
    where = {int(c): i for i, c in enumerate(codes)}
    rows = []
    for label in charset:
        if len(label) != 1 or ord(label) not in where:
            raise ValueError(f"training character {label!r} is not one code point of the "
                             "content table")
        rows.append(where[ord(label)])
    seen = set(charset) - set(untrained_chars)
    trained = [chr(int(c)) in seen for c in codes]
    model = build_serving_generator(cfg, decoder, contents, rows, writer_styles, variation,
                                    font.composition_table(codes, cfg.resolution), trained,
                                    untrained_clip)
    return model, codes
