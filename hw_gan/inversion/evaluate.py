"""Held-out evaluation of style extraction: does a style taken from k glyphs of a writer the
model never saw write that writer's OTHER characters like them?

Protocol (`evaluate_styles`), on the held-out split of a dataset built with split=writer:
  - each held-out writer's glyphs are cut in two seeded halves: a reference pool (where the k
    given glyphs come from, distinct characters first) and an evaluation pool;
  - targets: the evaluation-pool glyphs whose character is NOT among the k given ones (at most
    `max_targets` per writer); every method draws exactly those characters;
  - a writer judge is trained on the reference pools of all held-out writers (its real accuracy
    is measured on the targets) and cached beside the character judges, keyed by those very
    glyphs and labels (judge.get_judge_of), so the next evaluation on the same writers reuses it;
    the run's character judge (trained on the training split) scores legibility;
  - metrics per method and k: legibility (char-judge accuracy on generated / on the real
    targets), writer match (writer judge names the intended writer; chance = 1 / writers), FID
    between generated and real targets in the char judge's feature space.
Methods: encoder, projection (from the mean w), both (encoder then projection) and two
baselines: the mean style, and a random TRAINING writer's style (the encoder on k of their
glyphs). `ablations` ({name: ProjectionConfig}, default `default_ablations`) adds variants of
encoder + projection at k = `ablations_k`.

Another capture set-up (`references`, from `recapture_references`: data_pipeline/capture.py
re-draws the reference pools with another pen, prints, photographs and extracts them): every
method but the baselines runs again with the same reference indices and the re-captured images;
targets, judges and baselines stay; `capture_table` sets the two side by side against the bar.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipeline import capture, tfrecords
from data_pipeline.dataset import load_glyphs, split_keys, stack_sets
from hw_gan.config import ProjectionConfig
from hw_gan.evaluation import judge as judge_lib
from hw_gan.evaluation import metrics
from hw_gan.inversion.model import StyleModel
from hw_gan.inversion.samples import pick_samples


@dataclasses.dataclass
class Pools:
    images: np.ndarray
    chars: np.ndarray
    writers: np.ndarray  # dataset writer ids
    ref: dict  # writer id -> indices of the reference pool
    evl: dict  # writer id -> indices of the evaluation pool


def split_pools(images, chars, writers, seed: int) -> Pools:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
    ref, evl = {}, {}
    for w in np.unique(writers):
        idx = rng.permutation(np.flatnonzero(writers == w))
        half = len(idx) // 2
        ref[int(w)], evl[int(w)] = np.sort(idx[:half]), np.sort(idx[half:])
    return Pools(images, chars, writers, ref, evl)


def _sets(pools: Pools, writer_ids, k: int, max_targets: int, seed: int,
          unseen: frozenset = frozenset(), only_unseen: bool = False,
          usable: Optional[np.ndarray] = None):
    """Per writer: k reference indices and target indices (chars not among the references).
    `unseen`: char ids training never saw; they are never references, and they are the only
    targets with `only_unseen`, never one without (the same references either way).
    `usable` (bool per glyph): only these may be references (the re-captured ones)."""
    refs, targets = [], []
    for w in writer_ids:
        rng = np.random.default_rng(np.random.SeedSequence([seed, k, int(w)]))
        pool = pools.ref[w]
        pool = pool[~np.isin(pools.chars[pool], list(unseen))] if unseen else pool
        pool = pool[usable[pool]] if usable is not None else pool
        r = pool[pick_samples(pools.chars[pool], k, rng)]
        given = set(pools.chars[r].tolist())
        t = np.array([i for i in pools.evl[w] if pools.chars[i] not in given
                      and (pools.chars[i] in unseen) == only_unseen], np.int64)
        if len(t) > max_targets:
            t = np.sort(rng.choice(t, max_targets, replace=False))
        refs.append(r)
        targets.append(t)
    return refs, targets



def _score(model: StyleModel, ws, targets, pools: Pools, char_judge, writer_judge,
           writer_label: dict, real_feats: np.ndarray) -> dict:
    want_chars = np.concatenate([pools.chars[t] for t in targets])
    style_of = np.concatenate([np.full(len(t), i) for i, t in enumerate(targets)])
    fake = model.generate(np.asarray(ws)[style_of], want_chars)
    feats, probs = char_judge.outputs(fake)
    legible = metrics.accuracy(char_judge.class_ids[np.argmax(probs, -1)], want_chars)
    labels = np.concatenate([np.full(len(t), writer_label[int(pools.writers[t[0]])])
                             for t in targets if len(t)])
    match = metrics.accuracy(writer_judge.predict(fake), labels)
    return {"char_accuracy": legible, "writer_match": match,
            "fid": metrics.frechet_distance(feats, real_feats), "num_generated": int(len(fake)),
            "_images": fake}


def default_ablations(projection: ProjectionConfig) -> dict:
    """Variants of encoder + projection compared at one k: {row name: ProjectionConfig}."""
    other = "encoder" if projection.feature == "discriminator" else "discriminator"
    return {
        "both, pixel loss only": dataclasses.replace(projection, feature="none"),
        f"both, {other} features": dataclasses.replace(projection, feature=other),
        "both, W (one w) not W+": dataclasses.replace(projection, wplus=False),
    }


FEWSHOT_METHOD = "few-shot (style from the k glyphs)"
PICTURE_METHODS = ("encoder + projection", FEWSHOT_METHOD)
UNSEEN = " [characters never trained on]"
MEAN_STYLE = "mean style (baseline)"
HELDOUT_WRITER = "heldout-writer"  # the writer judge's kind in the judge cache
BASELINES = (MEAN_STYLE, "random training writer (baseline)")
CLEAN = "clean"  # the rows' "references" when the k glyphs are the dataset's own


@dataclasses.dataclass
class Heldout:
    """The held-out writers' glyphs, their pools, and the judges that score styles of them."""
    images: np.ndarray
    chars: np.ndarray
    writers: np.ndarray
    pools: Pools
    writer_ids: list  # dataset writer ids of the held-out writers
    label: dict  # dataset writer id -> the writer judge's class
    writer_judge: object = None
    char_judge: object = None
    split: str = "test"  # the held-out split's name

    @property
    def reference_indices(self) -> np.ndarray:
        """Every glyph of the held-out writers' reference pools, writer by writer."""
        return np.concatenate([self.pools.ref[w] for w in self.writer_ids])


