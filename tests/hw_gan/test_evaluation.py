"""hw_gan.evaluation: metrics against closed forms, judges on a learnable synthetic dataset, the
judge cache, and `evaluate` telling a perfect generator from a noise generator."""

import errno
import json
import logging
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_pipeline import atomic, tfrecords
from data_pipeline.dataset import load_glyphs
from data_pipeline.schema import GlyphRecord
from hw_gan import config as config_lib
from hw_gan import experiment
from hw_gan.evaluation import evaluate as evaluate_lib
from hw_gan.evaluation import judge as judge_lib
from hw_gan.evaluation import metrics
from tests.conftest import ListSource

SIZE = 32
CHARS = "abcd"
WRITERS = ("w0", "w1", "w2")
STEPS, BATCH = 150, 32


# --------------------------------------------------------------------------------------------
# Metrics


def _exact_gaussian_sample(mu, cov, n, seed):
    """n samples whose sample mean and (ddof=1) covariance are exactly mu and cov."""
    rng = np.random.default_rng(seed)
    d = len(mu)
    z = rng.normal(size=(n, d))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return z @ np.linalg.cholesky(cov).T + mu


def test_frechet_distance_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 16)) * 3 + 1
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    few = x[:10]  # fewer samples than dimensions: singular covariance, still stable
    assert metrics.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_closed_forms():
    # Diagonal covariances: |dmu|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    a = _exact_gaussian_sample(mu_a, np.diag(var_a), 400, 1)
    b = _exact_gaussian_sample(mu_b, np.diag(var_b), 300, 2)
    want = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert want == pytest.approx(7.0)
    assert metrics.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    # Non-commuting 2x2: tr sqrt(AB) = sqrt(tr(AB) + 2 sqrt(det A det B)).
    A, B = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[3.0, 0.0], [0.0, 1.0]])
    a = _exact_gaussian_sample(np.zeros(2), A, 200, 3)
    b = _exact_gaussian_sample(np.array([0.5, -0.5]), B, 250, 4)
    tr_sqrt = math.sqrt(np.trace(A @ B) + 2 * math.sqrt(np.linalg.det(A) * np.linalg.det(B)))
    want = 0.5 + np.trace(A) + np.trace(B) - 2 * tr_sqrt
    assert metrics.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    # Uniform weights change nothing.
    uniform = metrics.frechet_distance(a, b, weights_b=np.full(250, 3.0))
    assert uniform == pytest.approx(want, rel=1e-9)


def test_frechet_distance_agrees_with_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(5)
    a = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca) + np.trace(cb)
            - 2 * np.trace(linalg.sqrtm(ca @ cb)).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(want, rel=1e-7)


def test_kid_matches_hand_computed_mmd_and_separates_distributions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
    k = lambda u, v: (np.dot(u, v) / 3 + 1) ** 3  # noqa: E731
    m = 6
    want = (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
            + sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
            - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m))
    # One subset of every sample: the subset order does not matter to the estimate.
    assert metrics.kernel_inception_distance(x, y, 1, 6, seed=3) == pytest.approx(want, rel=1e-9)

    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    same = metrics.kernel_inception_distance(a, b, subsets=20, subset_size=200, seed=0)
    shifted = metrics.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200, seed=0)
    assert abs(same) < 0.02 and shifted > 0.5
    assert metrics.kernel_inception_distance(a, b, 20, 200, 0) == same  # seeded
    mean, std = metrics.kernel_inception_distance(a, b + 1.0, 20, 200, 0, return_std=True)
    assert mean == shifted and std > 0
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kernel_inception_distance(a[:1], b, 1, 10)


def test_accuracy_and_per_class():
    pred, lab = np.array([0, 1, 1, 2, 2, 2]), np.array([0, 1, 2, 2, 2, 0])
    assert metrics.accuracy(pred, lab) == pytest.approx(4 / 6)
    per = metrics.per_class_accuracy(pred, lab, classes=[0, 1, 2, 3])
    assert per[0] == 0.5 and per[1] == 1.0 and per[2] == pytest.approx(2 / 3)
    assert math.isnan(per[3])
    assert metrics.per_class_accuracy(pred, lab) == {k: v for k, v in per.items() if k != 3}
    with pytest.raises(ValueError, match="shape"):
        metrics.accuracy(pred, lab[:3])


