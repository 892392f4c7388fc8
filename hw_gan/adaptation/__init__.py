"""Adapting a trained style_cgan to a new writer from a few of their glyphs.

    python train_main.py --flagfile=configs/adapt_writer.cfg --writer_data=DIR --init=RUN_DIR \
        --writer_name=alice --model_dir=runs/alice

1. The base run (--init: a model directory with checkpoints/, or one checkpoint prefix such as
   runs/quickstart/checkpoints/ckpt-6000) is restored with its own config.json / dataset.json.
2. The writer is ADDED: the generator's and the discriminator's "writer_embedding" (and the
   auxiliary writer head, if the base has one) grow by one row; the new writer's id is the old
   writer count. The adapted generator starts from the base's EMA generator (the one that is
   exported).
3. Start (`start`): "nearest" (default) starts the new rows as the mean of the rows of the
   `start_top` base writers whose generated glyphs are closest to the writer's glyphs (among the
   writers the base was trained on: `trained_writers`); "mean" starts from the mean of those
   writers' rows. The distance (`pixel_distances`): for each of the
   writer's glyphs x of character c, the mean |x - G(z_j, c, w)| of the closest of `samples`
   draws (a best-of-m reconstruction error, so a writer whose hand can produce x scores well
   however varied it is), averaged over the glyphs. Averaging a few nearest rows beats the single
   nearest one on real writers (docs/results.md): their common traits are the writer's, their
   quirks cancel out.
4. Embedding phase (`steps`): only the new rows are optimised with the base's GAN loss on the
   writer's glyphs - G's new style row, and D's new projection row (D learns which feature
   direction tells this writer's real glyphs from generated ones). Every other weight is frozen,
   so the base writers' glyphs are unchanged bit for bit. With 40-100 glyphs this can also pull
   the style away from the writer (D's new row fits a few glyphs' quirks), so every
   `select_every` steps the row is scored by the same pixel distance on the writer's glyphs and
   the best row seen - the start included - is kept (adapt.json: "selection").
   With `objective="projection"` the phase instead fits G's new row alone to reconstruct the
   writer's glyphs (`_proj_step_fn`: best-of-`samples` pixel L1 + `feature_weight` x L1 of D's
   image features, as the StyleGAN route's projection), either as a free row (`space="row"`,
   optionally pulled to the start by `anchor`) or as a softmax blend of the trained writers' rows
   (`space="writers"`, starting from the start's weights). On real writers it brings the glyph
   shapes closer (character judge) but the hand further away (writer judge): docs/results.md.
5. Optional fine-tune (`finetune_steps` > 0): with `finetune_objective="gan"` (small
   `finetune_lr`) every generator weight except the base writers' embedding rows is trained with
   the base's GAN loss as well (D still adapts only its new row). With "pivotal" (pivotal tuning,
   `_pivotal_step_fn`) the new row is kept as the pivot and the generator's other weights are
   tuned so that the pivot reproduces the writer's glyphs (best-of-`finetune_samples` pixel L1 +
   `feature_weight` x L1 of D's features), while `locality` x |G - G_base| on random glyphs of
   the base writers keeps their styles; D is frozen. Both change the base writers' glyphs a
   little; adapt.json reports by how much ("base_writer_drift"). The fine-tune is skipped (said
   in adapt.json) when the writer's data give fewer than `finetune_min_variants` glyphs per
   character: configs/adapt_writer.cfg runs pivotal tuning from 1.5 up (a filled-in default
   template gives 3), where it brought real held-out writers closer than any base writer; on one
   glyph per character it fitted the glyphs rather than the hand (docs/results.md).
Characters absent from the writer's data are still drawn in their style (the char embedding is
shared); adapt.json lists them under "unseen_chars".

Output (--model_dir, must not hold a run yet): config.json / dataset.json (the grown model: base
config with num_writers + 1 and data_dir = --writer_data; writers = base writers + the new name),
adaptation.json (the settings), a checkpoint in the trainer's layout (GANTrainer of that config
restores it; its optimizer slots are fresh), adapt.json (the report) and, with --export_dir, a
SavedModel export whose writers are the base writers + the new writer's name. (train_main's own
--mode=export/evaluate cannot be pointed at it: its dataset check wants a dataset holding all
base writers + the new one.)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np

from hw_gan import config as config_lib

ADAPTATION_FILE = "adaptation.json"
REPORT_FILE = "adapt.json"
EMBEDDING = "writer_embedding"
STARTS = ("nearest", "mean")
OBJECTIVES = ("gan", "projection")
SPACES = ("row", "writers")
FINETUNE_OBJECTIVES = ("gan", "pivotal")


class AdaptError(ValueError):
    """The adaptation cannot run with these inputs; the message says why."""


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    writer_data: str
    init: str
    model_dir: str
    writer_name: str = ""  # default: the dataset's writer name
    split: str = "train"
    steps: int = 300  # embedding-only steps
    batch_size: int = 32
    lr: float = 0.001  # G's new embedding row (base rows differ by ~0.45 in L2, entries ~0.09)
    d_lr: float = 0.002  # D's new projection row
    finetune_steps: int = 0
    finetune_lr: float = 2e-5
    finetune_objective: str = "gan"  # fine-tune loss: the base's "gan" loss or "pivotal" tuning
    finetune_samples: int = 1  # pivotal: draws per glyph (the closest one is pulled to it)
    locality: float = 1.0  # pivotal: weight of |G(base writer) - G_base(base writer)|
    # Fine-tune only when the writer's data hold at least this many glyphs per character they
    # cover (a template filled in with 3 variants: 3.0); below it only the embedding is adapted.
    finetune_min_variants: float = 0.0
    start: str = "nearest"  # the "nearest" base writers' rows (see start_rows) or the "mean" row
    start_top: int = 4  # "nearest": the mean of this many nearest base writers' rows
    samples: int = 8  # draws per glyph in the pixel distance (start and selection)
    select_every: int = 50  # embedding phase: score the row every N steps, keep the best (0: off)
    objective: str = "gan"  # embedding phase: the base's "gan" loss or "projection"
    feature_weight: float = 3.0  # projection: weight of the L1 of D's features (pixel L1 is 1)
    anchor: float = 0.0  # projection: weight of |row - start|^2 / |start|^2
    space: str = "row"  # projection: the free "row", or a softmax blend of the trained "writers"
    seed: int = 0
    export_dir: str = ""
    export_name: str = ""
    export_version: int = 1
    overwrite_export: bool = False
    log_every: int = 50

    def validate(self) -> "AdaptConfig":
        def check(ok, flag, msg):
            if not ok:
                raise AdaptError(f"--{flag}: {msg}")

        check(bool(self.writer_data), "writer_data", "is required")
        check(bool(self.init), "init", "is required")
        check(bool(self.model_dir), "model_dir", "is required (a new directory)")
        check(self.steps >= 0, "adapt_steps", "must be >= 0")
        check(self.finetune_steps >= 0, "adapt_finetune_steps", "must be >= 0")
        check(self.steps + self.finetune_steps >= 1 or self.start == "nearest", "adapt_steps",
              "adapt_steps + adapt_finetune_steps must be >= 1 with --adapt_start=mean")
        check(self.batch_size >= 1, "adapt_batch_size", "must be >= 1")
        check(self.start in STARTS, "adapt_start", f"must be one of {STARTS}, got {self.start!r}")
        check(self.start_top >= 1, "adapt_start_top", "must be >= 1")
        check(self.samples >= 1, "adapt_samples", "must be >= 1")
        check(self.select_every >= 0, "adapt_select_every", "must be >= 0")
        check(self.objective in OBJECTIVES, "adapt_objective",
              f"must be one of {OBJECTIVES}, got {self.objective!r}")
        check(self.feature_weight >= 0, "adapt_feature_weight", "must be >= 0")
        check(self.anchor >= 0, "adapt_anchor", "must be >= 0")
        check(self.space in SPACES, "adapt_space", f"must be one of {SPACES}, got {self.space!r}")
        check(self.finetune_objective in FINETUNE_OBJECTIVES, "adapt_finetune_objective",
              f"must be one of {FINETUNE_OBJECTIVES}, got {self.finetune_objective!r}")
        check(self.finetune_samples >= 1, "adapt_finetune_samples", "must be >= 1")
        check(self.locality >= 0, "adapt_locality", "must be >= 0")
        check(self.finetune_min_variants >= 0, "adapt_finetune_min_variants", "must be >= 0")
        check(self.lr > 0 and self.d_lr > 0 and self.finetune_lr > 0, "adapt_lr",
              "learning rates must be > 0")
        check(self.export_version >= 1, "export_version", "must be >= 1")
        return self


# ------------------------------------------------------------------------------------------------
# Inputs.


def resolve_init(init: str) -> tuple[Path, Optional[str]]:
    """(base model dir, checkpoint prefix) from --init (a model dir or a checkpoint prefix)."""
    import tensorflow as tf

    from hw_gan.training.trainer import CHECKPOINT_DIR

    path = Path(init)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path / CHECKPOINT_DIR))
        if prefix is None:
            raise AdaptError(f"--init={init}: no checkpoint in {path / CHECKPOINT_DIR}; "
                             f"train the base model first (or pass a checkpoint prefix)")
        return path, prefix
    if Path(str(path) + ".index").exists():
        model_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        return model_dir, str(path)
    raise AdaptError(f"--init={init} is neither a model directory nor a checkpoint prefix "
                     f"(no {init}.index)")


def load_base(init: str) -> tuple[config_lib.ExperimentConfig, dict, Path, str]:
    """(base config, base dataset info, base model dir, checkpoint prefix)."""
    from hw_gan.training.trainer import DATASET_FILE

    model_dir, prefix = resolve_init(init)
    cfg = config_lib.load_json(str(model_dir / "config.json"))
    if cfg is None:
        raise AdaptError(f"--init={init}: {model_dir} has no config.json")
    info_path = model_dir / DATASET_FILE
    if not info_path.exists():
        raise AdaptError(f"--init={init}: {model_dir} has no {DATASET_FILE}")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if cfg.model.family != "style_cgan":
        raise AdaptError(f"--init={init}: the base model is {cfg.model.family!r}; adding a writer "
                         f"needs a style_cgan (a writer embedding to grow)")
    if len(info["writers"]) != cfg.model.num_writers:
        raise AdaptError(f"--init={init}: {DATASET_FILE} lists {len(info['writers'])} writers, "
                         f"config.json says {cfg.model.num_writers}")
    return cfg, info, model_dir, prefix


def variants_per_char(chars) -> float:
    """Glyphs per distinct character: how many variants a sheet gives on average."""
    chars = np.asarray(chars)
    return float(len(chars) / max(1, len(np.unique(chars))))


def load_writer_data(writer_data: str, split: str, base_info: dict, image_size: int,
                     writer_name: str = "") -> dict:
    """The writer's glyphs with char ids in the BASE charset, and what is missing.

    AdaptError when the directory is no dataset, holds several writers, has labels the base
    model does not know, or the writer's name is already one of the base writers."""
    from data_pipeline import tfrecords
    from data_pipeline.dataset import load_glyphs as load_real

    try:
        manifest = tfrecords.load_manifest(writer_data)
    except tfrecords.DatasetError as e:
        raise AdaptError(f"--writer_data: {e}") from None
    if len(manifest["writers"]) != 1:
        raise AdaptError(f"--writer_data={writer_data} holds {len(manifest['writers'])} writers "
                         f"({manifest['writers'][:5]}...); adaptation takes one writer's glyphs")
    base_charset = list(base_info["charset"])
    unknown = [label for label in manifest["charset"] if label not in base_charset]
    if unknown:
        raise AdaptError(f"--writer_data={writer_data}: charset mismatch with the base model: "
                         f"labels {unknown} are not in its charset ({''.join(base_charset)!r})")
    if split not in manifest["splits"]:
        raise AdaptError(f"--writer_data={writer_data} has no split {split!r} "
                         f"(it has {sorted(manifest['splits'])})")
    name = writer_name or manifest["writers"][0]
    if name in base_info["writers"]:
        raise AdaptError(f"writer name {name!r} is already known to the base model; pass another "
                         f"--writer_name")
    images, chars, _ = load_real(writer_data, split, image_size)
    remap = np.array([base_charset.index(label) for label in manifest["charset"]], np.int32)
    chars = remap[chars]
    seen = sorted(set(int(c) for c in chars))
    return {"images": images, "chars": chars, "name": name, "manifest": manifest,
            "seen_chars": [base_charset[i] for i in seen],
            "unseen_chars": [c for i, c in enumerate(base_charset) if i not in set(seen)]}