def load_heldout(data_dir, heldout_split: str, train_split: str, image_size: int,
                 seed: int) -> Heldout:
    """The held-out split's glyphs cut into pools; ValueError when it shares writers with the
    training split (the dataset must be built with split=writer)."""
    manifest = tfrecords.load_manifest(data_dir)
    images, chars, writers = load_glyphs(data_dir, heldout_split, image_size)
    train_writers = set(manifest["splits"][train_split]["per_writer"])
    names = manifest["writers"]
    leaked = sorted({names[w] for w in np.unique(writers)} & train_writers)
    if leaked:
        raise ValueError(f"split {heldout_split!r} of {data_dir} shares writers with "
                         f"{train_split!r} ({leaked[:3]}...): build the dataset with split=writer")
    pools = split_pools(images, chars, writers, seed)
    writer_ids = sorted(pools.ref)
    return Heldout(images, chars, writers, pools, writer_ids,
                   {w: i for i, w in enumerate(writer_ids)}, split=heldout_split)


def _train_judges(model: StyleModel, h: Heldout, data_dir, train_split: str,
                  writer_judge_steps: int, char_judge_steps: Optional[int],
                  judge_batch: Optional[int],
                  cache_dir, seed: int) -> None:
    """A writer judge on the reference pools of the held-out writers, and the run's char judge:
    both from the dataset's judge cache (`cache_dir` if given), the writer judge keyed by the
    very glyphs and labels it learns from, so a second evaluation of any model on the same
    held-out writers reuses it."""
    judge_batch = judge_batch or model.cfg.eval.judge_batch
    cache_dir = cache_dir or model.cfg.eval.judge_cache_dir or None
    fallback = Path(model.cfg.runtime.model_dir) / judge_lib.CACHE_DIRNAME
    ref_all = h.reference_indices
    h.writer_judge = judge_lib.get_judge_of(
        cache_dir, HELDOUT_WRITER, data_dir, h.images[ref_all],
        np.array([h.label[int(w)] for w in h.writers[ref_all]]), len(h.writer_ids),
        steps=writer_judge_steps, batch=judge_batch, seed=seed, split=h.split,
        fallback_dir=fallback)
    h.char_judge = judge_lib.get_judge(
        cache_dir, "char", data_dir,
        image_size=model.resolution, steps=char_judge_steps or model.cfg.eval.judge_steps,
        batch=judge_batch, seed=0, split=train_split, fallback_dir=fallback)


