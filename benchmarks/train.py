"""Train-step throughput of each model family, printed as JSON.

  python benchmarks/train.py [--families char_cgan,style_cgan] [--widths 0.25,1.0]
                             [--batches 64,256] [--steps 30]

Images/s of the full GAN step (D step + G step, lazy R1 every 4 steps, EMA update) on random
glyphs, float32. On a GPU it also compares mixed_float16 and XLA, and reports the fraction of
the GPU's peak FLOP rate reached (from the step's counted FLOPs and --peak_tflops).
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
import tensorflow as tf  # noqa: E402

from data_pipeline import tfrecords  # noqa: E402
from data_pipeline.schema import GlyphRecord  # noqa: E402
from hw_gan import config as config_lib  # noqa: E402
from hw_gan.training import strategy as strategy_lib  # noqa: E402
from hw_gan.training import make_trainer  # noqa: E402


class RandomGlyphs:
    name = "random"
    params: dict = {}

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __iter__(self):
        rng = np.random.default_rng(0)
        for i in range(self.n):
            yield GlyphRecord("abcdefghij"[i % 10], f"w{i % 20}", "random",
                              rng.integers(0, 256, (self.size, self.size), dtype=np.uint8),
                              key=str(i))


def step_flops(trainer) -> float:
    """FLOPs of one traced train step, from TF's profiler on the concrete graph (None if the
    profiler cannot count it)."""
    try:
        from tensorflow.python.profiler import model_analyzer, option_builder

        fn = trainer._train_step_fn(False)
        concrete = fn.get_concrete_function(iter(trainer.dataset(0)))
        opts = option_builder.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        info = model_analyzer.profile(concrete.graph, options=opts)
        return float(info.total_float_ops)
    except Exception:  # the profiler is best-effort across TF versions
        return float("nan")


def measure(data_dir, family, width, batch, resolution, steps, precision, jit) -> dict:
    strategy_lib.set_precision(precision)
    manifest = tfrecords.load_manifest(data_dir)
    cfg = config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data_dir)),
        model=config_lib.ModelConfig(family=family, resolution=resolution, width=width,
                                     num_chars=len(manifest["charset"]),
                                     num_writers=len(manifest["writers"])),
        train=config_lib.TrainConfig(batch_size=batch, steps=10**9, r1_interval=4),
        runtime=config_lib.RuntimeConfig(model_dir=tempfile.mkdtemp(), precision=precision,
                                         jit_compile=jit))
    trainer = make_trainer(cfg, tf.distribute.get_strategy(), manifest)
    it = iter(trainer.dataset(0))
    fns = {r1: trainer._train_step_fn(r1) for r1 in (True, False)}
    for r1 in (True, False):  # trace and warm up both variants
        for _ in range(2):
            fns[r1](it)
    t0 = time.perf_counter()
    for i in range(steps):
        out = fns[i % 4 == 0](it)
    float(out["g_loss"])
    seconds = time.perf_counter() - t0
    rate = steps * batch / seconds
    result = {"family": family, "width": width, "batch": batch, "resolution": resolution,
              "precision": precision, "jit": jit, "images_per_s": round(rate, 1)}
    if tf.config.list_physical_devices("GPU"):
        flops = step_flops(trainer)
        result["flops_per_step"] = flops
        result["tflops_per_s"] = round(flops * steps / seconds / 1e12, 3)
    strategy_lib.set_precision("float32")
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--families", default="char_cgan,style_cgan,stylegan")
    p.add_argument("--widths", default="0.25,1.0")
    p.add_argument("--batches", default="64,256")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--peak_tflops", type=float, default=989.0,
                   help="GPU peak dense TFLOP/s for the fraction-of-peak figure (H100 bf16: 989)")
    args = p.parse_args()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    variants = [("float32", False)]
    if gpu:
        variants += [("mixed_float16", False), ("float32", True), ("mixed_float16", True)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "ds"
        tfrecords.write_dataset(RandomGlyphs(4096, args.resolution), data_dir, split="none",
                                progress=False)
        for family in args.families.split(","):
            for width in map(float, args.widths.split(",")):
                for batch in map(int, args.batches.split(",")):
                    for precision, jit in variants:
                        r = measure(data_dir, family, width, batch, args.resolution, args.steps,
                                    precision, jit)
                        if gpu and r.get("tflops_per_s") == r.get("tflops_per_s"):
                            r["fraction_of_peak"] = round(r["tflops_per_s"] / args.peak_tflops, 4)
                        print(json.dumps(r), file=sys.stderr)
                        results.append(r)
    print(json.dumps({"device": "gpu" if gpu else "cpu", "cpu_count": os.cpu_count(),
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
