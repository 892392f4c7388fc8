"""The `hwgan` command.

  hwgan build --source=simulated --out=data/simulated      (= python -m data_pipeline.build)
  hwgan verify data/simulated                              (= python -m data_pipeline.build verify)
  hwgan train --flagfile=configs/quickstart.cfg            (= python train_main.py)
  hwgan sample --model export/quickstart --out grid.png [--chars abc] [--writers sim-000,sim-001]
  hwgan template --out sheets.pdf [--charset ...] [--repeats 3] [--paper a4|letter]
  hwgan extract photos/*.jpg --writer alice --out data/alice
  hwgan write --model export/quickstart --writer sim-003 "Dear Sam, ..." --out letter.pdf
  hwgan serve --model export/quickstart [--host 127.0.0.1] [--port 8501]
  hwgan style extract --model runs/unipen_stylegan_cpu --samples data/alice --out alice.style
  hwgan style mix alice.style bob.style --model export/unipen_stylegan_cpu --out mix.png

Each feature adds its command to COMMANDS as "module:function" taking the argument list.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

# command -> "module:function(argv) -> exit code"; modules are imported only when used.
COMMANDS = {
    "build": "data_pipeline.build:main",
    "verify": "hw_gan.cli:_verify",
    "train": "hw_gan.cli:_train",
    "sample": "hw_gan.cli:_sample",
    "template": "data_pipeline.template:template_main",
    "extract": "data_pipeline.extract:extract_main",
    "write": "hw_gan.cli.write:write_main",
    "serve": "hw_gan.serve:serve_main",
    "style": "hw_gan.cli.style:style_main",
}


def _verify(argv: Sequence[str]) -> int:
    from data_pipeline import build

    return build.main(["verify", *argv])


def _train(argv: Sequence[str]) -> int:
    from absl import app

    import train_main

    saved, sys.argv = sys.argv, ["hwgan train", *argv]
    try:
        app.run(train_main.main)  # always ends in sys.exit
    except SystemExit as e:  # an exit code like every other command, also when called in-process
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def _sample(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="hwgan sample", description="Draw a grid of glyphs "
                                "(rows: writers, columns: characters) from an exported model.")
    p.add_argument("--model", required=True, help="export directory (NAME or NAME/VERSION)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--chars", default="", help="characters (default: the whole charset)")
    p.add_argument("--writers", default="", help="comma-separated writer names (default: 8)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from hw_gan import export
    from hw_gan.render.grid import write_sample_grid

    try:
        loaded = export.load_export(args.model)
        writers = [w for w in args.writers.split(",") if w] or list(loaded.trained_writers()[:8])
        chars = args.chars or "".join(label[0] for label in loaded.charset)
        write_sample_grid(loaded, args.out, chars, writers, args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module_name, func_name = COMMANDS[argv[0]].split(":")
    return getattr(importlib.import_module(module_name), func_name)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
