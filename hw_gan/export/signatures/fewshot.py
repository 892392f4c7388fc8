"""SavedModel signatures of a fewshot export (issue 18), beside the built-in ones (which draw the
training writers by name through the serving generator, hw_gan.models.fewshot
.build_serving_generator):

  extract_style
      images uint8 [K, R, R, 1] ink-high, chars string [K] (one character each, any the content
      font covers), steps int32 [] (ignored: the style is read in one pass; kept so that a
      client of the stylegan signature works unchanged). The style is read from the images and
      the model's style_read_copies disturbed copies of them (fewshot.reading_copies).
    -> style float32 [1, D], char_ids int32 [K] (ids in the training charset, -1 for characters
      outside it)
  glyphs_with_style
      chars string [N] (any character the font covers), style float32 [1, D], seed int64 [],
      variation float32 [] (0: every "a" alike; the export's default is in hwgan.json)
    -> images uint8 [N, R, R, 1], char_ids int32 [N] (-1 outside the training charset)
  mean_style
    -> style float32 [1, D]: the mean of the training writers' styles.

A style is [1, D] so that style files and the write path treat it as a stylegan W+ style with
one layer. Every check fails with the messages of hw_gan.export.names; characters the font
lacks fail with FONT_CHAR_MESSAGE.
"""

from __future__ import annotations

import tensorflow as tf

from data_pipeline.schema import to_float
from hw_gan.export.module import tf_variable
from hw_gan.export.names import (EXTRACT_STYLE, FONT_CHAR_MESSAGE, GLYPHS_WITH_STYLE, MEAN_STYLE,
                                 STYLE_IMAGE_CAP_MESSAGE,
                                 STYLE_IMAGE_COUNT_MESSAGE, WRITE_WITH_STYLE)
from hw_gan.export.signatures import write as write_sig
from hw_gan.export.signatures.style import glyphs_with_style_function
from hw_gan.export.module import string_table
from hw_gan.models import fewshot  # its layers (and their registration) and layer names

__all__ = ["fewshot_signatures"]


class _FewShotSignatures:
    def __init__(self, serving_generator, glyph_net, head, code_points, read_copies: int = 0):
        self.read_copies = int(read_copies)
        self.tables = serving_generator.get_layer(fewshot.TABLES)
        self.decoder = serving_generator.get_layer(fewshot.DECODER)
        self.glyph_net, self.head = glyph_net, head
        self.code_points = [int(c) for c in code_points]
        self.style_size = self.tables.style_size

    def track(self, module):
        if not hasattr(module, "fewshot_style_variables"):
            module.fewshot_style_variables = [tf_variable(v) for v in
                                              [*self.glyph_net.weights, *self.head.weights]]
            # code point -> row of the content table, as a string table of the characters
            module.font_rows = string_table([chr(c) for c in self.code_points],
                                            list(range(len(self.code_points))))

    def rows_for(self, module, chars):
        """Content-table rows of `chars` (one character each); asserts the font has them."""
        rows = module.font_rows.lookup(chars)
        bad = rows < 0
        check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)),
                                    [FONT_CHAR_MESSAGE + ":", tf.boolean_mask(chars, bad)],
                                    summarize=32)
        with tf.control_dependencies([check]):
            return tf.identity(rows)

    @staticmethod
    def char_ids(module, chars):
        """Training-charset ids of `chars`, -1 for the others (no assertion)."""
        return module.char_table.lookup(chars)

    def extract_style(self, module):
        self.track(module)
        r = module.resolution

        @tf.function(input_signature=[
            tf.TensorSpec([None, r, r, 1], tf.uint8, name="images"),
            tf.TensorSpec([None], tf.string, name="chars"),
            tf.TensorSpec([], tf.int32, name="steps"),
        ])
        def fn(images, chars, steps):
            del steps
            lim = module.limits
            num_images = tf.shape(images)[0]
            k = tf.shape(chars)[0]
            checks = [tf.debugging.Assert(num_images <= lim.max_style_images,
                                          [STYLE_IMAGE_CAP_MESSAGE + f" ({lim.max_style_images});"
                                           " got", num_images]),
                      tf.debugging.Assert(tf.logical_and(k > 0, tf.equal(k, num_images)),
                                          [STYLE_IMAGE_COUNT_MESSAGE, num_images, "images for",
                                           k], summarize=4)]
            with tf.control_dependencies(checks):
                rows = self.rows_for(module, chars)
            copies = self.read_copies + 1  # the references and their disturbed copies
            read = tf.reshape(fewshot.reading_copies(to_float(images)[None], self.read_copies),
                              [copies * num_images, r, r, 1])
            contents = tf.tile(self.tables.content_rows(rows), [copies, 1, 1, 1])
            pairs = tf.concat([read, contents], -1)
            feats = tf.cast(self.glyph_net(pairs, training=False), tf.float32)
            style = self.head(tf.reduce_mean(feats, 0, keepdims=True), training=False)
            return {"style": tf.cast(style, tf.float32),
                    "char_ids": self.char_ids(module, chars)}

        return fn

    def glyphs_with_style(self, module):
        self.track(module)
        return glyphs_with_style_function(
            module, (1, self.style_size), lambda chars: self.rows_for(module, chars),
            self.draw_styled, lambda chars, rows: self.char_ids(module, chars))

    def draw_styled(self, rows, z, style, variation):
        """Glyphs of content-table rows in `style` [1, D], each jittered by variation (z);
        accented letters as their base letter + mark (FontAndStyles.draw)."""
        return self.tables.draw(self.decoder, rows, style + self.tables.jitter(z, variation))

    def write_with_style(self, module):
        self.track(module)
        return write_sig.styled_write_function(
            module, [chr(c) for c in self.code_points], list(range(len(self.code_points))),
            self.draw_styled, (1, self.style_size))

    def mean_style(self, module):
        self.track(module)
        tables = self.tables

        @tf.function(input_signature=[])
        def fn():
            return {"style": tables.mean_style()[None]}

        return fn


def fewshot_signatures(serving_generator, glyph_net, head, code_points,
                       read_copies: int = 0) -> dict:
    """{name: builder(module)} for `export_generator(..., extra_signatures=...)`:
    `serving_generator` from fewshot.build_serving_generator, the EMA style glyph net and head,
    `code_points` the content table's (font.content_table); extract_style reads a style from the
    references and `read_copies` disturbed copies of them (fewshot.reading_copies)."""
    sigs = _FewShotSignatures(serving_generator, glyph_net, head, code_points, read_copies)
    return {EXTRACT_STYLE: sigs.extract_style, GLYPHS_WITH_STYLE: sigs.glyphs_with_style,
            MEAN_STYLE: sigs.mean_style, WRITE_WITH_STYLE: sigs.write_with_style}