# ------------------------------------------------------------------------------------------------
# Growing the writer embedding.


def trained_writers(base_cfg, base_info) -> tuple[list, str]:
    """(ids, why) of the base writers the base was trained on: those with glyphs in the training
    split of the base's dataset. A base trained on a writer-split dataset also has rows for the
    held-out writers (the manifest lists every writer), never trained: they draw an averaged,
    nobody's style and must not be candidates for a start. When the base's dataset is not on
    this machine, every base writer (and `why` says so)."""
    from data_pipeline import tfrecords

    everyone = list(range(len(base_info["writers"])))
    data_dir, split = base_cfg.data.data_dir, base_cfg.data.train_split
    try:
        manifest = tfrecords.load_manifest(data_dir)
    except tfrecords.DatasetError as e:
        return everyone, f"every base writer (the base's dataset is not readable here: {e})"
    untrained = set(tfrecords.writers_without_glyphs(manifest, split))
    ids = [i for i, name in enumerate(base_info["writers"])
           if name in manifest["writers"] and name not in untrained]
    if not ids:
        return everyone, (f"every base writer ({data_dir} split {split!r} names none of the "
                          f"base's writers)")
    return ids, f"the {len(ids)} writers with glyphs in {data_dir} split {split!r}"


def _copy_grown(src, dst) -> None:
    """Copies the weights of keras model `src` into `dst` (the same model with one more writer):
    equal shapes are copied, "writer_embedding" gets the mean of its rows appended."""
    for layer in dst.layers:
        if not layer.weights:
            continue
        old = src.get_layer(layer.name)
        for w_new, w_old in zip(layer.weights, old.weights):
            value = w_old.numpy()
            if tuple(w_new.shape) != value.shape:
                if layer.name != EMBEDDING or value.shape[0] + 1 != w_new.shape[0]:
                    raise AdaptError(f"cannot grow weight {w_new.path}: {value.shape} -> "
                                     f"{tuple(w_new.shape)}")
                value = np.concatenate([value, value.mean(axis=0, keepdims=True)], axis=0)
            w_new.assign(value)


