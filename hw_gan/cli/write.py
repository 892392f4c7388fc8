"""`hwgan write`: text in a learned hand, to PNG, SVG or PDF.

  hwgan write --model export/quickstart --writer sim-003 "Dear Ada, ..." --out letter.pdf
  hwgan write --model export/quickstart --writer sim-003 --text-file letter.txt --out letter.png \\
      --page letter --dpi 300 --seed 7 --missing nearest
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from typing import Sequence

from data_pipeline.atomic import check_output
from hw_gan import shipped
from hw_gan.cli import errors
from hw_gan.cli import style as style_cli
from hw_gan.export import load_export
from hw_gan.layout import MISSING_MODES, page_params
from hw_gan.render import format_for, render_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hwgan write", description="Write text in the hand of one of a model's writers, as "
        "PNG, SVG (vector outlines) or PDF (vector, multi-page). Every character is a freshly "
        "generated glyph; the same --seed gives the same pages.")
    p.add_argument("text", nargs="?", help="the text (or use --text-file)")
    p.add_argument("--text-file", help="read the text from this UTF-8 file ('-' = stdin)")
    p.add_argument("--model", required=True, help="a shipped model's name (`hwgan models`) or "
                   "an export directory (NAME or NAME/VERSION)")
    p.add_argument("--writer", help="writer name (families with writers; see the export's "
                   "assets/writers.txt)")
    p.add_argument("--style", help="a style file from `hwgan style extract` (stylegan models): "
                   "write in that hand instead of one of the model's writers")
    p.add_argument("--samples", help="a folder of the person's glyph images (files named "
                   "<char>_<anything>.png) or a dataset from `hwgan extract`: take the style "
                   "from them and write in it (models with style signatures; a fewshot model "
                   "draws every character its font covers, accents included)")
    p.add_argument("--k", type=int, default=0, help="with --samples: use at most k glyphs "
                   "(default: all)")
    p.add_argument("--variation", type=float, default=0.12, help="with --style: how much each "
                   "glyph varies around the style (0 = every 'a' alike; default 0.12)")
    p.add_argument("--truncation", type=float, default=1.0, help="with --style: pull the style "
                   "toward the model's average hand, 0..1 (1 = as extracted; lower is neater "
                   "and less personal)")
    p.add_argument("--out", required=True, help="output file: .png, .svg or .pdf (PNG/SVG: one "
                   "file a page, NAME-1.png, NAME-2.png, ... when there are several; pages of "
                   "an earlier, longer document under those names are removed). Only a regular "
                   "file is written: a folder, a device, a FIFO or a read-only file is refused")
    p.add_argument("--overwrite", action="store_true", help="--out may be a symbolic link: the "
                   "link is replaced by the file (what it points to is left alone)")
    p.add_argument("--format", choices=("png", "svg", "pdf"), help="default: from --out")
    p.add_argument("--seed", type=seed_type, default=0, help="an int64 (as the server takes)")
    p.add_argument("--page", default="a4", help="a4, a5, a3, letter, legal (+ -landscape) or "
                   "WxHmm, e.g. 148x210mm (default a4)")
    p.add_argument("--dpi", type=float, default=150.0)
    p.add_argument("--x-height", type=float, default=3.0, dest="x_height",
                   help="x-height in mm (default 3)")
    p.add_argument("--margin", type=float, default=20.0, help="page margin in mm (default 20)")
    p.add_argument("--line-width", type=float, dest="line_width",
                   help="wrap lines at this width in pixels (default: between the margins)")
    p.add_argument("--slant", type=float, default=0.0,
                   help="extra slant as a shear factor (0.2 = about 11 degrees to the right)")
    p.add_argument("--ink", default="#1a1a40", help="ink colour (default #1a1a40)")
    p.add_argument("--paper", default="#ffffff", help="paper colour (default #ffffff)")
    p.add_argument("--missing", choices=MISSING_MODES, default="error",
                   help="characters the model cannot write: error (default), skip (leave a "
                   "space), box (an empty rectangle), nearest (a similar character, else a box)")
    return p


MAX_PNG_MEGAPIXELS = 250  # a PNG page is drawn whole in memory (~1 byte a pixel, twice)
SEED_RANGE = (-2**63, 2**63)  # int64, as the signatures and the server take it


def seed_type(text: str) -> int:
    """argparse type of --seed: an integer that fits int64 (a larger one would wrap)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not SEED_RANGE[0] <= value < SEED_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text} is out of range: seeds are int64 "
                                         f"({SEED_RANGE[0]} .. {SEED_RANGE[1] - 1})")
    return value


