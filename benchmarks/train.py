"""Training speed: throughput of the GAN step, cores used and where the time goes, as JSON.

  python benchmarks/train.py [--configs style_cgan_cpu,stylegan_cpu] [--steps 40]
      one measurement per shipped config (configs/unipen_*_cpu.cfg and the quickstart),
      in this checkout: step throughput, cores busy and the time of each phase.

  python benchmarks/train.py --trace DIR [--configs ...]
      also a TensorBoard profiler trace of 8 steps per config under DIR, summarised as
      milliseconds per step by op type and by model (forward / backward).

  python benchmarks/train.py --compare REF [--rounds 2] [--configs ...]
      the same, alternating this checkout and commit REF (checked out in a temporary git
      worktree) on the same machine: round 1 this / REF, round 2 REF / this, ...; prints each
      side's figures and the speed-up of this checkout over REF: of the median images/s,
      per round (the two sides back to back, under like load) and of the CPU time per step.

  python benchmarks/train.py --grid [--families char_cgan,style_cgan] [--widths 0.25,1.0]
                             [--batches 64,256]
      images/s of the full step over a grid of families, widths and batches; on a GPU it also
      compares mixed_float16 and XLA and reports the fraction of the GPU's peak FLOP rate.

Every measurement runs in a fresh process, on random glyphs (62 characters, 300 writers, as the
UNIPEN data; a config's held-out characters they lack are dropped), with the model, batch,
precision and training settings of the named config (read by the tree's own flag parser, so
each side of a comparison uses its own defaults; --flags adds flags to this checkout's side).
Figures:

  images_per_s    the training step as `train()` calls it (the R1 step every r1_interval
                  steps), over --steps timed steps after a warm-up that traces every variant
  cores           process CPU time / wall time over those timed steps (2.0 = both cores)
  phases_ms       milliseconds per training step of each phase, each timed alone on a fixed
                  batch: input (the tf.data pipeline alone), d_step, r1 (the R1 step's extra
                  cost, spread over r1_interval steps), g_step, ema, summaries (scalars every
                  log_every and the image grid every image_every steps, spread per step) and
                  checkpoint (one save spread over checkpoint_every steps). The D, G and EMA
                  phases need a trainer that exposes them (_d_step, _g_step, _ema_update);
                  older trees report null there. With lazy style regularisation
                  (--style_reg_interval=N) g_step is the mean over N steps and
                  g_step_unregularised the step without it.

Absolute times are noise while anything else runs; compare figures from one --compare run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SRC = Path(os.environ.get("HWGAN_BENCH_SRC", REPO))  # the tree whose library is measured
sys.path.insert(0, str(SRC))

import numpy as np  # noqa: E402

CONFIGS = {
    "style_cgan_cpu": "configs/unipen_style_cgan_cpu.cfg",
    "stylegan_cpu": "configs/unipen_stylegan_cpu.cfg",
    "quickstart": "configs/quickstart.cfg",
    "fewshot_cpu": "configs/unipen_fewshot_cpu.cfg",
}
NUM_CHARS, NUM_WRITERS, NUM_GLYPHS = 62, 300, 8192


class RandomGlyphs:
    name = "random"
    params: dict = {}

    def __init__(self, n, size, num_chars=NUM_CHARS, num_writers=NUM_WRITERS):
        self.n, self.size = n, size
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        self.chars = alphabet[:num_chars]
        self.num_writers = num_writers

    def __len__(self):
        return self.n

    def __iter__(self):
        from data_pipeline.schema import GlyphRecord

        rng = np.random.default_rng(0)
        for i in range(self.n):
            yield GlyphRecord(self.chars[i % len(self.chars)], f"w{i % self.num_writers:03d}",
                              "random", rng.integers(0, 256, (self.size, self.size),
                                                     dtype=np.uint8), key=str(i))


def write_random_dataset(data_dir: Path, size: int = 32, n: int = NUM_GLYPHS) -> None:
    from data_pipeline import tfrecords

    tfrecords.write_dataset(RandomGlyphs(n, size), data_dir, split="none", progress=False)


# ------------------------------------------------------------------------------------------------
# One measurement (runs in its own process: `--one JSON`)


def _timed(fn, n: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call of fn(), over n calls."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def _config(config_file: str, data_dir: str, model_dir: str, extra_flags=()):
    """The tree's own ExperimentConfig for `config_file`, on `data_dir`, sized by the
    dataset's manifest."""
    import dataclasses

    from absl import flags

    from data_pipeline import tfrecords
    from hw_gan.cli import train as train_cli

    train_cli.define_flags()
    flags.FLAGS([sys.argv[0], f"--flagfile={config_file}", f"--data_dir={data_dir}",
                 f"--model_dir={model_dir}", "--steps=1000000000",
                 "--strategy=default", *extra_flags])
    cfg = train_cli.config_from_flags()
    manifest = tfrecords.load_manifest(data_dir)
    # Held-out characters the random glyphs lack (the few-shot config's & @) are dropped: they
    # only keep glyphs out of training.
    holdout = "".join(c for c in getattr(cfg.data, "holdout_chars", "")
                      if c in manifest["charset"])
    if holdout != getattr(cfg.data, "holdout_chars", ""):
        cfg = cfg.replace(data=dataclasses.replace(cfg.data, holdout_chars=holdout))
    return cfg.replace(model=dataclasses.replace(
        cfg.model, num_chars=len(manifest["charset"]),
        num_writers=len(manifest["writers"]))), manifest