def _copy_head(src, dst) -> None:
    """The auxiliary writer head: one more output column (kernel [F, W], bias [W])."""
    kernel, bias = src.kernel.numpy(), src.bias.numpy()
    dst.kernel.assign(np.concatenate([kernel, kernel.mean(axis=1, keepdims=True)], axis=1))
    dst.bias.assign(np.append(bias, bias.mean()))


def _new_cfg(base_cfg, acfg: AdaptConfig) -> config_lib.ExperimentConfig:
    return base_cfg.replace(
        model=dataclasses.replace(base_cfg.model, num_writers=base_cfg.model.num_writers + 1),
        data=dataclasses.replace(base_cfg.data, data_dir=acfg.writer_data,
                                 train_split=acfg.split, build_source="", build_params=()),
        runtime=dataclasses.replace(base_cfg.runtime, model_dir=acfg.model_dir, mode="train",
                                    export_dir=acfg.export_dir, export_name=acfg.export_name,
                                    export_version=acfg.export_version, num_cpu_devices=0,
                                    strategy="default"))


# ------------------------------------------------------------------------------------------------
# The adaptation.


class Adapter:
    """Builds base and grown models; `run` adapts (see the module docstring)."""

    def __init__(self, acfg: AdaptConfig, base_cfg, base_info, base_dir, prefix):
        import tensorflow as tf

        from hw_gan.training import trainer as trainer_lib

        self.acfg, self.base_cfg, self.base_info = acfg, base_cfg, base_info
        strategy = tf.distribute.get_strategy()
        base = trainer_lib.GANTrainer(base_cfg.replace(runtime=dataclasses.replace(
            base_cfg.runtime, model_dir=str(base_dir))), strategy, base_info)
        try:
            base.checkpoint.restore(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise AdaptError(f"--init: cannot restore {prefix} into the model its config.json "
                             f"describes: {str(e)[:300]}") from None
        self.base_step = int(base.step.numpy())
        self.cfg = _new_cfg(base_cfg, acfg)
        self.writer_names = list(base_info["writers"])
        self.new_id = len(self.writer_names)
        self.trainer = trainer_lib.GANTrainer(
            self.cfg, strategy, {"charset": base_info["charset"],
                                 "writers": self.writer_names + ["<new>"]})
        t = self.trainer
        # The adapted generator starts from the base's EMA generator (the exported one).
        _copy_grown(base.ema_generator, t.generator)
        _copy_grown(base.ema_generator, t.ema_generator)
        _copy_grown(base.discriminator, t.discriminator)
        for key, (head, _) in t.aux_heads.items():
            old = base.aux_heads[key][0]
            if key == "writer":
                _copy_head(old, head)
            else:
                head.kernel.assign(old.kernel.numpy())
                head.bias.assign(old.bias.numpy())
        self.base_generator = base.ema_generator  # kept to measure drift of the base writers
        self.trained_ids, self.trained_why = trained_writers(base_cfg, base_info)
        self.ema_embed = t.ema_generator.get_layer(EMBEDDING).embeddings
        self._pixel_fn = None
        self.start_weights = None  # start_rows: the start's weight on each trained writer
        self.g_embed = t.generator.get_layer(EMBEDDING).embeddings
        self.d_embed = t.discriminator.get_layer(EMBEDDING).embeddings
        rows = self.g_embed.shape[0]
        self.g_mask = tf.constant(np.arange(rows) == self.new_id, tf.float32)[:, None]
        self.d_mask = tf.constant(np.arange(self.d_embed.shape[0]) == self.new_id,
                                  tf.float32)[:, None]

    # -------------------------------------------------------------------------------------------
    def _pixel_distance(self, images, chars, writer_id, seed):
        """[n]: for each real glyph, the mean |x - G(z_j, c, writer_id)| of the closest of
        `samples` draws z_j (stateless, from `seed`) - see the module docstring."""
        import tensorflow as tf

        m = self.acfg.samples
        n = tf.shape(chars)[0]
        z = tf.random.stateless_normal([m * n, self.cfg.model.latent_dim],
                                       seed=tf.stack([tf.cast(seed, tf.int64), 3]))
        fake = self.trainer.generator({"z": z, "char": tf.tile(chars, [m]),
                                       "writer": tf.fill([m * n], tf.cast(writer_id, tf.int32))},
                                      training=False)
        d = tf.reduce_mean(tf.abs(tf.reshape(fake, [m, n, -1]) - tf.reshape(images, [1, n, -1])),
                           axis=-1)
        return tf.reduce_min(d, axis=0)

    def pixel_distances(self, images, chars, writer_ids, batch: int = 128) -> np.ndarray:
        """[len(writer_ids)]: the mean pixel distance (`_pixel_distance`) of the glyphs to each
        writer's generated glyphs (the same draws for every writer)."""
        import tensorflow as tf

        if self._pixel_fn is None:
            self._pixel_fn = tf.function(self._pixel_distance)
        total = np.zeros(len(writer_ids), np.float64)
        for i in range(0, len(chars), batch):
            x, c = tf.constant(images[i:i + batch]), tf.constant(chars[i:i + batch])
            for k, w in enumerate(writer_ids):
                total[k] += float(tf.reduce_sum(self._pixel_fn(
                    x, c, tf.constant(int(w)), tf.constant(17 + i, tf.int64))).numpy())
        return total / len(chars)

    def _grown(self) -> list:
        """(variable, writer axis) of every variable that grew a row for the new writer: G's and
        D's embeddings and the auxiliary writer head if the base has one (the EMA generator's
        embedding follows G's: see _set_rows)."""
        out = [(self.g_embed, 0), (self.d_embed, 0)]
        head = self.trainer.aux_heads.get("writer")
        if head is not None:
            out += [(head[0].kernel, 1), (head[0].bias, 0)]
        return out

    def _rows(self, ids) -> list:
        """For each grown variable, its rows of writers `ids`, writer axis first."""
        return [np.moveaxis(np.take(var.numpy(), ids, axis=axis), axis, 0)
                for var, axis in self._grown()]

    def _new_rows(self) -> list:
        """The new writer's current rows (to keep a candidate and put it back)."""
        return [rows[0] for rows in self._rows([self.new_id])]

    def _set_rows(self, rows: list) -> None:
        """Writes one row per grown variable (as _rows gives them) as the new writer's."""
        grown = self._grown()
        for (var, axis), row in zip(grown + [(self.ema_embed, 0)], rows + rows[:1]):
            value = var.numpy()
            value[(slice(None),) * axis + (self.new_id,)] = row
            var.assign(value)

    def start_rows(self, data: dict) -> dict:
        """Sets the new writer's rows by `start` (see the module docstring); returns the choice."""
        pool = np.array(self.trained_ids)
        if self.acfg.start == "mean":
            self.start_weights = np.full(len(pool), 1.0 / len(pool))
            self._set_rows([rows.mean(axis=0) for rows in self._rows(self.trained_ids)])
            return {"start": "mean", "start_pool": self.trained_why}
        distances = self.pixel_distances(data["images"], data["chars"], pool)
        order = np.argsort(distances, kind="stable")[:self.acfg.start_top]
        src = pool[order]
        self.start_weights = np.zeros(len(pool))
        self.start_weights[order] = 1.0 / len(order)
        self._set_rows([rows.mean(axis=0) for rows in self._rows(src)])
        return {"start": "nearest", "start_writers": [self.writer_names[i] for i in src],
                "start_distances": [round(float(distances[i]), 4) for i in order],
                "mean_distance": round(float(distances.mean()), 4),
                "start_pool": self.trained_why}

    def _step_fn(self, finetune: bool, lr: float):
        import keras
        import tensorflow as tf

        t = self.trainer
        g_opt = keras.optimizers.Adam(lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
        d_opt = keras.optimizers.Adam(self.acfg.d_lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
        g_vars = list(t.generator.trainable_variables) if finetune else [self.g_embed]
        d_vars = [self.d_embed]
        embed_index = next(i for i, v in enumerate(g_vars) if v is self.g_embed)
        # The auxiliary char head (frozen) still rewards legible glyphs; the writer head's new
        # column has no negatives here, so it is not trained nor used.
        char_head = t.aux_heads.get("char")
        latent = self.cfg.model.latent_dim
        g_loss_fn, d_loss_fn = t.g_loss_fn, t.d_loss_fn

        def d_logits(images, chars, writers):
            inputs = {"image": images, "char": chars, "writer": writers}
            if char_head is None:
                return t.discriminator(inputs, training=True), 0.0
            logits, feats = t.d_features(inputs, training=True)
            aux = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=chars, logits=char_head[0](tf.cast(feats, tf.float32)))
            return logits, char_head[1] * aux

        @tf.function
        def step(images, chars, seed):
            writers = tf.fill(tf.shape(chars), tf.constant(self.new_id, tf.int32))
            n = tf.shape(chars)[0]
            z = tf.random.stateless_normal([n, latent], seed=tf.stack([seed, 1]))
            fake = t.generator({"z": z, "char": chars, "writer": writers}, training=True)
            with tf.GradientTape() as tape:
                real, _ = d_logits(images, chars, writers)
                fake_l, _ = d_logits(fake, chars, writers)
                d_loss = tf.reduce_mean(d_loss_fn(real, fake_l))
            grads = tape.gradient(d_loss, d_vars)
            d_opt.apply_gradients([(tf.convert_to_tensor(grads[0]) * self.d_mask, d_vars[0])])
            z = tf.random.stateless_normal([n, latent], seed=tf.stack([seed, 2]))
            with tf.GradientTape() as tape:
                fake = t.generator({"z": z, "char": chars, "writer": writers}, training=True)
                fake_l, aux = d_logits(fake, chars, writers)
                g_loss = tf.reduce_mean(g_loss_fn(fake_l) + aux)
            grads = tape.gradient(g_loss, g_vars)
            # Base writers' rows stay as they are.
            grads[embed_index] = tf.convert_to_tensor(grads[embed_index]) * self.g_mask
            g_opt.apply_gradients(zip(grads, g_vars))
            return d_loss, g_loss, tf.reduce_mean(real), tf.reduce_mean(fake_l)

        return step

    def _feature_fn(self):
        """features(images, chars, writers) -> [n, F] float32: the discriminator's image features
        (before any condition), with D frozen."""
        import keras
        import tensorflow as tf

        from hw_gan.training.trainer import FEATURES_LAYER

        t = self.trainer
        model = keras.Model(t.discriminator.inputs,
                            t.discriminator.get_layer(FEATURES_LAYER).output)

        def features(images, chars, writers):
            return tf.cast(model(t.d_inputs(images, chars, writers), training=False), tf.float32)

        return features

    def _reconstruction(self, features, images, chars, m: int, seed):
        """(loss, pixel) of the new writer's row on the glyphs `images` of `chars`, for use inside
        a gradient tape: for each glyph x of character c, the closest of m draws z_j (stateless,
        `seed`) by |x - G(z_j, c, w)| + feature_weight x |F(x) - F(G(z_j, c, w))| (F: D's image
        features, `_feature_fn`), averaged over the glyphs; pixel: the same with the L1 alone."""
        import tensorflow as tf

        fw = self.acfg.feature_weight
        n = tf.shape(chars)[0]
        writers = tf.fill([m * n], tf.constant(self.new_id, tf.int32))
        mchars = tf.tile(chars, [m])
        z = tf.random.stateless_normal([m * n, self.cfg.model.latent_dim], seed=seed)
        fake = tf.cast(self.trainer.generator({"z": z, "char": mchars, "writer": writers},
                                              training=False), tf.float32)
        pix = tf.reduce_mean(tf.abs(tf.reshape(fake - tf.tile(images, [m, 1, 1, 1]), [m * n, -1])),
                             axis=-1)
        d = pix
        if fw:
            f_real = tf.stop_gradient(tf.tile(features(images, chars, writers[:n]), [m, 1]))
            d = pix + fw * tf.reduce_mean(tf.abs(features(fake, mchars, writers) - f_real), axis=-1)

        def best(v):
            return tf.reduce_mean(tf.reduce_min(tf.reshape(v, [m, n]), axis=0))

        return best(d), best(pix)

    def _pivotal_step_fn(self, lr: float):
        """One "pivotal" fine-tune step (pivotal tuning, Roich et al. 2021): the new writer's row
        stays where the embedding phase left it (the pivot) and every other generator weight is
        tuned so that the pivot reproduces the writer's glyphs: for each glyph x of character c,
        min over `finetune_samples` draws z_j of |x - G(z_j, c, w)| + feature_weight x
        |F(x) - F(G(z_j, c, w))| (F: D's image features), plus `locality` x the mean |G - G_base|
        of random glyphs of random trained base writers, which keeps their styles where the base
        drew them. D is frozen."""
        import keras
        import tensorflow as tf

        t = self.trainer
        opt = keras.optimizers.Adam(lr, beta_1=0.9, beta_2=0.999)
        features = self._feature_fn()
        g_vars = [v for v in t.generator.trainable_variables if v is not self.g_embed]
        pool = tf.constant(np.array(self.trained_ids, np.int32))
        m, latent = self.acfg.finetune_samples, self.cfg.model.latent_dim
        num_chars, locality = self.cfg.model.num_chars, self.acfg.locality
        base = self.base_generator

        @tf.function
        def step(images, chars, seed):
            n = tf.shape(chars)[0]
            other = {"z": tf.random.stateless_normal([n, latent], seed=tf.stack([seed, 6])),
                     "char": tf.random.stateless_uniform([n], tf.stack([seed, 7]), 0, num_chars,
                                                         tf.int32),
                     "writer": tf.gather(pool, tf.random.stateless_uniform(
                         [n], tf.stack([seed, 8]), 0, pool.shape[0], tf.int32))}
            ref = tf.cast(base(other, training=False), tf.float32)
            with tf.GradientTape() as tape:
                rec, pix = self._reconstruction(features, images, chars, m, tf.stack([seed, 5]))
                drift = tf.reduce_mean(tf.abs(
                    tf.cast(t.generator(other, training=False), tf.float32) - ref))
                loss = rec + locality * drift
            opt.apply_gradients(zip(tape.gradient(loss, g_vars), g_vars))
            return loss, rec, pix, drift

        return step

    def _proj_step_fn(self, lr: float):
        """One "projection" step: G's new row only, minimising for each of the writer's glyphs x
        of character c the best-of-`samples` reconstruction min_j |x - G(z_j, c, w)| +
        feature_weight x |F(x) - F(G(z_j, c, w))| (F: the discriminator's image features, before
        any condition), plus `anchor` x |w - start|^2 / |start|^2. The same loss as the StyleGAN
        route's projection (hw_gan/inversion/__init__.py), on the writer row instead of W+."""
        import keras
        import tensorflow as tf

        opt = keras.optimizers.Adam(lr, beta_1=0.9, beta_2=0.999)
        features = self._feature_fn()
        start = tf.constant(self.g_embed.numpy()[self.new_id])
        scale = tf.maximum(tf.reduce_sum(tf.square(start)), 1e-8)
        blend = self.acfg.space == "writers"
        if blend:
            # row = softmax(logits) @ the trained writers' rows: stays among the styles G knows.
            pool_rows = tf.constant(self.g_embed.numpy()[np.array(self.trained_ids)])
            weights = self.start_weights
            if weights is None:
                weights = np.full(len(self.trained_ids), 1.0 / len(self.trained_ids))
            logits = tf.Variable(np.log(np.maximum(weights, 1e-5)).astype(np.float32))
            self.blend_logits = logits
        m, anchor = self.acfg.samples, self.acfg.anchor

        @tf.function
        def step(images, chars, seed):
            with tf.GradientTape() as tape:
                rec, pix = self._reconstruction(features, images, chars, m, tf.stack([seed, 4]))
                row = self.g_embed[self.new_id]
                loss = rec + anchor * tf.reduce_sum(tf.square(row - start)) / scale
            grad = tf.convert_to_tensor(tape.gradient(loss, self.g_embed)) * self.g_mask
            if blend:
                with tf.GradientTape() as tape2:
                    new_row = tf.linalg.matvec(pool_rows, tf.nn.softmax(logits), transpose_a=True)
                    surrogate = tf.reduce_sum(new_row * tf.stop_gradient(grad[self.new_id]))
                opt.apply_gradients([(tape2.gradient(surrogate, logits), logits)])
                new_row = tf.linalg.matvec(pool_rows, tf.nn.softmax(logits), transpose_a=True)
                self.g_embed.assign(tf.tensor_scatter_nd_update(
                    tf.convert_to_tensor(self.g_embed), [[self.new_id]], new_row[None]))
            else:
                opt.apply_gradients([(grad, self.g_embed)])
            return loss, rec, pix, tf.norm(row - start)

        return step

    def _phase(self, name: str, steps: int, finetune: bool, lr: float, data: dict,
               rng: np.random.Generator, log) -> dict:
        import tensorflow as tf

        if steps == 0:
            return {"steps": 0}
        projection = not finetune and self.acfg.objective == "projection"
        pivotal = finetune and self.acfg.finetune_objective == "pivotal"
        step = (self._proj_step_fn(lr) if projection else self._pivotal_step_fn(lr) if pivotal
                else self._step_fn(finetune, lr))
        images, chars = data["images"], data["chars"]
        batch = min(self.acfg.batch_size, len(chars))
        t0 = time.perf_counter()
        history = []
        every = 0 if finetune else self.acfg.select_every
        keys = (("loss", "reconstruction", "pixel", "row_moved") if projection else
                ("loss", "reconstruction", "pixel", "base_drift") if pivotal else
                ("d_loss", "g_loss", "real_logit", "fake_logit"))  # what step returns
        selection = []
        best = None
        if every:
            best = (self.pixel_distances(images, chars, [self.new_id])[0], 0, self._new_rows())
            selection.append({"step": 0, "distance": round(float(best[0]), 5)})
        for i in range(steps):
            idx = rng.choice(len(chars), batch, replace=len(chars) < batch)
            out = step(tf.constant(images[idx]), tf.constant(chars[idx]),
                       tf.constant(self.acfg.seed * 100003 + (i if not finetune else 10**6 + i),
                                   tf.int64))
            self.trainer.step.assign_add(1)
            if (i + 1) % self.acfg.log_every == 0 or i + 1 == steps:
                vals = [float(v.numpy()) for v in out]
                if not all(np.isfinite(vals)):
                    raise RuntimeError(f"adaptation {name}: non-finite loss at step {i + 1} "
                                       f"({vals}); lower --adapt_lr / --adapt_finetune_lr")
                history.append({"step": i + 1, **{k: round(v, 4) for k, v in zip(keys, vals)}})
                log(f"adapt {name}: step {i + 1}/{steps} " +
                    " ".join(f"{k} {v:.3f}" for k, v in zip(keys, vals)))
            if every and ((i + 1) % every == 0 or i + 1 == steps):
                dist = self.pixel_distances(images, chars, [self.new_id])[0]
                selection.append({"step": i + 1, "distance": round(float(dist), 5)})
                if dist < best[0]:
                    best = (dist, i + 1, self._new_rows())
        out = {"steps": steps, "lr": lr, "batch_size": batch, "history": history}
        if projection:
            out.update(objective="projection", feature_weight=self.acfg.feature_weight,
                       anchor=self.acfg.anchor, samples=self.acfg.samples, space=self.acfg.space)
            if self.acfg.space == "writers":
                w = tf.nn.softmax(self.blend_logits).numpy()
                top = np.argsort(-w)[:8]
                out["blend"] = {self.writer_names[self.trained_ids[i]]: round(float(w[i]), 4)
                                for i in top}
        if pivotal:
            out.update(objective="pivotal", feature_weight=self.acfg.feature_weight,
                       samples=self.acfg.finetune_samples, locality=self.acfg.locality)
        if every:
            self._set_rows(best[2])
            out["selection"] = {"kept_step": best[1], "distance": round(float(best[0]), 5),
                                "scores": selection}
            log(f"adapt {name}: kept the row of step {best[1]} (pixel distance {best[0]:.4f})")
        out["seconds"] = round(time.perf_counter() - t0, 1)
        return out

    def run(self, data: dict, log=print, start: dict = None) -> dict:
        """Adapts to `data`; `start`: start_rows' result when the caller has already set the
        start (it is not computed again)."""
        acfg = self.acfg
        t = self.trainer
        rng = np.random.default_rng(acfg.seed)
        g_before = self.g_embed.numpy().copy()
        report = {"phases": {}, **(start if start is not None else self.start_rows(data))}
        start_row = self.g_embed.numpy()[self.new_id].copy()
        report["phases"]["embedding"] = self._phase("embedding", acfg.steps, False, acfg.lr,
                                                    data, rng, log)
        per_char = variants_per_char(data["chars"])
        report["variants_per_char"] = round(per_char, 3)
        if acfg.finetune_steps and per_char < acfg.finetune_min_variants:
            why = (f"the writer's data give {per_char:.2f} glyphs per character, fewer than "
                   f"--adapt_finetune_min_variants={acfg.finetune_min_variants:g}: only the "
                   f"embedding was adapted (a fine-tune on so few glyphs copies them rather than "
                   f"the hand; docs/results.md)")
            log(f"adapt finetune: skipped: {why}")
            report["phases"]["finetune"] = {"steps": 0, "skipped": why}
        elif acfg.finetune_steps:
            report["phases"]["finetune"] = self._phase("finetune", acfg.finetune_steps, True,
                                                       acfg.finetune_lr, data, rng, log)
        for ema_v, v in zip(t.ema_generator.weights, t.generator.weights):
            ema_v.assign(v)  # no EMA over a few hundred steps: the adapted weights are exported
        g_after = self.g_embed.numpy()
        report["base_rows_unchanged"] = bool(np.array_equal(g_before[:self.new_id],
                                                            g_after[:self.new_id]))
        report["new_row_moved"] = float(np.linalg.norm(g_after[self.new_id] - start_row))
        report["base_writer_drift"] = self.base_drift()
        return report

    def base_drift(self, n_chars: int = 16) -> float:
        """Mean |pixel| difference (in [0, 2] units) of base writers' glyphs, adapted vs base."""
        import tensorflow as tf

        m = self.cfg.model
        chars = np.linspace(0, m.num_chars - 1, min(n_chars, m.num_chars)).round().astype(np.int32)
        writers = np.arange(self.new_id, dtype=np.int32)
        c = np.tile(chars, len(writers))
        w = np.repeat(writers, len(chars))
        z = tf.random.stateless_normal([len(c), m.latent_dim], seed=[7, 0])
        inputs = {"z": z, "char": tf.constant(c), "writer": tf.constant(w)}
        a = self.trainer.ema_generator(inputs, training=False).numpy()
        b = self.base_generator(inputs, training=False).numpy()
        return float(np.mean(np.abs(a - b)))

    def generate(self, char_ids, writer_ids, seed: int) -> np.ndarray:
        return self.trainer.generate(np.asarray(char_ids, np.int32),
                                     np.asarray(writer_ids, np.int32), seed)


# ------------------------------------------------------------------------------------------------
# Entry point.


def prepare(acfg: AdaptConfig):
    """Validates everything before anything is written; returns (Adapter, data, base_dir)."""
    acfg.validate()
    out = Path(acfg.model_dir)
    if out.exists() and any(out.iterdir()):
        raise AdaptError(f"--model_dir={out} already exists and is not empty; adaptation writes "
                         f"a new directory (nothing was overwritten)")
    base_cfg, base_info, base_dir, prefix = load_base(acfg.init)
    if out.resolve() == base_dir.resolve():
        raise AdaptError("--model_dir must differ from the --init model directory")
    data = load_writer_data(acfg.writer_data, acfg.split, base_info, base_cfg.model.resolution,
                            acfg.writer_name)
    if acfg.export_dir:
        from hw_gan.export import version_dir

        name = acfg.export_name or out.name
        vdir = version_dir(acfg.export_dir, name, acfg.export_version)
        if vdir.exists() and any(vdir.iterdir()) and not acfg.overwrite_export:
            raise AdaptError(f"export {vdir} already exists; pass --overwrite_export or another "
                             f"--export_version (nothing was overwritten)")
    adapter = Adapter(acfg, base_cfg, base_info, base_dir, prefix)
    return adapter, data, base_dir


def _empty(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()


def writer_geometry(data_dir, split: str) -> dict:
    """{char: [top, bottom]}: the median ink extent of each character in a writer's dataset,
    in x-heights against the baseline; empty when the source records no geometry."""
    from data_pipeline import tfrecords

    extents: dict[str, list] = {}
    for record in tfrecords.read_records(data_dir, split):
        if record.geometry is not None:
            for ch in record.char:
                extents.setdefault(ch, []).append((record.geometry.top, record.geometry.bottom))
    return {ch: [round(float(v), 4) for v in np.median(np.array(vals), axis=0)]
            for ch, vals in sorted(extents.items())}


def adapt(acfg: AdaptConfig, log=print) -> dict:
    """The whole command: checks, adapts, writes model_dir and the export; returns the report."""
    from data_pipeline import atomic
    from hw_gan import export as export_lib

    t0 = time.perf_counter()
    adapter, data, base_dir = prepare(acfg)
    cfg = adapter.cfg
    writers = adapter.writer_names + [data["name"]]
    out = Path(acfg.model_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        atomic.write_text(out / "config.json", cfg.to_json() + "\n")
        atomic.write_text(out / "dataset.json", json.dumps(
            {"charset": adapter.base_info["charset"], "writers": writers,
             "resolution": adapter.base_info.get("resolution")}, indent=1))
        atomic.write_text(out / ADAPTATION_FILE, json.dumps(
            {**dataclasses.asdict(acfg), "base_model_dir": str(base_dir),
             "base_step": adapter.base_step}, indent=1, sort_keys=True) + "\n")
        report = adapter.run(data, log)
        checkpoint = adapter.trainer.save()
        report.update({
            "writer_name": data["name"], "writer_id": adapter.new_id, "num_writers": len(writers),
            "base_model_dir": str(base_dir), "base_step": adapter.base_step,
            "writer_data": acfg.writer_data, "num_glyphs": int(len(data["chars"])),
            "seen_chars": len(data["seen_chars"]), "unseen_chars": data["unseen_chars"],
            "checkpoint": checkpoint,
            "finetuned": report["phases"].get("finetune", {}).get("steps", 0) > 0,
        })
        if acfg.export_dir:
            name = acfg.export_name or out.name
            from hw_gan.export.signatures.write import default_signatures

            # Where the writer's glyphs carry geometry (scanned sheets), the renderer sizes and
            # places that writer's characters by it instead of the charset's defaults.
            geometry = writer_geometry(acfg.writer_data, acfg.split)
            table = {data["name"]: geometry} if geometry else None
            # A fine-tuned generator draws the base writers a little differently too: say how much.
            metadata = {"adapted_writer": data["name"], "base_model_dir": str(base_dir),
                        "finetuned": report["finetuned"],
                        "base_writer_drift": report["base_writer_drift"]}
            trained = set(adapter.trained_ids)
            untrained = [w for i, w in enumerate(adapter.writer_names) if i not in trained]
            if untrained:  # the renderer and server refuse them (hw_gan.export)
                metadata["untrained_writers"] = untrained
            if table:
                metadata["writer_geometry"] = table
            path = export_lib.export_generator(
                adapter.trainer.ema_generator, cfg.model, adapter.base_info["charset"], writers,
                acfg.export_dir, name, acfg.export_version, overwrite=acfg.overwrite_export,
                extra_signatures=default_signatures(table), extra_metadata=metadata)
            report["writer_geometry_chars"] = len(geometry)
            report["export"] = str(path)
    except BaseException:
        # prepare() checked that model_dir was absent or empty: what is there now is ours.
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            _empty(out)
        raise
    report["seconds"] = round(time.perf_counter() - t0, 1)
    atomic.write_text(out / REPORT_FILE, json.dumps(report, indent=1) + "\n")
    return report
