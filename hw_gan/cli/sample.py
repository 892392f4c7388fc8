"""`hwgan sample --model EXPORT --out grid.png`: a grid of writers x characters from an export."""

from __future__ import annotations

import argparse
from typing import Sequence

from hw_gan import export
from hw_gan.cli import errors
from hw_gan.render.grid import write_sample_grid


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwgan sample", description="Draw a grid of glyphs "
                                "(rows: writers, columns: characters) from an exported model.")
    p.add_argument("--model", required=True, help="a shipped model's name (`hwgan models`) or "
                   "an export directory (NAME or NAME/VERSION)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--chars", default="", help="characters (default: the whole charset)")
    p.add_argument("--writers", default="", help="comma-separated writer names (default: 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="--out may be a symbolic link: the link is replaced, not its target")
    return p


def sample_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        loaded = export.load_export(args.model)
        writers = [w for w in args.writers.split(",") if w] or list(loaded.trained_writers()[:8])
        chars = args.chars or "".join(label[0] for label in loaded.charset)
        write_sample_grid(loaded, args.out, chars, writers, args.seed, args.overwrite)
    except (ValueError, OSError) as e:
        return errors.report(e)
    print(args.out)
    return 0
