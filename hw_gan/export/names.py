"""The one home of every name an export shows the outside world: its format and file names, its
hwgan.json keys, its SavedModel signature names, and the messages its checks fail with (in the
graph and in Python), so that the exporter, the loader, the renderer, the CLI and the server
agree on each of them. Plain constants; imports nothing."""

from __future__ import annotations

# -- format and files (assets/ of a version directory) -------------------------------------------
FORMAT = "hwgan-generator-export"
FORMAT_VERSION = 1
CHARSET_FILE = "charset.txt"
WRITERS_FILE = "writers.txt"
METADATA_FILE = "hwgan.json"

# -- hwgan.json keys beyond the built-in ones ----------------------------------------------------
UNTRAINED_WRITERS_KEY = "untrained_writers"  # writers with a row but no training glyphs
WRITER_GEOMETRY_KEY = "writer_geometry"  # {writer: {char: [top, bottom]}}
STYLE_CHARSET_KEY = "style_charset"  # fewshot: every character a style can draw (one string)
# fewshot: charset characters training held out (one string); they and every character outside
# the charset are drawn in styles kept near the mean (models.fewshot.limit_untrained)
UNTRAINED_CHARS_KEY = "untrained_chars"
STYLE_METHOD_KEY = "style_method"  # stylegan: extract_style's default method, set by `hwgan ship`
STYLE_METHODS = ("encoder", "both")  # what an export's extract_style offers (steps 0 / > 0)


def default_style_method(family: str, recorded=None) -> str:
    """The extraction method used when none is asked for, the one rule every caller reads: a
    fewshot model reads a style in one pass ("encoder", its only method); a stylegan model uses
    what `hwgan ship` recorded as best (`recorded`, hwgan.json STYLE_METHOD_KEY), else "both"
    (the encoder, then projection)."""
    if family == "fewshot":
        return "encoder"
    return recorded or "both"


# -- signature names -----------------------------------------------------------------------------
GLYPHS = "glyphs"
GLYPHS_BY_ID = "glyphs_by_id"
METADATA = "metadata"
SERVING_DEFAULT = "serving_default"
BUILTIN_SIGNATURES = (GLYPHS, GLYPHS_BY_ID, METADATA, SERVING_DEFAULT)
WRITE = "write"  # every export (signatures/write.py)
EXTRACT_STYLE = "extract_style"  # stylegan exports (signatures/style.py)
GLYPHS_WITH_STYLE = "glyphs_with_style"
MEAN_STYLE = "mean_style"
WRITE_WITH_STYLE = "write_with_style"  # style exports: `write` with a style, not a writer
STYLE_SIGNATURES = (EXTRACT_STYLE, GLYPHS_WITH_STYLE, MEAN_STYLE, WRITE_WITH_STYLE)

# -- messages ------------------------------------------------------------------------------------
UNKNOWN_CHAR_MESSAGE = "character not in the model's charset"
UNKNOWN_WRITER_MESSAGE = "writer not known to the model"
UNTRAINED_WRITER_MESSAGE = ("writer held out when the model was trained (its style was never "
                            "learned)")
WRITER_COUNT_MESSAGE = "writers must have length 1 or the length of chars"
CHAR_ID_MESSAGE = "char_ids out of range [0, num_chars)"
WRITER_ID_MESSAGE = "writer_ids out of range [0, num_writers)"
WRITER_ID_COUNT_MESSAGE = "writer_ids must have length 1 or the length of char_ids"
# the write signature
EMPTY_TEXT_MESSAGE = "the text is empty: nothing to write"
TOO_LONG_MESSAGE = "the text has more characters than max_glyphs"
LINE_WIDTH_MESSAGE = "line_width must be at least 4 x-heights and at most max_line_width"
TOO_MANY_PIXELS_MESSAGE = "the image would have more pixels than max_pixels"
TEXT_CHARS_MESSAGE = "the text has more characters than max_text_chars"
# every glyph signature (hw_gan.export.limits)
GLYPH_COUNT_MESSAGE = ("too many glyphs for one call: at most max_glyphs, and N x R x R at most "
                       "max_pixels")
# the style signatures
STYLE_IMAGE_COUNT_MESSAGE = "extract_style needs as many images as chars, at least one; got"
STYLE_IMAGE_CAP_MESSAGE = "extract_style takes at most max_style_images images"
STYLE_STEPS_MESSAGE = "extract_style takes at most max_style_steps steps"
STYLE_FINITE_MESSAGE = "style and variation must be finite (no NaN or infinity)"
FONT_CHAR_MESSAGE = ("character the model's content font cannot draw (one character per "
                     "element, NFC)")

__all__ = [
    "BUILTIN_SIGNATURES", "CHARSET_FILE", "CHAR_ID_MESSAGE", "EMPTY_TEXT_MESSAGE",
    "EXTRACT_STYLE", "FORMAT", "FORMAT_VERSION", "GLYPHS", "GLYPHS_BY_ID", "GLYPHS_WITH_STYLE",
    "GLYPH_COUNT_MESSAGE", "LINE_WIDTH_MESSAGE", "MEAN_STYLE", "METADATA", "METADATA_FILE",
    "FONT_CHAR_MESSAGE", "SERVING_DEFAULT", "STYLE_FINITE_MESSAGE", "STYLE_IMAGE_CAP_MESSAGE",
    "STYLE_CHARSET_KEY", "STYLE_IMAGE_COUNT_MESSAGE", "STYLE_SIGNATURES", "STYLE_STEPS_MESSAGE", "TEXT_CHARS_MESSAGE",
    "TOO_LONG_MESSAGE", "default_style_method", "WRITE_WITH_STYLE", "TOO_MANY_PIXELS_MESSAGE", "UNKNOWN_CHAR_MESSAGE",
    "UNKNOWN_WRITER_MESSAGE", "UNTRAINED_CHARS_KEY", "UNTRAINED_WRITERS_KEY", "UNTRAINED_WRITER_MESSAGE", "WRITE",
    "WRITERS_FILE", "WRITER_COUNT_MESSAGE", "WRITER_GEOMETRY_KEY", "WRITER_ID_COUNT_MESSAGE",
    "WRITER_ID_MESSAGE",
]