def _real_scores(h: Heldout, targets) -> tuple[np.ndarray, float, float]:
    """(char-judge features, char accuracy, writer match) of the real target glyphs."""
    real_t = np.concatenate(targets)
    real_feats, real_probs = h.char_judge.outputs(h.images[real_t])
    real_char_acc = metrics.accuracy(h.char_judge.class_ids[np.argmax(real_probs, -1)],
                                     h.chars[real_t])
    real_match = metrics.accuracy(h.writer_judge.predict(h.images[real_t]),
                                  np.array([h.label[int(w)] for w in h.writers[real_t]]))
    return real_feats, real_char_acc, real_match


def _methods(model: StyleModel, x, c, m, baseline, n: int, projection: ProjectionConfig,
             ablations: Optional[dict]) -> dict:
    """{row name: () -> ws} of the methods compared at one k (x, c, m: the references;
    baseline: the training writers' references)."""
    tx, tc, tm = baseline
    if getattr(model, "family", "stylegan") == "fewshot":
        return {
            MEAN_STYLE: lambda: model.mean_ws(n),
            "random training writer (baseline)": lambda: model.extract(tx, tc, tm),
            FEWSHOT_METHOD: lambda: model.extract(x, c, m),
        }
    methods = {
        MEAN_STYLE: lambda: model.mean_ws(n).numpy(),
        "random training writer (baseline)": lambda: model.encode(tx, tc, tm).numpy(),
        "encoder": lambda: model.extract(x, c, m, "encoder"),
        "projection": lambda: model.extract(x, c, m, "projection", projection),
        "encoder + projection": lambda: model.extract(x, c, m, "both", projection),
    }
    for name, cfg in (ablations or {}).items():
        methods[name] = (lambda cfg=cfg: model.extract(x, c, m, "both", cfg))
    return methods


def _row(model: StyleModel, h: Heldout, k: int, name: str, fn, targets, real, log,
         references: str = CLEAN):
    """(table row, generated glyphs) of one method at one k, its styles from `references`."""
    real_feats, real_char_acc, real_match = real
    t1 = time.perf_counter()
    ws = fn()
    seconds = time.perf_counter() - t1
    score = _score(model, ws, targets, h.pools, h.char_judge, h.writer_judge, h.label, real_feats)
    fake = score.pop("_images")
    legibility = score["char_accuracy"] / real_char_acc if real_char_acc else float("nan")
    row = {"k": k, "method": name, "references": references, "legibility": legibility,
           "writer_match": score["writer_match"],
           "writer_match_vs_chance": score["writer_match"] * len(h.writer_ids),
           "fid": score["fid"], "real_writer_match": real_match,
           "real_char_accuracy": real_char_acc, "seconds_all_writers": seconds,
           "num_generated": score["num_generated"]}
    shown = name if references == CLEAN else f"{name} [re-captured]"
    log(f"k={k:2d} {shown:36s} legibility {row['legibility']:.3f} writer match "
        f"{row['writer_match']:.3f} ({row['writer_match_vs_chance']:.1f}x chance; real "
        f"{real_match:.3f}) FID {row['fid']:.2f}  [{seconds:.1f} s]")
    return row, fake


