"""`write` computed inside the SavedModel graph, so TF Serving can write text without Python.

    from hw_gan.export import export_generator
    from hw_gan.export.signatures.write import write_signature_builder

    export_generator(gen, cfg, charset, writers, root, name,
                     extra_signatures={"write": write_signature_builder(x_height_px=24.0)})

Signature `write` (one request writes one text):

    text        string []   the text (UTF-8); "\\r\\n", "\\r" read as "\\n", a tab as 4 spaces
    writer      string []   writer name (ignored by families without writers)
    seed        int64  []
    line_width  int32  []   wrap width in pixels (the image width); at least 4 x-heights
  ->  image      uint8 [H, W]  ink-high (0 paper, 255 ink, as every hwgan export image), W =
                               line_width, H = the lines stacked: first baseline 1.75 x-heights
                               below the top, baselines `line_spacing` x-heights apart (paragraphs
                               `paragraph_spacing` lines further), 0.8 x-heights below the last
        num_lines  int32 []    lines written (after wrapping)

A character the charset does not serve fails with InvalidArgumentError "character not in the
model's charset: ..." (spaces and line breaks are never missing); an unknown writer with "writer
not known to the model"; an empty text with "the text is empty"; a line_width below 4 x-heights
(or above `max_line_width`) with "line_width"; more than `max_glyphs` non-space characters with
"the text has more characters than max_glyphs"; more than `max_text_chars` characters (spaces
and line breaks included, a tab as 4) with "max_text_chars"; and a laid-out image of more than
`max_pixels` pixels (line_width x the lines' height) with "max_pixels", checked after the layout
and before the raster. Glyphs go through the generator `limits.GENERATE_BLOCK` at a time.

It follows `hw_gan.layout` (hwgan write) exactly, in its variation-free mode
(baseline_drift = size_variation = spacing_variation = 0; `WriteParams.layout_params`):

  * the same glyphs: the glyph requests of the text in order, generated in blocks of 512 with
    block c seeded by `hw_gan.render.chunk_seed(seed, c)` (numpy's SeedSequence hash, rebuilt here
    from uint32 ops), i.e. the same latents `render_pages` uses; all blocks go through the
    generator as one batch;
  * the same ink crop (threshold `INK_THRESHOLD`), the same typographic extents
    (`layout.char_extent`, from `data_pipeline.charset.char_info`, or the writer geometry given),
    scaling (band height, `max_width` cap, flat marks), letter/word spacing, slant, greedy wrap at
    spaces with over-long words split, hard line breaks, paragraphs, indent;
  * the same raster rule as `output.rasterize`: each crop resized to its rounded size (area when
    shrinking, else bicubic), then warped (bilinear) to its sub-pixel place and combined by max.

What differs: the resize kernels (TF bicubic a=-0.5 vs OpenCV a=-0.75; TF area vs OpenCV area)
and OpenCV's fixed-point bilinear weights, so pixels differ by a few levels at glyph edges;
positions agree to float rounding. Seeded variation (baseline drift, size and spacing jitter) is
not done here: it uses numpy's PCG64 normals, which the graph cannot reproduce. Missing
characters are an error (no "skip" / "box" / "nearest"). Unicode whitespace other than space,
tab and line breaks is read as a space (as `layout.normalise_text`) for the characters RE2's
\\pZ and the ASCII controls \\x0b \\x0c \\x1c-\\x1f \\x85 cover.

`render_lines_python(model, text, writer, seed, line_width)` renders the same image with the
Python renderer (`render_pages` + `output.rasterize`), for comparison.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, NamedTuple, Optional

import numpy as np
import tensorflow as tf

from hw_gan import layout as layout_lib
from hw_gan.export import limits
from hw_gan.export.module import string_table
from hw_gan.export.names import (EMPTY_TEXT_MESSAGE, LINE_WIDTH_MESSAGE, STYLE_FINITE_MESSAGE,
                                 TEXT_CHARS_MESSAGE,
                                 TOO_LONG_MESSAGE, TOO_MANY_PIXELS_MESSAGE, UNKNOWN_CHAR_MESSAGE,
                                 WRITE)
from hw_gan.layout import CHUNK, INK_THRESHOLD

__all__ = ["WriteParams", "charset_keys", "chunk_seed_tf", "default_signatures",
           "styled_write_function",
           "write_signature_builder"]

_KIND_NL, _KIND_SPACE, _KIND_GLYPH = 0, 1, 2
# Unicode whitespace (other than "\n") that Python's str.isspace accepts, for RE2.
_OTHER_SPACE = r"[\x{0b}\x{0c}\x{1c}-\x{1f}\x{85}\pZ]"


@dataclasses.dataclass(frozen=True)
class WriteParams:
    """The layout parameters of the `write` signature (LayoutParams' meanings, x-heights unless
    said otherwise). writer_geometry: {writer: {char: (top, bottom)}} as hwgan.json's
    "writer_geometry" (a family without writers uses key ""); give the export's own table here
    if it has one, or the graph and `render_pages` disagree."""

    # Spacing defaults are the Python layout's own, so the two renderers agree out of the box.
    x_height_px: float = 24.0
    letter_spacing: float = layout_lib.LayoutParams.letter_spacing
    word_spacing: float = layout_lib.LayoutParams.word_spacing
    line_spacing: float = layout_lib.LayoutParams.line_spacing
    paragraph_spacing: float = layout_lib.LayoutParams.paragraph_spacing
    indent: float = layout_lib.LayoutParams.indent
    slant: float = layout_lib.LayoutParams.slant
    max_width: float = layout_lib.LayoutParams.max_width
    threshold: int = INK_THRESHOLD
    max_line_width: int = limits.MAX_LINE_WIDTH
    max_glyphs: int = limits.MAX_GLYPHS  # non-space characters of a text
    max_text_chars: int = limits.MAX_TEXT_CHARS  # characters, spaces and line breaks included
    max_pixels: int = limits.MAX_PIXELS  # of the image (line_width x height)
    writer_geometry: Optional[Mapping[str, Mapping[str, object]]] = None

    def __post_init__(self):
        if not self.x_height_px > 0:
            raise ValueError(f"x_height_px must be > 0, got {self.x_height_px}")
        if not -1.0 <= self.slant <= 1.0:
            raise ValueError(f"slant {self.slant} is out of range [-1, 1]")
        if self.line_spacing <= 0:
            raise ValueError(f"line_spacing must be > 0, got {self.line_spacing}")
        if not 0 <= self.threshold < 255:
            raise ValueError(f"threshold must be in [0, 255), got {self.threshold}")
        for cap in ("max_line_width", "max_glyphs", "max_text_chars", "max_pixels"):
            if int(getattr(self, cap)) < 1:
                raise ValueError(f"{cap} must be >= 1, got {getattr(self, cap)}")

    def layout_params(self, line_width: int, geometry=None) -> layout_lib.LayoutParams:
        """The Python LayoutParams the graph reproduces: no margins, one page of unlimited
        height, no seeded variation."""
        return layout_lib.LayoutParams(
            page_width_px=int(line_width), page_height_px=10 ** 9, x_height_px=self.x_height_px,
            margin_px=(0.0, 0.0, 0.0, 0.0), line_width_px=None,
            letter_spacing=self.letter_spacing, word_spacing=self.word_spacing,
            line_spacing=self.line_spacing, paragraph_spacing=self.paragraph_spacing,
            indent=self.indent, slant=self.slant, baseline_drift=0.0, size_variation=0.0,
            spacing_variation=0.0, max_width=self.max_width, geometry=geometry)


# ------------------------------------------------------------------------------------------------
# hw_gan.render.chunk_seed in the graph: numpy SeedSequence([seed & 2**64-1, 0x7772, chunk])
# .generate_state(1, uint64) & 2**63-1, from uint32 arithmetic.

_M32 = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715


def _u32(v):
    return tf.constant(v & _M32, tf.uint32)


def _xorshift(v):
    return tf.bitwise.bitwise_xor(v, tf.bitwise.right_shift(v, _u32(16)))


def chunk_seed_tf(seed, chunk):
    """int64 [] seed, int32/int64 [] chunk (< 2**32) -> int64 [] == hw_gan.render.chunk_seed."""
    words = tf.bitcast(tf.cast(seed, tf.int64), tf.uint32)  # [lo, hi] (little-endian)
    lo, hi = words[0], words[1]
    c = tf.cast(tf.cast(chunk, tf.int64), tf.uint32)
    tag = _u32(0x7772)
    zero = _u32(0)
    # SeedSequence turns an int into its 32-bit words, least significant first, dropping
    # leading zero words (0 is one word); the pool of 4 is padded with zeros.
    short = tf.equal(hi, zero)
    entropy = [lo, tf.where(short, tag, hi), tf.where(short, c, tag), tf.where(short, zero, c)]
    hash_const = [_u32(_INIT_A)]

    def hashmix(v):
        v = tf.bitwise.bitwise_xor(v, hash_const[0])
        hash_const[0] = hash_const[0] * _u32(_MULT_A)
        return _xorshift(v * hash_const[0])

    def mix(x, y):
        return _xorshift(_u32(_MIX_L) * x - _u32(_MIX_R) * y)

    mixer = [hashmix(e) for e in entropy]
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                mixer[i_dst] = mix(mixer[i_dst], hashmix(mixer[i_src]))
    hb = _u32(_INIT_B)
    out = []
    for i in range(2):
        v = tf.bitwise.bitwise_xor(mixer[i], hb)
        hb = hb * _u32(_MULT_B)
        out.append(_xorshift(v * hb))
    value = tf.bitcast(tf.stack(out), tf.int64)  # words [lo, hi] -> uint64 bits
    return tf.bitwise.bitwise_and(value, tf.constant(0x7FFFFFFFFFFFFFFF, tf.int64))


# ------------------------------------------------------------------------------------------------
# The signature.


def charset_keys(module):
    """(keys: single characters the charset serves, their label ids)."""
    keys, ids = [], []
    for i, label in enumerate(module.charset_labels):
        for ch in label:
            if ch not in keys:
                keys.append(ch)
                ids.append(i)
    return keys, ids


def _extent_tables(module, params: WriteParams, keys_ids=None):
    """Keys (single characters the charset serves, or `keys_ids` = (keys, ids) given), their
    ids, and per geometry row (writer; one row "" with given keys) their (top, bottom) plus the
    typical width, from layout.char_extent."""
    keys, ids = keys_ids or charset_keys(module)
    if module.uses_writer and keys_ids is None:
        rows = list(module.writer_names)
    else:
        rows = [""]
    table = params.writer_geometry or {}
    tops = np.zeros((len(rows), len(keys)), np.float64)
    bottoms = np.zeros_like(tops)
    widths = np.zeros(len(keys), np.float64)
    for r, name in enumerate(rows):
        geometry = table.get(name) or None
        for j, ch in enumerate(keys):
            top, bottom, width = layout_lib.char_extent(ch, geometry)
            tops[r, j], bottoms[r, j], widths[j] = top, bottom, width
    return keys, ids, tops, bottoms, widths


def default_signatures(writer_geometry=None) -> dict:
    """{"write": builder with the default WriteParams}: the write signature every export carries
    (hw_gan.export.default_signatures adds the family's others). writer_geometry must be the
    table the export's hwgan.json carries, if any."""
    return {WRITE: write_signature_builder(writer_geometry=writer_geometry)}


def write_signature_builder(x_height_px: float = 24.0, **kwargs):
    """A builder for export_generator(extra_signatures={"write": ...}); kwargs are the other
    WriteParams fields (letter_spacing, word_spacing, line_spacing, paragraph_spacing, indent,
    slant, max_width, threshold, max_line_width, max_glyphs, max_text_chars, max_pixels,
    writer_geometry). The builder's
    `.params` is the WriteParams (e.g. for extra_metadata, or for render_lines_python)."""
    params = WriteParams(x_height_px=x_height_px, **kwargs)

    def build(module):
        return _WriteGraph(module, params).function()

    build.params = params
    return build


class _Ink(NamedTuple):
    """Per generated glyph k: its ink box (threshold crop) in the R x R image."""
    has_ink: tf.Tensor  # bool [n]
    top: tf.Tensor  # int32 [n]
    left: tf.Tensor
    height: tf.Tensor  # int32 [n], 0 without ink
    width: tf.Tensor


class _Glyphs(NamedTuple):
    """Per generated glyph k (the text's non-space characters in order)."""
    images: tf.Tensor  # uint8 [n, R, R]
    ink: _Ink
    width: tf.Tensor  # float64 [n]: placed size in pixels
    height: tf.Tensor
    up: tf.Tensor  # top above the baseline
    ink_l: tf.Tensor  # sheared ink extent, relative to the glyph's x
    ink_r: tf.Tensor


class _Tokens(NamedTuple):
    """Per token i of the text (a character, a space or a line break)."""
    kind: tf.Tensor  # int32: _KIND_NL, _KIND_SPACE or _KIND_GLYPH (blank glyphs included)
    k_of_tok: tf.Tensor  # the glyph index of a glyph token
    width: tf.Tensor  # float64, 0 for spaces and breaks
    up: tf.Tensor
    ink_l: tf.Tensor
    ink_r: tf.Tensor
    adv: tf.Tensor  # width + letter gap
    word_start: tf.Tensor  # bool
    word_end: tf.Tensor
    word_last: tf.Tensor  # int32: the token index of the word's last glyph


class _WriteGraph:
    """The `write` function of one module and WriteParams, in named steps: text -> tokens (and
    the input checks), glyph generation, ink boxes, glyph metrics, per-token arrays, the greedy
    line layout, raster. Python floats and numpy tables are fixed at build time."""

    def __init__(self, module, params: WriteParams, keys_ids=None):
        self.module, self.params = module, params
        keys, self.key_ids, self.tops, self.bottoms, self.widths = _extent_tables(
            module, params, keys_ids)
        self.key_table = string_table(keys, list(range(len(keys))))
        if not hasattr(module, "write_key_tables"):
            module.write_key_tables = []  # tracked, so the tables are saved (one per builder)
        module.write_key_tables.append(self.key_table)
        self.xh = float(params.x_height_px)
        self.pitch = float(params.line_spacing) * self.xh
        self.slant = float(params.slant)
        self.gap_px = max(params.letter_spacing * self.xh, -0.05 * self.xh)
        self.space_px = max(0.3, params.word_spacing) * self.xh
        self.eps_fit = 1e-6

    def function(self):
        @tf.function(input_signature=[
            tf.TensorSpec([], tf.string, name="text"),
            tf.TensorSpec([], tf.string, name="writer"),
            tf.TensorSpec([], tf.int64, name="seed"),
            tf.TensorSpec([], tf.int32, name="line_width"),
        ])
        def write(text, writer, seed, line_width):
            key, is_g, is_nl, is_sp = self.tokens(text, line_width)
            return self.page(self.glyphs(key, is_g, writer, seed), is_g, is_nl, is_sp,
                             line_width)

        return write

    def page(self, glyphs, is_g, is_nl, is_sp, line_width):
        """The glyphs laid out and rasterized: {"image", "num_lines"}."""
        toks = self.token_arrays(glyphs, is_g, is_nl, is_sp)
        tok_x, tok_y, n_lines, height_px = self.layout(toks, line_width)
        height_px = self.check_pixels(height_px, line_width)
        canvas = self.rasterize(glyphs, toks, tok_x, tok_y, height_px, line_width)
        return {"image": tf.cast(canvas, tf.uint8), "num_lines": n_lines}

    # -- text -> tokens ---------------------------------------------------------------------------

    def tokens(self, text, line_width):
        """Normalised text -> (key [T] (-1 unknown), is_glyph, is_newline, is_space), each
        depending on the input checks."""
        params, xh = self.params, self.xh
        text = tf.strings.regex_replace(text, "\r\n", "\n")
        text = tf.strings.regex_replace(text, "\r", "\n")
        text = tf.strings.regex_replace(text, "\t", "    ")
        text = tf.strings.regex_replace(text, _OTHER_SPACE, " ")
        chars = tf.strings.unicode_split(text, "UTF-8")
        is_nl = tf.equal(chars, "\n")
        is_sp = tf.equal(chars, " ")
        is_g = tf.logical_not(is_nl | is_sp)
        key = self.key_table.lookup(chars)
        unknown = is_g & (key < 0)
        width_ok = (line_width >= tf.cast(math.ceil(4 * xh - 1e-9), tf.int32)) & (
            line_width <= params.max_line_width)
        num_chars = tf.shape(chars)[0]
        checks = [
            tf.debugging.Assert(num_chars <= params.max_text_chars,
                                [TEXT_CHARS_MESSAGE + f" ({params.max_text_chars}, a tab "
                                 "counting 4); got", num_chars]),
            tf.debugging.Assert(tf.reduce_any(is_g), [EMPTY_TEXT_MESSAGE]),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)),
                                [UNKNOWN_CHAR_MESSAGE + ":", tf.boolean_mask(chars, unknown)],
                                summarize=64),
            tf.debugging.Assert(
                tf.reduce_sum(tf.cast(is_g, tf.int32)) <= params.max_glyphs,
                [TOO_LONG_MESSAGE + f" ({params.max_glyphs})"]),
            tf.debugging.Assert(width_ok, [LINE_WIDTH_MESSAGE + f" ({4 * xh:g} and "
                                           f"{params.max_line_width}); got", line_width]),
        ]
        with tf.control_dependencies(checks):
            key, is_g = tf.identity(key), tf.identity(is_g)
            is_nl, is_sp = tf.identity(is_nl), tf.identity(is_sp)
        return key, is_g, is_nl, is_sp

    def check_pixels(self, height_px, line_width):
        """height_px, once line_width x height_px is within max_pixels (before the raster)."""
        pixels = tf.cast(height_px, tf.int64) * tf.cast(line_width, tf.int64)
        check = tf.debugging.Assert(
            pixels <= self.params.max_pixels,
            [TOO_MANY_PIXELS_MESSAGE + f" ({self.params.max_pixels}: fewer lines or a narrower "
             "line_width); got", line_width, "x", height_px], summarize=4)
        with tf.control_dependencies([check]):
            return tf.identity(height_px)

    # -- glyphs -----------------------------------------------------------------------------------

    def glyphs(self, key, is_g, writer, seed) -> _Glyphs:
        module = self.module
        g_tok = tf.cast(tf.where(is_g)[:, 0], tf.int32)  # token index of glyph k
        g_key = tf.gather(key, g_tok)
        n = tf.shape(g_tok)[0]
        char_ids = tf.gather(tf.constant(self.key_ids, tf.int32), g_key)
        row = module.writer_ids_for(tf.reshape(writer, [1]), 1)[0]
        gen_writer_ids = tf.fill([n], row if module.uses_writer else tf.constant(0, tf.int32))
        images = self.generate(char_ids, gen_writer_ids, seed)
        ink = self.ink_boxes(images)
        return self.metrics(images, ink, g_key, tf.maximum(row, 0))

    def generate(self, char_ids, writer_ids, seed):
        """uint8 [n, R, R]: blocks of CHUNK, block c seeded by chunk_seed(seed, c) (the latents
        render_pages uses), all through the generator as one batch."""
        module = self.module
        n = tf.shape(char_ids)[0]
        z = self.chunk_latents(n, lambda size, c: module.latent(size, chunk_seed_tf(seed, c)))
        return module.in_blocks(module.synthesize, n, z, char_ids, writer_ids)[..., 0]

    def chunk_latents(self, n, latent):
        """float32 [n, latent_dim]: `latent(size, c)` for each block c of CHUNK glyphs."""
        module = self.module
        num_blocks = (n + CHUNK - 1) // CHUNK

        def z_body(c, arr):
            size = tf.minimum(CHUNK, n - c * CHUNK)
            return c + 1, arr.write(c, latent(size, c))

        _, z_blocks = tf.while_loop(
            lambda c, _: c < num_blocks, z_body,
            [tf.constant(0, tf.int32),
             tf.TensorArray(tf.float32, size=num_blocks, infer_shape=False,
                            element_shape=tf.TensorShape([None, module.latent_dim]))])
        return tf.reshape(z_blocks.concat(), [n, module.latent_dim])

    def ink_boxes(self, images) -> _Ink:
        res = self.module.resolution
        mask = images > tf.constant(self.params.threshold, tf.uint8)
        rows_any = tf.reduce_any(mask, axis=2)
        cols_any = tf.reduce_any(mask, axis=1)
        has_ink = tf.reduce_any(rows_any, axis=1)
        r_i = tf.cast(rows_any, tf.int32)
        c_i = tf.cast(cols_any, tf.int32)
        ink_top = tf.cast(tf.argmax(r_i, axis=1), tf.int32)
        ink_bottom = res - tf.cast(tf.argmax(tf.reverse(r_i, [1]), axis=1), tf.int32)
        ink_left = tf.cast(tf.argmax(c_i, axis=1), tf.int32)
        ink_right = res - tf.cast(tf.argmax(tf.reverse(c_i, [1]), axis=1), tf.int32)
        return _Ink(has_ink, ink_top, ink_left, tf.where(has_ink, ink_bottom - ink_top, 0),
                    tf.where(has_ink, ink_right - ink_left, 0))

    def metrics(self, images, ink: _Ink, g_key, geo_row) -> _Glyphs:
        """Each glyph's placed size and extents (layout._Layouter.metric with no variation)."""
        f64, xh, slant, has_ink = tf.float64, self.xh, self.slant, ink.has_ink
        top = tf.gather(tf.constant(self.tops, f64)[geo_row], g_key)
        bottom = tf.gather(tf.constant(self.bottoms, f64)[geo_row], g_key)
        typical = tf.gather(tf.constant(self.widths, f64), g_key)
        h = tf.cast(ink.height, f64)
        w = tf.cast(ink.width, f64)
        safe_h = tf.maximum(h, 1.0)
        safe_w = tf.maximum(w, 1.0)
        band = (top - bottom) * xh
        scale = band / safe_h
        flat = (top - bottom) < 0.5 * typical
        max_w = tf.where(flat, tf.constant(1.0, f64),
                         tf.constant(self.params.max_width, f64)) * typical * xh
        scale = tf.where(safe_w * scale > max_w, max_w / safe_w, scale)
        # A blank glyph is placed as an empty box of its usual width (layout._Layouter.metric):
        # it takes its room on the line and wraps like any glyph.
        g_width = tf.where(has_ink, safe_w * scale, typical * xh)
        g_height = tf.where(has_ink, safe_h * scale, band)
        centre = (top + bottom) / 2 * xh
        g_up = tf.where(g_height >= band - 1e-9, top * xh, centre + g_height / 2)
        sa, sb = slant * g_up, slant * (g_up - g_height)
        g_ink_l = tf.minimum(sa, sb)
        g_ink_r = g_width + tf.maximum(sa, sb)
        return _Glyphs(images, ink, g_width, g_height, g_up, g_ink_l, g_ink_r)

    # -- layout -----------------------------------------------------------------------------------

    def token_arrays(self, glyphs: _Glyphs, is_g, is_nl, is_sp) -> _Tokens:
        f64 = tf.float64
        k_of_tok = tf.maximum(tf.cumsum(tf.cast(is_g, tf.int32)) - 1, 0)

        def per_token(values, default):
            return tf.where(is_g, tf.gather(values, k_of_tok), default)

        width = per_token(glyphs.width, tf.constant(0.0, f64))
        up = per_token(glyphs.up, tf.constant(0.0, f64))
        ink_l = per_token(glyphs.ink_l, tf.constant(0.0, f64))
        ink_r = per_token(glyphs.ink_r, tf.constant(0.0, f64))
        kind = tf.where(is_nl, _KIND_NL, tf.where(is_sp, _KIND_SPACE, _KIND_GLYPH))
        adv = width + self.gap_px
        prev_g = tf.concat([[False], is_g[:-1]], 0)
        next_g = tf.concat([is_g[1:], [False]], 0)
        word_start = is_g & tf.logical_not(prev_g)
        word_end = is_g & tf.logical_not(next_g)
        ends = tf.cast(tf.where(word_end)[:, 0], tf.int32)
        word_id = tf.maximum(tf.cumsum(tf.cast(word_start, tf.int32)) - 1, 0)
        word_last = tf.gather(ends, word_id)
        return _Tokens(kind, k_of_tok, width, up, ink_l, ink_r, adv, word_start, word_end,
                       word_last)

    def word_fits(self, toks: _Tokens, right, i, start):
        """Whether the word starting at token i fits the line when started at x = start."""
        size = tf.maximum(toks.word_last[i] - i + 1, 1)
        a = tf.slice(toks.adv, [i], [size])
        pos = start + tf.cumsum(a, exclusive=True)
        fail = pos + tf.slice(toks.ink_r, [i], [size]) > right + self.eps_fit
        return tf.logical_not(tf.reduce_any(fail))

    def layout(self, toks: _Tokens, line_width):
        """The greedy layout, one pass over the tokens -> (x [T], y [T] of each token's top-left,
        num_lines, image height)."""
        f64, xh, pitch = tf.float64, self.xh, self.pitch
        zero = tf.constant(0.0, f64)
        bounds = (tf.constant(0.0, f64), tf.cast(line_width, f64),
                  tf.constant(self.params.indent * xh, f64))
        num_tokens = tf.shape(toks.kind)[0]
        loop = tf.while_loop(
            lambda i, *_: i < num_tokens,
            lambda *state: self.layout_step(toks, bounds, *state),
            [tf.constant(0, tf.int32), zero, zero, tf.constant(False), tf.constant(False),
             tf.constant(0, tf.int32), tf.constant(0, tf.int32),
             tf.constant(layout_lib.FIRST_BASELINE * xh, f64),
             tf.TensorArray(f64, size=num_tokens), tf.TensorArray(f64, size=num_tokens)])
        _, _, _, _, started, n_lines, _, base, xs, ys = loop
        base = tf.where(started, base + pitch, base)
        n_lines = tf.where(started, n_lines + 1, n_lines)
        height_px = tf.cast(tf.math.ceil(base - pitch + layout_lib.DESCENDER_ROOM * xh),
                            tf.int32)
        return xs.stack(), ys.stack(), n_lines, height_px

    def layout_step(self, toks: _Tokens, bounds, i, x, pending, nonempty, started, n_lines,
                    blank_run, base, xs, ys):
        """Places token i (the while_loop body of `layout`)."""
        f64, pitch, params = tf.float64, self.pitch, self.params
        left, right, indent_px = bounds
        zero = tf.constant(0.0, f64)
        k = toks.kind[i]
        nl, sp = tf.equal(k, _KIND_NL), tf.equal(k, _KIND_SPACE)
        tok = k >= _KIND_GLYPH
        # The first non-space token of a hard line: a new paragraph after blank lines.
        starting = tok & tf.logical_not(started)
        para = starting & (blank_run > 0) & (n_lines > 0)
        first_in_para = starting & ((blank_run > 0) | tf.equal(n_lines, 0))
        base = tf.where(para, base + (params.paragraph_spacing
                                      + tf.cast(blank_run - 1, f64)) * pitch, base)
        x = tf.where(starting, left + tf.where(first_in_para, indent_px, zero), x)
        nonempty = tf.where(starting, False, nonempty)
        # A word's first glyph: the word goes to a new line if it does not fit.
        line_start = left - tf.minimum(toks.ink_l[i], zero)
        ws = tok & toks.word_start[i]
        start = tf.maximum(x + pending, line_start)
        wrap = ws & (start > line_start + 1e-9) & tf.logical_not(
            self.word_fits(toks, right, i, start))
        emit = wrap & nonempty
        start = tf.where(wrap, line_start, start)
        x = tf.where(ws, start, x)
        pending = tf.where(ws, tf.constant(0.0, f64), pending)
        base = tf.where(emit, base + pitch, base)
        n_lines = tf.where(emit, n_lines + 1, n_lines)
        nonempty = tf.where(emit, False, nonempty)
        # A glyph past the right edge (a word longer than the line) starts a new line.
        fits = x + toks.ink_r[i] <= right + self.eps_fit
        split = tok & tf.logical_not(fits) & nonempty
        x = tf.where(split, line_start, x)
        base = tf.where(split, base + pitch, base)
        n_lines = tf.where(split, n_lines + 1, n_lines)
        xs = xs.write(i, x)
        ys = ys.write(i, base - toks.up[i])
        nonempty = nonempty | tf.equal(k, _KIND_GLYPH)
        end = x + toks.width[i]
        x = tf.where(tok, tf.where(toks.word_end[i], end, end + self.gap_px), x)
        pending = tf.where(sp, pending + self.space_px, pending)
        # A line break ends a hard line (a blank one counts towards a paragraph break).
        emit = nl & started
        base = tf.where(emit, base + pitch, base)
        n_lines = tf.where(emit, n_lines + 1, n_lines)
        blank_run = tf.where(starting, 0, blank_run)
        blank_run = tf.where(nl & tf.logical_not(started), blank_run + 1, blank_run)
        pending = tf.where(nl, tf.constant(0.0, f64), pending)
        nonempty = tf.where(nl, False, nonempty)
        started = tf.where(nl, False, started | tok)
        return i + 1, x, pending, nonempty, started, n_lines, blank_run, base, xs, ys

    # -- raster: output.rasterize -----------------------------------------------------------------

    def rasterize(self, glyphs: _Glyphs, toks: _Tokens, tok_x, tok_y, canvas_h, canvas_w):
        """float32 [H, W] canvas. Patches are collected and combined by max in one scatter at the
        end (a canvas carried through the loop would be copied per glyph)."""
        has_ink = tf.gather(glyphs.ink.has_ink, toks.k_of_tok)  # blank glyphs draw nothing
        drawn = tf.cast(tf.where(tf.equal(toks.kind, _KIND_GLYPH) & has_ink)[:, 0], tf.int32)
        images_f = tf.cast(glyphs.images, tf.float32)
        num_drawn = tf.shape(drawn)[0]

        def draw(j, all_idx, all_val):
            idx, val = self.patch(glyphs, images_f, toks, tok_x, tok_y, canvas_h, canvas_w,
                                  drawn[j])
            return j + 1, all_idx.write(j, idx), all_val.write(j, val)

        _, all_idx, all_val = tf.while_loop(
            lambda j, *_: j < num_drawn, draw,
            [tf.constant(0, tf.int32),
             tf.TensorArray(tf.int32, size=num_drawn, infer_shape=False,
                            element_shape=tf.TensorShape([None, 2])),
             tf.TensorArray(tf.float32, size=num_drawn, infer_shape=False,
                            element_shape=tf.TensorShape([None]))])
        canvas = tf.zeros(tf.stack([canvas_h, canvas_w]), tf.float32)
        return tf.cond(
            num_drawn > 0,
            lambda: tf.tensor_scatter_nd_max(canvas, all_idx.concat(), all_val.concat()),
            lambda: canvas)

    def patch(self, glyphs: _Glyphs, images_f, toks: _Tokens, tok_x, tok_y, canvas_h, canvas_w,
              t):
        """Token t's glyph, resized (area when shrinking, else bicubic) and warped (bilinear) to
        its sub-pixel place -> (canvas indices int32 [P, 2], values float32 [P])."""
        f64, slant, ink = tf.float64, self.slant, glyphs.ink
        zero = tf.constant(0.0, f64)
        g = toks.k_of_tok[t]
        x0, y0 = tok_x[t], tok_y[t]
        wd, ht, u = toks.width[t], tf.gather(glyphs.height, g), toks.up[t]
        sh, sw = ink.height[g], ink.width[g]
        w_i = tf.maximum(1, tf.cast(tf.round(wd), tf.int32))
        h_i = tf.maximum(1, tf.cast(tf.round(ht), tf.int32))
        crop = tf.slice(images_f[g], [ink.top[g], ink.left[g]], [sh, sw])[..., None]
        shrink = (w_i < sw) | (h_i < sh)
        size = tf.stack([h_i, w_i])
        img = tf.cond(shrink, lambda: tf.image.resize(crop, size, method="area"),
                      lambda: tf.image.resize(crop, size, method="bicubic"))
        img = tf.round(tf.clip_by_value(img, 0.0, 255.0))
        # Placement.affine, then the resized image's index coords -> the patch's.
        p = wd / tf.cast(w_i, f64)
        q = -slant * ht / tf.cast(h_i, f64)
        r = ht / tf.cast(h_i, f64)
        ox = x0 + slant * u
        sa_, sb_ = slant * u, slant * (u - ht)
        bl = x0 + tf.minimum(sa_, sb_)
        br = x0 + wd + tf.maximum(sa_, sb_)
        cx0 = tf.maximum(tf.cast(tf.floor(bl), tf.int32) - 1, 0)
        cy0 = tf.maximum(tf.cast(tf.floor(y0), tf.int32) - 1, 0)
        cx1 = tf.minimum(tf.cast(tf.math.ceil(br), tf.int32) + 1, canvas_w)
        cy1 = tf.minimum(tf.cast(tf.math.ceil(y0 + ht), tf.int32) + 1, canvas_h)
        tx = 0.5 * p + 0.5 * q + ox - 0.5 - tf.cast(cx0, f64)
        ty = 0.5 * r + y0 - 0.5 - tf.cast(cy0, f64)
        # Inverse of [[p, q, tx], [0, r, ty]]: patch index coords -> image index coords.
        i00, i01, i11 = 1.0 / p, -q / (p * r), 1.0 / r
        transform = tf.cast(tf.stack([i00, i01, -(i00 * tx + i01 * ty), zero, i11,
                                      -(i11 * ty), zero, zero]), tf.float32)[None]
        ph, pw = cy1 - cy0, cx1 - cx0

        def paste():
            patch = tf.raw_ops.ImageProjectiveTransformV3(
                images=img[None], transforms=transform, output_shape=tf.stack([ph, pw]),
                fill_value=tf.constant(0.0, tf.float32), interpolation="BILINEAR",
                fill_mode="CONSTANT")[0, :, :, 0]
            patch = tf.round(tf.clip_by_value(patch, 0.0, 255.0))
            yy, xx = tf.meshgrid(tf.range(cy0, cy1), tf.range(cx0, cx1), indexing="ij")
            return (tf.reshape(tf.stack([yy, xx], -1), [-1, 2]), tf.reshape(patch, [-1]))

        def skip():
            return tf.zeros([0, 2], tf.int32), tf.zeros([0], tf.float32)

        return tf.cond((ph > 0) & (pw > 0) & (sh > 0) & (sw > 0), paste, skip)


