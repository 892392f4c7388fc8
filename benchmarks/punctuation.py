"""Punctuation on a rendered note, measured: each mark's ink against its line's baseline and
x-height, printed as JSON (medians per character, in x-heights above the baseline).

  python benchmarks/punctuation.py --model EXPORT --writer NAME [--out note.png] [--seed 0]
      [--text "..."]

Renders the note with the export's own writer table (hwgan.json "writer_geometry", where the
training data had sizes) or the typographic classes, at 150 dpi and an x-height of 3 mm (the
`hwgan write` defaults), without slant, and writes it to --out (PNG). Each glyph's ink is read
off the page in the columns of its own box (so neighbours do not count), from 2.2 x-heights above
its baseline to 1.2 below, where the page's ink coverage is above one half.
"""

import argparse
import json
import sys
from collections import defaultdict

import numpy as np

from data_pipeline import charset
from hw_gan import export, layout, render
from hw_gan.render import output

NOTE = ("Dear Sam, thank you for the book! It's a \"real\" page-turner (I read it twice); the "
        "ending: wow. Shall we meet on Friday at 10:30? Love, Ann.")


def measure(model, text, writer, seed, params):
    """(pages' coverage, [(char, top, bottom, width)] in x-heights) of `text` rendered."""
    xh = params.x_height_px
    found, images = [], []
    for page, crops in render.render_pages(model, text, writer=writer, seed=seed, params=params):
        coverage = output.rasterize(page, crops)
        images.append(coverage)
        for line in page.lines:
            for pl in line.placements:
                if pl.kind != layout.GLYPH:
                    continue
                x0, x1 = int(np.ceil(pl.x)), int(np.floor(pl.right))
                y0, y1 = int(pl.baseline - 2.2 * xh), int(pl.baseline + 1.2 * xh)
                ink = coverage[max(0, y0):y1, x0:x1] > 0.5
                rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
                if not len(rows):
                    continue
                top = (pl.baseline - (max(0, y0) + rows[0])) / xh
                bottom = (pl.baseline - (max(0, y0) + rows[-1] + 1)) / xh
                found.append((pl.char, top, bottom, (cols[-1] + 1 - cols[0]) / xh))
    return images, found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--writer", default=None)
    p.add_argument("--out", default=None, help="write the note here (.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", default=NOTE)
    p.add_argument("--width_mm", type=float, default=150.0, help="page width (mm)")
    args = p.parse_args(argv)
    model = export.load_export(args.model)
    params = layout.page_params(f"{args.width_mm}x60mm", 150.0, 3.0, 8.0)
    images, found = measure(model, args.text, args.writer, args.seed, params)
    if args.out:
        ink, paper = output.parse_color("#1a1a40"), output.parse_color("#ffffff")
        with open(args.out, "wb") as f:
            f.write(output.png_bytes(images[0], ink, paper, 150.0))
    by = defaultdict(list)
    for c, top, bottom, width in found:
        by[c].append((top, bottom, width))
    marks = {}
    for c in sorted(by, key=lambda c: (c not in charset.SYMBOLS, c)):
        if c in charset.SYMBOLS or c in "xaey":
            top, bottom, width = np.median(np.array(by[c]), axis=0)
            marks[c] = {"n": len(by[c]), "top": round(float(top), 2),
                        "bottom": round(float(bottom), 2), "height": round(float(top - bottom), 2),
                        "width": round(float(width), 2)}
    table = (model.info or {}).get("writer_geometry") or {}
    print(json.dumps({"model": args.model, "writer": args.writer, "seed": args.seed,
                      "pages": len(images), "writer_table": bool(table.get(args.writer or "")),
                      "x_height_px": round(params.x_height_px, 2), "marks": marks}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
