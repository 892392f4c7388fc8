"""hw_gan.layout: text -> glyph requests -> placed glyphs, the layout rules of `hwgan write`.

Owns the text plan (`layout.text`), page sizes and layout parameters (`layout.page`) and the
placement of glyphs on lines and pages (`layout.placement`). It is numpy over
data_pipeline.charset and must not import TensorFlow nor any floor above it (inversion, export,
render, serve, cli build on it: the renderer, the export's `write` signature, the server).

The layout is a pure function of (the text, the ink box of every generated glyph, the layout
parameters, the seed); it never looks at pixels. `plan_text` turns the text into tokens and the
list of glyphs to generate; `layout_pages` places them, one page at a time, asking for each
generated glyph's ink box (height, width in the generator's pixels) only when it reaches it, so a
caller can generate glyphs lazily and the whole text never needs to be in memory as images.

Rules (all lengths in x-heights, "xh", unless said otherwise; page y grows downward):

  * Text. "\\r\\n" and "\\r" read as "\\n"; a tab is four spaces, other Unicode whitespace a space.
    A blank line (empty or only spaces) ends a paragraph; each further blank line adds one empty
    line. A single "\\n" is a line break. Space is never a missing character.
  * One token per character occurrence. Characters the charset serves are GLYPH tokens, each with
    its own generation index `k` (0, 1, 2, ... in text order), so two "e"s are two glyphs.
    Characters it does not serve: missing="error" raises a ValueError listing them; "skip" leaves
    a gap of the character's usual width; "box" draws an empty rectangle (BOX token); "nearest"
    substitutes a similar character (other case, the letter without its accent, a look-alike
    digit/letter, plain quotes/dashes for typographic ones) and falls back to a box.
  * Glyph size and position. A glyph is cropped to its ink (`ink_box`) and scaled so its ink
    height equals its typographic extent (top - bottom, from `data_pipeline.charset.char_info`, or
    from the writer's own geometry table where one is given: an export's "writer_geometry", which
    for UNIPEN models sizes each writer's punctuation from the data and places it by its class,
    see data_pipeline.extents) times x_height_px times a seeded size
    factor; its ink bottom sits `bottom` xh above the baseline (below it for descenders). If the
    scaled glyph would be wider than `max_width` times its typical width (1 times for a flat
    mark, whose band is less than half its typical width), it is scaled down to that width and
    centred vertically in its band (so a "-" is a dash of the usual length and pen width, not a
    thick bar, and a "." a small dot). A substituted
    character (missing="nearest") is placed as the character drawn, not the one replaced. A
    glyph drawn with no ink (a barely trained model draws them) is placed as an empty box of the
    character's typical width and band: it takes its room on the line, wraps like any glyph and
    lands on a page (every requested glyph is placed exactly once), and nothing is drawn.
  * Spacing. Glyphs follow each other with `letter_spacing` between ink boxes; a space adds
    `word_spacing`. Both vary a little per glyph (`spacing_variation`).
  * Variation (all seeded): each line's baseline drifts (a slight tilt plus a slow wave, at most
    about `baseline_drift` xh), each glyph sits a little above or below it; each glyph's size
    varies by `size_variation` (relative standard deviation), each word's and line's by less.
  * Slant: a shear about each glyph's baseline, x += slant * (height above the baseline), so
    slant=0.2 leans about 11 degrees to the right.
  * Lines and pages. Lines wrap at the text width (`line_width_px`, or the page width minus the
    margins), at spaces; a word longer than a whole line is split where it runs out of room. No
    glyph's (sheared) ink box, nor a "skip" gap, passes the right edge of the text column.
    Baselines are `line_spacing` xh apart, paragraphs `paragraph_spacing` lines further; the
    first baseline of a page is 1.75 xh below the top margin, and a line goes to the next page
    when its descender room (0.8 xh) would pass the bottom margin. Leading spaces of a wrapped line are dropped.

Randomness: glyph-level numbers are row `pos % 512` of a block of normals seeded with
(seed, "glyph", pos // 512), where `pos` counts the non-space tokens of the text; line-level
numbers are seeded with (seed, "line", line index). Nothing depends on page breaks, so the same
text, ink boxes, parameters and seed give the same pages.
"""

from hw_gan.layout.page import (BOX_BORDER, BOX_BOTTOM, BOX_SIZE, BOX_TOP, BOX_WIDTH,
                                DESCENDER_ROOM, FIRST_BASELINE, MM_PER_INCH, PAGE_SIZES_MM,
                                LayoutParams, box_bitmap, page_params, parse_page)
from hw_gan.layout.placement import (INK_THRESHOLD, Line, PageLayout, Placement, char_extent,
                                     crop_to_ink, ink_box, layout_pages, layout_text)
from hw_gan.layout.text import (BOX, CHUNK, GAP, GLYPH, MISSING_MODES, UNKNOWN_CHARS_MESSAGE,
                                Paragraph, Spaces, TextPlan, Token, Word, chunk_seed,
                                nearest_char, normalise_text, plan_text)

__all__ = [
    "BOX", "BOX_BORDER", "BOX_BOTTOM", "BOX_SIZE", "BOX_TOP", "BOX_WIDTH", "CHUNK",
    "DESCENDER_ROOM", "FIRST_BASELINE", "GAP", "GLYPH", "INK_THRESHOLD", "Line", "LayoutParams",
    "MISSING_MODES", "MM_PER_INCH", "PAGE_SIZES_MM", "PageLayout", "Paragraph", "Placement",
    "Spaces", "TextPlan", "Token", "UNKNOWN_CHARS_MESSAGE", "Word", "box_bitmap", "char_extent",
    "chunk_seed", "crop_to_ink", "ink_box", "layout_pages", "layout_text", "nearest_char",
    "normalise_text", "page_params", "parse_page", "plan_text",
]
