"""Adding a new writer to a trained style_cgan: how close does the adapted style get?

  python benchmarks/adapt.py [--init runs/quickstart] [--writers 24,25,26] [--variants 1,2,3]
                             [--steps 300] [--finetune_steps 400]
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

Scored in the feature spaces of the base run's cached judges (the char judge its eval.json names:
the FID space of evaluation; the writer judge: trained to tell the base writers apart), against the
held-out real glyphs of the new writer:
  char_dist    mean over characters of || mean real feature - mean generated feature || for one
               writer's generated glyphs (--per_char samples per character)
  fid          Frechet distance between all held-out glyphs and all of that writer's glyphs
  nearest      for each held-out glyph, the writer whose generated glyphs OF THE SAME CHARACTER
               have the closest mean feature; the fraction that picks the new writer (chance is
               1 / (trained base writers + 1))
for the adapted new writer; for the nearest existing writer on the held-out glyphs (an oracle:
it is picked on the glyphs it is scored on, the best of every base writer's noise), for
"sheet_nearest", the existing writer nearest to the ADAPTATION glyphs in that judge's space
(what a user could pick from their sheet without adapting), and for the mean existing writer;
and for the new writer's starting point (--start: the mean of the --start_top base writers whose
generated glyphs best reproduce the given glyphs, or the mean of the trained base rows); after
the embedding phase alone (the best row by that pixel distance kept every --select_every steps;
--objective projection fits the row to the glyphs instead of the GAN loss, as a free row or, with
--space writers, a blend of the trained rows: see hw_gan.adaptation) and after a further
generator fine-tune (--finetune_steps; the defaults are those of configs/adapt_writer.cfg:
--finetune_objective pivotal, pivotal tuning with --locality, see hw_gan.adaptation; "gan" is
the base's loss, used with --finetune_lr 2e-5), skipped as adaptation skips it when the sheet
gives fewer than --finetune_min_variants glyphs per character (0: always). A fine-tune also
moves the existing writers' glyphs, so it is scored twice: "finetune" against the existing
writers as the tuned generator draws them, "finetune_vs_base" against them as the BASE generator
draws them (what a user picking an existing writer gets). --judges KIND:texture (e.g.
writer:texture) adds a judge trained once, on the base's data, to ignore stroke rendering (blur,
thickness, tone): the plain writer judge keys on it, so only the texture judge can compare glyphs
of a tuned generator with the base's.
--unseen_chars F leaves a seeded fraction F of the characters out of the adaptation glyphs and
also scores the held-out glyphs of those characters alone ("*_unseen"). --known_writers N
instead scores N of the base's own writers against their own held-out glyphs: the ceiling for a
base. Every
comparison is among the writers the base was trained on: a base trained on a writer split also
has rows for its held-out writers, never trained, that draw no one's style
(hw_gan.adaptation.trained_writers). Prints JSON.
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


def run_judge_dir(base_dir: Path, kind: str) -> Path:
    """The folder of the base run's cached `kind` judge: the one its eval.json names (judges are
    cached by dataset, <data_dir>/judges/, since issue 21), else the run's own judge_<kind>/
    (runs evaluated before)."""
    eval_json = base_dir / "eval.json"
    if eval_json.exists():
        path = json.loads(eval_json.read_text()).get("judges", {}).get(kind, {}).get("path")
        if path:
            return Path(path)
    return base_dir / f"judge_{kind}"


def load_cached_judge(path: Path):
    """A judge cached by get_judge, loaded as it is (never retrained here)."""
    from hw_gan.evaluation import judge as judge_lib

    return judge_lib.load_judge_dir(path)


def augmented_judge(base_dir: Path, spec: str):
    """--judges "KIND:AUGMENT" (e.g. writer:texture): the base's KIND judge retrained with that
    augmentation (hw_gan.evaluation.judge), with the plain cached judge's settings and data;
    cached with it (the dataset's judges/, or the base's when that is read-only) after the
    first time."""
    from hw_gan import config as config_lib
    from hw_gan.evaluation import judge as judge_lib

    kind, augment = spec.split(":")
    meta = json.loads((run_judge_dir(base_dir, kind) / judge_lib.META_FILE).read_text())
    data_dir = config_lib.load_json(str(base_dir / "config.json")).data.data_dir
    return judge_lib.get_judge(None, kind, data_dir, image_size=meta["image_size"],
                               steps=meta["steps"], batch=meta["batch"], seed=meta["seed"],
                               split=meta["split"], heldout_fraction=meta["heldout_fraction"],
                               max_real=meta["max_real"], augment=augment,
                               fallback_dir=base_dir / judge_lib.CACHE_DIRNAME)


def load_judges(base_dir: Path, spec: str) -> dict:
    """{name: Judge} for --judges ("char,writer,writer:texture"): cached plain judges as they are,
    KIND:AUGMENT judges through augmented_judge."""
    return {k: augmented_judge(base_dir, k) if ":" in k else
            load_cached_judge(run_judge_dir(base_dir, k)) for k in spec.split(",") if k}


def to_float(records):
    imgs = np.stack([r.image for r in records]).astype(np.float32)[..., None]
    return imgs / 127.5 - 1.0


def writer_distances(generate, writer_ids, judges, real_imgs, real_chars, per_char: int,
                     seed: int = 11) -> dict:
    """{judge: (char_dist [W], fid [W], picks [N])}: how far the generated glyphs of each of
    `writer_ids` (W of them; picks index that list) are from the real glyphs (see the top);
    generate(char_ids, writer_ids, seed) -> glyphs."""
    from hw_gan.evaluation.metrics import frechet_distance

    chars = np.unique(real_chars)
    n_writers = len(writer_ids)
    c = np.tile(np.repeat(chars, per_char), n_writers)
    w = np.repeat(np.asarray(writer_ids, np.int32), len(chars) * per_char)
    gen = generate(c, w, seed)
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
        out[name] = (char_dist, fid, np.argmin(d, axis=1))
    return out


def rank_report(dists: dict, target: int, names, chosen: dict = None) -> dict:
    """The target writer's distances and rank against the nearest (and mean) other writer, and
    against chosen[judge], the existing writer picked from the adaptation glyphs alone."""
    out = {}
    for name, (char_dist, fid, picks) in dists.items():
        others = np.arange(len(char_dist)) != target
        cd, fd = np.where(others, char_dist, np.inf), np.where(others, fid, np.inf)
        nearest, nearest_fid = int(np.argmin(cd)), int(np.argmin(fd))
        out[name] = {
            "char_dist": {"new": round(float(char_dist[target]), 4),
                          "nearest_existing": round(float(cd[nearest]), 4),
                          "nearest_existing_writer": names[nearest],
                          "mean_existing": round(float(char_dist[others].mean()), 4),
                          "rank_of_new": int(np.sum(char_dist < char_dist[target])) + 1},
            "fid": {"new": round(float(fid[target]), 3),
                    "nearest_existing": round(float(fd[nearest_fid]), 3),
                    "nearest_existing_writer": names[nearest_fid],
                    "rank_of_new": int(np.sum(fid < fid[target])) + 1},
            "nearest_writer_fraction": round(float(np.mean(picks == target)), 4),
            "chance": round(1.0 / len(char_dist), 4),
        }
        if chosen and name in chosen:
            i = chosen[name]
            out[name]["sheet_nearest"] = {"writer": names[i],
                                          "char_dist": round(float(char_dist[i]), 4),
                                          "fid": round(float(fid[i]), 3),
                                          "rank": int(np.sum(char_dist < char_dist[i])) + 1}
    return out


def base_generate(adapter):
    """generate(char_ids, writer_ids, seed) for the scores after a generator fine-tune: the new
    writer from the tuned generator, every existing writer as the BASE generator draws it (what a
    user picking an existing writer gets), with the same noise as adapter.generate."""
    import tensorflow as tf

    t = adapter.trainer

    def generate(char_ids, writer_ids, seed, batch: int = 256):
        writer_ids = np.asarray(writer_ids)
        new = writer_ids == adapter.new_id
        out = []
        for i in range(0, len(char_ids), batch):  # batches and noise as trainer.generate
            c = tf.constant(char_ids[i:i + batch], tf.int32)
            z = tf.random.stateless_normal([len(c), t.cfg.model.latent_dim], seed=[seed, i])
            part = new[i:i + batch]
            w = tf.constant(np.where(part, 0, writer_ids[i:i + batch]), tf.int32)
            # A style_cgan's inputs (the adapted model always takes a writer).
            images = adapter.base_generator({"z": z, "char": c, "writer": w},
                                            training=False).numpy()
            if part.any():  # the new writer only from the tuned generator
                tuned = t.ema_generator({"z": z, "char": c, "writer": tf.constant(
                    writer_ids[i:i + batch], tf.int32)}, training=False)
                images = np.where(part[:, None, None, None], tuned.numpy(), images)
            out.append(images)
        return np.concatenate(out).astype(np.float32)

    return generate


def score(adapter, judges, real_imgs, real_chars, per_char: int, seed: int = 11,
          chosen: dict = None, generate=None) -> dict:
    """The new writer against the base writers it was trained on (see the top)."""
    ids = list(adapter.trained_ids) + [adapter.new_id]
    dists = writer_distances(generate or adapter.generate, ids, judges, real_imgs, real_chars,
                             per_char, seed)
    return rank_report(dists, len(ids) - 1, [adapter.writer_names[i] for i in ids[:-1]] + ["<new>"],
                       chosen)


def sheet_choice(adapter, judges, data: dict, per_char: int) -> dict:
    """{judge: index into adapter.trained_ids}: the existing writer closest to the ADAPTATION
    glyphs in each judge's space - what a user could pick without adapting (the held-out-nearest
    writer of rank_report is an oracle: it is chosen on the very glyphs it is scored on)."""
    dists = writer_distances(adapter.generate, adapter.trained_ids, judges, data["images"],
                             data["chars"], per_char, seed=5)
    return {name: int(np.argmin(cd)) for name, (cd, _, _) in dists.items()}


def known_writers(base_dir: Path, judges, count: int, split: str, per_char: int) -> dict:
    """The ceiling: base writers scored against their OWN held-out glyphs (the base's dataset's
    `split`), where the row was trained on the writer's other glyphs - what an adaptation could
    reach at best with this base."""
    from data_pipeline import tfrecords
    from hw_gan.adaptation import trained_writers
    from hw_gan.training import run_dir

    cfg, info = run_dir.load_run_config(base_dir)
    trainer = run_dir.restore_trainer(base_dir, run=(cfg, info))
    ids, _ = trained_writers(cfg, info)
    records = {}
    for r in tfrecords.read_records(cfg.data.data_dir, split):
        records.setdefault(r.writer, []).append(r)
    names = [w for w in info["writers"]
             if len(records.get(w, [])) >= 10 and info["writers"].index(w) in ids][:count]
    dists_by_writer = {}
    for name in names:
        imgs = to_float(records[name])
        chars = np.array([info["charset"].index(r.char) for r in records[name]], np.int32)
        dists = writer_distances(trainer.generate, ids, judges, imgs, chars, per_char)
        row = rank_report(dists, ids.index(info["writers"].index(name)),
                          [info["writers"][i] for i in ids])
        row["num_glyphs"] = len(chars)
        dists_by_writer[name] = row
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
    return dists_by_writer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", default="runs/quickstart")
    p.add_argument("--writers", default="24,25,26")
    p.add_argument("--variants", default="1,2,3")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--finetune_steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--d_lr", type=float, default=0.002)
    p.add_argument("--finetune_lr", type=float, default=1e-3)
    p.add_argument("--start", default="nearest", choices=["nearest", "mean"])
    p.add_argument("--start_top", type=int, default=4)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--select_every", type=int, default=50)
    p.add_argument("--objective", default="gan", choices=["gan", "projection"])
    p.add_argument("--feature_weight", type=float, default=3.0)
    p.add_argument("--anchor", type=float, default=0.0)
    p.add_argument("--space", default="row", choices=["row", "writers"])
    p.add_argument("--finetune_objective", default="pivotal", choices=["gan", "pivotal"])
    p.add_argument("--finetune_samples", type=int, default=8)
    p.add_argument("--locality", type=float, default=10.0)
    p.add_argument("--finetune_min_variants", type=float, default=1.5)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--per_char", type=int, default=3)
    p.add_argument("--unseen_chars", type=float, default=0.0,
                   help="fraction of the characters (seeded) left out of the adaptation glyphs; "
                        "their held-out glyphs are also scored alone (\"*_unseen\")")
    p.add_argument("--judges", default="char,writer",
                   help="cached judges of --init; KIND:texture (e.g. writer:texture) trains, "
                        "once, a judge blind to stroke rendering (hw_gan.evaluation.judge)")
    p.add_argument("--source_seed", type=int, default=0)
    p.add_argument("--heldout_data", help="dataset whose held-out split gives real new writers")
    p.add_argument("--heldout_split", default="test")
    p.add_argument("--known_writers", type=int, default=0,
                   help="instead: score N of the base's own writers against their glyphs in "
                        "--heldout_split of the base's dataset (a random split): the ceiling")
    return p.parse_args(argv)


def settings(args, judges) -> dict:
    """The results' header: the settings of this benchmark run."""
    return {"init": str(Path(args.init)), "steps": args.steps, "finetune_steps": args.finetune_steps,
            "lr": args.lr, "d_lr": args.d_lr, "finetune_lr": args.finetune_lr,
            "start": args.start, "start_top": args.start_top, "samples": args.samples,
            "select_every": args.select_every, "objective": args.objective,
            "feature_weight": args.feature_weight, "anchor": args.anchor, "space": args.space,
            "finetune_objective": args.finetune_objective,
            "finetune_samples": args.finetune_samples, "locality": args.locality,
            "finetune_min_variants": args.finetune_min_variants, "batch_size": args.batch_size,
            "held_out_variants": list(HELD_OUT), "per_char": args.per_char,
            "judges": {k: j.real_accuracy for k, j in judges.items()}, "writers": {}}