# ------------------------------------------------------------------------------------------------
# write_with_style: the same page in a style (stylegan, fewshot), for TF Serving clients.


class _StyledWriteGraph(_WriteGraph):
    """`write` with a style instead of a writer. `draw(ids, z, style, variation)` -> float32
    glyphs [b, R, R, 1] in [-1, 1] is the family's `glyphs_with_style` body; block c of CHUNK
    glyphs takes z = stateless_normal([size, latent_dim], seed=[chunk_seed(seed, c), 1]), the
    latents `hwgan write --style` gives each block through glyphs_with_style, so both
    renderers draw the same glyphs. Extents are the typographic classes (a style has no
    per-writer punctuation geometry)."""

    def __init__(self, module, params: WriteParams, keys_ids, draw, style_shape):
        super().__init__(module, dataclasses.replace(params, writer_geometry=None), keys_ids)
        self.draw, self.style_shape = draw, tuple(style_shape)

    def function(self):
        @tf.function(input_signature=[
            tf.TensorSpec([], tf.string, name="text"),
            tf.TensorSpec(self.style_shape, tf.float32, name="style"),
            tf.TensorSpec([], tf.int64, name="seed"),
            tf.TensorSpec([], tf.float32, name="variation"),
            tf.TensorSpec([], tf.int32, name="line_width"),
        ])
        def write_with_style(text, style, seed, variation, line_width):
            finite = tf.debugging.Assert(
                tf.reduce_all(tf.math.is_finite(style)) & tf.math.is_finite(variation),
                [STYLE_FINITE_MESSAGE])
            with tf.control_dependencies([finite]):
                key, is_g, is_nl, is_sp = self.tokens(text, line_width)
            return self.page(self.styled_glyphs(key, is_g, style, variation, seed), is_g,
                             is_nl, is_sp, line_width)

        return write_with_style

    def styled_glyphs(self, key, is_g, style, variation, seed) -> _Glyphs:
        module = self.module
        g_key = tf.gather(key, tf.cast(tf.where(is_g)[:, 0], tf.int32))
        ids = tf.gather(tf.constant(self.key_ids, tf.int32), g_key)
        n = tf.shape(ids)[0]
        z = self.chunk_latents(n, lambda size, c: tf.random.stateless_normal(
            tf.stack([size, module.latent_dim]),
            seed=tf.stack([chunk_seed_tf(seed, c), tf.constant(1, tf.int64)])))
        images = module.in_blocks(lambda i, zz: self.draw(i, zz, style, variation), n, ids,
                                  z)[..., 0]
        return self.metrics(images, self.ink_boxes(images), g_key, 0)


def styled_write_function(module, keys, ids, draw, style_shape,
                          params: Optional[WriteParams] = None):
    """The `write_with_style` tf.function of a style family's export: `keys` the characters a
    style can draw, `ids` what `draw` takes for each (see _StyledWriteGraph)."""
    return _StyledWriteGraph(module, params or WriteParams(), (list(keys), list(ids)), draw,
                             style_shape).function()
