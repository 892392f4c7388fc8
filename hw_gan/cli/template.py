"""`hwgan template`: printable handwriting template sheets and their layout file.

  hwgan template --out sheets.pdf [--charset ...] [--repeats 3] [--paper a4|letter] [--png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from data_pipeline.template import (DEFAULT_COLUMNS, DEFAULT_REPEATS, DEFAULT_X_HEIGHT_MM,
                                    FAMILY_CUSTOM, PAPERS, layout_path, make_template)
from hw_gan.cli import errors


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hwgan template",
        description="Write printable handwriting template sheets (PDF and/or PNG pages) and "
                    "their layout file <out>.layout.json.")
    p.add_argument("--out", required=True, help="sheets.pdf, or sheets.png for PNG pages only")
    p.add_argument("--charset", default="default",
                   help="default, digits, upper, lower, letters, alnum, punct (joined with +), "
                        "or literal characters")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="cells per character")
    p.add_argument("--paper", default="a4", choices=sorted(PAPERS))
    p.add_argument("--dpi", type=int, default=300)
    p.add_argument("--columns", type=int, default=DEFAULT_COLUMNS)
    p.add_argument("--x_height_mm", type=float, default=DEFAULT_X_HEIGHT_MM)
    p.add_argument("--png", action="store_true", help="also write <stem>-page-N.png")
    p.add_argument("--overwrite", action="store_true",
                   help="an output may be a symbolic link: the link is replaced, not its target")
    return p


def template_main(argv: Optional[Sequence[str]] = None) -> int:
    """`hwgan template --out sheets.pdf [--charset ...] [--repeats 3] [--paper a4|letter]
    [--dpi 300] [--png]`."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        layout = make_template(args.out, args.charset, args.repeats, args.paper, args.dpi,
                               args.columns, args.x_height_mm, args.png, args.overwrite)
    except (ValueError, OSError) as e:
        return errors.report(e)
    print(json.dumps({"out": os.fspath(args.out), "layout": os.fspath(layout_path(args.out)),
                      "pages": layout["page_count"], "cells": layout["cell_count"],
                      "family": layout["family"],
                      "note": "" if layout["family"] != FAMILY_CUSTOM else
                      "custom template: pass the layout file to `hwgan extract --layout`"}))
    return 0
