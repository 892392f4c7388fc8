"""Data pipeline throughput, printed as JSON.

  python benchmarks/pipeline.py [--ink PATH] [--read_batches 400]

Build rate (glyphs/s, whole build: render, encode, shard, manifest, contact sheet) for the
simulated source and for the ink source (UNIPEN's file when --ink names it or it lies in
../shared/data/unipen, else a synthetic stroke file), and read rate of make_dataset at 32x32,
batch 256, with and without the in-memory cache.
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

from data_pipeline import dataset, sources, tfrecords  # noqa: E402

DEFAULT_INK = Path(__file__).resolve().parents[2] / "shared/data/unipen/unipen_train_strokes.npz"


def synthetic_ink(path: Path, n: int = 20000, seed: int = 0) -> str:
    """Random smooth pen strokes in UNIPEN's layout (for machines without ../shared)."""
    rng = np.random.default_rng(seed)
    points, lengths, counts = [], [], []
    for _ in range(n):
        k = int(rng.integers(1, 3))
        for _ in range(k):
            m = int(rng.integers(15, 60))
            points.append(np.cumsum(rng.normal(0, 5, (m, 2)), 0).astype(np.float32))
            lengths.append(m)
        counts.append(k)
    np.savez(path, points=np.concatenate(points), stroke_lengths=np.array(lengths, np.int32),
             sample_stroke_counts=np.array(counts, np.int32),
             labels=np.array(list("abcdefghij") * (n // 10)),
             writer_ids=(np.arange(n) % 50).astype(np.int32),
             writer_names=np.array([f"w{i}" for i in range(50)]))
    return str(path)


def build_rate(name: str, params: dict, out: Path) -> dict:
    t0 = time.perf_counter()
    src = sources.open_source(name, **params)
    manifest = tfrecords.write_dataset(src, out, progress=False)
    seconds = time.perf_counter() - t0
    n = sum(s["count"] for s in manifest["splits"].values())
    return {"glyphs": n, "seconds": round(seconds, 2), "glyphs_per_s": round(n / seconds, 1)}


def read_rate(data_dir: Path, batches: int, cache: bool) -> float:
    ds = dataset.make_dataset(data_dir, "train", 256, image_size=32, cache=cache)
    it = iter(ds)
    for _ in range(batches if cache else 20):  # warm up (fills the cache when there is one)
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return round(batches * 256 / (time.perf_counter() - t0), 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ink", default=str(DEFAULT_INK) if DEFAULT_INK.exists() else "")
    p.add_argument("--read_batches", type=int, default=400)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ink = args.ink or synthetic_ink(tmp / "synthetic.npz")
        results = {
            "build_simulated": build_rate("simulated", {"num_writers": 40, "samples_per_char": 4},
                                          tmp / "sim"),
            "build_ink": build_rate("ink", {"path": ink}, tmp / "ink"),
            "ink_file": ink,
        }
        results["read_32x32_batch256_images_per_s"] = read_rate(tmp / "ink", args.read_batches, False)
        results["read_32x32_batch256_cached_images_per_s"] = read_rate(tmp / "ink",
                                                                       args.read_batches, True)
        results["cpu_count"] = os.cpu_count()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