# --------------------------------------------------------------------------------------------
# A learnable dataset: one shape per char, one stroke thickness and offset per writer


def _glyph(ci, wi, rng):
    img = np.zeros((SIZE, SIZE), np.uint8)
    thick = (1, 2, 4)[wi]
    off = (-5, 0, 5)[wi]
    cx, cy = 16 + off + rng.integers(-1, 2), 16 + rng.integers(-1, 2)
    r = 7 + rng.integers(-1, 2)
    if ci == 0:  # bar
        cv2.line(img, (cx, cy - r), (cx, cy + r), 255, thick)
    elif ci == 1:  # ring
        cv2.circle(img, (cx, cy), r, 255, thick)
    elif ci == 2:  # cross
        cv2.line(img, (cx - r, cy - r), (cx + r, cy + r), 255, thick)
        cv2.line(img, (cx - r, cy + r), (cx + r, cy - r), 255, thick)
    else:  # triangle
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.polylines(img, [pts], True, 255, thick)
    noisy = img.astype(np.float32) + rng.normal(0, 20, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _records(per=30, seed=0):
    rng = np.random.default_rng(seed)
    return [GlyphRecord(c, w, "shapes", _glyph(ci, wi, rng), None, key=f"shapes:{w}:{c}:{k}")
            for wi, w in enumerate(WRITERS) for ci, c in enumerate(CHARS) for k in range(per)]


def _write(path, seed=0):
    tfrecords.write_dataset(ListSource(_records(seed=seed), {"seed": seed}), path, split="none",
                            seed=seed, progress=False)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("shapes") / "ds")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("judges")


@pytest.fixture
def train_calls(monkeypatch):
    calls = []
    real = judge_lib.train_judge

    def counting(*args, **kwargs):
        calls.append(kwargs.get("kind"))
        return real(*args, **kwargs)

    monkeypatch.setattr(judge_lib, "train_judge", counting)
    return calls


def test_load_real_and_holdout_split(data_dir):
    images, chars, writers = load_glyphs(data_dir, "train", SIZE)
    assert images.shape == (360, SIZE, SIZE, 1) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    assert sorted(np.bincount(chars)) == [90] * 4 and sorted(np.bincount(writers)) == [120] * 3
    few = load_glyphs(data_dir, "train", SIZE, limit=7)
    assert len(few[0]) == 7 and np.array_equal(few[1], chars[:7])
    train, held = judge_lib.holdout_split(360, seed=0)
    assert len(held) == 36 and not set(train) & set(held) and len(train) + len(held) == 360
    assert np.array_equal(held, judge_lib.holdout_split(360, seed=0)[1])
    assert not np.array_equal(held, judge_lib.holdout_split(360, seed=1)[1])


def test_char_judge_learns_and_its_cache_is_reused(data_dir, cache_dir, train_calls):
    kw = dict(image_size=SIZE, steps=STEPS, batch=BATCH, seed=0)
    judge = judge_lib.get_judge(cache_dir, "char", data_dir, **kw)
    assert train_calls == ["char"]
    assert judge.real_accuracy > 0.9, judge.real_accuracy
    assert list(judge.class_ids) == [0, 1, 2, 3]
    folder = Path(judge.cache["path"])
    assert judge.cache["status"] == "trained" and folder.parent == cache_dir
    assert folder.name.startswith("char-none-")
    weights = folder / judge_lib.WEIGHTS_FILE
    meta = json.loads((folder / judge_lib.META_FILE).read_text())
    assert meta["manifest_sha256"] == judge_lib.manifest_sha256(data_dir)
    assert meta["charset"] == list(CHARS) and meta["steps"] == STEPS and meta["num_heldout"] == 36
    assert meta["arch"] == judge_lib.ARCH and meta["augment"] == "none"
    mtime = weights.stat().st_mtime_ns

    images, chars, _ = load_glyphs(data_dir, "train", SIZE, limit=64)
    again = judge_lib.get_judge(cache_dir, "char", data_dir, **kw)
    assert train_calls == ["char"], "a matching cache must not train again"
    assert again.cache == {"status": "reused", "path": str(folder)}
    assert weights.stat().st_mtime_ns == mtime
    assert again.real_accuracy == judge.real_accuracy
    np.testing.assert_allclose(again.features(images), judge.features(images), atol=1e-5)
    assert again.features(images).shape == (64, 128)
    assert np.mean(again.predict(images) == chars) > 0.9
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")], "temporary dirs left"
    loaded = judge_lib.load_judge_dir(folder)  # as tools load a run's judge, unchecked
    np.testing.assert_allclose(loaded.features(images), judge.features(images), atol=1e-5)


