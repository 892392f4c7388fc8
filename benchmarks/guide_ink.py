"""Ink on the printed guide lines (issue 19), printed as JSON.

  python benchmarks/guide_ink.py [--dpi 200] [--seeds 0,1]

Cells of the default template's first page are written with strokes along and across each
guide (tests/data_pipeline/test_guide_ink.py: a z whose bars lie on the x-height line and the
baseline, flat-topped m arches on the dashed x-height line, a long bar on each guide alone, a
stroke crossing both, a + on the baseline), in blue, black, red and green ink, on the guide and
0.15 mm below it, photographed at three blur / JPEG settings. A second case prints the guides
nearly black (a copier's dark print) and writes with inks as grey as those guides read in the
photo: a neutral grey and the guide's own blue (test_guide_ink.SAME_GREY_INKS). Per case and
shape: the share of cells "ok", "suspicious" and "empty", the mean and minimum share of the
clean stroke's (normalised) ink kept (and the minimum among "ok" cells: ink lost without a
flag), and the mean soft IoU; per case, how many of the empty cells between the written ones
were read as glyphs.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data_pipeline import template as tpl  # noqa: E402
from tests.data_pipeline import test_guide_ink as gi  # noqa: E402
from tests.data_pipeline.test_extract import photograph  # noqa: E402

PHOTOS = [(0.6, 85), (1.0, 70), (1.5, 50)]  # (blur px, JPEG quality)
# (name, the blank page, the inks): the template as printed with the usual inks, and its guides
# printed nearly black with inks as grey as them in the photo (test_guide_ink.SAME_GREY_INKS).
CASES = (("pale guides", lambda layout: tpl.render_page(layout, 0), gi.INKS),
         ("dark guides, ink of their grey", lambda layout: gi.dark_guides_page(layout, 0),
          gi.SAME_GREY_INKS))


def run_case(layout: dict, blank, inks: dict, seeds, tmp: Path) -> dict:
    rows, empty_read, empty_cells = [], 0, 0
    for seed in seeds:
        for offset in (0.0, 0.15):
            page, truth = gi.write_guide_strokes(blank, layout, 0,
                                                 gi.all_cells(layout, inks=tuple(inks)),
                                                 offset, inks)
            for blur, quality in PHOTOS:
                rng = np.random.default_rng(seed)
                jpg = photograph(page, rng, quality=quality, blur=blur, noise=3.0)
                cells = gi.extract_photo(jpg, tmp)
                rows += gi.measure(cells, truth)
                empty = [c for key, c in cells.items() if key not in truth]
                empty_cells += len(empty)
                empty_read += sum(c.status != "empty" for c in empty)
    out = {"cells": len(rows), "empty cells read as glyphs": f"{empty_read} of {empty_cells}",
           "per_shape": {}}
    for shape in gi.SHAPES:
        r = [x for x in rows if x["shape"] == shape]
        status = [x["status"] for x in r]
        out["per_shape"][shape] = {
            "cells": len(r),
            **{s: round(status.count(s) / len(r), 3) for s in ("ok", "suspicious", "empty")},
            "kept_mean": round(float(np.mean([x["kept"] for x in r])), 3),
            "kept_min": round(float(np.min([x["kept"] for x in r])), 3),
            "ok_kept_min": round(float(min([x["kept"] for x in r if x["status"] == "ok"],
                                           default=1.0)), 3),
            "iou_mean": round(float(np.mean([x["iou"] for x in r])), 3),
            "reasons": sorted({s.split(" (")[0] for x in r for s in x["reasons"]}),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dpi", type=int, default=200)
    p.add_argument("--seeds", default="0,1")
    args = p.parse_args()
    layout = tpl.make_layout(dpi=args.dpi)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = {"dpi": args.dpi}
    with tempfile.TemporaryDirectory() as tmp:
        for name, blank, inks in CASES:
            out[name] = run_case(layout, blank(layout), inks, seeds, Path(tmp))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
