"""Adding a new writer to a trained style_cgan: how close does the adapted style get?

  python benchmarks/adapt.py [--init runs/quickstart] [--writers 24,25,26] [--variants 1,2,3]
                             [--steps 300] [--finetune_steps 100]
  python benchmarks/adapt.py --init runs/unipen_writers_base --heldout_data data/unipen32_writers \
                             [--writers 3] [--variants 1,2]

With --heldout_data (a dataset built with split=writer whose training split the base was trained
on), the new writers are REAL writers of its held-out split (--writers: a count, or names): a
seeded half of each one's glyphs is held out, and "k variants" means the first k glyphs of each
character from the other half.

New writers are simulated writers the base never saw (index >= 24 for runs/quickstart, built
from sim-000..sim-023 with the same source seed). Each renders 5 variants of every character:
variants 0..k-1 (k in --variants) form the one-writer dataset the adaptation uses (written like
any dataset: the `--writer_data` path), variants 3 and 4 are held out.

Scored in the feature spaces of the base run's cached judges (runs/quickstart/judge_char: the
FID space of evaluation; judge_writer: trained to tell the base writers apart), against the
held-out real glyphs of the new writer:
  char_dist    mean over characters of || mean real feature - mean generated feature || for one
               writer's generated glyphs (--per_char samples per character)
  fid          Frechet distance between all held-out glyphs and all of that writer's glyphs
  nearest      for each held-out glyph, the writer whose generated glyphs OF THE SAME CHARACTER
               have the closest mean feature; the fraction that picks the new writer (chance is
               1 / (base writers + 1))
for the adapted new writer, for the nearest (and the mean) existing writer, and for the new
writer's starting point (the mean of the base rows); after the embedding phase alone and after
a further generator fine-tune (--finetune_steps). Prints JSON.
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

HELD_OUT = (3, 4)
VARIANTS = 5


class RecordSource:
    """A one-writer source over a list of GlyphRecords (what extraction produces for a person)."""

    def __init__(self, records, charset, name="simulated-writer"):
        self.records = list(records)
        self.charset = tuple(charset)
        self.name = name
        self.params = {"n": len(self.records)}

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)


def render_writer(index: int, labels, variants: int = VARIANTS, size: int = 32, seed: int = 0):
    """Every label of simulated writer `index` `variants` times: {variant: [GlyphRecord]}."""
    from data_pipeline.sources import simulated

    records = simulated._render_writer((seed, index, tuple(labels), variants, size))
    out = {}
    for r in records:
        out.setdefault(int(r.key.rsplit(":", 1)[1]), []).append(r)
    return out


def real_writer(data_dir, split: str, name: str, seed: int = 0):
    """(held-out GlyphRecords, {variant: [GlyphRecord]}) of one real writer (see the top)."""
    from data_pipeline import tfrecords

    records = [r for r in tfrecords.read_records(data_dir, split) if r.writer == name]
    if not records:
        raise ValueError(f"writer {name!r} has no glyphs in split {split!r} of {data_dir}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 77])).permutation(len(records))
    half = len(records) // 2
    held = [records[i] for i in order[:half]]
    by_variant, counts = {}, {}
    for i in order[half:]:
        r = records[i]
        v = counts.get(r.char, 0)
        counts[r.char] = v + 1
        by_variant.setdefault(v, []).append(r)
    return held, by_variant


def write_writer_dataset(records, charset, out_dir) -> str:
    from data_pipeline import tfrecords

    tfrecords.write_dataset(RecordSource(records, charset), out_dir, split="none", num_shards=1,
                            progress=False, charset=charset)
    return str(out_dir)


def load_cached_judge(path: Path):
    """A judge cached by get_judge, loaded as it is (never retrained here)."""
    from hw_gan.evaluation import judge as judge_lib

    meta = json.loads((path / judge_lib.META_FILE).read_text())
    model = judge_lib.build_judge_model(meta["image_size"], len(meta["class_ids"]), meta["seed"])
    model.load_weights(str(path / judge_lib.WEIGHTS_FILE))
    return judge_lib.Judge(model, meta["class_ids"], meta["image_size"], meta["kind"],
                           meta.get("real_accuracy"), meta)


def to_float(records):
    imgs = np.stack([r.image for r in records]).astype(np.float32)[..., None]
    return imgs / 127.5 - 1.0


def score(adapter, judges, real_imgs, real_chars, per_char: int, seed: int = 11) -> dict:
    """Distances of every writer's generated glyphs to the held-out real glyphs (see top)."""
    from hw_gan.evaluation.metrics import frechet_distance

    n_writers = adapter.new_id + 1
    chars = np.unique(real_chars)
    c = np.tile(np.repeat(chars, per_char), n_writers)
    w = np.repeat(np.arange(n_writers), len(chars) * per_char)
    gen = adapter.generate(c, w, seed)
    out = {}
    for name, judge in judges.items():
        gf = judge.features(gen).reshape(n_writers, len(chars), per_char, -1)
        rf = judge.features(real_imgs)
        mu = gf.mean(axis=2)  # [W, C, F]
        pos = np.searchsorted(chars, real_chars)
        real_mu = np.stack([rf[real_chars == ch].mean(0) for ch in chars])  # [C, F]
        char_dist = np.linalg.norm(mu - real_mu[None], axis=-1).mean(axis=1)  # [W]
        fid = np.array([frechet_distance(rf, gf[i].reshape(-1, gf.shape[-1]))
                        for i in range(n_writers)])
        d = np.linalg.norm(rf[:, None, :] - mu[:, pos].transpose(1, 0, 2), axis=-1)  # [N, W]
        picks = np.argmin(d, axis=1)
        new = adapter.new_id
        base_cd, base_fid = char_dist[:new], fid[:new]
        nearest = int(np.argmin(base_cd))
        out[name] = {
            "char_dist": {"new": round(float(char_dist[new]), 4),
                          "nearest_existing": round(float(base_cd[nearest]), 4),
                          "nearest_existing_writer": adapter.writer_names[nearest],
                          "mean_existing": round(float(base_cd.mean()), 4),
                          "rank_of_new": int(np.sum(char_dist < char_dist[new])) + 1},
            "fid": {"new": round(float(fid[new]), 3),
                    "nearest_existing": round(float(base_fid.min()), 3),
                    "nearest_existing_writer": adapter.writer_names[int(np.argmin(base_fid))],
                    "rank_of_new": int(np.sum(fid < fid[new])) + 1},
            "nearest_writer_fraction": round(float(np.mean(picks == new)), 4),
            "chance": round(1.0 / n_writers, 4),
        }
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", default="runs/quickstart")
    p.add_argument("--writers", default="24,25,26")
    p.add_argument("--variants", default="1,2,3")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--finetune_steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--d_lr", type=float, default=0.002)
    p.add_argument("--finetune_lr", type=float, default=2e-5)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--per_char", type=int, default=3)
    p.add_argument("--judges", default="char,writer")
    p.add_argument("--source_seed", type=int, default=0)
    p.add_argument("--heldout_data", help="dataset whose held-out split gives real new writers")
    p.add_argument("--heldout_split", default="test")
    args = p.parse_args(argv)

    import tensorflow as tf

    from hw_gan.style import adapt as adapt_lib

    tf.get_logger().setLevel("ERROR")
    base_dir = Path(args.init)
    info = json.loads((base_dir / "dataset.json").read_text())
    charset = info["charset"]
    judges = {k: load_cached_judge(base_dir / f"judge_{k}") for k in args.judges.split(",") if k}
    results = {"init": str(base_dir), "steps": args.steps, "finetune_steps": args.finetune_steps,
               "lr": args.lr, "d_lr": args.d_lr, "finetune_lr": args.finetune_lr,
               "batch_size": args.batch_size,
               "held_out_variants": list(HELD_OUT), "per_char": args.per_char,
               "judges": {k: j.real_accuracy for k, j in judges.items()}, "writers": {}}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.heldout_data:
            from data_pipeline import tfrecords

            manifest = tfrecords.load_manifest(args.heldout_data)
            pool = list(manifest["splits"][args.heldout_split]["per_writer"])
            names = pool[:int(args.writers)] if args.writers.isdigit() else args.writers.split(",")
            results["heldout_data"] = args.heldout_data
        else:
            names = [f"sim-{int(x):03d}" for x in args.writers.split(",")]
        for name in names:
            if args.heldout_data:
                held, by_variant = real_writer(args.heldout_data, args.heldout_split, name)
            else:
                by_variant = render_writer(int(name[4:]), charset, seed=args.source_seed)
                held = [r for v in HELD_OUT for r in by_variant[v]]
            held_imgs = to_float(held)
            held_chars = np.array([charset.index(r.char) for r in held], np.int32)
            per_writer = {}
            for k in [int(x) for x in args.variants.split(",")]:
                records = [r for v in range(k) for r in by_variant.get(v, [])]
                data_dir = write_writer_dataset(records, charset, Path(tmp) / f"{name}-{k}")
                acfg = adapt_lib.AdaptConfig(
                    writer_data=data_dir, init=str(base_dir), model_dir=str(Path(tmp) / "unused"),
                    writer_name=f"new-{name}", steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, d_lr=args.d_lr, finetune_steps=0, finetune_lr=args.finetune_lr,
                    seed=0,
                    log_every=max(1, args.steps))
                adapter, data, _ = adapt_lib.prepare(acfg)
                row = {"num_glyphs": int(len(data["chars"]))}
                if "mean_init" not in per_writer:
                    per_writer["mean_init"] = score(adapter, judges, held_imgs, held_chars,
                                                    args.per_char)
                t0 = time.perf_counter()
                report = adapter.run(data, log=lambda m: None)
                row["embedding_seconds"] = round(time.perf_counter() - t0, 1)
                row["embedding"] = score(adapter, judges, held_imgs, held_chars, args.per_char)
                row["base_rows_unchanged"] = report["base_rows_unchanged"]
                if args.finetune_steps:
                    t0 = time.perf_counter()
                    adapter._phase("finetune", args.finetune_steps, True, args.finetune_lr, data,
                                   np.random.default_rng(1), lambda m: None)
                    t = adapter.trainer
                    for ema_v, v in zip(t.ema_generator.weights, t.generator.weights):
                        ema_v.assign(v)
                    row["finetune_seconds"] = round(time.perf_counter() - t0, 1)
                    row["finetune"] = score(adapter, judges, held_imgs, held_chars, args.per_char)
                    row["finetune_base_writer_drift"] = round(adapter.base_drift(), 4)
                per_writer[f"variants_{k}"] = row
                print(json.dumps({name: {f"variants_{k}": row}}), file=sys.stderr, flush=True)
            results["writers"][name] = per_writer
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
