"""Build and verify glyph datasets.

`build` writes any source as a dataset; `extract` writes the glyphs of filled-in template scans
(data_pipeline.scan through the `scans` source) as a dataset with a review sheet and a report
(`hwgan extract`, hw_gan/cli/extract.py). On the command line:

  python -m data_pipeline.build --source=simulated --out=data/simulated
  python -m data_pipeline.build --source=ink --source_param path=unipen.npz --out=data/unipen
  python -m data_pipeline.build --source=emnist --source_param config=balanced --out=data/emnist
  python -m data_pipeline.build verify data/simulated

Source parameters are given as repeated `--source_param key=value` (values are parsed as int,
float, true/false or none where they look like one); each source's opener lists what it takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from data_pipeline import atomic, sources, tfrecords
from data_pipeline.scan import DEFAULT_MAX_PIXELS, WORK_DPI, review_sheet
from data_pipeline.sources.scans import open_scans

REVIEW_NAME = "review.png"  # written by `extract` beside the dataset
REPORT_NAME = "extract_report.json"


def parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: Sequence[str]) -> dict:
    params = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--source_param {item!r} is not key=value")
        key, value = item.split("=", 1)
        params[key.strip()] = parse_value(value.strip())
    return params


def build(source: str, out: str, params: dict, split: str = "writer", test_fraction: float = 0.1,
          seed: int = 0, shard_mb: float = 32.0, num_shards: Optional[int] = None,
          overwrite: bool = False, progress: bool = True) -> dict:
    """Opens a source and writes it as a dataset; returns the manifest."""
    src = sources.open_source(source, **params)
    return tfrecords.write_dataset(src, out, split=split, test_fraction=test_fraction, seed=seed,
                                   shard_mb=shard_mb, num_shards=num_shards, overwrite=overwrite,
                                   progress=progress)


def extract(images, writer: str, out_dir, layout=None, image_size: int = 32,
            report_path=None, split: str = "none", keep_suspicious: bool = True,
            max_pixels: int = DEFAULT_MAX_PIXELS, work_dpi: int = WORK_DPI,
            overwrite: bool = False, quiet: bool = False) -> dict:
    """Extracts glyphs from template images into a dataset directory; returns the report.

    out_dir receives the TFRecord dataset (split `split`, all in "train" by default), the review
    sheet review.png and the report extract_report.json; `report_path` gets a copy of the
    report. The directory appears only when complete. ValueError (and nothing written) if no
    glyph was extracted from any image.
    """
    out_dir = Path(out_dir)
    if report_path is not None:
        atomic.check_output(report_path, overwrite, "--report")
    with atomic.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        source = open_scans(images, writer, image_size=image_size, layout=layout,
                            keep_suspicious=keep_suspicious, max_pixels=max_pixels,
                            work_dpi=work_dpi, quiet=quiet)
        manifest = tfrecords.write_dataset(source, tmp, split=split, progress=False)
        report = dict(source.report)
        report["dataset"] = {"dir": os.fspath(out_dir), **tfrecords.summarize(manifest)}
        atomic.write_bytes(tmp / REVIEW_NAME, review_sheet(source.pages))
        text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
        atomic.write_text(tmp / REPORT_NAME, text)
    if report_path is not None:
        atomic.write_text(report_path, text, overwrite)
    return report


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help=f"one of {', '.join(sorted(sources.OPENERS))}")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--source_param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--split", default="writer", choices=tfrecords.SPLIT_METHODS)
    p.add_argument("--test_fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard_mb", type=float, default=32.0)
    p.add_argument("--num_shards", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "verify":
        vp = argparse.ArgumentParser(prog="python -m data_pipeline.build verify")
        vp.add_argument("data_dir")
        vp.add_argument("--quick", action="store_true", help="sizes and checksums only")
        args = vp.parse_args(argv[1:])
        try:
            problems = tfrecords.verify_dataset(args.data_dir, deep=not args.quick)
        except tfrecords.DatasetError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for problem in problems:
            print(problem)
        if problems:
            print(f"{args.data_dir}: {len(problems)} problem(s)", file=sys.stderr)
            return 1
        manifest = tfrecords.load_manifest(args.data_dir)
        print(json.dumps({"ok": True, **tfrecords.summarize(manifest)}))
        return 0
    args = _build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        manifest = build(args.source, args.out, parse_params(args.source_param), split=args.split,
                         test_fraction=args.test_fraction, seed=args.seed, shard_mb=args.shard_mb,
                         num_shards=args.num_shards, overwrite=args.overwrite,
                         progress=not args.quiet)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    summary = tfrecords.summarize(manifest)
    total = sum(s["count"] for s in summary["splits"].values())
    print(json.dumps({"out": args.out, "seconds": round(seconds, 2),
                      "glyphs_per_s": round(total / seconds, 1), **summary}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before tensorflow loads
    sys.exit(main())