def test_judge_cache_is_rebuilt_for_another_dataset_or_setting(data_dir, tmp_path, train_calls,
                                                               caplog):
    other = _write(tmp_path / "other", seed=1)
    cache = tmp_path / "cache"  # one cache root shared by both datasets (--judge_cache_dir)
    kw = dict(image_size=SIZE, steps=5, batch=16, seed=0)
    first = judge_lib.get_judge(cache, "writer", data_dir, **kw)
    assert judge_lib.get_judge(cache, "writer", data_dir, **kw).cache["status"] == "reused"
    assert len(train_calls) == 1
    mine = Path(first.cache["path"])
    theirs = judge_lib.get_judge(cache, "writer", other, **kw)  # another dataset: its own judge
    assert len(train_calls) == 2 and theirs.cache["status"] == "trained"
    folder = Path(theirs.cache["path"])
    assert folder != mine and folder.parent == cache
    meta = json.loads((folder / judge_lib.META_FILE).read_text())
    assert meta["manifest_sha256"] == judge_lib.manifest_sha256(other)
    assert meta["manifest_sha256"] != judge_lib.manifest_sha256(data_dir)
    judge_lib.get_judge(cache, "writer", other, **kw)
    judge_lib.get_judge(cache, "writer", data_dir, **kw)  # both datasets' judges coexist
    assert len(train_calls) == 2
    judge_lib.get_judge(cache, "writer", other, **dict(kw, steps=6))  # another setting
    assert len(train_calls) == 3

    # A judge of one dataset under the other's folder name (copied, or a hash collision) is
    # never reused: judge.json names its dataset.
    shutil.rmtree(folder)
    shutil.copytree(mine, folder)
    with caplog.at_level(logging.WARNING, logger=judge_lib.__name__):
        again = judge_lib.get_judge(cache, "writer", other, **kw)
    assert len(train_calls) == 4 and again.cache["status"] == "trained"
    assert "manifest_sha256" in caplog.text and "another dataset or setting" in caplog.text
    assert json.loads((folder / judge_lib.META_FILE).read_text())["manifest_sha256"] == \
        judge_lib.manifest_sha256(other)

    (folder / judge_lib.META_FILE).write_text("{not json")  # a damaged cache
    judge_lib.get_judge(cache, "writer", other, **kw)
    assert len(train_calls) == 5
    with pytest.raises(ValueError, match="kind"):
        judge_lib.get_judge(cache, "style", other, **kw)


def test_a_judge_of_chosen_glyphs_is_cached_by_those_glyphs(data_dir, tmp_path, train_calls):
    """get_judge_of (the held-out writer judge of style evaluation): trained once for the same
    glyphs, labels and setting; other glyphs, labels or steps train another; kinds of get_judge
    are refused."""
    images, _, writers = load_glyphs(data_dir, "train", SIZE, limit=96)
    labels = writers.astype(np.int32)
    cache = tmp_path / "cache"
    kw = dict(steps=4, batch=16, seed=3)
    first = judge_lib.get_judge_of(cache, "heldout-writer", data_dir, images, labels, 3, **kw)
    assert first.cache["status"] == "trained" and train_calls == ["heldout-writer"]
    folder = Path(first.cache["path"])
    assert folder.parent == cache and folder.name.startswith("heldout-writer-none-")
    meta = json.loads((folder / judge_lib.META_FILE).read_text())
    assert meta["num_train"] == 96 and meta["steps"] == 4 and meta["num_classes"] == 3
    again = judge_lib.get_judge_of(cache, "heldout-writer", data_dir, images, labels, 3, **kw)
    assert again.cache == {"status": "reused", "path": str(folder)} and len(train_calls) == 1
    np.testing.assert_allclose(again.predict_proba(images), first.predict_proba(images),
                               atol=1e-5)
    assert list(again.class_ids) == [0, 1, 2]
    # Another glyph, another label or another setting: another judge, beside the first.
    moved = images.copy()
    moved[0] = -moved[0]
    swapped = labels.copy()
    swapped[[0, 1]] = (labels[0] + 1) % 3, labels[0]
    for args, extra in (((moved, labels), {}), ((images, swapped), {}),
                        ((images, labels), {"steps": 5})):
        other = judge_lib.get_judge_of(cache, "heldout-writer", data_dir, *args, 3,
                                       **dict(kw, **extra))
        assert other.cache["status"] == "trained" and Path(other.cache["path"]) != folder
    assert len(train_calls) == 4 and folder.exists()
    with pytest.raises(ValueError, match="get_judge"):
        judge_lib.get_judge_of(cache, "writer", data_dir, images, labels, 3, **kw)
    with pytest.raises(ValueError, match=r"\[N, S, S, 1\], got \(96, 1024\)"):
        judge_lib.get_judge_of(cache, "heldout-writer", data_dir, images.reshape(96, -1), labels,
                               3, **kw)


