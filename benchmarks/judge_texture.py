"""Does a writer judge measure the hand or how the strokes are rendered?

  python benchmarks/judge_texture.py --init runs/unipen_writers_base \
      --heldout_data data/unipen32_writers [--writers 4] [--judges writer,writer:texture]

For each of the first --writers writers of the held-out split of --heldout_data (a writer-split
dataset, as benchmarks/adapt.py uses it), the writer's glyphs are cut into the same held-out half
and adaptation half as there. The "generated" glyphs of benchmarks/adapt.py's distances are
replaced by REAL glyphs: the writer's own adaptation half, the same glyphs re-rendered (a
Gaussian blur of sigma 0.5 and 1 px, a 2x2 grey dilation, a 2x2 erosion), and the adaptation
halves of the other writers. The char_dist to the writer's held-out half (mean over characters of
|| mean feature of the given glyphs - mean feature of the held-out glyphs ||, the judge's
penultimate layer) is printed for each judge. A judge that measures the hand keeps the writer's
own glyphs close whatever the rendering, and puts the other writers further away.
KIND:texture judges are trained once on the base's data (benchmarks/adapt.py: augmented_judge).
Prints JSON.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import adapt as adapt_bench  # noqa: E402  (benchmarks/adapt.py)


def _blur(sigma):
    import cv2

    return lambda x: np.stack([cv2.GaussianBlur(i[..., 0], (0, 0), sigma)[..., None] for i in x])


def _morph(op):
    import cv2

    kernel = np.ones((2, 2), np.uint8)
    f = cv2.dilate if op == "dilate" else cv2.erode
    return lambda x: np.stack([f(i[..., 0], kernel)[..., None] for i in x])


EDITS = {"as written": lambda x: x, "blur 0.5 px": _blur(0.5), "blur 1 px": _blur(1.0),
         "dilate 2x2": _morph("dilate"), "erode 2x2": _morph("erode")}


def glyph_source(records, charset, edit, seed: int = 0):
    """generate(char_ids, writer_ids, seed) returning, for each requested character, one of the
    given glyphs of that character (seeded), re-rendered by `edit`."""
    by_char = {}
    for r in records:
        by_char.setdefault(charset.index(r.char), []).append(r)

    def generate(char_ids, writer_ids, s):
        rng = np.random.default_rng([seed, s])
        picks = [by_char[int(c)][rng.integers(len(by_char[int(c)]))] for c in char_ids]
        return edit(adapt_bench.to_float(picks)).astype(np.float32)

    return set(by_char), generate


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", default="runs/unipen_writers_base")
    p.add_argument("--heldout_data", default="data/unipen32_writers")
    p.add_argument("--heldout_split", default="test")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--judges", default="char,writer,writer:texture")
    p.add_argument("--per_char", type=int, default=3)
    args = p.parse_args(argv)

    import tensorflow as tf

    from data_pipeline import tfrecords

    tf.get_logger().setLevel("ERROR")
    t0 = time.perf_counter()
    base_dir = Path(args.init)
    charset = json.loads((base_dir / "dataset.json").read_text())["charset"]
    judges = adapt_bench.load_judges(base_dir, args.judges)
    names = list(tfrecords.load_manifest(args.heldout_data)["splits"][args.heldout_split]
                 ["per_writer"])[:args.writers]
    halves = {n: adapt_bench.real_writer(args.heldout_data, args.heldout_split, n) for n in names}
    out = {"init": str(base_dir), "heldout_data": args.heldout_data,
           "judges": {k: j.real_accuracy for k, j in judges.items()}, "writers": {}}
    for name in names:
        held, _ = halves[name]
        held_imgs = adapt_bench.to_float(held)
        held_chars = np.array([charset.index(r.char) for r in held], np.int32)
        rows = {}
        sources = [(f"own, {e}", name, f) for e, f in EDITS.items()]
        sources += [(f"other writer {o}", o, EDITS["as written"]) for o in names if o != name]
        for label, src, edit in sources:
            given = [r for v in sorted(halves[src][1]) for r in halves[src][1][v]]
            chars, generate = glyph_source(given, charset, edit)
            keep = np.isin(held_chars, list(chars))  # characters both halves have
            dists = adapt_bench.writer_distances(generate, [0], judges, held_imgs[keep],
                                                 held_chars[keep], args.per_char)
            rows[label] = {k: round(float(d[0][0]), 3) for k, d in dists.items()}
            rows[label]["held_out_glyphs"] = int(keep.sum())
        out["writers"][name] = rows
        print(json.dumps({name: rows}), file=sys.stderr, flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
