"""`hwgan app`: a local web page from filled-in sheets to a letter (see hw_gan.app).

  hwgan app [--model unipen_styles] [--base unipen_hands] [--gallery MODEL] [--port 8080]
            [--data DIR] [--host 127.0.0.1]

With no --model / --base the shipped models are used (`hwgan models`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from hw_gan import shipped
from hw_gan.app import StudioConfig, default_data_dir, run_app

DEFAULT_MODEL = "unipen_styles"  # hands from sheets in seconds (hw_gan/shipped)
DEFAULT_BASE = "unipen_hands"  # closer copies, and the sample hands


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hwgan app", description="A page on this computer: print the sheets, upload "
        "photos of them, review the letters, make a hand, write a letter and download it.")
    p.add_argument("--model", default=None, help="a shipped model's name or an export "
                   "directory (a stylegan model makes hands from the sheets in seconds; "
                   f"default: the shipped {DEFAULT_MODEL}, else {DEFAULT_BASE})")
    p.add_argument("--base", default=None, help="a trained char+writer (style_cgan) run "
                   "directory or shipped model name: offers the better method, adapting it to "
                   f"the sheets (minutes); default: the shipped {DEFAULT_BASE} when it is "
                   "installed; '' = not offered")
    p.add_argument("--gallery", default="", help="a char+writer model whose writers are "
                   "offered as sample hands (default: --model's writers, else the shipped "
                   "--base's)")
    p.add_argument("--data", default=None, help="where hands and sheets are kept (default: "
                   f"{default_data_dir()})")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, "
                   "this computer only; there is no login)")
    p.add_argument("--port", type=int, default=8080, help="default 8080; 0 picks a free one")
    p.add_argument("--allow_host", "--allow-host", dest="allow_hosts", action="append",
                   default=[], metavar="HOST", help="another Host name the page may be "
                   "reached by (repeatable)")
    p.add_argument("--max_files", type=int, default=12, help="files an upload may hold")
    p.add_argument("--max_upload_mb", type=float, default=25.0, help="megabytes a file")
    p.add_argument("--max_megapixels", type=float, default=64.0, help="pixels of a picture")
    p.add_argument("--style_steps", type=int, default=150, help="fast method: projection "
                   "steps after the style encoder")
    p.add_argument("--adapt_steps", type=int, default=300, help="better method: embedding steps")
    p.add_argument("--adapt_finetune_steps", type=int, default=400, help="better method: "
                   "pivotal tuning steps (0: off)")
    return p


def app_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for flag in ("max_files", "style_steps", "adapt_steps"):
        if getattr(args, flag) < (1 if flag == "max_files" else 0):
            print(f"error: --{flag} must be >= {1 if flag == 'max_files' else 0}", file=sys.stderr)
            return 2
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0 or args.adapt_finetune_steps < 0:
        print("error: --max_upload_mb and --max_megapixels must be > 0, "
              "--adapt_finetune_steps >= 0", file=sys.stderr)
        return 2
    installed = shipped.names()
    # With no --model: the shipped style model; else the shipped char+writer model (its writers
    # are the hands, closer copies are made from it; hands from sheets in seconds need a style
    # model).
    model = args.model or next((m for m in (DEFAULT_MODEL, DEFAULT_BASE) if m in installed),
                               None)
    base = args.base if args.base is not None else (
        DEFAULT_BASE if DEFAULT_BASE in installed else "")
    if model is None:
        print(f"error: --model is needed: no shipped {DEFAULT_MODEL} or {DEFAULT_BASE} in this "
              f"install (shipped: {', '.join(installed) or 'none'}); give an export directory",
              file=sys.stderr)
        return 2
    cfg = StudioConfig(model=model, base=base, gallery=args.gallery,
                       data_dir=args.data or str(default_data_dir()),
                       max_megapixels=args.max_megapixels, style_steps=args.style_steps,
                       adapt_steps=args.adapt_steps,
                       adapt_finetune_steps=args.adapt_finetune_steps)
    try:
        return run_app(cfg, args.host, args.port, allow_hosts=args.allow_hosts,
                       max_files=args.max_files, max_upload_mb=args.max_upload_mb)
    except (ValueError, FileNotFoundError, NotADirectoryError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(app_main(sys.argv[1:]))