def test_texture_augment_redraws_strokes_but_keeps_their_shape():
    img = np.full((1, SIZE, SIZE, 1), -1.0, np.float32)
    img[0, 8:24, 15:17] = 1.0  # a 2 px vertical bar
    img[0, 22:24, 8:24] = 1.0  # and a foot
    batch = np.repeat(img, 64, axis=0)
    out = judge_lib._texture_batch(batch, np.random.default_rng(0))
    again = judge_lib._texture_batch(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)  # seeded
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    changed = np.abs(out - batch).reshape(64, -1).max(axis=1) > 0.05
    assert changed.mean() > 0.7, changed.mean()  # most glyphs are re-rendered
    ink = (out[..., 0] + 1) / 2
    ys, xs = np.mgrid[:SIZE, :SIZE]
    cy = (ink * ys).sum((1, 2)) / ink.sum((1, 2))
    cx = (ink * xs).sum((1, 2)) / ink.sum((1, 2))
    ref = (img[0, ..., 0] + 1) / 2
    assert np.abs(cy - (ref * ys).sum() / ref.sum()).max() < 1.0  # strokes stay where they were
    assert np.abs(cx - (ref * xs).sum() / ref.sum()).max() < 1.0
    assert (ink[:, 0:4, :].max() < 0.05)  # no ink appears far from the strokes


def test_shift_batch_moves_each_glyph_whole_within_its_range():
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (400, SIZE, SIZE, 1)).astype(np.float32)
    out = judge_lib._shift_batch(images, 2, np.random.default_rng(5))
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, judge_lib._shift_batch(images, 2, np.random.default_rng(5)))
    padded = np.pad(images[..., 0], ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    offsets = []
    for img, src in zip(out[..., 0], padded):  # each output is one window of its padded input
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(img, src[dy:dy + SIZE, dx:dx + SIZE])]
        assert len(hits) == 1
        offsets.append(hits[0])
    dy, dx = np.array(offsets).T - 2
    # Offsets uniform over [-2, 2] on each axis (400 draws: each value 80 +- 30).
    assert set(dy) == set(dx) == {-2, -1, 0, 1, 2}
    assert np.bincount(dy + 2).min() > 50 and np.bincount(dx + 2).min() > 50
    assert abs(dy.mean()) < 0.3 and abs(dx.mean()) < 0.3
    assert judge_lib._shift_batch(images, 0, rng) is images


