"""How long loading a shipped model by name takes, warm (TensorFlow imported, files in the OS
cache): the name lookup, the check of every file against model.json (sizes and sha256, once per
process) and tf.saved_model.load. Target (issue 17): under 2 s.

  python benchmarks/shipped_load.py                   # every shipped model
  python benchmarks/shipped_load.py --synthetic       # an untrained model of the shipped size

--synthetic exports an untrained style_cgan of unipen_style_cgan_cpu.cfg's size (width 0.5,
embed 256, 94 characters, 306 writers) into a temporary registry, so the figure exists before
the trained models are committed. Prints JSON: per model, the first load (verification
included) and the median of --repeats later loads in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hw_gan import shipped  # noqa: E402
from hw_gan.export import load_export  # noqa: E402


def synthetic_registry(folder: Path) -> None:
    import keras

    from data_pipeline.charset import parse_charset
    from hw_gan import export
    from hw_gan.config import ModelConfig
    from hw_gan.models import get_family

    charset = parse_charset("digits+upper+lower+symbols")
    writers = [f"lab:{i:03d}" for i in range(306)]
    cfg = ModelConfig(family="style_cgan", resolution=32, width=0.5, embed_dim=256,
                      num_chars=len(charset), num_writers=len(writers))
    keras.utils.set_random_seed(0)
    generator = get_family("style_cgan").build_generator(cfg)
    export.export_model(generator, cfg, charset, writers, folder / "exports", "synthetic")
    model = folder / "registry" / "synthetic"
    model.parent.mkdir()
    (folder / "exports" / "synthetic").rename(model)
    files = {p.relative_to(model).as_posix(): {"bytes": p.stat().st_size,
                                                "sha256": shipped.file_digest(p)}
             for p in sorted(model.rglob("*")) if p.is_file()}
    (model / shipped.MODEL_FILE).write_text(json.dumps(
        {"format_version": 1, "name": "synthetic", "family": "style_cgan", "resolution": 32,
         "writers": len(writers), "export_version": 1, "run": False, "files": files}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import tensorflow as tf  # noqa: F401  (imported before timing: "warm")

    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            synthetic_registry(Path(tmp))
            os.environ[shipped.ROOT_ENV] = str(Path(tmp) / "registry")
        results = {}
        for name in shipped.names():
            t0 = time.perf_counter()
            shipped.get(name)  # the name lookup and the check of every file (once a process)
            verify = time.perf_counter() - t0
            model = load_export(name)
            first = time.perf_counter() - t0
            model.glyphs("a", model.trained_writers()[:1] or [""])  # the first call traces
            later = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                load_export(name)
                later.append(time.perf_counter() - t0)
            size = sum(f.stat().st_size for f in shipped.get(name).path.rglob("*") if f.is_file())
            results[name] = {"verify_s": round(verify, 3), "first_load_s": round(first, 3),
                             "warm_load_s_median": round(statistics.median(later), 3),
                             "size_mb": round(size / 1e6, 2), "target_s": 2.0}
    print(json.dumps({"root": "synthetic" if args.synthetic else str(shipped.root()),
                      "models": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
