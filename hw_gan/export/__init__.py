"""SavedModel export of a trained generator, in the layout TF Serving loads as it is.

    export_root/
      name/
        1/                       <- one version: a SavedModel
          saved_model.pb
          fingerprint.pb
          variables/             <- the generator's weights, once (float32)
          assets/
            charset.txt          <- one charset label per line (UTF-8), in id order
            writers.txt          <- one writer name per line (UTF-8), in id order
            hwgan.json           <- family, resolution, latent_dim, charset, writers, format
                                    (+ "untrained_writers": writers with a row but no training
                                    glyphs, held out of a writer split; LoadedExport, the
                                    renderer and the server refuse them by name)
        2/ ...

A version is written to a temporary sibling (".1.partial-XXXX", which TF Serving ignores: not a
number) and renamed when complete. Only the inference generator (the EMA copy) is wrapped, in a
`GeneratorModule` (a tf.Module): no optimizer, no discriminator, no Keras object graph.

Signatures (every output is a deterministic function of the inputs and `seed`;
z = tf.random.stateless_normal([N, latent_dim], seed=[seed, 0]); for stylegan one z,
stateless_normal([1, latent_dim], seed=[seed, 0]), for all N glyphs: the seed picks one hand):

  glyphs, serving_default (the same function)
      chars    string [N]  each one character ("c") or an exact charset label ("Cc"); a merged
                           label serves every character in it
      writers  string [N] or [1] (one writer for all); ignored by families without writers
      seed     int64  []
    ->  images     uint8 [N, R, R, 1]  ink-high (0 paper, 255 ink; `data_pipeline.schema.to_uint8`)
        char_ids   int32 [N]
        writer_ids int32 [N]           (-1 when the family takes no writer)
    An unknown character or writer fails the call with InvalidArgumentError "character not in the
    model's charset" / "writer not known to the model", followed by the offending values; more
    than the export's `max_glyphs` glyphs (or N x R x R over `max_pixels`) with "too many glyphs"
    (hwgan.json "limits"; glyphs go through the generator 256 at a time).

  glyphs_by_id
      char_ids int32 [N], writer_ids int32 [N] or [1], seed int64 [] -> images uint8 [N, R, R, 1]
    Ids out of range fail with InvalidArgumentError.

  metadata
      (no inputs) -> charset string [C], writers string [W], resolution int32 [], family string [],
                     latent_dim int32 [], uses_writer bool []

More signatures (e.g. `extract_style`, `write`) are attached by passing
`extra_signatures={name: builder}` to `export_generator`; a builder receives the
`GeneratorModule` (with its lookup helpers, `synthesize` and `generate`) and returns a
`tf.function` with an input_signature, or a ConcreteFunction, whose outputs are a dict of tensors.
`export_model` is the export of a trained (or adapted) model: `default_signatures` for its family
(`write`; stylegan adds the style signatures) and its untrained-writer / writer-geometry metadata.

`load_export` loads such a directory back (in any process; TensorFlow only, no Keras).

Modules: names (every signature name, file name, hwgan.json key and message), limits (the cost
caps every signature checks in the graph before it draws: glyphs and pixels per call, a write
text's characters and image, extract_style's images and steps), module (the tf.Module), saved_model (writing), loader (reading), signatures/ (the signature builders).
This package imports hw_gan.inversion, hw_gan.layout, hw_gan.models, hw_gan.config and
data_pipeline; never hw_gan.adaptation, render, experiment, serve or cli (drawing a sample grid
from an export is hw_gan.render.grid).
"""

from __future__ import annotations

from hw_gan.export.limits import ExportLimits
from hw_gan.export.loader import LoadedExport, load_export, resolve_export_path
from hw_gan.export.module import GeneratorModule, string_table, tf_variable
from hw_gan.export import limits, names
from hw_gan.export.names import (BUILTIN_SIGNATURES, CHAR_ID_MESSAGE, CHARSET_FILE,
                                 EMPTY_TEXT_MESSAGE, EXTRACT_STYLE, FORMAT, FORMAT_VERSION, GLYPHS,
                                 GLYPHS_BY_ID, GLYPHS_WITH_STYLE, LINE_WIDTH_MESSAGE, MEAN_STYLE,
                                 METADATA, METADATA_FILE, SERVING_DEFAULT, STYLE_CHARSET_KEY,
                                 STYLE_IMAGE_COUNT_MESSAGE, STYLE_SIGNATURES, TOO_LONG_MESSAGE,
                                 UNKNOWN_CHAR_MESSAGE, UNKNOWN_WRITER_MESSAGE,
                                 UNTRAINED_CHARS_KEY, UNTRAINED_WRITER_MESSAGE,
                                 UNTRAINED_WRITERS_KEY, WRITE,
                                 WRITER_COUNT_MESSAGE, WRITER_GEOMETRY_KEY,
                                 WRITER_ID_COUNT_MESSAGE, WRITER_ID_MESSAGE, WRITERS_FILE)
from hw_gan.export.saved_model import (SignatureBuilder, default_signatures, export_generator,
                                       export_model, version_dir)
from hw_gan.export.signatures import (WriteParams, stylegan_signatures,
                                      write_signature_builder)

__all__ = [
    # writing
    "ExportLimits", "GeneratorModule", "SignatureBuilder", "WriteParams", "default_signatures",
    "export_generator", "export_model", "string_table", "stylegan_signatures", "tf_variable",
    "version_dir", "write_signature_builder",
    # reading
    "LoadedExport", "load_export", "resolve_export_path",
    # names: every name of hw_gan.export.names
    *names.__all__,
]
