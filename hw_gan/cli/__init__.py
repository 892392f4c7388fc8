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
  hwgan app --model export/unipen_stylegan_cpu [--base runs/...] [--port 8080] [--data DIR]
  hwgan models                                             (the shipped models, by name)
  hwgan writers --model unipen_hands --out gallery.pdf     (each writer's name and hand)
  hwgan ship runs/RUN --export export/RUN --name NAME      (developers: package a shipped model)

--model (and --init, --base) take a shipped model's name where no such path exists.

Any command takes --debug: an error then shows its traceback (else it is one line on stderr).

Each feature adds its command to COMMANDS as "module:function" taking the argument list.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional, Sequence

from hw_gan.cli import errors

# command -> "module:function(argv) -> exit code"; modules are imported only when used.
COMMANDS = {
    "build": "data_pipeline.build:main",
    "verify": "hw_gan.cli.data:verify_main",
    "train": "hw_gan.cli.train:train_main",
    "sample": "hw_gan.cli.sample:sample_main",
    "template": "hw_gan.cli.template:template_main",
    "extract": "hw_gan.cli.extract:extract_main",
    "write": "hw_gan.cli.write:write_main",
    "serve": "hw_gan.cli.serve:serve_main",
    "style": "hw_gan.cli.style:style_main",
    "app": "hw_gan.cli.app:app_main",
    "models": "hw_gan.cli.models:models_main",
    "writers": "hw_gan.cli.models:writers_main",
    "ship": "hw_gan.cli.ship:ship_main",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv, debug = errors.split_debug(sys.argv[1:] if argv is None else argv)
    errors.set_debug(debug)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module_name, func_name = COMMANDS[argv[0]].split(":")
    try:
        return getattr(importlib.import_module(module_name), func_name)(argv[1:])
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # what a command did not expect: still one line, unless --debug
        if debug:
            raise
        return errors.unexpected(e)


if __name__ == "__main__":
    sys.exit(main())
