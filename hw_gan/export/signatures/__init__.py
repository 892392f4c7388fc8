"""Signatures an export carries beyond its built-in glyph signatures: `write` (text to a page
raster, in-graph) and the StyleGAN style signatures."""
