"""The judges: small CNN classifiers trained on real glyphs, used to score generated ones.

Two kinds, both trained on the same seeded 90% of a real split (TRAIN by default) and scored on
the other 10% ("real held-out accuracy", the ceiling a generator is compared against):

    "char"   classes are the charset labels present in the judge's training glyphs; its
             penultimate 128-d layer is also the feature space of FID / KID (`Judge.features`).
    "writer" classes are the manifest's writers present in the judge's training glyphs (a
             writer-split dataset's held-out writers are in the test split only: not classes).

`augment="texture"` trains a judge that ignores how a stroke is rendered: every training glyph
is also randomly blurred (Gaussian, sigma up to 1.2 px), thickened (a 2x2 grey dilation) and
re-toned (gamma 0.5-2). A plain judge keys on stroke texture: a Gaussian blur of sigma 0.5 px,
invisible at this size, moves a real writer's OWN glyphs from a writer-judge distance of 3.9 to
10.6 of their held-out glyphs (another real writer: 6.1-7.7; benchmarks/judge_texture.py), so
a plain writer judge cannot compare glyphs from generators that render strokes differently (a
fine-tuned generator against its base).

Labels and predictions are always the dataset's own ids (indices into the manifest's `charset`
or `writers`); `Judge.class_ids` maps the softmax units to them.

`get_judge` trains a judge once and caches it for every run on the same dataset: by default in
`<data_dir>/judges/` (`default_cache_dir`; a run's `<model_dir>/judges/` when the data directory
cannot be written, or any folder the caller names: `--judge_cache_dir`), one folder per judge
identity, `<kind>-<augment>-<hash>/` (`identity_dirname`), holding `judge.weights.h5` +
`judge.json`. The json records what the judge was trained on (the manifest's sha256, charset,
writers, resolution, image size, steps, batch, seed, split, augment, ARCH); a folder whose json
does not match this dataset and setting is rebuilt, never reused silently. The folder is written
under a temporary name and renamed (data_pipeline.atomic). `Judge.cache` says whether a judge was
reused or trained, and where it is.

Training (`train_judge`): each step is one compiled TensorFlow function (forward, gradients, Adam
update); the batch is augmented in NumPy for the whole batch at once (`augment_batch`: random
shifts, and `_texture_batch`'s blur, dilation and tone as vectorised array operations that match
cv2's per glyph), seeded, so a seed trains the same weights. On a CPU the judge is compute-bound
(a glyph costs about the same at batch 128 or 512), so the time goes with the glyphs seen
(steps x batch); the recipe and its accuracy against the glyphs seen: docs/results.md ("Judges").

Judges are always float32 (whatever the global mixed-precision policy) and should be built and
used outside a tf.distribute strategy scope.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipeline import atomic, tfrecords
from data_pipeline.dataset import load_glyphs
from data_pipeline.progress import Progress
from hw_gan.models.classifier import FEATURE_DIM
from hw_gan.models.classifier import build_classifier as build_judge_model

log = logging.getLogger(__name__)

KINDS = ("char", "writer")
AUGMENTS = ("none", "texture")
HELDOUT_FRACTION = 0.1
MAX_REAL = 50_000  # real glyphs read per split (float32 in memory: 50k x 64 x 64 is 0.8 GB)
ARCH = "judge-v2"  # bump when the architecture or training recipe changes: old caches rebuild
LEARNING_RATE = 8e-3  # Adam's peak at batch 256 (learning_rate_for scales it to other batches)
WARMUP_FRACTION = 0.05  # of the steps, from a tenth of the peak learning rate
WEIGHTS_FILE = "judge.weights.h5"
META_FILE = "judge.json"
CACHE_DIRNAME = "judges"  # default_cache_dir: <data_dir>/judges/
FORMAT = 1


# --------------------------------------------------------------------------------------------
# Real data



def holdout_split(n: int, seed: int, fraction: float = HELDOUT_FRACTION
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train_idx, heldout_idx), both sorted: `fraction` of range(n) held out (>= 1 when
    n >= 2, and at least one glyph always left to train on)."""
    if n < 2:
        raise ValueError(f"need at least 2 real glyphs to train and score a judge, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4049]))
    perm = rng.permutation(n)
    n_held = min(n - 1, max(1, int(round(fraction * n))))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def manifest_sha256(data_dir) -> str:
    return hashlib.sha256((Path(data_dir) / tfrecords.MANIFEST).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# A trained judge (its network: hw_gan.models.classifier)


class Judge:
    """A trained judge. `predict` / `features` take float images [N, S, S, 1] in [-1, 1]."""

    def __init__(self, model, class_ids: Sequence[int], image_size: int, kind: str = "",
                 real_accuracy: Optional[float] = None, meta: Optional[dict] = None):
        import keras

        self.model = model
        self.class_ids = np.asarray(class_ids, np.int32)
        self.image_size = int(image_size)
        self.kind = kind
        self.real_accuracy = real_accuracy
        self.meta = dict(meta or {})
        self.cache: dict = {}  # get_judge: {"status": "reused" | "trained", "path": ...}
        self._both = keras.Model(model.input, [model.get_layer("features").output, model.output])

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        want = (self.image_size, self.image_size, 1)
        if images.ndim != 4 or images.shape[1:] != want:
            raise ValueError(f"the judge takes images [N, {want[0]}, {want[1]}, 1], got "
                             f"{images.shape}")
        return images

    def outputs(self, images, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(features [N, 128], class probabilities [N, num_classes]) in inference mode."""
        images = self._check(images)
        if len(images) == 0:
            return (np.zeros((0, FEATURE_DIM), np.float32),
                    np.zeros((0, self.num_classes), np.float32))
        feats, probs = [], []
        for start in range(0, len(images), batch):
            f, p = self._both(images[start:start + batch], training=False)
            feats.append(np.asarray(f))
            probs.append(np.asarray(p))
        return np.concatenate(feats), np.concatenate(probs)

    def features(self, images, batch: int = 256) -> np.ndarray:
        """The penultimate 128-d features (FID / KID space)."""
        return self.outputs(images, batch)[0]

    def predict_proba(self, images, batch: int = 256) -> np.ndarray:
        return self.outputs(images, batch)[1]

    def predict(self, images, batch: int = 256) -> np.ndarray:
        """Predicted dataset ids (int32 [N])."""
        return self.class_ids[np.argmax(self.predict_proba(images, batch), axis=-1)]


def _shift_batch(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by a random integer offset in [-max_shift, max_shift]^2 (paper fills),
    for the whole batch at once (one gather, no loop per glyph)."""
    if max_shift <= 0:
        return images
    n, h, w, _ = images.shape
    m = max_shift
    padded = np.pad(images[..., 0], ((0, 0), (m, m), (m, m)), constant_values=-1.0)
    dy = rng.integers(0, 2 * m + 1, n)
    dx = rng.integers(0, 2 * m + 1, n)
    rows = (dy[:, None] + np.arange(h))[:, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols][..., None]


def gaussian_kernels(sigmas: np.ndarray) -> np.ndarray:
    """Float32 [N, 2R+1] 1-D Gaussian kernels, one per sigma (sigma <= 0: the identity), each
    exactly cv2.getGaussianKernel(ksize, sigma, CV_32F) with OpenCV's float-image size rule
    (ksize = round(8 sigma + 1) | 1), centred and zero-padded to the largest one's length."""
    sigmas = np.asarray(sigmas, np.float64)
    sizes = np.where(sigmas > 0, np.round(np.maximum(sigmas, 0) * 8 + 1).astype(int) | 1, 1)
    r = int(sizes.max()) // 2
    x = np.arange(-r, r + 1, dtype=np.float64)[None, :]
    safe = np.where(sigmas > 0, sigmas, 1.0)[:, None]
    k = np.where(np.abs(x) <= sizes[:, None] // 2, np.exp(-x * x / (2 * safe * safe)), 0.0)
    return (k / k.sum(1, keepdims=True)).astype(np.float32)


def blur_batch(images: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """[N, H, W] float32 images, each blurred by its own Gaussian (`gaussian_kernels`; sigma <= 0
    leaves it as it is), separably with reflect-101 borders (cv2.GaussianBlur's default): one
    multiply-add per kernel tap over the whole batch, no loop per glyph."""
    images = np.asarray(images, np.float32)
    kernels = gaussian_kernels(sigmas)
    r = kernels.shape[1] // 2
    if r == 0:
        return images.copy()
    n, h, w = images.shape
    p = np.pad(images, ((0, 0), (r, r), (0, 0)), mode="reflect")
    rows = np.zeros_like(images)
    for t in range(2 * r + 1):
        rows += kernels[:, t, None, None] * p[:, t:t + h, :]
    p = np.pad(rows, ((0, 0), (0, 0), (r, r)), mode="reflect")
    out = np.zeros_like(images)
    for t in range(2 * r + 1):
        out += kernels[:, t, None, None] * p[:, :, t:t + w]
    return out


def _dilate2x2(ink: np.ndarray) -> np.ndarray:
    """cv2.dilate(ink, np.ones((2, 2))) for a batch [N, H, W]: the max over each pixel, its upper
    and left neighbours and the upper-left one (outside the image counts as nothing)."""
    p = np.pad(ink, ((0, 0), (1, 0), (1, 0)), constant_values=-np.inf)
    return np.maximum(np.maximum(p[:, 1:, 1:], p[:, :-1, 1:]),
                      np.maximum(p[:, 1:, :-1], p[:, :-1, :-1]))


def _texture_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each glyph ([-1, 1], ink high) re-rendered at random: blurred (p 0.7, Gaussian sigma
    U(0.3, 1.2) px), thickened (p 0.25, 2x2 grey dilation) and re-toned (ink^gamma, gamma
    log-uniform in [0.5, 2]). The shape of the strokes is kept; how they are drawn is not.
    Vectorised over the batch (the same operations as cv2's, per glyph)."""
    n = len(images)
    blur = rng.random(n) < 0.7
    sigma = rng.uniform(0.3, 1.2, n)
    dilate = rng.random(n) < 0.25
    gamma = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    ink = (np.asarray(images, np.float32)[..., 0] + 1.0) * 0.5
    ink = blur_batch(ink, np.where(blur, sigma, 0.0))
    ink = np.where(dilate[:, None, None], _dilate2x2(ink), ink)
    ink = np.clip(ink, 0.0, 1.0) ** gamma[:, None, None].astype(np.float32)
    return (ink * 2.0 - 1.0)[..., None].astype(np.float32)


def augment_batch(images: np.ndarray, augment: str, rng: np.random.Generator) -> np.ndarray:
    """What a judge trains on: random shifts of up to S/16 px, then (`augment="texture"`) the
    texture re-rendering. Seeded by `rng`; float32 [N, S, S, 1] in [-1, 1]."""
    x = _shift_batch(np.asarray(images, np.float32), images.shape[1] // 16, rng)
    return _texture_batch(x, rng) if augment == "texture" else x


def _train_step(model, optimizer, size: int):
    """A compiled step: one Adam update of `model` on (images, labels), returning the loss."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = model.trainable_variables

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def train_judge(images, labels, num_classes: int, steps: int, batch: int, seed: int, *,
                class_ids: Optional[Sequence[int]] = None, kind: str = "",
                learning_rate: Optional[float] = None, augment: str = "none",
                progress: bool = True) -> Judge:
    """Trains a judge on `images` [N, S, S, 1] with `labels` in [0, num_classes) for `steps`
    minibatches of `batch` (seeded epoch shuffles, `augment_batch`, Adam: a linear warm-up over
    the first WARMUP_FRACTION of the steps to `learning_rate`, then cosine decay to 5 % of it).
    `learning_rate` None: `learning_rate_for(batch)`. Each step is
    one compiled TensorFlow function; the batch is augmented in NumPy, seeded, so the same
    inputs and seed train the same weights. `class_ids` are the dataset ids of the classes
    (default range(num_classes)). `progress`: a progress bar with the time left on stderr.
    """
    import keras

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32)
    num_classes, steps, batch = int(num_classes), int(steps), int(batch)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 1:
        raise ValueError(f"judge images must be [N, S, S, 1], got {images.shape}")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"{len(images)} images and {len(labels)} labels: need the same, > 0")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes})")
    if steps < 1 or batch < 1:
        raise ValueError(f"steps ({steps}) and batch ({batch}) must be >= 1")
    if augment not in AUGMENTS:
        raise ValueError(f"judge augment {augment!r} is not one of {AUGMENTS}")
    size = images.shape[1]
    lr = learning_rate_for(batch) if learning_rate is None else float(learning_rate)
    model = build_judge_model(size, num_classes, seed)
    warmup = int(steps * WARMUP_FRACTION)
    schedule = keras.optimizers.schedules.CosineDecay(
        lr if warmup == 0 else lr * 0.1, steps - warmup, alpha=0.05,
        warmup_target=None if warmup == 0 else lr, warmup_steps=warmup)
    step_fn = _train_step(model, keras.optimizers.Adam(schedule), size)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 31337]))
    batch = min(batch, len(images))
    order, pos = rng.permutation(len(images)), 0
    bar = Progress(f"judge {kind or 'classes'}", steps, "steps", enabled=progress)
    for _ in range(steps):
        if pos + batch > len(order):
            order, pos = rng.permutation(len(images)), 0
        idx = order[pos:pos + batch]
        pos += batch
        step_fn(augment_batch(images[idx], augment, rng), labels[idx])
        bar.update()
    bar.close()
    return Judge(model, range(num_classes) if class_ids is None else class_ids, size, kind)


def learning_rate_for(batch: int) -> float:
    """The judges' peak Adam learning rate at `batch`: LEARNING_RATE at 256, scaled with the
    square root of the batch above or below it."""
    return LEARNING_RATE * float(np.sqrt(batch / 256.0))


# --------------------------------------------------------------------------------------------
# The cache


def default_cache_dir(data_dir) -> Path:
    """Where judges of `data_dir` are cached unless told otherwise: `<data_dir>/judges/`, shared
    by every run on that dataset (the dataset's own files are listed by its manifest; nothing
    that reads a dataset looks at this folder, and a rebuild with --overwrite removes it)."""
    return Path(data_dir) / CACHE_DIRNAME


def _identity(kind: str, manifest: dict, sha: str, image_size: int, steps: int, batch: int,
              seed: int, split: str, heldout_fraction: float, max_real: Optional[int],
              augment: str = "none") -> dict:
    return {
        "format": FORMAT, "arch": ARCH, "kind": kind, "augment": augment, "manifest_sha256": sha,
        "charset": list(manifest["charset"]), "writers": list(manifest["writers"]),
        "resolution": list(manifest["resolution"]), "image_size": int(image_size),
        "steps": int(steps), "batch": int(batch), "seed": int(seed), "split": split,
        "heldout_fraction": float(heldout_fraction),
        "max_real": None if max_real is None else int(max_real),
    }


def identity_dirname(identity: dict) -> str:
    """`<kind>-<augment>-<12 hex digits of the identity's sha256>`: one folder per judge identity,
    so judges of several settings (and, in a shared --judge_cache_dir, datasets) coexist."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{identity['kind']}-{identity['augment']}-{digest[:12]}"


def load_judge_dir(path) -> Judge:
    """The judge cached in `path` (a get_judge folder) as it is: no identity check, never
    retrained (for tools that score with a run's own judges)."""
    path = Path(path)
    return _from_folder(path, json.loads((path / META_FILE).read_text(encoding="utf-8")))


def _from_folder(path: Path, meta: dict) -> Judge:
    model = build_judge_model(meta["image_size"], len(meta["class_ids"]), meta["seed"])
    model.load_weights(str(path / WEIGHTS_FILE))
    return Judge(model, meta["class_ids"], meta["image_size"], meta["kind"],
                 meta.get("real_accuracy"), meta)


def _load_cached(path: Path, identity: dict) -> Optional[Judge]:
    meta_path, weights = path / META_FILE, path / WEIGHTS_FILE
    if not meta_path.exists() or not weights.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("judge cache %s: unreadable %s; rebuilding", path, META_FILE)
        return None
    differ = sorted(k for k in identity if json.dumps(meta.get(k)) != json.dumps(identity[k]))
    if differ:
        log.warning("judge cache %s was built for another dataset or setting (%s differ); "
                    "rebuilding", path, ", ".join(differ))
        return None
    try:
        return _from_folder(path, meta)  # its image size, seed and kind are the identity's
    except Exception as e:  # a truncated or foreign weights file: rebuild rather than fail
        log.warning("judge cache %s: cannot load weights (%s); rebuilding", path, e)
        return None


def _save(judge: Judge, path: Path) -> None:
    with atomic.atomic_dir(path, overwrite=True) as tmp:
        judge.model.save_weights(str(tmp / WEIGHTS_FILE))
        atomic.write_text(tmp / META_FILE, json.dumps(judge.meta, indent=1, sort_keys=True) + "\n")


def _store(judge: Judge, roots: list, name: str) -> Optional[Path]:
    """Writes the judge under the first root that takes it; None when none does (logged)."""
    for i, root in enumerate(roots):
        try:
            _save(judge, root / name)
            return root / name
        except OSError as e:
            following = (f"caching the judge in {roots[i + 1]} instead" if i + 1 < len(roots)
                         else "the judge is not cached")
            log.warning("judge cache %s is not writable (%s); %s", root,
                        e.strerror or type(e).__name__, following)
    return None


def _roots(cache_dir, data_dir, fallback_dir) -> list:
    roots = [Path(cache_dir) if cache_dir else default_cache_dir(data_dir)]
    if fallback_dir and Path(fallback_dir) != roots[0]:
        roots.append(Path(fallback_dir))
    return roots


def _reuse(roots: list, name: str, identity: dict) -> Optional[Judge]:
    """The judge cached as `name` under the first root whose json matches `identity`, else None."""
    for root in roots:
        cached = _load_cached(root / name, identity)
        if cached is not None:
            log.info("judge %s: reusing %s (held-out accuracy %.4f)", identity["kind"],
                     root / name,
                     cached.real_accuracy if cached.real_accuracy is not None else float("nan"))
            cached.cache = {"status": "reused", "path": str(root / name)}
            return cached
    return None


def get_judge(cache_dir, kind: str, data_dir, *, image_size: int, steps: int, batch: int,
              seed: int = 0, split: str = tfrecords.TRAIN,
              heldout_fraction: float = HELDOUT_FRACTION, max_real: Optional[int] = MAX_REAL,
              real=None, augment: str = "none", fallback_dir=None,
              progress: bool = True) -> Judge:
    """The `kind` judge ("char" | "writer") for `data_dir`'s `split` at `image_size`: reused
    from the cache when one matches, else trained (on the seeded 1 - heldout_fraction of the
    split; scored on the rest) and cached.

    The cache root is `cache_dir`, or `default_cache_dir(data_dir)` (`<data_dir>/judges/`, shared
    by every run on the dataset) when `cache_dir` is None or empty; `fallback_dir` (a run's
    model_dir) is looked in second and written to when the root cannot be written (a read-only
    data directory; one warning). Each judge lives in its own folder, `identity_dirname`, whose
    judge.json must match this dataset and setting to be reused. `Judge.cache` says what
    happened: {"status": "reused" | "trained", "path": the folder (None: could not be cached)}.

    The judge sees the split's first `max_real` glyphs (None: all; shards are written in a
    seeded random order, so these are a random sample). `real`: optionally what
    `load_glyphs(data_dir, split, image_size, max_real)` returns, to avoid reading it again.
    The judge's `real_accuracy` is its held-out accuracy; `meta` holds the cache's json.
    """
    if kind not in KINDS:
        raise ValueError(f"judge kind {kind!r} is not one of {KINDS}")
    if augment not in AUGMENTS:
        raise ValueError(f"judge augment {augment!r} is not one of {AUGMENTS}")
    manifest = tfrecords.load_manifest(data_dir)
    identity = _identity(kind, manifest, manifest_sha256(data_dir), image_size, steps, batch, seed,
                         split, heldout_fraction, max_real, augment)
    name = identity_dirname(identity)
    roots = _roots(cache_dir, data_dir, fallback_dir)
    cached = _reuse(roots, name, identity)
    if cached is not None:
        return cached

    if real is None:
        real = load_glyphs(data_dir, split, image_size, max_real)
    images, chars, writers = real
    ids = np.asarray(chars if kind == "char" else writers, np.int32)
    train_idx, held_idx = holdout_split(len(ids), seed, heldout_fraction)
    class_ids = np.unique(ids[train_idx])  # a class seen only in the held-out part counts wrong
    labels = np.searchsorted(class_ids, ids[train_idx]).astype(np.int32)
    start = time.time()
    judge = train_judge(images[train_idx], labels, len(class_ids), steps, batch, seed,
                        class_ids=class_ids, kind=kind, augment=augment, progress=progress)
    seconds = time.time() - start
    held_pred = judge.predict(images[held_idx])
    judge.real_accuracy = float(np.mean(held_pred == ids[held_idx]))
    judge.meta = dict(identity, class_ids=[int(c) for c in class_ids],
                      real_accuracy=judge.real_accuracy, num_train=int(len(train_idx)),
                      num_heldout=int(len(held_idx)), train_seconds=round(seconds, 2))
    log.info("judge %s: trained %d steps on %d glyphs in %.1fs; held-out accuracy %.4f on %d",
             kind, steps, len(train_idx), seconds, judge.real_accuracy, len(held_idx))
    path = _store(judge, roots, name)
    judge.cache = {"status": "trained", "path": None if path is None else str(path)}
    return judge


def get_judge_of(cache_dir, kind: str, data_dir, images, labels, num_classes: int, *, steps: int,
                 batch: int, seed: int = 0, split: str = tfrecords.TEST, fallback_dir=None,
                 progress: bool = True) -> Judge:
    """A judge of `kind` (any name but KINDS, e.g. "heldout-writer") trained with `train_judge`
    on the glyphs a caller chose from `data_dir` (`images` [N, S, S, 1], `labels` in
    [0, num_classes)), cached like get_judge's. Its identity adds a sha256 of the images and
    labels to the dataset's, so other glyphs, labels or settings train another judge; it is
    reused only for exactly these. No held-out part: `real_accuracy` is None (the caller scores
    it on what it chooses)."""
    if kind in KINDS:
        raise ValueError(f"judge kind {kind!r} is get_judge's; name this judge otherwise")
    images = np.ascontiguousarray(images, np.float32)
    labels = np.ascontiguousarray(labels, np.int32)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 1:
        raise ValueError(f"judge images must be [N, S, S, 1], got {images.shape}")
    digest = hashlib.sha256(images.tobytes())
    digest.update(np.asarray(images.shape, np.int64).tobytes())
    digest.update(labels.tobytes())
    manifest = tfrecords.load_manifest(data_dir)
    identity = dict(_identity(kind, manifest, manifest_sha256(data_dir), images.shape[1], steps,
                              batch, seed, split, 0.0, None),
                    glyphs_sha256=digest.hexdigest(), num_classes=int(num_classes))
    name = identity_dirname(identity)
    roots = _roots(cache_dir, data_dir, fallback_dir)
    cached = _reuse(roots, name, identity)
    if cached is not None:
        return cached
    start = time.time()
    judge = train_judge(images, labels, num_classes, steps, batch, seed, kind=kind,
                        progress=progress)
    judge.meta = dict(identity, class_ids=[int(c) for c in judge.class_ids],
                      real_accuracy=None, num_train=int(len(images)),
                      train_seconds=round(time.time() - start, 2))
    path = _store(judge, roots, name)
    judge.cache = {"status": "trained", "path": None if path is None else str(path)}
    return judge