def new_writer_names(args) -> list:
    """The new writers: real held-out writers of --heldout_data, or simulated ones."""
    if args.heldout_data:
        from data_pipeline import tfrecords

        manifest = tfrecords.load_manifest(args.heldout_data)
        pool = list(manifest["splits"][args.heldout_split]["per_writer"])
        return pool[:int(args.writers)] if args.writers.isdigit() else args.writers.split(",")
    return [f"sim-{int(x):03d}" for x in args.writers.split(",")]


def writer_glyphs(args, name: str, charset) -> dict:
    """A new writer's held-out glyphs (images, char ids, which are of left-out characters) and
    their other glyphs by variant (without the left-out characters, --unseen_chars)."""
    if args.heldout_data:
        held, by_variant = real_writer(args.heldout_data, args.heldout_split, name)
    else:
        by_variant = render_writer(int(name[4:]), charset, seed=args.source_seed)
        held = [r for v in HELD_OUT for r in by_variant[v]]
    held_chars = np.array([charset.index(r.char) for r in held], np.int32)
    left_out = set()
    if args.unseen_chars:
        chars = sorted({r.char for r in held})
        order = np.random.default_rng(np.random.SeedSequence([7, len(chars)])).permutation(
            len(chars))
        left_out = {chars[i] for i in order[:round(args.unseen_chars * len(chars))]}
        by_variant = {v: [r for r in rs if r.char not in left_out]
                      for v, rs in by_variant.items()}
    return {"images": to_float(held), "chars": held_chars, "by_variant": by_variant,
            "left_out": left_out, "unseen": np.isin(held_chars,
                                                    [charset.index(c) for c in left_out])}