def _check_page(args) -> None:
    """The page flags make a usable page, and a PNG page one that fits in memory."""
    params = page_params(args.page, args.dpi, args.x_height, args.margin, args.line_width,
                         slant=args.slant)
    megapixels = params.page_width_px * params.page_height_px / 1e6
    if format_for(args.out, args.format) == "png" and megapixels > MAX_PNG_MEGAPIXELS:
        raise ValueError(f"--page {args.page} at --dpi {args.dpi:g} is {params.page_width_px} x "
                         f"{params.page_height_px} px ({megapixels:.0f} megapixels); a PNG page "
                         f"is at most {MAX_PNG_MEGAPIXELS}: lower --dpi, or write SVG or PDF")


def _read_text(args) -> str:
    if args.text is not None and args.text_file:
        raise ValueError("give the text or --text-file, not both")
    if args.text_file:
        if args.text_file == "-":
            return sys.stdin.read()
        try:
            mode = os.stat(args.text_file).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                raise ValueError(f"--text-file {args.text_file} is a device, not a text file "
                                 "(for standard input give '-')")
            # O_NONBLOCK: a FIFO nobody writes to reads as empty instead of waiting forever.
            fd = os.open(args.text_file, os.O_RDONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            with open(fd, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            raise ValueError(f"text file {args.text_file} does not exist") from None
        except IsADirectoryError:
            raise ValueError(f"--text-file {args.text_file} is a directory, not a text "
                             "file") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"text file {args.text_file} is not UTF-8: {e}") from None
        except OSError as e:
            raise ValueError(f"--text-file {errors.describe(e)}") from None
    if args.text is None:
        raise ValueError("no text: give it as an argument or with --text-file")
    return args.text


def _style_from_samples(args, model):
    """The style (ws) of --samples through the export's extract_style (its default method, with
    STYLE_STEPS of projection when that is "both"); prints where it came from on stderr."""
    if args.style:
        raise ValueError("give --style or --samples, not both")
    if args.k < 0:
        raise ValueError("--k must be >= 0")
    styles = style_cli.ExportStyles(model)
    images, ids, writer = style_cli.load_samples(args, styles.charset, styles.resolution)
    t0 = time.perf_counter()
    ws = styles.extract(images, ids, None, STYLE_STEPS)
    print(f"style of {writer!r} from {len(ids)} glyphs in {time.perf_counter() - t0:.2f} s",
          file=sys.stderr)
    return ws


STYLE_STEPS = 150  # projection steps of a stylegan style taken from --samples


def write_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        text = _read_text(args)
        if not text.strip():
            raise ValueError("the text is empty: nothing to write")
        model_path = shipped.resolve_export(args.model)  # a shipped model's name, or a path
        if not os.path.exists(model_path):
            raise FileNotFoundError(f"model directory {args.model} does not exist")
        format_for(args.out, args.format)  # a bad suffix fails before the model loads
        check_output(args.out, args.overwrite, "--out")  # and so does a bad --out
        _check_page(args)
        model = load_export(model_path)
        style, writer = args.style, args.writer
        if args.samples:
            style, writer = _style_from_samples(args, model), None
        result = render_text(
            model, text, writer=writer, out=args.out, format=args.format, seed=args.seed,
            page=args.page, dpi=args.dpi, x_height_mm=args.x_height, margin_mm=args.margin,
            line_width_px=args.line_width, ink=args.ink, paper=args.paper, slant=args.slant,
            missing=args.missing, style=style,
            style_variation=args.variation, style_truncation=args.truncation,
            overwrite=args.overwrite)
    except (ValueError, OSError, NotImplementedError) as e:
        return errors.report(e)
    if result.substitutions:
        subs = ", ".join(f"{a!r}->{b!r}" for a, b in result.substitutions.items())
        print(f"substituted (not in the model's charset): {subs}", file=sys.stderr)
    others = [c for c in result.missing if c not in result.substitutions]
    if others:
        how = "left blank" if args.missing == "skip" else "drawn as boxes"
        print(f"not in the model's charset, {how}: {others}", file=sys.stderr)
    for path in result.paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(write_main(sys.argv[1:]))