def test_vectorised_blur_and_dilation_match_opencv_per_glyph():
    rng = np.random.default_rng(2)
    ink = rng.uniform(0, 1, (30, SIZE, SIZE)).astype(np.float32)
    sigmas = rng.uniform(0.3, 1.2, 30)
    sigmas[::4] = 0.0  # not blurred
    want = np.stack([cv2.GaussianBlur(i, (0, 0), float(s)) if s > 0 else i
                     for i, s in zip(ink, sigmas)])
    np.testing.assert_allclose(judge_lib.blur_batch(ink, sigmas), want, atol=1e-6)
    np.testing.assert_array_equal(judge_lib.blur_batch(ink, sigmas)[::4], ink[::4])
    kernels = judge_lib.gaussian_kernels([0.3, 1.2, 0.0])
    assert kernels.shape == (3, 11)
    np.testing.assert_allclose(kernels.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(kernels[1], cv2.getGaussianKernel(11, 1.2, cv2.CV_32F)[:, 0],
                               atol=1e-7)
    np.testing.assert_allclose(kernels[0, 4:7], cv2.getGaussianKernel(3, 0.3, cv2.CV_32F)[:, 0],
                               atol=1e-7)
    want = np.stack([cv2.dilate(i, np.ones((2, 2), np.uint8)) for i in ink])
    np.testing.assert_array_equal(judge_lib._dilate2x2(ink), want)


def test_texture_augment_draws_each_edit_at_its_rate():
    img = np.full((1, SIZE, SIZE, 1), -1.0, np.float32)
    img[0, 8:24, 15:17] = 0.0  # a 2 px bar of half-tone ink: every edit changes it
    batch = np.repeat(img, 2000, axis=0)
    out = judge_lib._texture_batch(batch, np.random.default_rng(3))
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    ink = (out[..., 0] + 1) / 2
    blurred = ink[:, 8:24, 14].max(1) > 0  # blur spreads ink left; the dilation does not
    dilated = (ink[:, 8:24, 17].max(1) > 0) & ~blurred  # the dilation grows it right
    assert 0.66 < blurred.mean() < 0.74, blurred.mean()
    assert 0.18 < dilated.sum() / (~blurred).sum() < 0.32
    tone = ink[~blurred & ~dilated][:, 12, 15]  # 0.5 ** gamma, log-uniform gamma in [0.5, 2]
    assert 0.5 ** 2 - 1e-6 <= tone.min() < 0.3 and 0.68 < tone.max() <= 0.5 ** 0.5 + 1e-6
    log_gamma = np.log(np.log(tone) / np.log(0.5))
    assert abs(np.median(log_gamma)) < 0.1  # centred on gamma 1


def test_judge_training_is_deterministic_for_a_seed(data_dir):
    images, chars, _ = load_glyphs(data_dir, "train", SIZE, limit=96)

    def weights(seed, augment="none"):
        judge = judge_lib.train_judge(images, chars, 4, 6, 32, seed, augment=augment,
                                      progress=False)
        return [v.numpy() for v in judge.model.weights]

    for augment in ("none", "texture"):
        a, b = weights(3, augment), weights(3, augment)
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), augment
    c = weights(4)
    assert not all(np.array_equal(x, y) for x, y in zip(weights(3), c))


def test_learning_rate_scales_with_the_square_root_of_the_batch():
    assert judge_lib.learning_rate_for(256) == pytest.approx(judge_lib.LEARNING_RATE)
    assert judge_lib.learning_rate_for(1024) == pytest.approx(2 * judge_lib.LEARNING_RATE)


@pytest.fixture
def readonly(monkeypatch):
    """Makes a directory read-only for the judge cache: chmod 0o555, and (as root, whom modes do
    not stop) atomic writes under it fail as the kernel would fail them."""
    made = []

    def make(path: Path) -> Path:
        path.chmod(0o555)
        made.append(path)
        return path

    real = atomic.atomic_dir

    def refusing(path, *args, **kwargs):
        if any(Path(path).resolve().is_relative_to(p.resolve()) for p in made):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(atomic, "atomic_dir", refusing)
    yield make
    for path in made:
        path.chmod(0o755)


def test_default_cache_is_the_datasets_and_falls_back_when_it_is_read_only(
        tmp_path, train_calls, readonly, caplog):
    data = _write(tmp_path / "ds")
    kw = dict(image_size=SIZE, steps=4, batch=16, seed=0)
    judge = judge_lib.get_judge(None, "char", data, **kw)  # no cache_dir: the dataset's own
    assert Path(judge.cache["path"]).parent == data / "judges" == judge_lib.default_cache_dir(data)
    assert tfrecords.verify_dataset(data) == []  # the judges folder is no part of the dataset

    ro = _write(tmp_path / "ro", seed=2)
    readonly(ro)
    run = tmp_path / "run" / "judges"
    with caplog.at_level(logging.WARNING, logger=judge_lib.__name__):
        judge = judge_lib.get_judge("", "char", ro, fallback_dir=run, **kw)
    assert judge.cache["status"] == "trained" and Path(judge.cache["path"]).parent == run
    assert not (ro / "judges").exists()
    lines = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "not writable" in lines[0].getMessage()
    assert str(run) in lines[0].getMessage()
    again = judge_lib.get_judge("", "char", ro, fallback_dir=run, **kw)  # found in the fallback
    assert again.cache == {"status": "reused", "path": judge.cache["path"]}
    assert train_calls == ["char", "char"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=judge_lib.__name__):  # nowhere to write
        alone = judge_lib.get_judge(ro, "writer", ro, **kw)
    assert alone.cache == {"status": "trained", "path": None} and "not cached" in caplog.text


