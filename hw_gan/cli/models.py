"""`hwgan models`: the trained models shipped in the package; `hwgan writers`: a gallery of a
model's writers to pick a hand from.

  hwgan models [--json]
  hwgan writers --model unipen_hands --out gallery.pdf [--text "..."] [--writers a,b]
                [--missing nearest] [--page a4] [--dpi 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from hw_gan import shipped
from hw_gan.cli import errors
from hw_gan.cli.write import seed_type
from hw_gan.export import load_export
from hw_gan.layout import MISSING_MODES
from hw_gan.render.gallery import SAMPLE_TEXT, write_gallery

COLUMNS = ("name", "family", "writers", "resolution", "size", "licence")


def _rows() -> list[dict]:
    out = []
    for m in shipped.list_models():
        info = m.info
        writers = info.get("writers") if info.get("family") != "stylegan" else "-"
        out.append({"name": m.name, "family": m.family, "writers": writers,
                    "resolution": f"{info.get('resolution', '?')} px",
                    "size": f"{m.size_bytes / 1e6:.1f} MB", "licence": info.get("licence", "?"),
                    "adaptable": m.has_run, "card": str(m.path / shipped.CARD_FILE),
                    "path": str(m.path)})
    return out


def models_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="hwgan models", description="List the trained models "
                                "shipped with hwgan: give a name as --model (or --init / "
                                "--base for adaptable ones).")
    p.add_argument("--json", action="store_true", help="one JSON object a model")
    args = p.parse_args(list(argv))
    try:
        rows = _rows()
    except ValueError as e:
        return errors.report(e)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no shipped models under {shipped.root()}")
        return 0
    table = [list(COLUMNS)] + [[str(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    adaptable = [r["name"] for r in rows if r["adaptable"]]
    print(f"\nmodel cards: {shipped.root()}/<name>/{shipped.CARD_FILE}" +
          (f"; a base for adding a person (--init, --base): {', '.join(adaptable)}"
           if adaptable else ""))
    return 0


def writers_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="hwgan writers", description="Draw each writer's name and a "
                                "line in their hand, to pick a hand by eye (multi-page PDF, or "
                                "PNG pages).")
    p.add_argument("--model", required=True, help="a shipped model's name or an export directory")
    p.add_argument("--out", required=True, help="gallery.pdf (all pages) or gallery.png (one "
                   "file a page: gallery-1.png, ... when there are several)")
    p.add_argument("--text", default=SAMPLE_TEXT, help=f"the line each writer writes (default "
                   f"{SAMPLE_TEXT!r})")
    p.add_argument("--writers", default="", help="comma-separated names (default: every writer "
                   "the model learned)")
    p.add_argument("--missing", choices=MISSING_MODES, default="nearest",
                   help="characters the model cannot write (default nearest: a similar one)")
    p.add_argument("--page", default="a4")
    p.add_argument("--dpi", type=float, default=150.0)
    p.add_argument("--x-height", type=float, default=3.0, dest="x_height", help="mm")
    p.add_argument("--seed", type=seed_type, default=0)
    p.add_argument("--overwrite", action="store_true", help="--out may be a symbolic link: the "
                   "link is replaced, not its target")
    args = p.parse_args(list(argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if not args.text.strip():
            raise ValueError("--text is empty")
        model = load_export(args.model)
        writers = [w.strip() for w in args.writers.split(",") if w.strip()]
        result = write_gallery(model, args.out, writers or None, args.text, seed=args.seed,
                               page=args.page, dpi=args.dpi, x_height_mm=args.x_height,
                               missing=args.missing, overwrite=args.overwrite)
    except (ValueError, OSError) as e:
        return errors.report(e)
    if result.missing:
        print(f"not in the model's charset ({args.missing}): {list(result.missing)}",
              file=sys.stderr)
    for path in result.paths:
        print(path)
    print(f"{len(result.writers)} writers on {result.pages} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(models_main(sys.argv[1:]))
