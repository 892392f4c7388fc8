"""The tf.Module an export saves: the generator's variables (through `tf_variable`), the charset
and writer lookup tables, the asset files, and the helpers signature builders call
(`GeneratorModule`). Holds no Keras object graph: only the inference generator's variables."""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from data_pipeline.schema import to_uint8
from hw_gan.config import ModelConfig
from hw_gan.export.limits import GENERATE_BLOCK, ExportLimits
from hw_gan.export.names import (CHAR_ID_MESSAGE, CHARSET_FILE, GLYPH_COUNT_MESSAGE,
                                 METADATA_FILE, UNKNOWN_CHAR_MESSAGE, UNKNOWN_WRITER_MESSAGE,
                                 WRITER_COUNT_MESSAGE, WRITER_ID_COUNT_MESSAGE, WRITER_ID_MESSAGE,
                                 WRITERS_FILE)

__all__ = ["GeneratorModule", "string_table", "tf_variable"]


class _GeneratorCall:
    """Calls the Keras generator with the inputs it has. A plain object, so that tf.Module does not
    track the Keras model (only its variables are saved, through `generator_variables`)."""

    def __init__(self, generator, uses_writer: bool):
        self.generator = generator
        self.uses_writer = uses_writer

    def __call__(self, z, char_ids, writer_ids):
        inputs = {"z": z, "char": char_ids}
        if self.uses_writer:
            inputs["writer"] = writer_ids
        return self.generator(inputs, training=False)


def tf_variable(variable) -> tf.Variable:
    """The tf.Variable behind a Keras variable. The module tracks these, not the Keras wrappers:
    a Keras 3 Variable exports as a *copy* of its tf.Variable, so a TF1-style loader (TF Serving,
    saved_model_cli run) would restore the copy while the functions read the uninitialised
    original ("Could not find variable ...")."""
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "_value", None)
    if not isinstance(inner, tf.Variable):
        raise TypeError(f"generator variable {getattr(variable, 'path', variable)!r} is not backed "
                        f"by a tf.Variable (got {type(inner).__name__}); export needs the "
                        "TensorFlow backend")
    return inner


def string_table(keys: Sequence[str], values: Sequence[int]) -> tf.lookup.StaticHashTable:
    """string -> int32 lookup table; a key not in it gives -1."""
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(list(keys), tf.string), tf.constant(list(values), tf.int32))
    return tf.lookup.StaticHashTable(init, default_value=-1)


