"""`evaluate`: score a generator against judges trained on real glyphs.

What is measured (all against the real split the judges train on, TRAIN by default):

  legibility    the char judge's accuracy on generated glyphs over its accuracy on real held-out
                glyphs (ratio ~1: as legible as real handwriting; per character too).
  fid / kid     Fréchet distance and kernel (MMD^2) distance between the char judge's 128-d
                features of the generated glyphs and of the real held-out glyphs. The held-out
                set is reweighted to equal characters, as the requests are (so a dataset's class
                imbalance is not charged to the generator). Both shrink with more samples: compare
                runs at the same num_generated on the same dataset only.
  writer_match  (uses_writer) how often the writer judge names the writer the glyph was asked
                for, against its real held-out accuracy and chance.

The judges never see generated glyphs in training, and they are cached by dataset, in
`<data_dir>/judges/` by default (see `judge.get_judge`), so every model evaluated on one dataset
with one setting is scored by the same judges, and only the first run on a dataset trains them;
the result's "judges" says, for each, whether it was reused or trained and where it lies.

Phases (each a line on stderr; those that take long also a bar with the time left): reading the
real glyphs, the char judge (a bar while it trains), generating (a bar over GENERATE_CHUNK-glyph
calls of `generate`, each with its own seed), scoring (legibility, FID, KID: the judge's
features of every glyph in SCORE_CHUNK batches, then a bar over KID's subsets), and for
char+writer models the writer judge and writer match. Nothing loops per glyph in Python:
generation, the judges and the metrics work on whole batches.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Callable, Optional

import numpy as np

from data_pipeline import atomic, tfrecords
from data_pipeline.dataset import load_glyphs
from data_pipeline.progress import Progress
from hw_gan.evaluation import judge as judge_lib
from hw_gan.evaluation import metrics

log = logging.getLogger(__name__)

GenerateFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
GENERATE_CHUNK = 512  # glyphs per generate() call (one progress step, its own seed)
SCORE_CHUNK = 1024  # glyphs per judge pass while scoring (one progress step)


def balanced_requests(char_ids, writer_ids, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n (char, writer) pairs: every char n/C times (+-1), every writer about n/W times, every
    pair once before any pair twice; seeded order. Returns int32 arrays [n]."""
    chars = np.asarray(char_ids, np.int32)
    writers = np.asarray(writer_ids, np.int32)
    if n < 1 or len(chars) == 0 or len(writers) == 0:
        raise ValueError(f"need n >= 1 ({n}) and some chars ({len(chars)}) and writers "
                         f"({len(writers)})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 65537]))
    chars, writers = rng.permutation(chars), rng.permutation(writers)
    i = np.arange(n)
    c = i % len(chars)
    w = (i // len(chars) + c) % len(writers)
    order = rng.permutation(n)
    return chars[c][order], writers[w][order]


def _ratio(a: float, b: float):
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b <= 0:
        return None
    return float(a / b)


def _jsonable(x):
    """NaN/inf -> None, numpy scalars -> Python, recursively (valid JSON, no NaN tokens)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def chunk_seed(seed: int, chunk: int) -> int:
    """The generation seed of the `chunk`-th chunk of an evaluation seeded `seed` (31 bits; each
    chunk draws its own noise)."""
    return int(np.random.SeedSequence([seed, 2718, chunk]).generate_state(1)[0] >> 1)


def _generate(generate: GenerateFn, chars: np.ndarray, writers: np.ndarray, seed: int,
              image_size: int, progress: bool = True) -> np.ndarray:
    """generate() over the requests in chunks of GENERATE_CHUNK (each with its own
    `chunk_seed`), with a progress bar; checked and clipped to [-1, 1]."""
    bar = Progress("generate", len(chars), "glyphs", enabled=progress)
    out = []
    for k, start in enumerate(range(0, len(chars), GENERATE_CHUNK)):
        c, w = chars[start:start + GENERATE_CHUNK], writers[start:start + GENERATE_CHUNK]
        images = np.asarray(generate(c, w, chunk_seed(seed, k)))
        want = (len(c), image_size, image_size, 1)
        if images.shape != want:
            raise ValueError(f"generate returned images of shape {images.shape}, expected {want}")
        out.append(images.astype(np.float32))
        bar.update(len(c))
    bar.close()
    images = np.concatenate(out)
    bad = int(np.count_nonzero(~np.isfinite(images)))
    if bad:
        raise ValueError(f"generate returned {bad} non-finite pixel values (a diverged model?)")
    return np.clip(images, -1.0, 1.0)


def _outputs(judge, parts, label: str, progress: bool = True):
    """judge.outputs of each of `parts` (image arrays), in chunks, with one progress bar."""
    bar = Progress(label, sum(len(p) for p in parts), "glyphs", enabled=progress)
    out = []
    for images in parts:
        feats, probs = [], []
        for start in range(0, len(images), SCORE_CHUNK):
            f, p = judge.outputs(images[start:start + SCORE_CHUNK])
            feats.append(f)
            probs.append(p)
            bar.update(len(f))
        out.append((np.concatenate(feats), np.concatenate(probs)))
    bar.close()
    return out


def _judge(kind: str, data_dir, cache_dir, fallback_dir, progress: bool, **kw):
    """get_judge, and what eval.json says about it: reused or trained, where, how long."""
    t0 = time.perf_counter()
    judge = judge_lib.get_judge(cache_dir, kind, data_dir, fallback_dir=fallback_dir,
                                progress=progress, **kw)
    info = dict(judge.cache, seconds=round(time.perf_counter() - t0, 2),
                real_accuracy=judge.real_accuracy, steps=kw["steps"], batch=kw["batch"])
    return judge, info


def evaluate(generate: GenerateFn, data_dir, cache_dir=None, *, image_size: int,
             num_generated: int, uses_writer: bool, judge_steps: int, judge_batch: int,
             seed: int = 0, split: str = tfrecords.TRAIN,
             max_real: Optional[int] = judge_lib.MAX_REAL, judge_seed: int = 0,
             fallback_dir=None, progress: bool = True) -> dict:
    """Scores `generate(char_ids int32 [N], writer_ids int32 [N], seed) -> float32
    [N, image_size, image_size, 1] in [-1, 1]` (ids index the manifest's charset / writers).

    It is called on `num_generated` balanced, seeded requests over the chars and writers present
    in `split`, in chunks of GENERATE_CHUNK, each with its own seed (`chunk_seed(seed, k)`).
    Judges (trained for `judge_steps` steps of `judge_batch`) come from / go to `cache_dir`
    (None or "": the dataset's shared cache, `<data_dir>/judges/`; `fallback_dir`, a run's
    model_dir, when that cannot be written: see `judge.get_judge`); the result's "judges" says
    for each whether it was reused or trained, and where it is. Returns a JSON-able dict (see
    the module doc; None where a value is undefined). The split's first `max_real` glyphs (None:
    all) are the real data: 90% train the judges, 10% are the held-out reference. `seed` drives
    the requests, the generator and the KID subsets; `judge_seed` the judges and the held-out
    split, and is fixed by default so that runs with different seeds are scored by the same
    (cached) judges. Call outside any tf.distribute strategy scope. `progress`: a line per phase
    on stderr, and a bar with the time left for each phase that takes long (judge training,
    generation, scoring).
    """
    if num_generated < 2:
        raise ValueError(f"num_generated={num_generated}: need at least 2 for FID / KID")
    phases = Progress("evaluate", 4 + int(uses_writer), "phases", enabled=progress, rate=False)
    phases.update(0, extra="reading real glyphs", force=True)
    manifest = tfrecords.load_manifest(data_dir)
    real = load_glyphs(data_dir, split, image_size, max_real)
    images, chars, writers = real
    train_idx, held = judge_lib.holdout_split(len(chars), judge_seed)  # as get_judge splits
    kw = dict(image_size=image_size, steps=judge_steps, batch=judge_batch, seed=judge_seed,
              split=split, max_real=max_real, real=real)
    phases.update(1, extra="char judge", force=True)
    judges: dict = {}
    char_judge, judges["char"] = _judge("char", data_dir, cache_dir, fallback_dir, progress, **kw)

    phases.update(1, extra=f"generating {num_generated} glyphs (char judge "
                           f"{judges['char']['status']}: {judges['char']['path']})", force=True)
    req_chars, req_writers = balanced_requests(char_judge.class_ids, np.unique(writers[train_idx]),
                                               num_generated, seed)
    fake = _generate(generate, req_chars, req_writers, seed, image_size, progress)

    phases.update(1, extra="legibility, FID, KID", force=True)
    (fake_feats, fake_probs), (real_feats, real_probs) = _outputs(
        char_judge, [fake, images[held]], "char judge scoring", progress)
    legibility = _legibility(char_judge, fake_probs, req_chars, real_probs, chars[held],
                             manifest["charset"])
    fid, kid, kid_std = _fid_kid(fake_feats, real_feats, chars[held], seed, progress)

    result = {
        "legibility": legibility,
        "fid": fid,
        "kid": kid,
        "kid_std": kid_std,
        "num_generated": int(num_generated),
        "num_real_heldout": int(len(held)),
        "judge_steps": int(judge_steps),
        "judge_batch": int(judge_batch),
        "judges": judges,
        "image_size": int(image_size),
        "split": split,
        "seed": int(seed),
        "judge_seed": int(judge_seed),
        "max_real": max_real,
        "dataset_manifest_sha256": judge_lib.manifest_sha256(data_dir),
    }
    if uses_writer:
        phases.update(1, extra="writer judge and writer match", force=True)
        writer_judge, judges["writer"] = _judge("writer", data_dir, cache_dir, fallback_dir,
                                                progress, **kw)
        (_, fake_wprobs), (_, real_wprobs) = _outputs(
            writer_judge, [fake, images[held]], "writer judge scoring", progress)
        result["writer_match"] = _writer_match(writer_judge, fake_wprobs, req_writers,
                                               real_wprobs, writers[held])
    phases.count += 1  # close() prints the last line (an update would print it twice)
    phases.extra = (f"done (writer judge {judges['writer']['status']}: "
                    f"{judges['writer']['path']})" if uses_writer else "done")
    phases.close()
    log.info("evaluate: legibility %s, FID %.3f, KID %.5f%s", legibility["ratio"], fid, kid,
             f", writer match {result['writer_match']['generated']:.3f}" if uses_writer else "")
    return _jsonable(result)


def _fid_kid(fake_feats, real_feats, real_chars, seed: int,
             progress: bool = True) -> tuple[float, float, float]:
    """FID, KID and KID's spread against the real held-out glyphs, reweighted to equal
    characters (a progress bar over KID's subsets)."""
    _, inverse, counts = np.unique(real_chars, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    fid = metrics.frechet_distance(fake_feats, real_feats, weights_b=weights)
    bar = Progress("KID", KID_SUBSETS, "subsets", enabled=progress)
    kid, kid_std = metrics.kernel_inception_distance(
        fake_feats, real_feats, KID_SUBSETS, KID_SUBSET_SIZE, seed, probs_b=weights,
        return_std=True, on_subset=bar.update)
    bar.close()
    return fid, kid, kid_std


def _legibility(char_judge, fake_probs, req_chars, real_probs, real_chars, labels) -> dict:
    """How often the char judge reads generated glyphs as the requested character, overall and
    per character, as a ratio to how often it reads real held-out glyphs right."""
    fake_pred = char_judge.class_ids[np.argmax(fake_probs, -1)]
    real_pred = char_judge.class_ids[np.argmax(real_probs, -1)]
    gen_acc = metrics.accuracy(fake_pred, req_chars)
    real_acc = metrics.accuracy(real_pred, real_chars)
    gen_per = metrics.per_class_accuracy(fake_pred, req_chars, char_judge.class_ids)
    real_per = metrics.per_class_accuracy(real_pred, real_chars, char_judge.class_ids)
    return {
        "ratio": _ratio(gen_acc, real_acc),
        "generated_accuracy": gen_acc,
        "real_accuracy": real_acc,
        "per_char": {labels[c]: _ratio(gen_per[c], real_per[c]) for c in gen_per},
        "per_char_generated_accuracy": {labels[c]: gen_per[c] for c in gen_per},
        "per_char_real_accuracy": {labels[c]: real_per[c] for c in real_per},
    }


def _writer_match(writer_judge, fake_probs, req_writers, real_probs, real_writers) -> dict:
    """How often the writer judge names the requested writer for generated glyphs, against
    chance and against real held-out glyphs (from the judge's class probabilities)."""
    ids = writer_judge.class_ids
    gen_match = metrics.accuracy(ids[np.argmax(fake_probs, -1)], req_writers)
    real_match = metrics.accuracy(ids[np.argmax(real_probs, -1)], real_writers)
    chance = 1.0 / writer_judge.num_classes
    return {
        "generated": gen_match,
        "real": real_match,
        "chance": chance,
        "vs_chance": _ratio(gen_match, chance),
        "ratio": _ratio(gen_match, real_match),
        "num_writers": int(writer_judge.num_classes),
    }


def write_eval_json(path, result: dict) -> None:
    """Writes `result` as JSON to `path` atomically (NaN becomes null)."""
    atomic.write_text(path, json.dumps(_jsonable(result), indent=2, sort_keys=True,
                                       allow_nan=False) + "\n")
