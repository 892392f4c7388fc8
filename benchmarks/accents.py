"""Accented letters in the hands of writers a few-shot model never saw (issue 18): each held-out
writer's style from k of their glyphs, then é è ê à â ç ñ ö ü å É Ü (and ø ß, shown) drawn in it
through the export's signatures (what `hwgan write` uses). Scores (hw_gan.evaluation.accents):
the mark's ink where it belongs (above the x-height, under the baseline) and the base letter read
by a character judge once the mark is cleared.

  python benchmarks/accents.py --model unipen_styles --data_dir data/unipen32_writers \\
      [--judge DIR] [--k 10] [--writers 31] [--picture docs/img/fewshot_accents.png]

--model: a fewshot export, or a shipped model's name. --judge: a character judge folder (default:
the shipped model's judge/). --data_dir: a dataset whose "test" split holds writers the model
never saw. Prints one line per character and a JSON summary, with the export's speed (warm
medians of 3 after a first call): one style from --k glyphs (extract_style) and a 200-character
paragraph written on a page in it (write_with_style).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from data_pipeline.dataset import load_glyphs, pick_samples  # noqa: E402
from data_pipeline.glyph import tile  # noqa: E402
from data_pipeline.schema import to_uint8  # noqa: E402
from hw_gan import shipped  # noqa: E402
from hw_gan.cli.style import ExportStyles  # noqa: E402
from hw_gan.evaluation import accents  # noqa: E402
from hw_gan.evaluation.judge import load_judge_dir  # noqa: E402
from hw_gan.export.names import WRITE_WITH_STYLE  # noqa: E402
from style_eval import PARAGRAPH  # noqa: E402  (benchmarks/style_eval.py, beside this script)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="unipen_styles")
    p.add_argument("--data_dir", required=True)
    p.add_argument("--judge", default="")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--writers", type=int, default=31)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--picture", default="")
    p.add_argument("--picture_writers", type=int, default=8)
    p.add_argument("--out_json", default="")
    args = p.parse_args()

    model_path = shipped.resolve_export(args.model)
    judge_dir = Path(args.judge) if args.judge else shipped.get(args.model).path / "judge"
    judge = load_judge_dir(judge_dir)
    styles = ExportStyles(model_path)
    images, chars, writers = load_glyphs(args.data_dir, "test", styles.resolution)
    names = json.loads((Path(args.data_dir) / "manifest.json").read_text())["charset"]
    # Style glyphs by label: the export reads characters, not this dataset's ids.
    index = {c: i for i, c in enumerate(styles.charset)}
    labels = list(accents.ACCENTED) + list(accents.SHOWN_TOO)

    def references(w):
        """Indices of up to k glyphs of writer w that the export has characters for."""
        idx = np.flatnonzero(writers == w)
        usable = idx[[names[c] in index for c in chars[idx]]]
        return usable[pick_samples(chars[usable], args.k,
                                   np.random.default_rng([args.seed, int(w)]))]

    def extract(pick):
        return styles.extract(images[pick], [index[names[c]] for c in chars[pick]], None, 0)

    rows, shown = [], []
    for n, w in enumerate(np.unique(writers)[:args.writers]):
        pick = references(w)
        ws = extract(pick)
        drawn = styles.draw(ws, "".join(labels))
        rows += accents.accent_report(drawn, labels, judge, judge.meta["charset"])
        if n < args.picture_writers:  # the drawn letters, a blank cell, their own k glyphs
            real = np.asarray(to_uint8(images[pick]))[..., 0]
            shown.append(np.concatenate([drawn[..., 0], np.zeros_like(real[:1]), real], 0))
    per_char = {}
    for r in rows:
        per_char.setdefault(r["char"], []).append(r)
    for c, rs in per_char.items():
        s = accents.summary(rs)
        misread = sorted({r["read"] for r in rs if not r["base_ok"]})
        print(f"{c}: mark {s['mark_ok']:.2f} ({rs[0]['mark']}), base read as "
              f"{rs[0]['base']} {s['base_ok']:.2f}" + (f" (else {''.join(misread)})"
                                                        if misread else ""))
    doc = {"model": args.model, "k": args.k, "writers": len(np.unique(writers)[:args.writers]),
           "judge": str(judge_dir), **accents.summary(rows),
           "per_char": {c: accents.summary(rs) for c, rs in per_char.items()}}
    # Speed through the export (what `hwgan write --samples` and TF Serving clients use), warm:
    # one style from k glyphs, then a 200-character paragraph laid out on a page in it.
    import tensorflow as tf

    text = (PARAGRAPH * 4)[:200]
    write = styles.loaded.signatures[WRITE_WITH_STYLE]
    pick = references(np.unique(writers)[0])  # the first writer's, as in the loop above
    times = {"extract": [], "page": []}
    for _ in range(4):
        t0 = time.perf_counter()
        ws = extract(pick)
        times["extract"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        write(text=tf.constant(text), style=tf.constant(ws, tf.float32),
                     seed=tf.constant(0, tf.int64), variation=tf.constant(0.1),
                     line_width=tf.constant(1200))
        times["page"].append(time.perf_counter() - t0)
    doc["seconds"] = {"extract_style_k": round(float(np.median(times["extract"][1:])), 3),
                      "page_200_chars": round(float(np.median(times["page"][1:])), 3),
                      "first_calls": [round(times["extract"][0], 3), round(times["page"][0], 3)]}
    print(json.dumps(doc, indent=1))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.picture and shown:
        import cv2

        cols = max(len(s) for s in shown)
        cells = np.concatenate([np.concatenate([s, np.zeros((cols - len(s),) + s.shape[1:],
                                                            np.uint8)]) for s in shown])
        cv2.imwrite(args.picture, tile(cells, cols, gap=2, scale=2, invert=True))
        print(f"picture: {args.picture} (per writer: the drawn letters, then k of their own "
              "glyphs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