class GeneratorModule(tf.Module):
    """The tf.Module that is saved: the generator's variables, lookup tables, assets, functions.

    Helpers for signature builders (call them inside a tf.function):
      char_ids_for(chars)           string [N] -> int32 [N]; asserts every char is known
      writer_ids_for(writers, n)    string [N] or [1] -> int32 [n]; asserts known writers
                                    (-1s, and no checks, when the family takes no writer)
      check_ids(char_ids, writer_ids)  -> (char_ids, writer_ids broadcast to [N]), range-asserted
      latent(n, seed)               -> z float32 [n, latent_dim] (stateless, from seed)
      synthesize(z, char_ids, writer_ids)  tf.function -> float32 images [N, R, R, 1] in [-1, 1]
      check_count(n, x)             x, after asserting n glyphs are within `limits`
      in_blocks(draw, n, *tensors)  uint8 [n, R, R, 1]: draw(*rows) on blocks of GENERATE_BLOCK
                                    rows of the tensors, one block at a time
      generate(char_ids, writer_ids, seed) -> uint8 ink-high images [N, R, R, 1] (count checked,
                                    drawn in blocks)
    """

    def __init__(self, generator, model_cfg: ModelConfig, charset_labels: Sequence[str],
                 writer_names: Sequence[str], uses_writer: bool, asset_paths: Mapping[str, str],
                 untrained_writers: Sequence[str] = (), limits: ExportLimits = ExportLimits()):
        super().__init__(name="hwgan_generator")
        self.limits = limits
        self.charset_labels = tuple(charset_labels)
        self.writer_names = tuple(writer_names)
        self.family = model_cfg.family
        self.resolution = int(model_cfg.resolution)
        self.latent_dim = int(model_cfg.latent_dim)
        self.uses_writer = bool(uses_writer)
        # Saved: the generator's variables (each once), the lookup tables, the asset files.
        self.generator_variables = [tf_variable(v) for v in generator.variables]
        self._call_generator = _GeneratorCall(generator, self.uses_writer)
        keys, values = [], []
        for i, label in enumerate(self.charset_labels):
            for ch in label:
                keys.append(ch)
                values.append(i)
            if len(label) > 1:
                keys.append(label)
                values.append(i)
        self.char_table = string_table(keys, values)
        if self.uses_writer:
            # Never-trained writers keep their id (glyphs_by_id) but not their name: by name
            # they are "not known to the model", for TF Serving clients too.
            held = set(untrained_writers)
            named = [(w, i) for i, w in enumerate(self.writer_names) if w not in held]
            self.writer_table = string_table([w for w, _ in named], [i for _, i in named])
        self.charset_asset = tf.saved_model.Asset(asset_paths[CHARSET_FILE])
        self.writers_asset = tf.saved_model.Asset(asset_paths[WRITERS_FILE])
        self.metadata_asset = tf.saved_model.Asset(asset_paths[METADATA_FILE])

        latent_dim, resolution = self.latent_dim, self.resolution

        @tf.function(input_signature=[
            tf.TensorSpec([None, latent_dim], tf.float32, name="z"),
            tf.TensorSpec([None], tf.int32, name="char_ids"),
            tf.TensorSpec([None], tf.int32, name="writer_ids"),
        ])
        def synthesize(z, char_ids, writer_ids):
            # An empty batch skips the generator (Keras convolutions reject a batch of 0).
            return tf.cond(
                tf.shape(z)[0] > 0,
                lambda: tf.cast(self._call_generator(z, char_ids, writer_ids), tf.float32),
                lambda: tf.zeros([0, resolution, resolution, 1], tf.float32))

        # The one function holding the generator's graph; every signature calls it.
        self.synthesize = synthesize

    # -- helpers for signature builders ----------------------------------------------------------

    @property
    def num_chars(self) -> int:
        return len(self.charset_labels)

    @property
    def num_writers(self) -> int:
        return len(self.writer_names)

    def char_ids_for(self, chars):
        chars = tf.convert_to_tensor(chars, tf.string)
        ids = self.char_table.lookup(chars)
        unknown = ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            [UNKNOWN_CHAR_MESSAGE + ":", tf.boolean_mask(chars, unknown)], summarize=32)
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def _broadcast(self, ids, n, message):
        m = tf.shape(ids, out_type=tf.int32)[0]
        n = tf.cast(n, tf.int32)
        check = tf.debugging.Assert(
            tf.logical_or(tf.equal(m, n), tf.equal(m, 1)),
            [message + "; got", m, "for", n], summarize=4)
        with tf.control_dependencies([check]):
            return tf.broadcast_to(ids, tf.reshape(n, [1]))

    def writer_ids_for(self, writers, n):
        writers = tf.convert_to_tensor(writers, tf.string)
        if not self.uses_writer:
            return tf.fill(tf.reshape(tf.cast(n, tf.int32), [1]), tf.constant(-1, tf.int32))
        ids = self.writer_table.lookup(writers)
        unknown = ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            [UNKNOWN_WRITER_MESSAGE + ":", tf.boolean_mask(writers, unknown)], summarize=32)
        with tf.control_dependencies([check]):
            ids = tf.identity(ids)
        return self._broadcast(ids, n, WRITER_COUNT_MESSAGE)

    def check_ids(self, char_ids, writer_ids):
        char_ids = tf.convert_to_tensor(char_ids, tf.int32)
        writer_ids = tf.convert_to_tensor(writer_ids, tf.int32)
        n = tf.shape(char_ids, out_type=tf.int32)[0]
        checks = [tf.debugging.Assert(
            tf.reduce_all((char_ids >= 0) & (char_ids < self.num_chars)),
            [CHAR_ID_MESSAGE + f" with num_chars={self.num_chars}; got", char_ids], summarize=32)]
        if self.uses_writer:
            checks.append(tf.debugging.Assert(
                tf.reduce_all((writer_ids >= 0) & (writer_ids < self.num_writers)),
                [WRITER_ID_MESSAGE + f" with num_writers={self.num_writers}; got", writer_ids],
                summarize=32))
            with tf.control_dependencies(checks):
                writer_ids = self._broadcast(writer_ids, n, WRITER_ID_COUNT_MESSAGE)
        else:
            writer_ids = tf.zeros([n], tf.int32)
        with tf.control_dependencies(checks):
            return tf.identity(char_ids), tf.identity(writer_ids)

    def latent(self, n, seed):
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        if self.family == "stylegan":
            # One style per call: the seed picks a hand, and every glyph of the call is in it.
            z = tf.random.stateless_normal([1, self.latent_dim], seed=seed, dtype=tf.float32)
            return tf.repeat(z, tf.cast(n, tf.int32), axis=0)
        return tf.random.stateless_normal(tf.stack([tf.cast(n, tf.int32), self.latent_dim]),
                                          seed=seed, dtype=tf.float32)

    def check_count(self, n, x):
        """`x` once n glyphs are known to be within the limits (max_glyphs, and n x R x R
        output pixels within max_pixels): checked before any glyph is drawn."""
        n64 = tf.cast(n, tf.int64)
        pixels = n64 * self.resolution * self.resolution
        check = tf.debugging.Assert(
            (n64 <= self.limits.max_glyphs) & (pixels <= self.limits.max_pixels),
            [GLYPH_COUNT_MESSAGE + f" (max_glyphs={self.limits.max_glyphs}, "
             f"max_pixels={self.limits.max_pixels}, R={self.resolution}); got", n64, "glyphs"],
            summarize=4)
        with tf.control_dependencies([check]):
            return tf.identity(x)

    def in_blocks(self, draw, n, *tensors):
        """uint8 [n, R, R, 1]: `draw(*rows)` (float32 [b, R, R, 1] in [-1, 1]) on blocks of
        GENERATE_BLOCK rows of `tensors`, one block at a time (parallel_iterations=1), so that
        only one block's activations are alive: memory follows the output, not the batch. The
        generator has no batch statistics, so a glyph does not depend on its block."""
        n = tf.cast(n, tf.int32)
        res = self.resolution
        num_blocks = (n + GENERATE_BLOCK - 1) // GENERATE_BLOCK

        def body(c, out):
            start = c * GENERATE_BLOCK
            size = tf.minimum(GENERATE_BLOCK, n - start)
            rows = [t[start:start + size] for t in tensors]
            return c + 1, out.write(c, to_uint8(tf.cast(draw(*rows), tf.float32)))

        _, blocks = tf.while_loop(
            lambda c, _: c < num_blocks, body,
            [tf.constant(0, tf.int32),
             tf.TensorArray(tf.uint8, size=num_blocks, infer_shape=False,
                            element_shape=tf.TensorShape([None, res, res, 1]))],
            parallel_iterations=1)
        return tf.cond(num_blocks > 0,
                       lambda: tf.reshape(blocks.concat(), [n, res, res, 1]),
                       lambda: tf.zeros([0, res, res, 1], tf.uint8))

    def generate(self, char_ids, writer_ids, seed):
        """Validated ids (see check_ids) -> uint8 ink-high images [N, R, R, 1]."""
        n = self.check_count(tf.shape(char_ids, out_type=tf.int32)[0],
                             tf.shape(char_ids, out_type=tf.int32)[0])
        return self.in_blocks(self.synthesize, n, self.latent(n, seed), char_ids, writer_ids)
