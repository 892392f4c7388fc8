"""Judge training, before and after, side by side in one process: seconds, cores and accuracy.

  python benchmarks/judge_speed.py [--data data/simulated] [--ref c7f07c9] [--kinds char,writer]
                                   [--recipes ref:1500x128,new] [--rounds 1] [--augment none]

Trains each --kinds judge exactly as `get_judge` does (the same real glyphs, the same seeded 90 %
/ 10 % held-out split, judge seed 0) with each recipe in turn, alternating them within a round so
that both see the same load on the machine. A recipe is

  ref:STEPSxBATCH    the judge module of git commit --ref (`git show`), e.g. the train_on_batch
                     loop and per-glyph augmentation from before issue 21;
  STEPSxBATCH[@LR]   this checkout's `train_judge` (compiled step, vectorised augmentation);
  new                this checkout at the defaults of hw_gan.config.EvalConfig.

For each run it prints one JSON line: kind, recipe, glyphs seen (steps x batch) and epochs,
seconds, cores busy (process CPU time / wall time) and held-out accuracy; then a summary. The
load average is printed too: other jobs on the machine slow every recipe alike, not equally
between rounds.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from data_pipeline.dataset import load_glyphs  # noqa: E402
from hw_gan import config as config_lib  # noqa: E402
from hw_gan.evaluation import judge as judge_lib  # noqa: E402


def reference_module(ref: str):
    """hw_gan/evaluation/judge.py as it was at git commit `ref`, as a module."""
    src = subprocess.check_output(["git", "show", f"{ref}:hw_gan/evaluation/judge.py"], cwd=ROOT)
    module = types.ModuleType(f"judge_at_{ref}")
    module.__file__ = f"{ref}:hw_gan/evaluation/judge.py"
    sys.modules[module.__name__] = module
    exec(compile(src, module.__file__, "exec"), module.__dict__)
    return module


def parse_recipe(text: str, ref: str) -> dict:
    if text == "new":
        e = config_lib.EvalConfig()
        return {"name": f"new {e.judge_steps}x{e.judge_batch}", "module": judge_lib,
                "steps": e.judge_steps, "batch": e.judge_batch, "lr": None}
    module = judge_lib
    if text.startswith("ref:"):
        module, text = reference_module(ref), text[4:]
    size, _, lr = text.partition("@")
    steps, batch = (int(v) for v in size.split("x"))
    name = f"{ref if module is not judge_lib else 'new'} {steps}x{batch}" + (f"@{lr}" if lr else "")
    return {"name": name, "module": module, "steps": steps, "batch": batch,
            "lr": float(lr) if lr else None}


def train_once(recipe: dict, kind: str, real, augment: str) -> dict:
    images, chars, writers = real
    ids = chars if kind == "char" else writers
    train_idx, held_idx = judge_lib.holdout_split(len(ids), 0)
    class_ids = np.unique(ids[train_idx])
    labels = np.searchsorted(class_ids, ids[train_idx]).astype(np.int32)
    kw = {"learning_rate": recipe["lr"]} if recipe["lr"] else {}
    if augment != "none":
        kw["augment"] = augment
    wall, cpu = time.perf_counter(), time.process_time()
    judge = recipe["module"].train_judge(
        images[train_idx], labels, len(class_ids), recipe["steps"], recipe["batch"], 0,
        class_ids=class_ids, kind=kind, progress=False, **kw)
    seconds = time.perf_counter() - wall
    cores = (time.process_time() - cpu) / seconds
    accuracy = float(np.mean(judge.predict(images[held_idx]) == ids[held_idx]))
    seen = recipe["steps"] * recipe["batch"]
    return {"kind": kind, "recipe": recipe["name"], "glyphs_seen": seen,
            "epochs": round(seen / len(train_idx), 1), "seconds": round(seconds, 1),
            "cores": round(cores, 2), "heldout_accuracy": round(accuracy, 4),
            "num_train": int(len(train_idx)), "num_heldout": int(len(held_idx)),
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/simulated")
    p.add_argument("--split", default="train")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--ref", default="c7f07c9", help="git commit of the 'ref:' recipes")
    p.add_argument("--kinds", default="char,writer")
    p.add_argument("--recipes", default="ref:1500x128,new")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--augment", default="none", choices=judge_lib.AUGMENTS)
    args = p.parse_args()

    real = load_glyphs(args.data, args.split, args.image_size, judge_lib.MAX_REAL)
    recipes = [parse_recipe(r, args.ref) for r in args.recipes.split(",")]
    rows = []
    for rnd in range(args.rounds):
        for kind in args.kinds.split(","):
            # Alternate the order between rounds, so that neither recipe always runs first.
            for recipe in (recipes if rnd % 2 == 0 else recipes[::-1]):
                row = dict(train_once(recipe, kind, real, args.augment), round=rnd)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for row in rows:
        s = summary.setdefault(f"{row['kind']} {row['recipe']}", {"seconds": [], "accuracy": []})
        s["seconds"].append(row["seconds"])
        s["accuracy"].append(row["heldout_accuracy"])
    print(json.dumps({"data": args.data, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