def measure_config(config_file: str, data_dir: str, steps: int, extra_flags=(),
                   trace_dir: str = "") -> dict:
    import dataclasses

    import keras
    import tensorflow as tf

    from hw_gan.training import make_trainer
    from hw_gan.training import strategy as strategy_lib

    model_dir = tempfile.mkdtemp(prefix="hwgan-bench-")
    cfg, manifest = _config(config_file, data_dir, model_dir, extra_flags)
    if hasattr(strategy_lib, "resolve_precision"):  # --precision=auto, as hw_gan.experiment
        cfg = cfg.replace(runtime=dataclasses.replace(
            cfg.runtime, precision=strategy_lib.resolve_precision(cfg.runtime.precision)))
    if hasattr(strategy_lib, "resolve_jit_compile"):  # --jit_compile=auto, as hw_gan.experiment
        cfg = cfg.replace(runtime=dataclasses.replace(
            cfg.runtime, jit_compile=strategy_lib.resolve_jit_compile(cfg.runtime.jit_compile)))
    strategy_lib.set_precision(cfg.runtime.precision)
    keras.utils.set_random_seed(cfg.train.seed)
    trainer = make_trainer(cfg, tf.distribute.get_strategy(), manifest)
    t = cfg.train
    interval = max(1, int(t.r1_interval)) if t.r1_gamma > 0 else 0

    lazy = hasattr(trainer, "regularises")  # older trees have no lazy G regularisation

    def step_fn(step):
        """The compiled step train() runs at `step` (R1 and lazy regularisation schedules)."""
        with_r1 = bool(interval) and step % interval == 0
        if lazy:
            return trainer._train_step_fn(with_r1, trainer.regularises(step))
        return trainer._train_step_fn(with_r1)

    # The step as train() runs it, after a warm-up that traces every variant.
    it = iter(trainer.dataset(0))
    step = 0
    for _ in range(max(2, interval + 1, int(getattr(t, "style_reg_interval", 1)) + 1) + 2):
        step_fn(step)(it)
        step += 1
    out = None
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = step_fn(step)(it)
        step += 1
    float(out["g_loss"])  # the last step has finished
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if trace_dir:
        result_ops = trace(it, step, step_fn, trace_dir)
    result = {"config": config_file, "family": cfg.model.family, "width": cfg.model.width,
              "precision": cfg.runtime.precision, "jit": bool(cfg.runtime.jit_compile),
              "batch": t.batch_size, "resolution": cfg.model.resolution, "steps": steps,
              "images_per_s": round(steps * t.batch_size / wall, 1),
              "ms_per_step": round(1000 * wall / steps, 1), "cores": round(cpu / wall, 2),
              "phases_ms": phases(trainer, cfg, max(4, steps // 4), interval)}
    if trace_dir:
        result["trace"] = result_ops
    return result


def trace(it, step: int, step_fn, logdir: str, steps: int = 8) -> dict:
    """A TensorBoard profiler trace of `steps` training steps in `logdir`, and what it holds:
    {"ms_per_step": {op type: ms}, "by_model": {model/fwd|bwd: ms}} from the host plane's
    executor threads (op kernels only; the profiler slows the step down)."""
    import collections
    import re

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        out = step_fn(step)(it)
        step += 1
    float(out["g_loss"])
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(sorted(Path(logdir).rglob("*.xplane.pb"))[-1].read_bytes())
    by_type, by_model = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith("ExecutorState"):  # spans, not kernels
                    continue
                ms = event.duration_ps / 1e9 / steps
                by_type[name.rsplit(":", 1)[1]] += ms
                m = re.search(r"([a-z_]*(?:generator|discriminator|encoder|synthesis|mapping)"
                              r"[a-z_]*)", name)
                model = re.sub(r"_\d+$", "", m.group(1)) if m else "other"
                by_model[f"{model}/{'bwd' if 'gradient' in name else 'fwd'}"] += ms
    return {"logdir": logdir, "steps": steps,
            "total_ms_per_step": round(sum(by_type.values()), 1),
            "ms_per_step": {k: round(v, 2) for k, v in by_type.most_common(15)},
            "by_model": {k: round(v, 1) for k, v in by_model.most_common()}}


def phases(trainer, cfg, n: int, interval: int) -> dict:
    """Milliseconds per training step of each phase, each timed alone (see the module doc)."""
    import tensorflow as tf

    t = cfg.train
    out = {}
    pipe = iter(trainer.dataset(0))
    next(pipe)
    wall, cpu = _timed(lambda: next(pipe), n)
    out["input"] = round(1000 * wall, 1)
    out["input_cpu"] = round(1000 * cpu, 1)
    batch = next(iter(trainer.dataset(0)))
    step = tf.constant(10**6, tf.int64)  # past ema_start: the real decay
    run = trainer.strategy.run
    if all(hasattr(trainer, name) for name in ("_d_step", "_g_step", "_ema_update")):
        d = tf.function(lambda b, s: run(trainer._d_step, args=(b, s, False)))
        d_r1 = tf.function(lambda b, s: run(trainer._d_step, args=(b, s, True)))
        g = tf.function(lambda b, s: run(trainer._g_step, args=(b, s)))
        ema = tf.function(trainer._ema_update)
        for fn, args in ((d, (batch, step)), (d_r1, (batch, step)), (g, (batch, step)),
                         (ema, (step,))):
            fn(*args)
        out["d_step"] = round(1000 * _timed(lambda: d(batch, step), n)[0], 1)
        d_r1_ms = 1000 * _timed(lambda: d_r1(batch, step), max(2, n // 2))[0]
        out["r1"] = round((d_r1_ms - out["d_step"]) / interval, 1) if interval else 0.0
        out["g_step"] = round(1000 * _timed(lambda: g(batch, step), n)[0], 1)
        lazy = int(getattr(t, "style_reg_interval", 1))
        if lazy > 1:  # G's step without the lazy regularisation, and the mean over N steps
            g_plain = tf.function(lambda b, s: run(trainer._g_step, args=(b, s, False)))
            g_plain(batch, step)
            out["g_step_unregularised"] = round(1000 * _timed(lambda: g_plain(batch, step),
                                                             n)[0], 1)
            out["g_step"] = round((out["g_step"] + (lazy - 1) * out["g_step_unregularised"])
                                  / lazy, 1)
        out["ema"] = round(1000 * _timed(lambda: ema(step), n)[0], 2)
    else:
        out.update(d_step=None, r1=None, g_step=None, ema=None)
    values = {"d_loss": 1.0, "g_loss": 1.0, "r1": 0.1}
    writer = tf.summary.create_file_writer(str(Path(cfg.runtime.model_dir) / "train"))
    grid = trainer._grid_ids()

    def scalars():
        trainer._log_scalars(writer, 1, values, 1.0)

    def image():
        with writer.as_default(step=1):
            tf.summary.image("samples/chars_x_writers", trainer.sample_grid(*grid))

    scalars(), image()
    scalars_ms = 1000 * _timed(scalars, 5)[0]
    image_ms = 1000 * _timed(image, 3)[0]
    out["summaries"] = round(scalars_ms / t.log_every + image_ms / t.image_every, 2)
    trainer.save()
    save_ms = 1000 * _timed(trainer.save, 2)[0]
    out["checkpoint"] = round(save_ms / t.checkpoint_every, 2)
    out["checkpoint_save_ms"] = round(save_ms, 1)
    return out


def measure_grid(data_dir, family, width, batch, resolution, steps, precision, jit) -> dict:
    """Images/s of one family / width / batch / precision (the --grid mode)."""
    import tensorflow as tf

    from data_pipeline import tfrecords
    from hw_gan import config as config_lib
    from hw_gan.training import make_trainer
    from hw_gan.training import strategy as strategy_lib

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
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        out = fns[i % 4 == 0](it)
    float(out["g_loss"])
    seconds = time.perf_counter() - t0
    result = {"family": family, "width": width, "batch": batch, "resolution": resolution,
              "precision": precision, "jit": jit,
              "images_per_s": round(steps * batch / seconds, 1),
              "cores": round((time.process_time() - c0) / seconds, 2)}
    if tf.config.list_physical_devices("GPU"):
        flops = step_flops(trainer)
        result["flops_per_step"] = flops
        result["tflops_per_s"] = round(flops * steps / seconds / 1e12, 3)
    strategy_lib.set_precision("float32")
    return result


def step_flops(trainer) -> float:
    """FLOPs of one traced train step, from TF's profiler on the concrete graph (nan if the
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


# ------------------------------------------------------------------------------------------------
# Drivers


def run_one(tree: Path, job: dict) -> dict:
    """One measurement in a fresh process whose library comes from `tree`."""
    env = dict(os.environ, HWGAN_BENCH_SRC=str(tree), PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one",
                           json.dumps(job)], env=env, cwd=tree, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"measurement in {tree} failed ({job['config']}):\n"
                         + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worktree(ref: str, parent: Path) -> Path:
    """`ref` checked out (detached) in a new git worktree under `parent`."""
    path = parent / f"ref-{ref[:12]}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(path), ref],
                   check=True, capture_output=True, text=True)
    return path


def _median(values):
    return float(np.median(values)) if values else None


def summarize(rows: list[dict]) -> dict:
    """Median over rounds of each figure (phases too)."""
    out = {"rounds": len(rows), "images_per_s": _median([r["images_per_s"] for r in rows]),
           "cores": _median([r["cores"] for r in rows]),
           "ms_per_step": _median([r["ms_per_step"] for r in rows]),
           "per_round_images_per_s": [r["images_per_s"] for r in rows],
           # CPU time per step (cores x wall): the work a step costs, less sensitive to how
           # much of the machine others take than the wall time
           "cpu_ms_per_step": _median([r["cores"] * r["ms_per_step"] for r in rows])}
    keys = rows[0]["phases_ms"].keys()
    out["phases_ms"] = {k: (None if rows[0]["phases_ms"][k] is None else
                            round(_median([r["phases_ms"][k] for r in rows]), 2)) for k in keys}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="style_cgan_cpu,stylegan_cpu",
                   help=f"comma-separated names from {sorted(CONFIGS)} or config file paths")
    p.add_argument("--steps", type=int, default=40, help="timed training steps per measurement")
    p.add_argument("--compare", metavar="REF", help="a commit to alternate with this checkout")
    p.add_argument("--rounds", type=int, default=2, help="--compare: rounds per config")
    p.add_argument("--flags", default="",
                   help="extra training flags for this checkout's side, space-separated "
                        "(e.g. '--batch_size=128')")
    p.add_argument("--trace", metavar="DIR",
                   help="also write a TensorBoard profiler trace of 8 steps per config under "
                        "DIR and print its time per op type and per model (this checkout)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--grid", action="store_true", help="the family x width x batch grid")
    p.add_argument("--families", default="char_cgan,style_cgan,stylegan")
    p.add_argument("--widths", default="0.25,1.0")
    p.add_argument("--batches", default="64,256")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--peak_tflops", type=float, default=989.0,
                   help="GPU peak dense TFLOP/s for the fraction-of-peak figure (H100 bf16: 989)")
    args = p.parse_args()
    if args.one:
        job = json.loads(args.one)
        print(json.dumps(measure_config(job["config"], job["data_dir"], job["steps"],
                                        job.get("flags", ()), job.get("trace", ""))))
        return
    if args.grid:
        return grid(args)
    names = [c for c in args.configs.split(",") if c]
    configs = [CONFIGS.get(c, c) for c in names]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_dir = tmp / "random"
        write_random_dataset(data_dir)
        sides = {"this": REPO}
        if args.compare:
            sides["ref"] = worktree(args.compare, tmp)
        rows = {c: {s: [] for s in sides} for c in configs}
        try:
            for config in configs:
                for r in range(args.rounds if args.compare else 1):
                    order = list(sides) if r % 2 == 0 else list(reversed(sides))
                    for side in order:
                        job = {"config": config, "data_dir": str(data_dir), "steps": args.steps,
                               "flags": args.flags.split() if side == "this" else []}
                        if args.trace and side == "this" and r == 0:
                            job["trace"] = str(Path(args.trace).resolve() / Path(config).stem)
                        row = run_one(sides[side], job)
                        row.update(side=side, round=r + 1)
                        print(json.dumps(row), file=sys.stderr)
                        rows[config][side].append(row)
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(sides["ref"])], capture_output=True)
    report = {"cpu_count": os.cpu_count(), "steps": args.steps, "flags": args.flags,
              "compare": args.compare, "configs": {}}
    for config in configs:
        entry = {side: summarize(rows[config][side]) for side in sides}
        if args.trace:
            entry["this"]["trace"] = rows[config]["this"][0].get("trace")
        if args.compare:
            this, ref = rows[config]["this"], rows[config]["ref"]
            entry["speedup"] = round(entry["this"]["images_per_s"] / entry["ref"]["images_per_s"],
                                     3)
            # Each round measures the two sides back to back, so a round's ratio compares like
            # load with like; the median ratio can mix a quiet round of one side with a busy one.
            entry["per_round_speedup"] = [round(a["images_per_s"] / b["images_per_s"], 3)
                                          for a, b in zip(this, ref)]
            entry["cpu_time_ratio"] = round(entry["ref"]["cpu_ms_per_step"]
                                            / entry["this"]["cpu_ms_per_step"], 3)
        report["configs"][config] = entry
    print(json.dumps(report, indent=1))


def grid(args):
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    variants = [("float32", False)]
    if gpu:
        variants += [("mixed_float16", False), ("float32", True), ("mixed_float16", True)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "ds"
        write_random_dataset(data_dir, args.resolution, 4096)
        for family in args.families.split(","):
            for width in map(float, args.widths.split(",")):
                for batch in map(int, args.batches.split(",")):
                    for precision, jit in variants:
                        r = measure_grid(data_dir, family, width, batch, args.resolution,
                                         args.steps, precision, jit)
                        if gpu and r.get("tflops_per_s") == r.get("tflops_per_s"):
                            r["fraction_of_peak"] = round(r["tflops_per_s"] / args.peak_tflops, 4)
                        print(json.dumps(r), file=sys.stderr)
                        results.append(r)
    print(json.dumps({"device": "gpu" if gpu else "cpu", "cpu_count": os.cpu_count(),
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