def evaluate_styles(model: StyleModel, data_dir, *, heldout_split: str = "test",
                    train_split: str = "train", ks: Sequence[int] = (5, 10, 20),
                    projection: ProjectionConfig = ProjectionConfig(),
                    ablations_k: Optional[int] = 10, ablations: Optional[dict] = None,
                    max_targets: int = 60,
                    writer_judge_steps: int = 2000, char_judge_steps: Optional[int] = None,
                    judge_batch: Optional[int] = None, cache_dir=None, seed: int = 0,
                    references=None, log=print) -> dict:
    """Runs the protocol (module doc); returns {"table": [...rows], "writers": n, ...} and keeps
    the images of the k=`ablations_k` (or middle k) "both" run for a picture under "_picture".

    references: the held-out glyphs from another capture set-up (data_pipeline.capture.Recapture,
    or any object with `images` [N, R, R, 1] in the held-out split's order, bool `asked` and
    `captured` [N], a `name`, optionally `keys` and `report`). Every method but the baselines is
    then run again with the same reference indices and those images (rows with "references":
    its name; the others say "clean"); targets, judges and baselines stay the same. References
    are then drawn, for both, from the glyphs that came back (the others are counted)."""
    r = model.resolution
    h = load_heldout(data_dir, heldout_split, train_split, r, seed)
    usable = _check_references(references, h, data_dir, heldout_split, r)
    t0 = time.perf_counter()
    _train_judges(model, h, data_dir, train_split, writer_judge_steps, char_judge_steps,
                  judge_batch, cache_dir, seed)
    log(f"judges ready in {time.perf_counter() - t0:.0f} s ({len(h.writer_ids)} held-out "
        f"writers, {len(h.images)} glyphs; writer judge "
        f"{h.writer_judge.cache.get('status', '?')}: {h.writer_judge.cache.get('path')})")

    # Training writers, for the "random training writer" baseline.
    t_images, t_chars, t_writers = load_glyphs(data_dir, train_split, r, limit=20000)
    t_pools = split_pools(t_images, t_chars, t_writers, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))

    unseen = frozenset(model.charset.index(c) for c in getattr(model, "holdout_chars", ""))
    n = len(h.writer_ids)
    rows, picture = [], None
    for k in ks:
        refs, targets = _sets(h.pools, h.writer_ids, k, max_targets, seed, unseen,
                              usable=usable)
        real = _real_scores(h, targets)
        x, c, m = stack_sets(h.images, h.chars, refs, k)
        others = rng.choice(sorted(t_pools.ref), n)
        t_refs = [t_pools.ref[int(w)][pick_samples(t_chars[t_pools.ref[int(w)]], k, rng)]
                  for w in others]
        baseline = stack_sets(t_images, t_chars, t_refs, k)
        variants = None
        if k == ablations_k:
            variants = ablations if ablations is not None else default_ablations(projection)
        passes = {CLEAN: _methods(model, x, c, m, baseline, n, projection, variants)}
        if references is not None:  # the same indices, the re-captured images
            xr = stack_sets(references.images, h.chars, refs, k)[0]
            passes[references.name] = {
                name: fn for name, fn in _methods(model, xr, c, m, baseline, n, projection,
                                                  None).items() if name not in BASELINES}
        for source, methods in passes.items():
            for name, fn in methods.items():
                row, fake = _row(model, h, k, name, fn, targets, real, log, source)
                rows.append(row)
                if (source == CLEAN and name in PICTURE_METHODS
                        and (k == ablations_k or picture is None)):
                    picture = {"k": k, "targets": targets, "fake": fake, "real": h.images,
                               "writer_ids": h.writer_ids}
        if unseen:  # the same references; targets: only characters training never saw
            _, u_targets = _sets(h.pools, h.writer_ids, k, max_targets, seed, unseen, True,
                                 usable)
            if sum(len(t) for t in u_targets):
                u_real = _real_scores(h, u_targets)
                for source, methods in passes.items():
                    for name, fn in methods.items():
                        if name in (MEAN_STYLE, FEWSHOT_METHOD):
                            rows.append(_row(model, h, k, name + UNSEEN, fn, u_targets, u_real,
                                             log, source)[0])
    result = {"table": rows, "writers": n, "chance": 1.0 / n,
              "heldout_glyphs": int(len(h.images)), "step": model.step, "_picture": picture}
    if references is not None:
        ref_all = h.reference_indices
        result["references"] = {
            "name": references.name, "reference_pool_glyphs": int(len(ref_all)),
            "lost_from_reference_pools": int((~usable[ref_all]).sum()),
            "capture_report": getattr(references, "report", None)}
    return result