def test_texture_judge_is_cached_apart_from_the_plain_one(data_dir, tmp_path, train_calls):
    kw = dict(image_size=SIZE, steps=5, batch=16, seed=0)
    cache = tmp_path / "cache"
    plain = Path(judge_lib.get_judge(cache, "writer", data_dir, **kw).cache["path"])
    plain_meta = (plain / judge_lib.META_FILE).read_text()
    judge = judge_lib.get_judge(cache, "writer", data_dir, augment="texture", **kw)
    assert len(train_calls) == 2 and judge.features(np.zeros((2, SIZE, SIZE, 1))).shape == (2, 128)
    textured = Path(judge.cache["path"])
    assert textured.name.startswith("writer-texture-") and plain.name.startswith("writer-none-")
    meta = json.loads((textured / judge_lib.META_FILE).read_text())
    assert meta["augment"] == "texture" and json.loads(plain_meta)["augment"] == "none"
    judge_lib.get_judge(cache, "writer", data_dir, augment="texture", **kw)
    judge_lib.get_judge(cache, "writer", data_dir, **kw)
    assert len(train_calls) == 2  # both reused
    assert (plain / judge_lib.META_FILE).read_text() == plain_meta
    with pytest.raises(ValueError, match="augment 'blur'"):
        judge_lib.get_judge(cache, "writer", data_dir, augment="blur", **kw)


def test_balanced_requests():
    chars, writers = evaluate_lib.balanced_requests([0, 1, 2, 3], [5, 7, 9], 26, seed=0)
    assert chars.dtype == np.int32 and len(chars) == len(writers) == 26
    assert sorted(np.bincount(chars)) == [6, 6, 7, 7]
    assert set(np.unique(writers)) == {5, 7, 9} and max(np.bincount(writers)[[5, 7, 9]]) <= 10
    assert len(set(zip(chars[:26].tolist(), writers.tolist()))) == 12  # every pair covered
    again = evaluate_lib.balanced_requests([0, 1, 2, 3], [5, 7, 9], 26, seed=0)
    assert np.array_equal(chars, again[0]) and np.array_equal(writers, again[1])


def _perfect_generator(data_dir):
    images, chars, writers = load_glyphs(data_dir, "train", SIZE)

    def generate(char_ids, writer_ids, seed):
        rng = np.random.default_rng(seed)
        out = []
        for c, w in zip(char_ids, writer_ids):
            pool = np.flatnonzero((chars == c) & (writers == w))
            out.append(images[rng.choice(pool)])
        return np.stack(out)

    return generate


def _noise_generator(char_ids, writer_ids, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (len(char_ids), SIZE, SIZE, 1)).astype(np.float32)


def test_evaluate_tells_a_perfect_generator_from_noise(data_dir, cache_dir, tmp_path, train_calls):
    kw = dict(image_size=SIZE, num_generated=240, judge_steps=STEPS, judge_batch=BATCH, seed=0)
    good = evaluate_lib.evaluate(_perfect_generator(data_dir), data_dir, cache_dir,
                                 uses_writer=True, **kw)
    leg = good["legibility"]
    assert leg["ratio"] > 0.85, leg
    assert leg["real_accuracy"] > 0.9 and set(leg["per_char"]) == set(CHARS)
    wm = good["writer_match"]
    assert wm["chance"] == pytest.approx(1 / 3) and wm["num_writers"] == 3
    assert wm["real"] > 0.8 and wm["generated"] > 0.8 and wm["vs_chance"] > 2.4, wm
    assert good["num_generated"] == 240 and good["judge_steps"] == STEPS
    assert good["judges"]["writer"]["status"] == "trained"
    assert good["judges"]["char"]["path"] and good["judges"]["char"]["steps"] == STEPS

    # Another generation seed: same (cached) judges, judge_seed is separate.
    bad = evaluate_lib.evaluate(_noise_generator, data_dir, cache_dir, uses_writer=False,
                                **dict(kw, seed=5))
    assert bad["legibility"]["ratio"] < 0.5, bad["legibility"]
    assert "writer_match" not in bad
    assert bad["fid"] > 10 * max(good["fid"], 1e-3), (good["fid"], bad["fid"])
    assert bad["kid"] > good["kid"] + 0.1, (good["kid"], bad["kid"])
    # The char judge was cached by the judge test (or the first evaluate); only the writer judge
    # may have been trained here.
    assert train_calls.count("char") <= 1 and train_calls.count("writer") == 1, train_calls
    assert bad["seed"] == 5 and bad["judge_seed"] == 0
    assert bad["judges"]["char"]["status"] == "reused" and "writer" not in bad["judges"]

    out = tmp_path / "eval" / "eval.json"
    evaluate_lib.write_eval_json(out, dict(good, note=float("nan")))
    back = json.loads(out.read_text())
    assert back["note"] is None and back["legibility"]["ratio"] == leg["ratio"]
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]

    with pytest.raises(ValueError, match="shape"):
        evaluate_lib.evaluate(lambda c, w, s: np.zeros((len(c), 16, 16, 1), np.float32), data_dir,
                              cache_dir, uses_writer=False, **kw)


