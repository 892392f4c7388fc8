"""The few-shot trainer (issue 18): GANTrainer's loop, checkpoints, EMA and strategies, with
dense reconstruction supervision.

Batches arrive in groups of k = style_group_size glyphs of one writer (make_dataset(group_size=k)).
Every glyph of a group is a target: the generator redraws it from the font image of its
character and the group's k - 1 OTHER glyphs (leave-one-out; each reference is encoded once and
pooled k ways). Per replica step:

  D   non-saturating (or hinge) real/fake loss with R1 and, when aux_*_weight > 0, character and
      writer classifiers on D's features trained on real glyphs (the content/style classifiers
      of MX-Font / LF-Font);
  G   the adversarial loss and the classifiers' losses on the redrawn glyphs, plus
      style_recon_weight * L1(redrawn, real) and style_feature_weight * L1 of D's features,
      and writer_contrast_weight * an InfoNCE of D's features over the batch's writer groups
      (losses.group_contrast: each redrawn glyph nearer its writer's other glyphs than the
      other groups').

The real glyphs of the step reach `_make_fakes` through the D, G or fused step that received
the batch (the base class passes only ids there). Nothing is random in the generator, so a
resumed run matches an uninterrupted one through the data pipeline's skip alone.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import unicodedata

import keras
import numpy as np
import tensorflow as tf

from data_pipeline import atomic, font
from data_pipeline.dataset import load_glyphs, make_dataset, pick_samples, stack_sets
from data_pipeline.progress import Progress
from data_pipeline.schema import to_float, to_uint8
from hw_gan import losses as losses_lib
from hw_gan.models import classifier, fewshot
from hw_gan.models.fewshot import disturb_references
from hw_gan.training.trainer import FEATURES_LAYER, GANTrainer, StopRequest, summary_grid


REFERENCES = 10  # a training writer's glyphs `generate` takes their style from
REFERENCE_LIMIT = 40000  # training glyphs loaded for that
EXPORT_REFERENCES = 20  # a training writer's glyphs their exported style is read from
SERVING_VARIATION = 0.1  # the export's default jitter of a writer's style per glyph


# --content_shape_weight: characters of the font that training never saw, drawn in the batch's
# styles, must keep their font shape (shape_signature: ink blurred at SHAPE_SIGMA x R / 32 px,
# centred, unit length) at least as closely as a real training glyph keeps its character's:
# SHAPE_MARGIN is the median cosine of the UNIPEN training writers' glyphs to their characters'
# fitted font images (docs/results.md, "A content-shape loss"). Only the shortfall is penalised.
SHAPE_SIGMA = 2.0
SHAPE_MARGIN = 0.6
SHAPE_SALT = 1409  # the stateless seed's salt of the step's drawn pool characters
# The pool: letters, punctuation and symbols of these blocks that are not composed (accented
# letters are drawn as base + mark) and not a training or held-out character; Latin-1 and
# Latin Extended A/B, Greek, basic Cyrillic, currency signs and the arrows ← ↑ → ↓ ↔ ↕.
SHAPE_BLOCKS = ((0x00A1, 0x024F), (0x0370, 0x03FF), (0x0400, 0x045F), (0x20A0, 0x20BF),
                (0x2190, 0x2195))
# A pool character whose shape signature is this close (cosine) to a held-out character's is
# left out, so the held-out characters stay never seen (Greek capital zeta is a Z, koppa a Q).
SHAPE_LOOKALIKE = 0.8


def shape_signature(images, resolution: int):
    """[N, R*R] float32 unit vectors of glyphs [N, R, R, 1] in [-1, 1]: the ink (0..1) blurred by
    a Gaussian of SHAPE_SIGMA x R / 32 px (zero padding: paper), its mean taken away. A
    cosine of two of them compares shapes whatever the pen weight; blank ink gives zeros."""
    sigma = SHAPE_SIGMA * resolution / 32.0
    half = int(np.ceil(3.0 * sigma))
    x = np.arange(-half, half + 1, dtype=np.float32)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    ink = (tf.cast(images, tf.float32) + 1.0) / 2.0
    blurred = tf.nn.conv2d(ink, tf.constant(g.reshape(-1, 1, 1, 1)), 1, "SAME")
    blurred = tf.nn.conv2d(blurred, tf.constant(g.reshape(1, -1, 1, 1)), 1, "SAME")
    flat = tf.reshape(blurred, [tf.shape(blurred)[0], -1])
    flat -= tf.reduce_mean(flat, 1, keepdims=True)
    return tf.math.l2_normalize(flat, 1)


def shape_pool(charset, holdout: str, resolution: int):
    """(chars, font images float32 [P, R, R, 1] in [-1, 1], shape signatures [P, R*R] of their
    FITTED images (font.fitted_images: placed as a handwritten sample is)) of SHAPE_BLOCKS'
    characters the font covers that are neither in `charset` nor composed, and whose fitted
    image is not a lookalike (SHAPE_LOOKALIKE) of a `holdout` character's."""
    known = set(charset) | set(holdout)
    chars = [chr(c) for lo, hi in SHAPE_BLOCKS for c in range(lo, hi + 1)
             if chr(c) not in known and unicodedata.category(chr(c))[0] in "LPS"
             and not unicodedata.decomposition(chr(c)) and font.covers(chr(c))]
    signatures = shape_signature(to_float(font.fitted_images(chars, resolution))[..., None],
                                 resolution).numpy()
    if holdout:
        held = shape_signature(to_float(font.fitted_images(list(holdout), resolution))[..., None],
                               resolution).numpy()
        keep = (signatures @ held.T).max(1) < SHAPE_LOOKALIKE
        chars, signatures = [c for c, k in zip(chars, keep) if k], signatures[keep]
    contents = to_float(font.content_images(chars, resolution))[..., None]
    return chars, contents.astype(np.float32), signatures.astype(np.float32)