def adapt_config(args, data_dir, tmp, name: str):
    from hw_gan import adaptation as adapt_lib

    return adapt_lib.AdaptConfig(
        writer_data=data_dir, init=str(Path(args.init)), model_dir=str(Path(tmp) / "unused"),
        writer_name=f"new-{name}", steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, d_lr=args.d_lr, finetune_steps=0, finetune_lr=args.finetune_lr,
        start=args.start, start_top=args.start_top, samples=args.samples,
        select_every=args.select_every, objective=args.objective,
        feature_weight=args.feature_weight, anchor=args.anchor, space=args.space,
        finetune_objective=args.finetune_objective,
        finetune_samples=args.finetune_samples, locality=args.locality, seed=0,
        log_every=max(1, args.steps))


def finetune_scores(args, adapter, judges, data, held, row, chosen, score_unseen) -> None:
    """The generator fine-tune after the embedding phase, scored (or skipped as adaptation
    skips it: too few glyphs per character)."""
    if args.finetune_steps and (row["variants_per_char"] < args.finetune_min_variants):
        row["finetune_skipped"] = (f"{row['variants_per_char']} glyphs per character "
                                   f"< --finetune_min_variants "
                                   f"{args.finetune_min_variants:g}")
    elif args.finetune_steps:
        t0 = time.perf_counter()
        adapter.phase("finetune", args.finetune_steps, True, args.finetune_lr, data,
                      np.random.default_rng(1), lambda m: None)
        adapter.sync_ema()
        row["finetune_seconds"] = round(time.perf_counter() - t0, 1)
        row["finetune"] = score(adapter, judges, held["images"], held["chars"], args.per_char,
                                chosen=chosen)
        row["finetune_base_writer_drift"] = round(adapter.base_drift(), 4)
        row["finetune_vs_base"] = score(adapter, judges, held["images"], held["chars"],
                                        args.per_char, generate=base_generate(adapter))
        score_unseen("finetune")