def test_evaluate_generates_in_seeded_chunks(data_dir, cache_dir, monkeypatch):
    calls = []

    def generate(chars, writers, seed):
        calls.append((len(chars), seed))
        return _noise_generator(chars, writers, seed)

    monkeypatch.setattr(evaluate_lib, "GENERATE_CHUNK", 100)
    kw = dict(image_size=SIZE, num_generated=250, judge_steps=STEPS, judge_batch=BATCH, seed=4)
    evaluate_lib.evaluate(generate, data_dir, cache_dir, uses_writer=False, progress=False, **kw)
    assert [n for n, _ in calls] == [100, 100, 50]
    assert [s for _, s in calls] == [evaluate_lib.chunk_seed(4, k) for k in range(3)]
    assert len({s for _, s in calls}) == 3 and evaluate_lib.chunk_seed(5, 0) != calls[0][1]


def _run_cfg(data_dir, model_dir, **eval_kw):
    manifest = tfrecords.load_manifest(data_dir)
    return config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data_dir), shuffle_buffer=64),
        model=config_lib.ModelConfig(family="style_cgan", resolution=SIZE, width=0.125,
                                     latent_dim=16, embed_dim=16,
                                     num_chars=len(manifest["charset"]),
                                     num_writers=len(manifest["writers"])),
        train=config_lib.TrainConfig(batch_size=8, steps=1, checkpoint_every=1, log_every=1,
                                     image_every=1, seed=2),
        eval=config_lib.EvalConfig(judge_steps=3, judge_batch=16, num_generated=24, **eval_kw),
        runtime=config_lib.RuntimeConfig(model_dir=str(model_dir), strategy="default",
                                         run_eagerly=True)))  # 1 step: cheaper than a trace


def test_runs_on_one_dataset_share_their_judges(tmp_path, train_calls):
    """Two training runs in different model_dirs on the same data: the first trains both judges
    into <data_dir>/judges/, the second trains none (its eval.json says so)."""
    data = _write(tmp_path / "ds")
    experiment.run(_run_cfg(data, tmp_path / "run1"))
    first = json.loads((tmp_path / "run1" / "eval.json").read_text())["judges"]
    assert train_calls == ["char", "writer"]
    assert {k: v["status"] for k, v in first.items()} == {"char": "trained", "writer": "trained"}
    assert all(Path(v["path"]).parent == data / "judges" for v in first.values())

    experiment.run(_run_cfg(data, tmp_path / "run2"))
    second = json.loads((tmp_path / "run2" / "eval.json").read_text())["judges"]
    assert train_calls == ["char", "writer"], "the second run must train no judge"
    assert {k: (v["status"], v["path"]) for k, v in second.items()} == \
        {k: ("reused", v["path"]) for k, v in first.items()}
    assert second["char"]["real_accuracy"] == first["char"]["real_accuracy"]
    assert not (tmp_path / "run2" / "judges").exists()

    # --judge_cache_dir points the cache elsewhere: a third run there trains its own.
    elsewhere = tmp_path / "shared-judges"
    experiment.run(_run_cfg(data, tmp_path / "run3", judge_cache_dir=str(elsewhere)))
    third = json.loads((tmp_path / "run3" / "eval.json").read_text())["judges"]
    assert train_calls == ["char", "writer"] * 2
    assert all(Path(v["path"]).parent == elsewhere for v in third.values())
