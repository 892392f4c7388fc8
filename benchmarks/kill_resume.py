"""Training under `kill -9`: SIGKILL a small training run at random moments, some of them inside
a checkpoint write, resume it each time with the same command, and compare the final weights
with an uninterrupted run of the same seed.

  python benchmarks/kill_resume.py [--kills 10] [--steps 300] [--seed 0] [--work DIR]

The run is the tests' size (a simulated dataset of 4 writers x 6 characters at 32 px, width
0.125, batch 8) with a checkpoint every 5 steps, so saves are frequent. Each resumed process is
left to make one save of its own (so every round resumes from a checkpoint and moves on); then
every other kill waits for a save to start (a `ckpt-N_temp/` folder, or a new `ckpt-N.index` not yet in the
`checkpoint` state file) and kills within a millisecond or so; the others kill after a random
delay. After each kill the latest checkpoint is read back whole (every tensor), and what the
kill left in checkpoints/ is counted. Both runs use --deterministic, so the resumed run must
equal the uninterrupted one bit for bit. Prints one JSON object:

  kills, kills_in_save        kills made, and those that landed while a save was under way
  latest_readable_after_kill  how many times the latest checkpoint read back whole (must be all)
  temp_left_after_resume      ckpt-*_temp folders left after the resumed runs (must be 0)
  steps_at_kills              the step of the latest checkpoint after each kill
  identical, max_abs_diff     the final weights against the uninterrupted run's
  seconds                     wall time of the whole benchmark
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


def build_data(out: Path) -> None:
    subprocess.run([sys.executable, "-m", "hw_gan.cli", "build", "--source=simulated",
                    f"--out={out}", "--quiet", "--split=none", "--source_param", "num_writers=4",
                    "--source_param", "samples_per_char=4", "--source_param", "charset=abdegx"],
                   cwd=REPO, env=ENV, check=True, capture_output=True)


def command(data: Path, model_dir: Path, steps: int, seed: int) -> list[str]:
    return [sys.executable, str(REPO / "train_main.py"), f"--data_dir={data}",
            f"--model_dir={model_dir}", "--model=style_cgan", "--width=0.125", "--latent_dim=16",
            "--embed_dim=32", "--batch_size=8", f"--steps={steps}", "--checkpoint_every=5",
            "--keep_checkpoints=3", "--log_every=50", "--image_every=100000",
            "--eval_at_end=false", "--shuffle_buffer=64", f"--seed={seed}", "--deterministic",
            "--precision=float32"]


def _state_latest(ckpt_dir: Path) -> str:
    try:
        text = (ckpt_dir / "checkpoint").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("model_checkpoint_path:"):
            return line.split('"')[1]
    return ""


def _saving(ckpt_dir: Path) -> bool:
    """A save is under way: a ckpt-N_temp folder, or an index newer than the state file says."""
    try:
        names = os.listdir(ckpt_dir)
    except OSError:
        return False
    if any(n.endswith("_temp") for n in names):
        return True
    latest = _state_latest(ckpt_dir)
    steps = [int(n[5:-6]) for n in names if n.startswith("ckpt-") and n.endswith(".index")]
    return bool(latest and steps) and max(steps) > int(latest.rsplit("-", 1)[1])


def run_and_kill(cmd: list[str], model_dir: Path, in_save: bool, rng: random.Random,
                 max_delay: float) -> tuple[bool, bool]:
    """Starts `cmd` and SIGKILLs it (in a save, or after a random delay once training runs).
    Returns (killed, whether a save was under way at the kill); not killed = it finished."""
    ckpt_dir = model_dir / "checkpoints"
    before = _state_latest(ckpt_dir)
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        # First this process's own first save (so every round resumes and moves on), then the
        # kill: in the next save, or after a random delay.
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and \
                _state_latest(ckpt_dir) == before:
            time.sleep(0.01)
        if in_save:
            while proc.poll() is None and not _saving(ckpt_dir):
                time.sleep(0.0005)
        else:
            end = time.time() + rng.uniform(0, max_delay)
            while proc.poll() is None and time.time() < end:
                time.sleep(0.01)
        saving = _saving(ckpt_dir)
        if proc.poll() is not None:
            return False, False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True, saving
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_all(prefix: str) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OPTIMIZER_SLOT" in name or "/.ATTRIBUTES/VARIABLE_VALUE" in name}


def latest(model_dir: Path):
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(model_dir / "checkpoints"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--work", help="working folder (default: a temporary one, removed)")
    args = p.parse_args()
    t0 = time.time()
    work = Path(args.work or tempfile.mkdtemp(prefix="kill_resume-"))
    rng = random.Random(args.seed)
    try:
        data = work / "data"
        build_data(data)
        straight, killed = work / "straight", work / "killed"
        t_run = time.time()
        subprocess.run(command(data, straight, args.steps, 3), cwd=REPO, env=ENV, check=True,
                       capture_output=True)
        run_seconds = time.time() - t_run
        cmd = command(data, killed, args.steps, 3)
        kills, in_save, readable, steps_at = 0, 0, 0, []
        while kills < args.kills:
            done, saving = run_and_kill(cmd, killed, kills % 2 == 0, rng, run_seconds * 0.1)
            if not done:
                break  # it finished before the kill: the remaining kills cannot be made
            kills += 1
            in_save += saving
            prefix = latest(killed)
            steps_at.append(int(prefix.rsplit("-", 1)[1]) if prefix else 0)
            if prefix is None or read_all(prefix):
                readable += 1
        res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        temp_left = len(list((killed / "checkpoints").glob("*_temp")))
        a, b = read_all(latest(straight)), read_all(latest(killed))
        import numpy as np

        same_keys = sorted(a) == sorted(b)
        diffs = [float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
                 if a[k].size else 0.0 for k in a if k in b]
        result = {
            "kills": kills, "kills_in_save": in_save, "latest_readable_after_kill": readable,
            "temp_left_after_resume": temp_left, "steps_at_kills": steps_at,
            "final_step": int(latest(killed).rsplit("-", 1)[1]), "tensors": len(a),
            "identical": same_keys and all(np.array_equal(a[k], b[k]) for k in a),
            "max_abs_diff": max(diffs) if diffs else None,
            "uninterrupted_run_seconds": round(run_seconds, 1),
            "seconds": round(time.time() - t0, 1)}
        print(json.dumps(result))
        ok = (result["identical"] and readable == kills and temp_left == 0
              and kills == args.kills)
        return 0 if ok else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