def adapt_and_score(args, judges, held, data_dir, tmp, name: str) -> dict:
    """One new writer adapted from `data_dir` (their glyphs of k variants), scored at the start,
    after the embedding phase and after the fine-tune."""
    from hw_gan import adaptation as adapt_lib

    adapter, data, _ = adapt_lib.prepare(adapt_config(args, data_dir, tmp, name))
    row = {"num_glyphs": int(len(data["chars"]))}
    chosen = sheet_choice(adapter, judges, data, args.per_char)
    row["start"] = adapter.start_rows(data)
    row["start_score"] = score(adapter, judges, held["images"], held["chars"], args.per_char,
                               chosen=chosen)
    unseen = held["unseen"]

    def score_unseen(key):
        if unseen.any():
            row["unseen_chars"] = sorted(held["left_out"])
            row[f"{key}_unseen"] = score(adapter, judges, held["images"][unseen],
                                         held["chars"][unseen], args.per_char)

    score_unseen("start")
    t0 = time.perf_counter()
    report = adapter.run(data, log=lambda m: None, start=row["start"])
    row["embedding_seconds"] = round(time.perf_counter() - t0, 1)
    row["selection"] = report["phases"]["embedding"].get("selection")
    if "blend" in report["phases"]["embedding"]:
        row["blend"] = report["phases"]["embedding"]["blend"]
    # With no embedding steps the row is the start: its score is already known.
    row["embedding"] = row["start_score"] if not args.steps else score(
        adapter, judges, held["images"], held["chars"], args.per_char, chosen=chosen)
    if args.steps:
        score_unseen("embedding")
    row["base_rows_unchanged"] = report["base_rows_unchanged"]
    row["variants_per_char"] = report["variants_per_char"]
    finetune_scores(args, adapter, judges, data, held, row, chosen, score_unseen)
    return row


def main(argv=None):
    args = parse_args(argv)

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    base_dir = Path(args.init)
    charset = json.loads((base_dir / "dataset.json").read_text())["charset"]
    judges = load_judges(base_dir, args.judges)
    results = settings(args, judges)
    t_all = time.perf_counter()
    if args.known_writers:
        results["known_writers"] = known_writers(base_dir, judges, args.known_writers,
                                                 args.heldout_split, args.per_char)
        results["seconds"] = round(time.perf_counter() - t_all, 1)
        print(json.dumps(results, indent=1))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        names = new_writer_names(args)
        if args.heldout_data:
            results["heldout_data"] = args.heldout_data
        for name in names:
            held = writer_glyphs(args, name, charset)
            per_writer = {}
            for k in [int(x) for x in args.variants.split(",")]:
                records = [r for v in range(k) for r in held["by_variant"].get(v, [])]
                data_dir = write_writer_dataset(records, charset, Path(tmp) / f"{name}-{k}")
                row = adapt_and_score(args, judges, held, data_dir, tmp, name)
                per_writer[f"variants_{k}"] = row
                print(json.dumps({name: {f"variants_{k}": row}}), file=sys.stderr, flush=True)
            results["writers"][name] = per_writer
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