def _check_references(references, h: Heldout, data_dir, heldout_split: str, resolution: int
                      ) -> Optional[np.ndarray]:
    """The glyphs that may be references (None: all), after checking that `references` are
    the held-out split's, row for row, and cover its reference pools."""
    if references is None:
        return None
    images, asked = references.images, np.asarray(references.asked, bool)
    where = f"the re-captured references ({references.name})"
    if images.shape != h.images.shape:
        raise ValueError(f"{where} have shape {images.shape}; the held-out split {heldout_split!r}"
                         f" of {data_dir} at resolution {resolution} is {h.images.shape}")
    keys = getattr(references, "keys", None)
    if keys is not None and list(keys) != split_keys(data_dir, heldout_split):
        raise ValueError(f"{where} are of other records than the split {heldout_split!r} of "
                         f"{data_dir} (or in another order)")
    ref_all = h.reference_indices
    missing = ref_all[~asked[ref_all]]
    if len(missing):
        raise ValueError(f"{where} lack {len(missing)} glyphs of the reference pools (made "
                         f"with another seed?)")
    return np.asarray(references.captured, bool) & asked


def capture_table(result: dict, min_legibility: float = 0.9, min_vs_chance: float = 5.0
                  ) -> list[str]:
    """Lines comparing each re-captured row with the same method on clean references, and the
    issue's bar: legibility >= min_legibility, writer match >= min_vs_chance x chance, FID
    below the mean style's (clean, same k and targets)."""
    clean = {(r["k"], r["method"]): r for r in result["table"] if r["references"] == CLEAN}

    def cells(r):
        return f"{r['legibility']:5.3f} {r['writer_match_vs_chance']:5.1f}x {r['fid']:7.2f}"

    lines = [f"{'k':>3} {'method':44s} {'clean: legib match   FID':>25}  "
             f"{'re-captured: legib match   FID':>31}  {'mean FID':>8}  bar"]
    for r in result["table"]:
        if r["references"] == CLEAN:
            continue
        base = clean.get((r["k"], r["method"]))
        mean = clean.get((r["k"], MEAN_STYLE + (UNSEEN if r["method"].endswith(UNSEEN) else "")))
        ok = (r["legibility"] >= min_legibility and r["writer_match_vs_chance"] >= min_vs_chance
              and mean is not None and r["fid"] < mean["fid"])
        lines.append(f"{r['k']:3d} {r['method'][:44]:44s} "
                     f"{cells(base) if base else '':>25}  {cells(r):>31}  "
                     f"{mean['fid'] if mean else float('nan'):8.2f}  {'pass' if ok else 'FAIL'}")
    return lines


def recapture_references(data_dir, setup, *, heldout_split: str = "test",
                         train_split: str = "train", image_size: int = 32, seed: int = 0,
                         strokes=None, cache=None, workdir=None, log=print):
    """The glyphs of the held-out reference pools (seed `seed`) re-captured with `setup`
    (data_pipeline.capture: another pen, printed, photographed, extracted), for
    `evaluate_styles(references=...)`. `cache`: an .npz reused when it holds this set-up's
    re-capture of this split at this size, else written; `strokes`: the stroke files, if not
    where the dataset's manifest says; `workdir`: keep the photographed sheets there."""
    if cache and Path(cache).exists():
        got = capture.Recapture.load(cache)
        if (got.setup == setup and got.glyphs.shape[1] == image_size
                and list(got.keys) == split_keys(data_dir, heldout_split)):
            log(f"re-captured references from {cache}")
            return got
        log(f"{cache} holds another re-capture; capturing again")
    h = load_heldout(data_dir, heldout_split, train_split, image_size, seed)
    got = capture.recapture_split(data_dir, heldout_split, h.reference_indices, setup,
                                  image_size, strokes, workdir, log)
    if cache:
        got.save(cache)
    return got


def picture(result: dict, n_writers: int = 6, n_chars: int = 14) -> np.ndarray:
    """uint8 image (dark ink on white): for n_writers held-out writers, a row of their real
    target glyphs above a row of the same characters generated in their extracted style."""
    pic = result["_picture"]
    targets, fake, real = pic["targets"], pic["fake"], pic["real"]
    r = real.shape[1]
    starts = np.cumsum([0] + [len(t) for t in targets])
    rows = []
    for i in range(min(n_writers, len(targets))):
        t = targets[i][:n_chars]
        f = fake[starts[i]:starts[i] + len(t)]
        pad = n_chars - len(t)
        for block in (real[t], f):
            tiles = list(block[..., 0]) + [np.full((r, r), -1.0)] * pad
            rows.append(np.concatenate(tiles, axis=1))
        rows.append(np.full((4, r * n_chars), -1.0))
    img = np.concatenate(rows)
    return (255 - np.clip((img + 1.0) * 127.5, 0, 255)).astype(np.uint8)
