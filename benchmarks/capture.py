"""The held-out writers' reference glyphs from another capture set-up (data_pipeline/capture.py):
how many come back, how long it takes, how far they move from the clean glyphs, and a picture.

  python benchmarks/capture.py --data_dir data/unipen32_writers [--capture pen=0.09] \
      [--out /tmp/capture_pen009.npz] [--picture docs/img/capture_shift.png] [--workdir DIR]

The glyphs are those of the held-out split's reference pools (hw_gan.inversion.evaluate, seed
0): each re-drawn from its strokes with the given pen, written into printed template sheets,
photographed, extracted. Prints a JSON report: glyphs asked / back / lost (with reasons),
suspicious cells, sheet pages, seconds, and the similarity of each re-captured glyph to its
clean one (soft IoU of ink after a +-1 px alignment, as tests/data_pipeline/test_extract.py
scores extraction; ink per glyph). --out keeps the glyphs for `benchmarks/style_eval.py
--capture ... --capture_cache` (and is reused when it holds the same re-capture). The picture: for a few writers, a row of clean glyphs above
the same glyphs re-captured.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def similarity(clean: np.ndarray, back: np.ndarray) -> dict:
    """Soft IoU and ink of uint8 ink-high glyph pairs [N, R, R]."""
    from data_pipeline.sheet_sim import soft_iou

    iou = np.array([soft_iou(a, b) for a, b in zip(clean, back)])
    ink = back.reshape(len(back), -1).sum(1) / np.maximum(clean.reshape(len(clean), -1).sum(1), 1)
    return {"soft_iou_mean": round(float(iou.mean()), 4),
            "soft_iou_quartiles": [round(float(q), 4) for q in np.percentile(iou, [25, 50, 75])],
            "soft_iou_min": round(float(iou.min()), 4),
            "ink_ratio_median": round(float(np.median(ink)), 3)}


def picture(clean: np.ndarray, back: np.ndarray, writers: np.ndarray, n_writers: int = 5,
            n_chars: int = 14) -> np.ndarray:
    """uint8 dark-on-white: per writer, n_chars clean glyphs above the same re-captured, a
    blank row between writers."""
    from data_pipeline.glyph import tile

    r = clean.shape[1]
    cells, blank = [], []
    for w in np.unique(writers)[:n_writers]:
        idx = np.flatnonzero(writers == w)[:n_chars]
        pad = n_chars - len(idx)
        for block in (clean[idx], back[idx]):
            cells += list(block) + [np.zeros((r, r), np.uint8)] * pad
            blank += [False] * len(idx) + [True] * pad
        cells += [np.zeros((r, r), np.uint8)] * n_chars
        blank += [True] * n_chars
    return tile(np.stack(cells[:-n_chars]), n_chars, gap=2, gap_value=255, scale=2,
                invert=True, blank=blank[:-n_chars])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="a dataset of the ink source, split=writer")
    p.add_argument("--capture", default="pen=0.09", help="pen=..,size=..,dpi=..,repeats=..,seed=..")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0, help="the evaluation's pool seed")
    p.add_argument("--strokes", help="the stroke file(s), if not where the manifest says")
    p.add_argument("--out", help=".npz of the re-captured glyphs (style_eval --capture_cache)")
    p.add_argument("--picture")
    p.add_argument("--workdir", help="keep the photographed sheets here")
    args = p.parse_args()

    from data_pipeline import atomic, capture, schema, tfrecords
    from hw_gan.inversion import evaluate

    setup = capture.CaptureSetup.parse(args.capture)
    size = int(tfrecords.load_manifest(args.data_dir)["resolution"][0])
    t0 = time.perf_counter()
    got = evaluate.recapture_references(
        args.data_dir, setup, heldout_split=args.split, image_size=size, seed=args.seed,
        strokes=args.strokes, cache=args.out, workdir=args.workdir,
        log=lambda m: print(m, flush=True))
    seconds = time.perf_counter() - t0
    h = evaluate.load_heldout(args.data_dir, args.split, "train", size, args.seed)
    clean = schema.to_uint8(h.images[..., 0])
    both = np.flatnonzero(got.captured)
    out = {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
           "heldout_glyphs": int(len(h.images)), "heldout_writers": len(h.writer_ids),
           "reference_pool_glyphs": int(len(h.reference_indices)), **got.report,
           "seconds_with_loading_and_check": round(seconds, 1),
           "similarity_to_clean": similarity(clean[both], got.glyphs[both])}
    if args.picture:
        import cv2

        ok, png = cv2.imencode(".png", picture(clean[both], got.glyphs[both], h.writers[both]))
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(args.picture, png.tobytes())
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
