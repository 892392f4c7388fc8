"""The GAN trainer shared by every model family.

One training step is a discriminator step then a generator step, each run per replica under the
strategy; per-example losses are averaged over the GLOBAL batch (tf.nn.compute_average_loss), so
summing gradients across replicas gives the gradient of the global mean. Noise is drawn
statelessly from (seed, step, replica), and the data pipeline skips the batches already consumed,
so a resumed run continues exactly where an uninterrupted one would be. An exponential moving
average of the generator (`ema_generator`) is what gets evaluated and exported.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from data_pipeline import atomic
from data_pipeline.dataset import make_dataset
from data_pipeline.glyph import tile
from data_pipeline.progress import Progress, format_seconds
from data_pipeline.schema import to_uint8
from hw_gan import losses as losses_lib
from hw_gan import models
from hw_gan.config import ExperimentConfig
from hw_gan.training import strategy as strategy_lib

CHECKPOINT_DIR = "checkpoints"
FEATURES_LAYER = "d_features_act"  # the discriminator's image features, before any condition


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an incompatible checkpoint); the message says why."""


class StopRequest:
    """Asks a running `GANTrainer.train` to save and stop after the current step. Whoever owns
    the process's signals (an entry point) calls `request`; the loop reads `reason`."""

    def __init__(self):
        self.reason: Optional[str] = None

    def request(self, reason: str = "stop requested") -> None:
        self.reason = reason


class HeldLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` from the optimizer's iteration `hold` on, 0 before (--g_freeze_steps: a discriminator
    that starts fresh under a trained generator learns before the generator follows it)."""

    def __init__(self, lr: float, hold: int):
        self.lr, self.hold = float(lr), int(hold)

    def __call__(self, step):
        return tf.where(tf.cast(step, tf.int64) < self.hold, 0.0, self.lr)

    def get_config(self):
        return {"lr": self.lr, "hold": self.hold}


def ema_decay_at(step, decay: float, rampup: float):
    """The EMA decay for the update after `step` steps: `decay`, or with rampup > 0 the decay
    whose half-life is min(decay's half-life, rampup * steps), as StyleGAN2-ADA ramps its EMA
    (0 at step 0: the average starts as a copy). A float32 scalar tensor."""
    if rampup <= 0.0 or decay <= 0.0:
        return tf.constant(decay, tf.float32)
    decay = tf.constant(decay, tf.float32)
    half_life = tf.math.log(0.5) / tf.math.log(decay)  # steps
    ramped = tf.minimum(half_life, rampup * tf.cast(step, tf.float32))
    return tf.where(ramped > 0.0, tf.pow(0.5, 1.0 / tf.maximum(ramped, 1e-8)), 0.0)


class GANTrainer:
    def __init__(self, cfg: ExperimentConfig, strategy: tf.distribute.Strategy,
                 manifest: dict):
        self.cfg = cfg
        self.strategy = strategy
        self.manifest = manifest
        self.family = models.get_family(cfg.model.family)
        self.uses_writer = bool(self.family.USES_WRITER)
        self.model_dir = Path(cfg.runtime.model_dir)
        self.chief = strategy_lib.is_chief(strategy)
        self.global_batch = cfg.train.batch_size
        self.replicas = strategy.num_replicas_in_sync
        if self.global_batch % self.replicas:
            raise ValueError(f"--batch_size={self.global_batch} is not divisible by the "
                             f"{self.replicas} replicas")
        self.g_loss_fn, self.d_loss_fn = losses_lib.get_losses(cfg.train.loss)
        t = cfg.train
        # Initial weights come from the global seeds, which the caller sets (the entry point:
        # hw_gan.experiment seeds with cfg.train.seed right before building a trainer).
        with strategy.scope():
            self.generator = self.family.build_generator(cfg.model)
            self.discriminator = self.family.build_discriminator(cfg.model)
            self.ema_generator = self.family.build_generator(cfg.model)
            for ema_v, v in zip(self.ema_generator.weights, self.generator.weights):
                ema_v.assign(v)
            self.extra = self._build_extra()  # family-specific models (stylegan: the encoder)
            self.aux_heads = self._aux_heads()
            self.d_features = keras.Model(
                self.discriminator.inputs,
                [self.discriminator.output,
                 self.discriminator.get_layer(FEATURES_LAYER).output]) if self.aux_heads else None
            self.g_opt = self._optimizer(
                HeldLearningRate(t.g_lr, t.g_freeze_steps) if t.g_freeze_steps else t.g_lr)
            self.d_opt = self._optimizer(t.d_lr)
            # Build optimizer slots inside the scope, before any tf.function traces (needed for
            # MirroredStrategy with 2+ replicas).
            self.g_opt.build(self._g_variables())
            self.d_opt.build(self._d_variables())
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator,
            **{f"aux_{k}": head for k, (head, _) in self.aux_heads.items()},
            ema_generator=self.ema_generator, g_opt=self.g_opt, d_opt=self.d_opt, step=self.step,
            **self.extra)
        ckpt_dir = self.model_dir / CHECKPOINT_DIR
        if not self.chief:  # other workers write throw-away copies (all must call save)
            ckpt_dir = self.model_dir / f".worker-{strategy_lib.worker_id(strategy)}" / CHECKPOINT_DIR
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(ckpt_dir),
                                                  max_to_keep=t.keep_checkpoints)
        self._steps = {}

    group_size = 1  # consecutive examples of a batch from one writer (see make_dataset)

    def grouped_per_replica(self) -> int:
        """The per-replica batch, checked to be whole groups of `group_size` glyphs of one
        writer (the families that train on writer groups)."""
        per_replica = self.global_batch // self.replicas
        if per_replica % self.group_size:
            raise ValueError(f"--style_group_size={self.group_size} must divide the per-replica "
                             f"batch {per_replica} (--batch_size={self.global_batch} over "
                             f"{self.replicas} replicas)")
        return per_replica

    def model_checkpoint(self, with_generator: bool = True) -> tf.train.Checkpoint:
        """The trained models without the optimizers' state or the raw generator: the EMA
        generator (unless `with_generator` is False), the discriminator, its auxiliary heads, the
        family's extra models and the step, under the names `checkpoint` gives them. What a
        shipped base holds (hw_gan.shipped: without the generator, whose weights its export
        carries; adaptation starts from the EMA generator); `run_dir.restore_trainer` reads
        either."""
        gen = {"ema_generator": self.ema_generator} if with_generator else {}
        return tf.train.Checkpoint(
            discriminator=self.discriminator,
            **{f"aux_{k}": head for k, (head, _) in self.aux_heads.items()},
            **gen, step=self.step, **self.extra)

    # ---------------------------------------------------------------------------------------
    def _optimizer(self, lr: float):
        t = self.cfg.train
        opt = keras.optimizers.Adam(learning_rate=lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=1e-8)
        if self.cfg.runtime.precision == "mixed_float16":
            # compile() would wrap only one optimizer; a two-optimizer GAN wraps each itself.
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    def _aux_heads(self) -> dict:
        """{"char"|"writer": (Dense classifier on D's features, weight)} for the enabled ones."""
        t, m = self.cfg.train, self.cfg.model
        heads = {}
        if t.aux_char_weight > 0:
            heads["char"] = (keras.layers.Dense(m.num_chars, dtype="float32", name="aux_char"),
                             t.aux_char_weight)
        if t.aux_writer_weight > 0 and self.uses_writer:
            heads["writer"] = (keras.layers.Dense(m.num_writers, dtype="float32",
                                                  name="aux_writer"), t.aux_writer_weight)
        features = int(self.discriminator.get_layer(FEATURES_LAYER).output.shape[-1])
        for head, _ in heads.values():
            head.build((None, features))
        return heads

    def _build_extra(self) -> dict:
        """{checkpoint name: trackable} of family-specific models, built in the strategy scope."""
        return {}

    def _g_variables(self, with_reg: bool = True) -> list:
        """What the generator's optimizer trains (subclasses add e.g. an encoder that only
        the regularisation losses train)."""
        return self.generator.trainable_variables

    def _ema_pairs(self) -> list:
        """(averaged copy, live model) pairs updated by the exponential moving average."""
        return [(self.ema_generator, self.generator)]

    def _make_fakes(self, step, salt: int, chars, writers, batch_size, training: bool = True):
        """Generated images for a training step and what the extra losses need of them."""
        z = self._noise(step, salt, batch_size)
        return self.generator(self._inputs(z, chars, writers), training=training), {}

    def regularises(self, step: int) -> bool:
        """Whether step `step` (0-based) carries the generator's lazy regularisation."""
        return True

    def _reg_scale(self) -> float:
        """What the extra losses are multiplied by in the generator's objective: N when they
        are applied on one step in N (their logged values stay per step)."""
        return 1.0

    def _g_extra_losses(self, batch, step, fake, info, with_reg: bool = True) -> dict:
        """{name: averaged loss} added to the generator's objective (none by default);
        `with_reg` False on the steps that skip lazy regularisation."""
        return {}

    def _d_variables(self) -> list:
        return self.discriminator.trainable_variables + [
            v for head, _ in self.aux_heads.values() for v in head.trainable_variables]

    def _discriminate(self, images, chars, writers, training: bool = True):
        """Logits [B] and the per-example auxiliary classification loss (zeros when off)."""
        inputs = self.d_inputs(images, chars, writers)
        if not self.aux_heads:
            return self.discriminator(inputs, training=training), tf.zeros_like(
                tf.cast(chars, tf.float32))
        logits, features = self.d_features(inputs, training=training)
        features = tf.cast(features, tf.float32)
        aux = 0.0
        for key, (head, weight) in self.aux_heads.items():
            labels = chars if key == "char" else writers
            aux += weight * tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=head(features))
        return logits, aux

    def _inputs(self, z, chars, writers) -> dict:
        inputs = {"z": z, "char": chars}
        if self.uses_writer:
            inputs["writer"] = writers
        return inputs

    def d_inputs(self, images, chars, writers) -> dict:
        inputs = {"image": images, "char": chars}
        if self.uses_writer:
            inputs["writer"] = writers
        return inputs

    def _seed(self, step, salt: int):
        """A stateless-RNG seed from (seed, salt, step, replica): the same after a resume."""
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        return tf.stack([tf.constant(self.cfg.train.seed * 1000003 + salt, tf.int64),
                         step * 4096 + replica])

    def _noise(self, step, salt: int, batch: int):
        """Stateless noise from (seed, salt, step, replica): identical after a resume."""
        return tf.random.stateless_normal([batch, self.cfg.model.latent_dim],
                                          seed=self._seed(step, salt))

    def _average(self, per_example):
        return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32),
                                          global_batch_size=self.global_batch)

    @staticmethod
    def _scale(opt, loss):
        """Loss scaling for float16; must run inside the tape so the gradient sees it."""
        return opt.scale_loss(loss) if isinstance(opt, keras.optimizers.LossScaleOptimizer) else loss

    @staticmethod
    def _apply(opt, scaled_loss, tape, variables):
        grads = tape.gradient(scaled_loss, variables)
        opt.apply_gradients(list(zip(grads, variables)))

    def _replica_step(self, batch, step, with_r1: bool, with_reg: bool = True):
        if self.cfg.train.fused_step:
            return self._fused_step(batch, step, with_r1, with_reg)
        return {**self._d_step(batch, step, with_r1), **self._g_step(batch, step, with_reg)}

    def _d_step(self, batch, step, with_r1: bool, fake=None) -> dict:
        """The discriminator's update on one replica's batch (R1 on the real glyphs when
        `with_r1`) against `fake` (default: fresh fakes); its losses, averaged over the global
        batch. Without R1, real and fake glyphs go through D as one batch (D has no batch
        statistics, so each example's logit is the same as in two passes)."""
        images, chars, writers = batch["image"], batch["char"], batch["writer"]
        batch_size = tf.shape(images)[0]
        t = self.cfg.train
        with tf.GradientTape() as tape:
            if fake is None:
                fake, _ = self._make_fakes(step, 1, chars, writers, batch_size)
            if with_r1:
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(images)
                    real_logits, real_aux = self._discriminate(images, chars, writers)
                    real_sum = tf.reduce_sum(tf.cast(real_logits, tf.float32))
                r1_grads = r1_tape.gradient(real_sum, images)
                r1 = losses_lib.r1_penalty(r1_grads)
                fake_logits, _ = self._discriminate(fake, chars, writers)
            else:
                both = tf.concat([images, tf.cast(fake, images.dtype)], 0)
                logits, aux = self._discriminate(both, tf.concat([chars, chars], 0),
                                                 tf.concat([writers, writers], 0))
                real_logits, fake_logits = logits[:batch_size], logits[batch_size:]
                real_aux = aux[:batch_size]
                r1 = tf.zeros([batch_size], tf.float32)
            d_loss = self._average(self.d_loss_fn(real_logits, fake_logits))
            # The classifiers learn from real glyphs only, so they cannot be fooled into
            # accepting what G makes; G then has to make glyphs they recognise.
            d_aux = self._average(real_aux)
            r1_term = self._average(r1) * (0.5 * t.r1_gamma * t.r1_interval)
            d_scaled = self._scale(self.d_opt, d_loss + r1_term + d_aux)
        self._apply(self.d_opt, d_scaled, tape, self._d_variables())
        return {"d_loss": d_loss, "r1": r1_term, "d_aux": d_aux,
                "real_logit": self._average(real_logits)}

    def _g_step(self, batch, step, with_reg: bool = True) -> dict:
        """The generator's update on one replica's batch, with fresh noise; its losses."""
        chars, writers = batch["char"], batch["writer"]
        with tf.GradientTape() as tape:
            fake, info = self._make_fakes(step, 2, chars, writers, tf.shape(chars)[0])
            out, g_scaled = self._g_objective(batch, step, fake, info, with_reg)
        self._apply(self.g_opt, g_scaled, tape, self._g_variables(with_reg))
        return out

    def _g_objective(self, batch, step, fake, info, with_reg: bool = True
                     ) -> tuple[dict, tf.Tensor]:
        """({name: averaged loss}, the scaled total) of the generator on `fake`, recorded on
        the caller's tape."""
        fake_logits, fake_aux = self._discriminate(fake, batch["char"], batch["writer"])
        g_loss = self._average(self.g_loss_fn(fake_logits))
        g_aux = self._average(fake_aux)
        extra = self._g_extra_losses(batch, step, fake, info, with_reg)
        g_scaled = self._scale(self.g_opt, g_loss + g_aux + self._reg_scale() * tf.add_n(
            [tf.zeros([], tf.float32), *extra.values()]))
        return ({"g_loss": g_loss, "g_aux": g_aux, "fake_logit": self._average(fake_logits),
                 **extra}, g_scaled)

    def _fused_step(self, batch, step, with_r1: bool, with_reg: bool = True) -> dict:
        """The D update then the G update from ONE generator forward pass: the fakes the
        discriminator learns from are the ones the generator then improves, judged by the
        updated discriminator (the alternating step draws a second batch of fakes for that).
        G's weights do not change during the D update, so this is the alternating step with
        the G update's noise equal to the D update's; it saves a third of G's work."""
        chars, writers = batch["char"], batch["writer"]
        with tf.GradientTape() as tape:
            fake, info = self._make_fakes(step, 1, chars, writers, tf.shape(chars)[0])
            with tape.stop_recording():
                d_out = self._d_step(batch, step, with_r1, fake=tf.stop_gradient(fake))
            g_out, g_scaled = self._g_objective(batch, step, fake, info, with_reg)
        self._apply(self.g_opt, g_scaled, tape, self._g_variables(with_reg))
        return {**d_out, **g_out}

    def _train_step_fn(self, with_r1: bool, with_reg: bool = True):
        """The compiled training step (one per kind: with or without R1 and the lazy
        regularisation of the generator)."""
        key = (with_r1, with_reg)
        if key in self._steps:
            return self._steps[key]
        # XLA compiles the math of a step (the replica step, then the EMA), never the input
        # iterator: IteratorGetNext has no XLA kernel, so compiling the whole step fails.
        jit = not self.cfg.runtime.run_eagerly and strategy_lib.resolve_jit_compile(  # "auto" too
            self.cfg.runtime.jit_compile, replicas=self.strategy.num_replicas_in_sync)

        def replica_step(batch, step):
            return self._replica_step(batch, step, with_r1, with_reg)

        ema_update = self._ema_update
        if jit:
            replica_step = tf.function(replica_step, jit_compile=True)
            ema_update = tf.function(ema_update, jit_compile=True)

        def step_fn(iterator):
            batch = next(iterator)
            step = self.step.read_value()
            out = self.strategy.run(replica_step, args=(batch, step))
            out = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                   for k, v in out.items()}
            ema_update(step)
            self.step.assign_add(1)
            return out

        fn = step_fn if self.cfg.runtime.run_eagerly else tf.function(step_fn)
        self._steps[key] = fn
        return fn

    def _ema_update(self, step) -> None:
        """ema <- decay * ema + (1 - decay) * live for every averaged pair (a copy before
        ema_start; `ema_decay_at` with --ema_rampup); non-float weights are copied."""
        t = self.cfg.train
        decay = tf.where(step < t.ema_start, 0.0, ema_decay_at(step, t.ema_decay, t.ema_rampup))
        for ema_model, model in self._ema_pairs():
            for ema_v, v in zip(ema_model.weights, model.weights):
                if tf.as_dtype(v.dtype).is_floating:
                    ema_v.assign(decay * ema_v + (1.0 - decay) * v)
                else:
                    ema_v.assign(v)

    # ---------------------------------------------------------------------------------------
    def restore(self) -> int:
        """Restores the latest checkpoint if there is one; returns the step reached. The chief
        first removes what a save cut short by `kill -9` left (`remove_partial_saves`)."""
        if self.chief:
            remove_partial_saves(self.model_dir / CHECKPOINT_DIR)
        latest = self.manager.latest_checkpoint
        if latest is None and not self.chief:
            latest = tf.train.latest_checkpoint(str(self.model_dir / CHECKPOINT_DIR))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self) -> Optional[str]:
        """Writes a checkpoint (every worker must call this under multi-worker training)."""
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.chief:
            shutil.rmtree(self.model_dir / f".worker-{strategy_lib.worker_id(self.strategy)}",
                          ignore_errors=True)
        return path

    def dataset(self, start_step: int):
        cfg = self.cfg

        def dataset_fn(input_context):
            return make_dataset(
                cfg.data.data_dir, cfg.data.train_split, self.global_batch,
                image_size=cfg.model.resolution, shuffle=True, seed=cfg.train.seed, repeat=True,
                cache=cfg.data.cache, shuffle_buffer=cfg.data.shuffle_buffer,
                input_context=input_context, expected_charset=self.manifest["charset"],
                skip_batches=start_step, group_size=self.group_size,
                exclude_chars=list(cfg.data.holdout_chars))

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def sample_grid(self, chars: np.ndarray, writers: np.ndarray, seed: int = 1234):
        """uint8 [1, rows*R, cols*R, 1] grid from the EMA generator: rows are writers, columns
        chars, one fixed noise vector per cell (the same at every call: progress is visible)."""
        rows, cols = len(writers), len(chars)
        c = np.tile(chars, rows).astype(np.int32)
        w = np.repeat(writers, cols).astype(np.int32)
        z = tf.random.stateless_normal([rows * cols, self.cfg.model.latent_dim], seed=[seed, 0])
        imgs = self.ema_generator(self._inputs(z, tf.constant(c), tf.constant(w)), training=False)
        return summary_grid(to_uint8(imgs), rows, cols)

    def generate(self, char_ids: np.ndarray, writer_ids: np.ndarray, seed: int,
                 batch: int = 256) -> np.ndarray:
        """Float [-1, 1] glyphs from the EMA generator (evaluation's contract)."""
        out = []
        for i in range(0, len(char_ids), batch):
            c = tf.constant(char_ids[i:i + batch], tf.int32)
            w = tf.constant(writer_ids[i:i + batch], tf.int32)
            z = tf.random.stateless_normal([len(c), self.cfg.model.latent_dim], seed=[seed, i])
            out.append(self.ema_generator(self._inputs(z, c, w), training=False).numpy())
        return np.concatenate(out).astype(np.float32)

    # ---------------------------------------------------------------------------------------
    def train(self, stop: Optional["StopRequest"] = None) -> dict:
        """Trains up to cfg.train.steps; checkpoints every checkpoint_every steps, at the end, and
        when `stop` is requested (then raises KeyboardInterrupt after saving). The entry point
        owns the signal handlers and requests the stop (hw_gan.cli.train)."""
        stop = stop or StopRequest()
        t = self.cfg.train
        start = self.restore()
        if start >= t.steps:
            return {"step": start, "resumed": start > 0, "trained_steps": 0}
        writer = tf.summary.create_file_writer(str(self.model_dir / "train")) if self.chief else \
            tf.summary.create_noop_writer()
        iterator = iter(self.dataset(start))
        grid = self._grid_ids()
        bar = Progress("train", t.steps * self.global_batch, "img",
                       start=start * self.global_batch, enabled=self.chief)
        if start == 0 and self.chief:
            with writer.as_default(step=0):
                tf.summary.text("config", "```\n" + self.cfg.to_json() + "\n```")
        last_saved, seen = start, {}
        t0, images_done = time.perf_counter(), 0
        try:
            step = start
            while step < t.steps:
                with_r1 = t.r1_gamma > 0 and step % t.r1_interval == 0
                out = self._train_step_fn(with_r1, self.regularises(step))(iterator)
                step += 1
                images_done += self.global_batch
                log_now = step % t.log_every == 0 or step == t.steps
                stopping = stop.reason  # read once: a signal may arrive while this step logs
                save_now = step % t.checkpoint_every == 0 or step == t.steps or bool(stopping)
                # Losses are checked before every save, so a NaN never reaches a checkpoint.
                if log_now or save_now or step % 10 == 0:
                    # A step without lazy regularisation lacks its losses: the last ones
                    # measured stand in (the logged steps carry them when the interval
                    # divides --log_every).
                    values = seen = {**seen, **self._checked_values(out, step, last_saved)}
                    if log_now:
                        rate = images_done / (time.perf_counter() - t0)
                        self._log_scalars(writer, step, values, rate)
                    bar.count = step * self.global_batch
                    bar.update(0, extra=f"step {step} d {values['d_loss']:.3f} "
                                        f"g {values['g_loss']:.3f}")
                if step % t.image_every == 0 or step == t.steps:
                    with writer.as_default(step=step):
                        tf.summary.image("samples/chars_x_writers", self.sample_grid(*grid))
                if save_now:
                    self.save()
                    last_saved = step
                if stopping:
                    raise KeyboardInterrupt(f"{stopping}: checkpoint saved at step {step}")
        finally:
            writer.flush()
            bar.count = int(self.step.numpy()) * self.global_batch
            bar.close()
        seconds = time.perf_counter() - t0
        return {"step": int(self.step.numpy()), "resumed": start > 0, "trained_steps": step - start,
                "seconds": round(seconds, 1), "images_per_s": round(images_done / seconds, 1),
                "time": format_seconds(seconds)}

    def _grid_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(char ids, writer ids) of the sample grid: up to 16 chars x the first 8 writers."""
        labels = self.manifest["charset"]
        chars = np.linspace(0, len(labels) - 1, min(16, len(labels))).round().astype(np.int32)
        train_writers = [self.manifest["writers"].index(w)
                         for w in self.manifest["splits"][self.cfg.data.train_split]["per_writer"]]
        return chars, np.array(train_writers[:8] if self.uses_writer else [0], np.int32)

    def _checked_values(self, out: dict, step: int, last_saved: int) -> dict:
        """The step's losses as floats; TrainingError (nothing saved) when one is not finite."""
        values = {k: float(v.numpy()) for k, v in out.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(
                f"non-finite {', '.join(bad)} at step {step} ({values}); stopped without "
                f"saving, the last good checkpoint (step {last_saved}) is kept in "
                f"{self.manager.directory}. Lower the learning rates or raise r1_gamma.")
        return values

    def _log_scalars(self, writer, step: int, values: dict, rate: float) -> None:
        with writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(f"loss/{k}", v)
            tf.summary.scalar("perf/images_per_s", rate)
            tf.summary.scalar("lr/generator", float(self.cfg.train.g_lr))
            tf.summary.scalar("lr/discriminator", float(self.cfg.train.d_lr))


def remove_partial_saves(ckpt_dir: Path) -> list[Path]:
    """Removes the `ckpt-N_temp/` folders of saves that never finished: a checkpoint's shards
    are written there and merged into ckpt-N.index/.data-* before the `checkpoint` state file
    names it (in one rename), so a save killed in between leaves that folder, which nothing
    reads and the next save of another step would never remove. Returns what was removed."""
    removed = []
    for path in sorted(Path(ckpt_dir).glob("ckpt-*_temp")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def summary_grid(images, rows: int, cols: int) -> np.ndarray:
    """uint8 [rows * cols, R, R, 1] row-major -> one image [1, rows * R, cols * R, 1]."""
    return tile(np.asarray(images), cols, rows=rows)[None, :, :, None]