# --content_class_weight: a drawn pool character costs nothing once the content classifier gives
# its own character this probability (only a shortfall is paid, so G is not pushed past being
# recognised, where a fixed classifier can be fooled).
CLASS_MARGIN = 0.5
CLASS_BATCH = 256  # half real training glyphs, half font images disturbed as handwriting
CLASS_LR = 4e-3  # Adam's peak: warmed up over the first 5 % of the steps, then cosine to 0
CLASS_SALT = 1511  # the stateless seeds of the classifier's batches and disturbances
CLASS_DIR = "content_classifier"  # in the run's model_dir: weights + what they were trained on
CLASS_WEIGHTS = "classifier.weights.h5"
CLASS_META = "classifier.json"
CLASS_RECIPE = 2  # in the saved identity: bump when the classifier's training changes
# The disturbance of a font image (`handwrite`): rotation up to this many radians, shear, each
# axis scaled within SCALE, shifted up to SHIFT x R / 32 pixels; then disturb_references at 1.
ROTATION, SHEAR, SCALE, SHIFT = 0.15, 0.3, (0.8, 1.1), 2.0


def handwrite(images, seed):
    """Font images [N, R, R, 1] in [-1, 1] disturbed as a hand would: each by its own seeded
    affine map (ROTATION, SHEAR, SCALE, SHIFT; paper fills what comes in) and then pen width,
    blur and faded ink (disturb_references at full strength)."""
    images = tf.convert_to_tensor(images, tf.float32)
    seed = tf.cast(seed, tf.int64)
    n, r = tf.shape(images)[0], int(images.shape[1])
    u = tf.random.stateless_uniform([n, 6], seed, -1.0, 1.0)
    theta, shear = ROTATION * u[:, 0], SHEAR * u[:, 1]
    lo, hi = SCALE
    sx = 1.0 / (lo + (hi - lo) * (u[:, 2] + 1.0) / 2.0)  # output -> input: the inverse scale
    sy = 1.0 / (lo + (hi - lo) * (u[:, 3] + 1.0) / 2.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    # input = rotation x shear x scale applied to (output - centre), + centre + shift
    a0, a1 = cos * sx, (cos * shear - sin) * sy
    b0, b1 = sin * sx, (sin * shear + cos) * sy
    c = (r - 1) / 2.0
    shift = SHIFT * r / 32.0
    a2 = c - a0 * c - a1 * c + shift * u[:, 4]
    b2 = c - b0 * c - b1 * c + shift * u[:, 5]
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], 1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.constant([r, r]),
        fill_value=-1.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    return disturb_references(warped, 1.0, seed + tf.constant([0, 7], tf.int64))


