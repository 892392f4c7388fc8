"""The built-in signatures every export carries (`serving_default` is `glyphs` again; see
hw_gan.export's docstring for their inputs and outputs):

  glyphs        chars string [N], writers string [N] or [1], seed int64 []
                -> images uint8 [N, R, R, 1], char_ids int32 [N], writer_ids int32 [N]
  glyphs_by_id  char_ids int32 [N], writer_ids int32 [N] or [1], seed int64 [] -> images
  metadata      () -> charset, writers, resolution, family, latent_dim, uses_writer
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from hw_gan.export.module import GeneratorModule
from hw_gan.export.names import GLYPHS, GLYPHS_BY_ID, METADATA

__all__ = ["BUILTIN_BUILDERS", "glyphs_by_id_signature", "glyphs_signature", "metadata_signature"]


def glyphs_signature(module: GeneratorModule):
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="chars"),
        tf.TensorSpec([None], tf.string, name="writers"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def glyphs(chars, writers, seed):
        char_ids = module.char_ids_for(chars)
        n = tf.shape(char_ids, out_type=tf.int32)[0]
        writer_ids = module.writer_ids_for(writers, n)
        gen_writer_ids = writer_ids if module.uses_writer else tf.zeros_like(writer_ids)
        images = module.generate(char_ids, gen_writer_ids, seed)
        return {"images": images, "char_ids": char_ids, "writer_ids": writer_ids}

    return glyphs


def glyphs_by_id_signature(module: GeneratorModule):
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int32, name="char_ids"),
        tf.TensorSpec([None], tf.int32, name="writer_ids"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def glyphs_by_id(char_ids, writer_ids, seed):
        char_ids, writer_ids = module.check_ids(char_ids, writer_ids)
        return {"images": module.generate(char_ids, writer_ids, seed)}

    return glyphs_by_id


def metadata_signature(module: GeneratorModule):
    charset = list(module.charset_labels)
    writers = list(module.writer_names)

    @tf.function(input_signature=[])
    def metadata():
        return {
            "charset": tf.constant(charset, tf.string, shape=[len(charset)]),
            "writers": tf.constant(writers, tf.string, shape=[len(writers)]),
            "resolution": tf.constant(module.resolution, tf.int32),
            "family": tf.constant(module.family, tf.string),
            "latent_dim": tf.constant(module.latent_dim, tf.int32),
            "uses_writer": tf.constant(module.uses_writer, tf.bool),
        }

    return metadata


BUILTIN_BUILDERS: dict[str, Callable[[GeneratorModule], Any]] = {
    GLYPHS: glyphs_signature,
    GLYPHS_BY_ID: glyphs_by_id_signature,
    METADATA: metadata_signature,
}
