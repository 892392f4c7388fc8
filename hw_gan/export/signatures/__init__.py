"""Signatures an export carries, each a builder `fn(GeneratorModule) -> tf.function`:

  glyphs.py  the built-in glyphs, glyphs_by_id and metadata signatures (every export)
  write.py   `write`: text -> an image of written lines, in the graph (every trained export)
  style.py   extract_style, glyphs_with_style, mean_style (stylegan exports)

Their names and error messages live in hw_gan.export.names. Imports hw_gan.export.module and
.names, hw_gan.layout, hw_gan.inversion, hw_gan.models and below; never hw_gan.export's package
API (it imports this), nor anything above hw_gan.export (adaptation, render, serve, cli).
"""

from hw_gan.export.signatures.glyphs import (BUILTIN_BUILDERS, glyphs_by_id_signature,
                                             glyphs_signature, metadata_signature)
from hw_gan.export.signatures.style import stylegan_signatures
from hw_gan.export.signatures.write import (WriteParams, chunk_seed_tf, default_signatures,
                                            write_signature_builder)

__all__ = [
    "BUILTIN_BUILDERS", "WriteParams", "chunk_seed_tf", "default_signatures",
    "glyphs_by_id_signature", "glyphs_signature", "metadata_signature", "stylegan_signatures",
    "write_signature_builder",
]