def class_batch(images, chars, fonts, font_ids, seed):
    """(glyphs [CLASS_BATCH, R, R, 1], class ids) of one content-classifier batch, drawn by the
    stateless `seed`: CLASS_BATCH / 2 real `images` (ids `chars`) with their pen, blur and fade
    disturbed (disturb_references at full strength) and as many `fonts` (ids `font_ids`)
    disturbed by `handwrite` (the same pen, blur and fade after the affine map), so how a glyph
    is inked never tells a pool character from a trained one."""
    half = CLASS_BATCH // 2
    seed = tf.cast(seed, tf.int64)
    ridx = tf.random.stateless_uniform([half], seed, 0, tf.shape(chars)[0], tf.int32)
    fidx = tf.random.stateless_uniform([half], seed + tf.constant([1, 0], tf.int64), 0,
                                       tf.shape(font_ids)[0], tf.int32)
    made = handwrite(tf.gather(fonts, fidx), seed + tf.constant([2, 0], tf.int64))
    real = disturb_references(tf.gather(images, ridx), 1.0, seed + tf.constant([3, 0], tf.int64))
    return (tf.concat([real, made], 0),
            tf.concat([tf.gather(chars, ridx), tf.gather(font_ids, fidx)], 0))


WRITER_CONTRAST_TEMPERATURE = 0.1  # of --writer_contrast_weight's cosine similarities
REF_AUGMENT_SALT = 911  # the stateless seed's salt of the references' disturbance
class FewShotTrainer(GANTrainer):
    def __init__(self, cfg, strategy, manifest):
        self.group_size = int(cfg.train.style_group_size)
        super().__init__(cfg, strategy, manifest)
        self.per_replica = self.grouped_per_replica()
        # Content images of the training charset, indexed by char id (FontCoverageError names a
        # training character the font lacks).
        r = cfg.model.resolution
        self.content_table = tf.constant(
            to_float(font.content_images(list(manifest["charset"]), r))[..., None])
        self.glyph_net, self.style_head, self.decoder = fewshot.parts(self.generator)
        self.d_logits_features = keras.Model(
            self.discriminator.inputs,
            [self.discriminator.output, self.discriminator.get_layer(FEATURES_LAYER).output])
        self._real = None
        self._grid = None
        self._refs = None
        self._statistics = None
        holdout = set(cfg.data.holdout_chars)
        self.trained_labels = frozenset(c for c in manifest["charset"] if c not in holdout)
        self._style = None
        t = cfg.train
        if t.content_shape_weight > 0 or t.content_class_weight > 0:
            self.shape_chars, contents, signatures = shape_pool(
                manifest["charset"], cfg.data.holdout_chars, r)
            if not self.shape_chars:
                flag = "content_shape_weight" if t.content_shape_weight > 0 else \
                    "content_class_weight"
                raise ValueError(f"--{flag}: every character of the pool (SHAPE_BLOCKS) is in "
                                 "the training charset or held out")
            self.shape_contents, self.shape_signatures = tf.constant(contents), tf.constant(
                signatures)
        self.content_classifier = None  # --content_class_weight: `train` loads it
        self.content_class_report = None  # what load_content_classifier did

    def train(self, stop=None) -> dict:
        """GANTrainer.train, after loading (or first training) the content classifier when
        --content_class_weight > 0; its report joins the summary as "content_classifier"."""
        stop = stop or StopRequest()
        if self.cfg.train.content_class_weight > 0 and self.content_classifier is None:
            self.content_classifier = self.load_content_classifier(stop)
        out = super().train(stop)
        if self.content_class_report:
            out["content_classifier"] = self.content_class_report
        return out

    def content(self, chars):
        """Font images [B, R, R, 1] in [-1, 1] of training char ids [B]."""
        return tf.gather(self.content_table, tf.cast(chars, tf.int32))

    # -- one step --------------------------------------------------------------------------------
    # Every step that receives a batch hands its real glyphs to `_make_fakes` (the base class
    # passes only ids there) within its own trace: the replica step's parts are also run alone
    # (benchmarks/train.py times the D and G steps each in its own tf.function).
    def _d_step(self, batch, step, with_r1: bool, fake=None) -> dict:
        self._real = batch["image"]
        return super()._d_step(batch, step, with_r1, fake)

    def _g_step(self, batch, step, with_reg: bool = True) -> dict:
        self._real = batch["image"]
        return super()._g_step(batch, step, with_reg)

    def _fused_step(self, batch, step, with_r1: bool, with_reg: bool = True) -> dict:
        self._real = batch["image"]
        return super()._fused_step(batch, step, with_r1, with_reg)

    def redraw(self, images, chars, parts=None, training: bool = True, seed=None):
        """Each glyph of each group of k in `images` [B, R, R, 1] (chars [B]) redrawn from the
        group's other glyphs and its font image: [B, R, R, 1] float32. With `seed` and
        --style_ref_augment > 0, the glyphs are read as references after disturb_references
        (the targets they are compared with stay as they are)."""
        glyph_net, head, decoder = parts or (self.glyph_net, self.style_head, self.decoder)
        k, r = self.group_size, self.cfg.model.resolution
        contents = self.content(chars)
        refs = tf.cast(images, tf.float32)
        strength = self.cfg.train.style_ref_augment
        if seed is not None and strength > 0:
            refs = disturb_references(refs, strength, seed)
        feats = glyph_net(tf.concat([refs, contents], -1), training=training)
        feats = tf.reshape(tf.cast(feats, tf.float32), [-1, k, feats.shape[-1]])  # [G, k, F]
        others = 1.0 - tf.eye(k)  # row i: every reference but i
        pooled = tf.einsum("gjf,ij->gif", feats, others) / float(k - 1)
        style = head(tf.reshape(pooled, [-1, feats.shape[-1]]), training=training)
        self._style = style  # the G step's content-shape loss draws pool characters in these
        return tf.cast(decoder({"content": contents, "style": style}, training=training),
                       tf.float32)

    def _make_fakes(self, step, salt: int, chars, writers, batch_size, training: bool = True):
        return self.redraw(self._real, chars, training=training,
                           seed=self._seed(step, REF_AUGMENT_SALT)), {}

    def _g_extra_losses(self, batch, step, fake, info, with_reg: bool = True) -> dict:
        t = self.cfg.train
        target = tf.cast(batch["image"], tf.float32)
        out = {}
        if t.style_recon_weight > 0:
            out["recon_l1"] = t.style_recon_weight * self._average(
                losses_lib.l1_per_example(fake, target))
        if t.style_feature_weight > 0 or t.writer_contrast_weight > 0:
            n = tf.shape(fake)[0]
            _, feats = self.d_logits_features(
                self.d_inputs(tf.concat([fake, target], 0),
                              tf.concat([batch["char"], batch["char"]], 0),
                              tf.concat([batch["writer"], batch["writer"]], 0)), training=True)
            feats = tf.cast(feats, tf.float32)
            if t.style_feature_weight > 0:
                out["recon_feat"] = t.style_feature_weight * self._average(
                    losses_lib.feature_l1(feats[:n], feats[n:]))
            if t.writer_contrast_weight > 0:
                out["writer_contrast"] = t.writer_contrast_weight * self._average(
                    losses_lib.group_contrast(feats[:n], feats[n:], self.group_size,
                                              WRITER_CONTRAST_TEMPERATURE))
        if t.content_shape_weight > 0 or t.content_class_weight > 0:
            draw = self.pool_draw(step, self._style)
            if t.content_shape_weight > 0:
                out["content_shape"] = t.content_shape_weight * self.content_shape_loss(
                    step, self._style, draw)
            if t.content_class_weight > 0:
                out["content_class"] = t.content_class_weight * self.content_class_loss(
                    step, self._style, draw)
        return out

    def pool_draw(self, step, styles):
        """(pool indices [E], glyphs [E, R, R, 1]): --content_shape_glyphs characters of the
        pool (shape_pool; a seeded draw per step and replica) drawn by the decoder in `styles`
        [B, D] (the step's redrawn glyphs' codes), spread over the batch's writer groups and held
        fixed (only the decoder learns from what is asked of these glyphs)."""
        e = int(self.cfg.train.content_shape_glyphs)
        idx = tf.random.stateless_uniform([e], self._seed(step, SHAPE_SALT), 0,
                                          len(self.shape_chars), tf.int32)
        styles = tf.stop_gradient(tf.cast(styles, tf.float32))
        styles = tf.gather(styles, tf.range(e) * tf.shape(styles)[0] // e)
        drawn = self.decoder({"content": tf.gather(self.shape_contents, idx), "style": styles},
                             training=True)
        return idx, tf.cast(drawn, tf.float32)

    def _pool_average(self, per_glyph):
        return tf.nn.compute_average_loss(
            per_glyph, global_batch_size=int(self.cfg.train.content_shape_glyphs)
            * self.strategy.num_replicas_in_sync)

    def content_shape_loss(self, step, styles, draw=None):
        """The mean shortfall of the pool glyphs' (`pool_draw`, or `draw` made by it) shape
        signatures' cosine to their fitted font images' under SHAPE_MARGIN, averaged over the
        global count of such glyphs."""
        idx, drawn = draw if draw is not None else self.pool_draw(step, styles)
        cos = tf.reduce_sum(shape_signature(drawn, self.cfg.model.resolution)
                            * tf.gather(self.shape_signatures, idx), 1)
        return self._pool_average(tf.nn.relu(SHAPE_MARGIN - cos))

    def content_class_loss(self, step, styles, draw=None):
        """The mean shortfall of the pool glyphs' (`pool_draw`, or `draw` made by it) log
        probability of their own character under the content classifier (frozen, inference
        mode) below log CLASS_MARGIN, averaged over the global count of such glyphs."""
        if self.content_classifier is None:
            raise RuntimeError("--content_class_weight: the content classifier is not loaded; "
                               "call load_content_classifier() (train() does) before a step")
        idx, drawn = draw if draw is not None else self.pool_draw(step, styles)
        probs = self.content_classifier(drawn, training=False)
        own = tf.gather(probs, idx + int(self.cfg.model.num_chars), batch_dims=1)
        return self._pool_average(
            tf.nn.relu(np.log(CLASS_MARGIN) - tf.math.log(tf.maximum(own, 1e-12))))

    # -- the content classifier ------------------------------------------------------------------
    def content_class_labels(self) -> list:
        """The content classifier's classes in order: the manifest's charset (its ids), then the
        pool's characters (shape_pool)."""
        return list(self.manifest["charset"]) + list(self.shape_chars)

    def content_class_identity(self) -> dict:
        """What a content classifier is trained on: a saved one is reused only if this matches."""
        cfg = self.cfg
        data = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()
        return {"recipe": CLASS_RECIPE, "classes": "".join(self.content_class_labels()),
                "holdout": cfg.data.holdout_chars, "resolution": int(cfg.model.resolution),
                "steps": int(cfg.train.content_class_steps), "batch": CLASS_BATCH,
                "seed": int(cfg.train.seed), "manifest_sha256": data}

    def load_content_classifier(self, stop=None) -> keras.Model:
        """The content classifier (built in the strategy scope): read from <model_dir>/CLASS_DIR
        when what is saved there was trained on the same data and setting, else trained
        (`train_content_classifier`) and saved there by the chief (written whole, then
        renamed)."""
        folder = self.model_dir / CLASS_DIR
        identity = self.content_class_identity()
        saved = None
        try:
            saved = json.loads((folder / CLASS_META).read_text())
        except (OSError, ValueError):
            pass
        start = time.perf_counter()
        if saved is not None and saved.get("identity") == identity:
            weights, status, accuracy = None, "reused", saved.get("accuracy")
        else:
            trained, accuracy = self.train_content_classifier(stop)
            weights, status = trained.get_weights(), "trained"
            if self.chief:
                with atomic.atomic_dir(folder, overwrite=True) as tmp:
                    trained.save_weights(str(tmp / CLASS_WEIGHTS))
                    (tmp / CLASS_META).write_text(json.dumps(
                        {"identity": identity, "accuracy": accuracy}, indent=1))
        with self.strategy.scope():
            model = classifier.build_classifier(self.cfg.model.resolution,
                                                len(identity["classes"]),
                                                name="content_classifier")
        if weights is None:
            model.load_weights(str(folder / CLASS_WEIGHTS))
        else:
            model.set_weights(weights)
        model.trainable = False
        self.content_class_report = {"status": status, "path": str(folder),
                                     "accuracy": accuracy, "classes": len(identity["classes"]),
                                     "seconds": time.perf_counter() - start}
        return model

    def content_class_data(self):
        """What the content classifier learns from: (real glyphs float32 [N, R, R, 1], their
        charset ids [N]) of the training split (REFERENCE_LIMIT of them, the held-out characters'
        left out), and (labels, font images [L, R, R, 1] FITTED as a sample is, their class ids
        [L]) of the trained characters and the pool's. Classes: `content_class_labels`."""
        cfg = self.cfg
        images, chars, _ = self.writer_references()
        charset = list(self.manifest["charset"])
        keep = np.isin(chars, [charset.index(c) for c in self.trained_labels])
        labels = sorted(self.trained_labels) + list(self.shape_chars)
        classes = self.content_class_labels()
        fonts = to_float(font.fitted_images(labels, cfg.model.resolution))[..., None]
        return (images[keep], chars[keep], labels, fonts.astype(np.float32),
                np.array([classes.index(c) for c in labels], np.int32))

    def train_content_classifier(self, stop=None) -> tuple[keras.Model, dict]:
        """(classifier, {"real": accuracy, "font": accuracy}) trained for --content_class_steps
        on `class_batch`es of `content_class_data` (without the disturbed real glyphs, G
        learned to fade its glyphs: docs/results.md), seeded by --seed and the step. The
        accuracies are on up to 2,000 real glyphs it did not train on and 2,048 fresh
        disturbances of the font images.
        A `stop` (StopRequest) requested meanwhile is a KeyboardInterrupt (nothing is saved)."""
        cfg = self.cfg
        r, steps = cfg.model.resolution, int(cfg.train.content_class_steps)
        images, chars, _, fonts, font_ids = self.content_class_data()
        n_test = min(2000, len(chars) // 10)
        test_images, test_chars = images[:n_test], chars[:n_test]
        images, chars = tf.constant(images[n_test:]), tf.constant(chars[n_test:])
        fonts, font_ids = tf.constant(fonts), tf.constant(font_ids)
        model = classifier.build_classifier(r, len(self.content_class_labels()),
                                            seed=int(cfg.train.seed), name="content_classifier")
        warmup = max(1, steps // 20)
        opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
            CLASS_LR / 10, max(1, steps - warmup), warmup_target=CLASS_LR, warmup_steps=warmup))
        opt.build(model.trainable_variables)
        half = CLASS_BATCH // 2

        def batch(i):
            return class_batch(images, chars, fonts, font_ids, tf.stack(
                [tf.constant(CLASS_SALT + int(cfg.train.seed), tf.int64), tf.cast(i, tf.int64)]))

        @tf.function(jit_compile=False)
        def train_step(i):
            x, y = batch(i)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                    y, model(x, training=True)))
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            return loss

        bar = Progress("content classifier", steps, "steps", enabled=self.chief)
        for i in range(steps):
            if stop is not None and stop.reason:
                bar.close()
                raise KeyboardInterrupt(stop.reason)
            loss = train_step(tf.constant(i, tf.int64))
            bar.update(1, extra=f"loss {float(loss):.3f}" if i % 50 == 0 else "")
        bar.close()

        def predict(x):
            return np.argmax(model(x, training=False).numpy(), 1)

        right = 0
        for j in range(2048 // half):
            x, y = batch(tf.constant(steps + 1 + j, tf.int64))
            right += int((predict(x[half:]) == y[half:].numpy()).sum())
        accuracy = {"real": float((predict(test_images) == test_chars).mean()),
                    "font": right / float(2048 // half * half)}
        if self.chief:
            print(f"content classifier: accuracy {accuracy['real']:.3f} on {n_test} real glyphs "
                  f"it did not train on, {accuracy['font']:.3f} on disturbed font images",
                  file=sys.stderr, flush=True)
        return model, accuracy

    # -- sampling --------------------------------------------------------------------------------
    def _grid_batch(self):
        """One fixed batch of writer groups from the training split (the sample grid's rows)."""
        if self._grid is None:
            cfg = self.cfg
            ds = make_dataset(cfg.data.data_dir, cfg.data.train_split, self.per_replica,
                              image_size=cfg.model.resolution, shuffle=True, seed=1234,
                              repeat=True, cache=False, shuffle_buffer=cfg.data.shuffle_buffer,
                              expected_charset=self.manifest["charset"],
                              group_size=self.group_size)
            self._grid = next(iter(ds))
        return self._grid

    def sample_grid(self, chars: np.ndarray, writers: np.ndarray, seed: int = 1234):
        """uint8 grid: per writer group of the fixed batch (up to 8), a row of its real glyphs
        then a row of the same glyphs redrawn by the EMA generator from the others."""
        batch = self._grid_batch()
        parts = fewshot.parts(self.ema_generator)
        fake = self.redraw(batch["image"], batch["char"], parts, training=False)
        k = self.group_size
        groups = min(8, self.per_replica // k)
        real = to_uint8(batch["image"][:groups * k]).numpy().reshape(groups, 1, k, *fake.shape[1:])
        made = to_uint8(fake[:groups * k]).numpy().reshape(groups, 1, k, *fake.shape[1:])
        rows = np.concatenate([real, made], 1).reshape(-1, *fake.shape[1:])
        return summary_grid(rows, 2 * groups, k)

    # -- styles: k references -> a code, a code + a font image -> a glyph ------------------------
    def encode_sets(self, images, chars=None, mask=None, contents=None):
        """Style codes float32 [S, D] of S sets of references (EMA generator): images
        [S, K, R, R, 1] in [-1, 1], with their training char ids [S, K] or their font images
        `contents` [S, K, R, R, 1] (any character the font covers); mask [S, K] (1 = a reference;
        default all). Each set is read with --style_read_copies disturbed copies of its
        references (fewshot.reading_copies). A set with no reference is a ValueError."""
        images = tf.convert_to_tensor(images, tf.float32)
        if contents is None:
            contents = self.content(tf.reshape(tf.cast(chars, tf.int32), [-1]))
        contents = tf.reshape(tf.convert_to_tensor(contents, tf.float32), tf.shape(images))
        if mask is None:
            mask = tf.ones(tf.shape(images)[:2], tf.float32)
        mask = tf.convert_to_tensor(mask, tf.float32)
        if int(images.shape[0] or 0) and not bool(tf.reduce_all(tf.reduce_sum(mask, 1) > 0)):
            raise ValueError("a style needs at least one reference glyph; a set has none")
        copies = self.cfg.model.style_read_copies
        images = fewshot.reading_copies(images, copies)
        contents, mask = tf.tile(contents, [1, copies + 1, 1, 1, 1]), tf.tile(mask, [1, copies + 1])
        set_style, head = fewshot.set_style_parts(self.ema_generator)
        return tf.cast(head(set_style(images, contents, mask), training=False), tf.float32)

    def style_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, spread) [D] of the training writers' styles (`writer_styles`, as the export's
        tables hold them: its mean_style and per-glyph jitter use the same), computed once per
        training step."""
        step = int(self.step.numpy())
        if self._statistics is None or self._statistics[0] != step:
            styles = self.writer_styles()
            styles = styles[np.abs(styles).sum(1) > 0]
            self._statistics = (step, styles.mean(0), styles.std(0) if len(styles) > 1
                                else np.zeros(styles.shape[1], np.float32))
        return self._statistics[1:]

    def draw(self, styles, contents, batch: int = 512, labels=None) -> np.ndarray:
        """Float [-1, 1] glyphs [N, R, R, 1] (EMA decoder): styles [N, D] x font images
        `contents` [N, R, R, 1] in [-1, 1]. With the glyphs' `labels`, those of characters
        training never saw are drawn in styles limited as the export limits them
        (fewshot.limit_untrained, --untrained_style_clip)."""
        _, _, decoder = fewshot.parts(self.ema_generator)
        styles = np.asarray(styles, np.float32)
        trained = None if labels is None else np.array([c in self.trained_labels
                                                        for c in labels], bool)
        if trained is not None and not trained.all():
            mean, spread = self.style_statistics()
            styles = fewshot.limit_untrained(styles, trained, mean, spread,
                                             self.cfg.model.untrained_style_clip).numpy()
        contents = np.asarray(contents, np.float32)
        out = [decoder({"content": contents[i:i + batch], "style": styles[i:i + batch]},
                       training=False).numpy() for i in range(0, len(contents), batch)]
        r = self.cfg.model.resolution
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, r, r, 1),
                                                                             np.float32)

    def draw_labels(self, styles, labels, batch: int = 512) -> np.ndarray:
        """Like `draw`, for characters given as labels (any the content font covers): accented
        letters are drawn as their base letter and mark, put together as font.composition lays
        them out (fewshot.compose), the others from their own font image."""
        r = self.cfg.model.resolution
        comps = [font.composition(label, r) if len(label) == 1 else None for label in labels]
        base = [c.base if c else label for c, label in zip(comps, labels)]
        glyphs = self.draw(styles, to_float(font.content_images(base, r))[..., None], batch,
                           base)
        at = [i for i, c in enumerate(comps) if c]  # only these get a mark drawn and placed
        if not at:
            return glyphs
        mark = [comps[i].mark for i in at]
        marks = self.draw(np.asarray(styles, np.float32)[at],
                          to_float(font.content_images(mark, r))[..., None], batch, mark)
        boxes = np.stack([comps[i].boxes for i in at])
        glyphs[at] = fewshot.compose(glyphs[at], marks, boxes, np.ones(len(at), bool)).numpy()
        return glyphs

    def writer_styles(self, untrained=(), k: int = EXPORT_REFERENCES) -> np.ndarray:
        """float32 [num_writers, D]: each training writer's style from up to k of their training
        glyphs (distinct characters first, seed 0); zero rows for `untrained` writers."""
        _, _, writers = self.writer_references()
        names = list(self.manifest["writers"])
        skip = {names.index(w) for w in untrained}
        out = np.zeros((len(names), fewshot.style_dim(self.cfg.model)), np.float32)
        present = [int(w) for w in np.unique(writers) if int(w) not in skip]
        for start in range(0, len(present), 64):
            block = present[start:start + 64]
            out[np.asarray(block, np.int64)] = self.encode_reference_sets(block, k, 0, 78)
        return out

    def serving_generator(self, untrained=(), variation: float = SERVING_VARIATION):
        """(the exportable generator, (glyph net, head, content code points)) of the EMA
        generator: fewshot.build_serving_generator with the font's content table and the
        training writers' styles (`writer_styles`)."""
        glyph_net, head, decoder = fewshot.parts(self.ema_generator)
        model, codes = fewshot.font_serving_generator(
            self.cfg.model, decoder, self.manifest["charset"], self.writer_styles(untrained),
            variation, self.cfg.data.holdout_chars, self.cfg.model.untrained_style_clip)
        return model, (glyph_net, head, codes)

    def writer_references(self):
        """(images, chars, writers) of the training split, cut to at most REFERENCE_LIMIT glyphs
        and loaded once: where a training writer's references are taken from."""
        if self._refs is None:
            cfg = self.cfg
            self._refs = load_glyphs(cfg.data.data_dir, cfg.data.train_split,
                                     cfg.model.resolution, limit=REFERENCE_LIMIT)
        return self._refs

    def reference_sets(self, writer_ids, k: int, seed: int, salt: int) -> list:
        """Per training writer id, the indices (into `writer_references`) of up to k of their
        glyphs, distinct characters first, chosen by (seed, writer, salt). A writer with no glyph
        among the loaded references is a ValueError naming them."""
        _, chars, writers = self.writer_references()
        sets = []
        for w in writer_ids:
            idx = np.flatnonzero(writers == w)
            if not len(idx):
                raise ValueError(f"writer {self.manifest['writers'][int(w)]!r} has no glyph "
                                 f"among the {len(writers)} references loaded from "
                                 f"{self.cfg.data.train_split!r}")
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(w), int(salt)]))
            sets.append(idx[pick_samples(chars[idx], k, rng)])
        return sets

    def encode_reference_sets(self, writer_ids, k: int, seed: int, salt: int) -> np.ndarray:
        """float32 [len(writer_ids), D]: each training writer's style from `reference_sets`."""
        images, chars, _ = self.writer_references()
        sets = self.reference_sets(writer_ids, k, seed, salt)
        return self.encode_sets(*stack_sets(images, chars, sets, max(map(len, sets)))).numpy()

    def generate(self, char_ids, writer_ids, seed, batch: int = 256):
        """Float [-1, 1] glyphs (evaluation's contract): each training writer's style is encoded
        from REFERENCES of their training glyphs (distinct characters first, chosen by `seed`),
        then every requested character is drawn from its font image in that style. A writer
        with no glyph among the loaded references is a ValueError naming them."""
        char_ids = np.asarray(char_ids, np.int32)
        writer_ids = np.asarray(writer_ids, np.int32)
        wanted = np.unique(writer_ids)
        styles = self.encode_reference_sets(wanted, REFERENCES, seed, 77)
        row = np.searchsorted(wanted, writer_ids)
        return self.draw(styles[row], self.content(char_ids).numpy(), batch,
                         self.labels_of(char_ids))

    def labels_of(self, char_ids) -> list:
        """The training charset's labels of char ids."""
        charset = self.manifest["charset"]
        return [charset[int(c)] for c in np.asarray(char_ids).reshape(-1)]
