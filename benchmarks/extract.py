"""Template extraction speed and accuracy, printed as JSON.

  python benchmarks/extract.py [--dpi 300] [--writers 0,3,7,11] [--speed_repeats 5]

Speed: seconds per page to extract a phone-photo-like JPEG of a filled 300 dpi A4 page (about
12.5 megapixels: perspective, tilt, blur, noise, shadow, JPEG): decode, find the markers, map
the page, read all 81 cells (median of --speed_repeats runs), and the whole `extract` of all
pages, dataset writing included, per page.

Accuracy: a simulated print-and-scan run: every page of the default template filled in by each
of --writers (simulated writers, ~10 % of cells left empty), photographed with random
distortions and quarter turns, extracted; the share of filled cells that come back with the
right character and a soft IoU >= 0.8 against the clean glyph, mean / min IoU, geometry error
(x-heights) and glyphs reported in empty cells. Uses the helpers of data_pipeline/sheet_sim.py
(those of tests/data_pipeline/test_extract.py).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data_pipeline import build, scan  # noqa: E402
from data_pipeline import sheet_sim as harness  # noqa: E402
from data_pipeline import template as tpl  # noqa: E402
from data_pipeline.sources import simulated as sim  # noqa: E402


def photo_of(layout, page_index, writer, rng):
    page, truth = harness.fill_page(tpl.render_page(layout, page_index), layout, page_index,
                                    writer_index=writer, rng=rng)
    return harness.random_photograph(page, rng), truth


def speed(layout, tmp: Path, repeats: int) -> dict:
    rng = np.random.default_rng(1)
    jpg, _ = photo_of(layout, 0, 2, rng)
    path = tmp / "speed.jpg"
    path.write_bytes(jpg)
    times, parts = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        gray = scan.read_gray(path)
        t1 = time.perf_counter()
        markers = scan.detect_markers(gray)
        t2 = time.perf_counter()
        match = scan.match_page(markers, None, gray)
        t3 = time.perf_counter()
        scan.extract_page(gray, match, 32)
        scan.estimate_blur(gray, match)
        t4 = time.perf_counter()
        times.append(t4 - t0)
        if parts is None or t4 - t0 <= min(times):
            parts = {"decode": t1 - t0, "markers": t2 - t1, "homography": t3 - t2, "cells": t4 - t3}
    return {"image_px": [int(gray.shape[1]), int(gray.shape[0])],
            "jpeg_bytes": len(jpg),
            "seconds_per_page": round(float(np.median(times)), 3),
            "best_run_parts_s": {k: round(v, 3) for k, v in parts.items()}}


def accuracy(layout, tmp: Path, writers, image_size: int) -> dict:
    rng = np.random.default_rng(2024)
    per_writer, totals = {}, []
    extract_s, n_pages = 0.0, 0
    for w in writers:
        paths, truth_pages = [], {}
        for i in range(len(layout["pages"])):
            jpg, truth = photo_of(layout, i, w, rng)
            path = tmp / f"w{w}-p{i + 1}.jpg"
            path.write_bytes(jpg)
            paths.append(path)
            truth_pages[i + 1] = truth
        t0 = time.perf_counter()
        report = build.extract(paths, f"sim-{w}", tmp / f"out-w{w}", image_size=image_size,
                               quiet=True)
        extract_s += time.perf_counter() - t0
        n_pages += len(paths)
        figures = harness.score(truth_pages, report,
                                harness.records_by_cell(tmp / f"out-w{w}"), image_size)
        figures["pen_x_height"] = round(sim.SimWriter.make(0, w).pen, 3)
        figures["pages_found"] = sum(e["status"] == "ok" for e in report["images"])
        figures["blur_mm"] = [e.get("blur_mm") for e in report["images"]]
        per_writer[f"sim-{w}"] = {k: (round(v, 4) if isinstance(v, float) else v)
                                  for k, v in figures.items()}
        totals.append(figures)
    filled = sum(f["filled_cells"] for f in totals)
    return {
        "dpi": layout["dpi"], "pages": n_pages, "filled_cells": filled,
        "right_fraction": round(sum(f["right"] for f in totals) / max(1, filled), 4),
        "iou_mean": round(float(np.average([f["iou_mean"] for f in totals],
                                           weights=[f["filled_cells"] for f in totals])), 4),
        "iou_min": round(min(f["iou_min"] for f in totals), 4),
        "empty_cells": sum(f["empty_cells"] for f in totals),
        "false_glyphs_from_empty": sum(f["false_glyphs_from_empty"] for f in totals),
        "extract_seconds_per_page_with_dataset_write": round(extract_s / n_pages, 3),
        "per_writer": per_writer,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dpi", type=int, default=300)
    p.add_argument("--writers", default="0,3,7,11")
    p.add_argument("--speed_repeats", type=int, default=5)
    p.add_argument("--image_size", type=int, default=32)
    args = p.parse_args()
    layout = tpl.make_layout(dpi=args.dpi)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
               "speed": speed(layout, tmp, args.speed_repeats)}
        out["accuracy"] = accuracy(layout, tmp, [int(w) for w in args.writers.split(",")],
                                   args.image_size)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
