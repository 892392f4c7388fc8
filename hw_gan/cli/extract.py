"""`hwgan extract`: scans or photos of filled-in templates -> a glyph dataset.

  hwgan extract photos/*.jpg --writer alice --out data/alice [--report r.json] [--layout L]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from data_pipeline.build import extract
from data_pipeline.scan import DEFAULT_MAX_PIXELS
from hw_gan.cli import errors


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hwgan extract",
        description="Read scans or photos of filled-in hwgan templates into a glyph dataset "
                    "(TFRecords, review.png, extract_report.json).")
    p.add_argument("images", nargs="+", help="scans or photos, one page each, any order")
    p.add_argument("--writer", required=True, help="the writer's name, stored in every record")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--report", default=None, help="also write the JSON report here")
    p.add_argument("--layout", default=None,
                   help="the template's layout file (needed for custom templates only)")
    p.add_argument("--split", default="none", choices=["none", "random"])
    p.add_argument("--drop_suspicious", action="store_true",
                   help="leave suspicious cells out of the dataset (they are kept by default)")
    p.add_argument("--max_megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out "
                   "dataset (and --report file); a symbolic link is replaced, not its target")
    p.add_argument("--quiet", action="store_true")
    return p


def extract_main(argv: Optional[Sequence[str]] = None) -> int:
    """`hwgan extract IMAGES... --writer NAME --out DIR [--image_size 32] [--report FILE]`.
    Exit status 0: every image used; 1: dataset written, some images refused (see stderr and
    the report); 2: nothing written."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        report = extract(args.images, args.writer, args.out, layout=args.layout,
                         image_size=args.image_size, report_path=args.report, split=args.split,
                         keep_suspicious=not args.drop_suspicious,
                         max_pixels=int(args.max_megapixels * 1e6), overwrite=args.overwrite,
                         quiet=args.quiet)
    except (ValueError, OSError) as e:
        return errors.report(e)
    print(json.dumps({"out": args.out, **report["counts"]}))
    return 1 if report["counts"]["images_refused"] else 0
