"""How much a training setting changes the numbers: loss curves of one config under several
settings, same seed, side by side, printed as JSON.

  python benchmarks/loss_curves.py [--config configs/quickstart.cfg] [--steps 600]
      [--variants "--precision=float32;--precision=mixed_bfloat16;--jit_compile"]

Each variant trains `--steps` steps from scratch (`train_main.py --flagfile=CONFIG`, its data
built if missing, no evaluation or export) in its own process; the scalars logged every
`--log_every` steps are read back from TensorBoard. Reported per variant: the losses at each
logged step, and against the first variant the largest and mean absolute difference of each
loss over the logged steps and of its mean over the last half (a GAN's losses wander, so
the late means say more than any one step).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("d_loss", "g_loss", "r1")  # always reported; a family's own losses (stylegan: cycle,
# recon_l1, recon_feat, recon_adv) are reported when its runs log them


def read_scalars(logdir: Path) -> dict:
    """{tag: {step: value}} of a run's train/ event files."""
    import tensorflow as tf

    out: dict = {}
    for path in sorted((logdir / "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.startswith("loss/"):
                    v = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                        else float(value.simple_value)
                    out.setdefault(value.tag[5:], {})[int(event.step)] = v
    return out


def train(config: str, flags: list[str], steps: int, log_every: int, model_dir: Path) -> dict:
    cmd = [sys.executable, str(REPO / "train_main.py"), f"--flagfile={config}",
           f"--steps={steps}", f"--log_every={log_every}", f"--model_dir={model_dir}",
           "--noeval_at_end", "--export_dir=", f"--checkpoint_every={steps}", *flags]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(flags) or 'baseline'} failed:\n{proc.stderr[-3000:]}")
    scalars = read_scalars(model_dir)
    scalars["_wall_s"] = round(time.perf_counter() - t0, 1)  # the whole process, build excluded
    return scalars


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/quickstart.cfg")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--log_every", type=int, default=25)
    p.add_argument("--variants", default="--precision=float32;--precision=mixed_bfloat16",
                   help="semicolon-separated flag sets; the first is the reference")
    args = p.parse_args()
    variants = [v.split() for v in args.variants.split(";")]
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, flags in enumerate(variants):
            name = " ".join(flags) or "baseline"
            curves[name] = train(args.config, flags, args.steps, args.log_every,
                                 Path(tmp) / f"v{i}")
            print(json.dumps({name: {k: curves[name].get(k, {}).get(args.steps)
                                     for k in LOSSES}}), file=sys.stderr)
    ref_name = next(iter(curves))
    ref = curves[ref_name]
    names = [*LOSSES, *sorted(k for k in ref if k not in LOSSES and not k.startswith("_"))]
    report = {"config": args.config, "steps": args.steps, "reference": ref_name, "variants": {}}
    for name, curve in curves.items():
        entry = {"wall_s": curve["_wall_s"],
                 "losses": {k: curve.get(k, {}) for k in names if k in curve}}
        if name != ref_name:
            for k in names:
                steps = sorted(set(ref.get(k, {})) & set(curve.get(k, {})))
                if not steps:
                    continue
                a = np.array([ref[k][s] for s in steps])
                b = np.array([curve[k][s] for s in steps])
                late = slice(len(steps) // 2, None)
                entry[f"{k}_max_abs_diff"] = round(float(np.abs(a - b).max()), 4)
                entry[f"{k}_mean_abs_diff"] = round(float(np.abs(a - b).mean()), 4)
                entry[f"{k}_late_mean"] = [round(float(a[late].mean()), 4),
                                           round(float(b[late].mean()), 4)]
                entry[f"{k}_first_diff_step"] = next(
                    (s for s, x, y in zip(steps, a, b) if abs(x - y) > 1e-3), None)
        report["variants"][name] = entry
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
