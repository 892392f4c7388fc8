"""The Adapter: the base run restored and grown by one writer, the new writer's start rows,
the embedding and fine-tune phases (with the embedding phase's selection of the best row) and
what they changed."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import tensorflow as tf

from hw_gan.adaptation import steps as steps_lib
from hw_gan.adaptation.data import trained_writers, variants_per_char
from hw_gan.adaptation.surgery import EMBEDDING, grow_trainer, grown_config
from hw_gan.config import AdaptConfig, AdaptError
from hw_gan.training import run_dir

# What each kind of step returns (its history's keys).
STEP_KEYS = {"gan": ("d_loss", "g_loss", "real_logit", "fake_logit"),
             "projection": ("loss", "reconstruction", "pixel", "row_moved"),
             "pivotal": ("loss", "reconstruction", "pixel", "base_drift")}


def _row_mask(rows: int, row: int) -> tf.Tensor:
    """[rows, 1] float32: 1 on `row`, 0 elsewhere (gradients reach only the new writer's row)."""
    return tf.constant(np.arange(rows) == row, tf.float32)[:, None]


class Adapter:
    """Builds base and grown models; `run` adapts (see the package docstring)."""

    def __init__(self, acfg: AdaptConfig, base_cfg, base_info, base_dir, prefix):
        self.acfg, self.base_cfg, self.base_info = acfg, base_cfg, base_info
        try:
            base = run_dir.restore_trainer(base_dir, prefix, run=(base_cfg, base_info))
        except run_dir.RunDirError as e:
            raise AdaptError(f"--init: {e}") from None
        self.base_step = int(base.step.numpy())
        self.cfg = grown_config(base_cfg, acfg)
        self.writer_names = list(base_info["writers"])
        self.new_id = len(self.writer_names)
        self.trainer = grow_trainer(base, self.cfg, base_info["charset"],
                                    self.writer_names + ["<new>"])
        t = self.trainer
        self.base_generator = base.ema_generator  # kept to measure drift of the base writers
        self.trained_ids, self.trained_why = trained_writers(base_cfg, base_info)
        self.ema_embed = t.ema_generator.get_layer(EMBEDDING).embeddings
        self._pixel_fn = None
        self.start_weights = None  # start_rows: the start's weight on each trained writer
        self.blend_logits = None  # a projection in space="writers": its logits
        self.g_embed = t.generator.get_layer(EMBEDDING).embeddings
        self.d_embed = t.discriminator.get_layer(EMBEDDING).embeddings
        self.g_mask = _row_mask(self.g_embed.shape[0], self.new_id)
        self.d_mask = _row_mask(self.d_embed.shape[0], self.new_id)

    # -- scoring rows ----------------------------------------------------------------------------
    def _pixel_distance(self, images, chars, writer_id, seed):
        """steps.pixel_distance of this adapter."""
        return steps_lib.pixel_distance(self, images, chars, writer_id, seed)

    def pixel_distances(self, images, chars, writer_ids, batch: int = 128) -> np.ndarray:
        """[len(writer_ids)]: the mean pixel distance (`steps.pixel_distance`) of the glyphs to
        each writer's generated glyphs (the same draws for every writer)."""
        if self._pixel_fn is None:
            self._pixel_fn = steps_lib.traced(self, self._pixel_distance)
        total = np.zeros(len(writer_ids), np.float64)
        for i in range(0, len(chars), batch):
            x, c = tf.constant(images[i:i + batch]), tf.constant(chars[i:i + batch])
            for k, w in enumerate(writer_ids):
                total[k] += float(tf.reduce_sum(self._pixel_fn(
                    x, c, tf.constant(int(w)), tf.constant(17 + i, tf.int64))).numpy())
        return total / len(chars)

    # -- the new writer's rows -------------------------------------------------------------------
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
        """Sets the new writer's rows by `start` (see the package docstring); returns the choice."""
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

    # -- steps (hw_gan.adaptation.steps) ---------------------------------------------------------
    def _step_fn(self, finetune: bool, lr: float):
        return steps_lib.gan_step(self, finetune, lr)

    def _pivotal_step_fn(self, lr: float):
        return steps_lib.pivotal_step(self, lr)

    def _proj_step_fn(self, lr: float):
        step, self.blend_logits = steps_lib.projection_step(self, lr)
        return step

    def _phase_kind(self, finetune: bool) -> str:
        """"projection", "pivotal" or "gan": the loss of the embedding / fine-tune phase."""
        if not finetune and self.acfg.objective == "projection":
            return "projection"
        if finetune and self.acfg.finetune_objective == "pivotal":
            return "pivotal"
        return "gan"

    def _phase_settings(self, kind: str) -> dict:
        """What a phase's report says of its objective."""
        a = self.acfg
        if kind == "projection":
            out = dict(objective="projection", feature_weight=a.feature_weight, anchor=a.anchor,
                       samples=a.samples, space=a.space)
            if a.space == "writers":
                w = tf.nn.softmax(self.blend_logits).numpy()
                top = np.argsort(-w)[:8]
                out["blend"] = {self.writer_names[self.trained_ids[i]]: round(float(w[i]), 4)
                                for i in top}
            return out
        if kind == "pivotal":
            return dict(objective="pivotal", feature_weight=a.feature_weight,
                        samples=a.finetune_samples, locality=a.locality)
        return {}

    # -- phases ----------------------------------------------------------------------------------
    def phase(self, name: str, steps: int, finetune: bool, lr: float, data: dict,
              rng: np.random.Generator, log) -> dict:
        """Runs `steps` steps of the embedding phase (finetune=False) or the fine-tune; returns
        its report. The embedding phase keeps the best row seen (`select_every`)."""
        if steps == 0:
            return {"steps": 0}
        kind = self._phase_kind(finetune)
        step = (self._proj_step_fn(lr) if kind == "projection" else
                self._pivotal_step_fn(lr) if kind == "pivotal" else self._step_fn(finetune, lr))
        images, chars = data["images"], data["chars"]
        batch = min(self.acfg.batch_size, len(chars))
        t0 = time.perf_counter()
        history = []
        every = 0 if finetune else self.acfg.select_every
        selection = _Selection(self, images, chars) if every else None
        for i in range(steps):
            idx = rng.choice(len(chars), batch, replace=len(chars) < batch)
            out = step(tf.constant(images[idx]), tf.constant(chars[idx]),
                       tf.constant(self.acfg.seed * 100003 + (i if not finetune else 10**6 + i),
                                   tf.int64))
            self.trainer.step.assign_add(1)
            if (i + 1) % self.acfg.log_every == 0 or i + 1 == steps:
                history.append(_logged(name, i + 1, steps, STEP_KEYS[kind], out, log))
            if every and ((i + 1) % every == 0 or i + 1 == steps):
                selection.score(i + 1)
        out = {"steps": steps, "lr": lr, "batch_size": batch, "history": history,
               **self._phase_settings(kind)}
        if every:
            out["selection"] = selection.keep(name, log)
        out["seconds"] = round(time.perf_counter() - t0, 1)
        return out

    def sync_ema(self) -> None:
        """The EMA generator takes the adapted weights (no EMA over a few hundred steps: the
        adapted weights are what is exported)."""
        t = self.trainer
        for ema_v, v in zip(t.ema_generator.weights, t.generator.weights):
            ema_v.assign(v)

    def _finetune(self, data: dict, rng: np.random.Generator, log) -> Optional[dict]:
        """The fine-tune phase's report: run, skipped (too few glyphs per character) or None."""
        acfg = self.acfg
        if not acfg.finetune_steps:
            return None
        per_char = variants_per_char(data["chars"])
        if per_char < acfg.finetune_min_variants:
            why = (f"the writer's data give {per_char:.2f} glyphs per character, fewer than "
                   f"--adapt_finetune_min_variants={acfg.finetune_min_variants:g}: only the "
                   f"embedding was adapted (a fine-tune on so few glyphs copies them rather than "
                   f"the hand; docs/results.md)")
            log(f"adapt finetune: skipped: {why}")
            return {"steps": 0, "skipped": why}
        return self.phase("finetune", acfg.finetune_steps, True, acfg.finetune_lr, data, rng, log)

    def run(self, data: dict, log=print, start: dict = None) -> dict:
        """Adapts to `data`; `start`: start_rows' result when the caller has already set the
        start (it is not computed again)."""
        acfg = self.acfg
        rng = np.random.default_rng(acfg.seed)
        g_before = self.g_embed.numpy().copy()
        report = {"phases": {}, **(start if start is not None else self.start_rows(data))}
        start_row = self.g_embed.numpy()[self.new_id].copy()
        report["phases"]["embedding"] = self.phase("embedding", acfg.steps, False, acfg.lr,
                                                   data, rng, log)
        report["variants_per_char"] = round(variants_per_char(data["chars"]), 3)
        finetune = self._finetune(data, rng, log)
        if finetune is not None:
            report["phases"]["finetune"] = finetune
        self.sync_ema()
        g_after = self.g_embed.numpy()
        report["base_rows_unchanged"] = bool(np.array_equal(g_before[:self.new_id],
                                                            g_after[:self.new_id]))
        report["new_row_moved"] = float(np.linalg.norm(g_after[self.new_id] - start_row))
        report["base_writer_drift"] = self.base_drift()
        return report

    def base_drift(self, n_chars: int = 16, batch: int = 256) -> float:
        """Mean |pixel| difference (in [0, 2] units) of base writers' glyphs, adapted vs base
        (`batch` glyphs at a time: a base of 306 writers is 4,896 glyphs, gigabytes of
        activations in one call)."""
        m = self.cfg.model
        chars = np.linspace(0, m.num_chars - 1, min(n_chars, m.num_chars)).round().astype(np.int32)
        writers = np.arange(self.new_id, dtype=np.int32)
        c = np.tile(chars, len(writers))
        w = np.repeat(writers, len(chars))
        z = tf.random.stateless_normal([len(c), m.latent_dim], seed=[7, 0])
        total, count = 0.0, 0
        for i in range(0, len(c), batch):
            inputs = {"z": z[i:i + batch], "char": tf.constant(c[i:i + batch]),
                      "writer": tf.constant(w[i:i + batch])}
            a = self.trainer.ema_generator(inputs, training=False).numpy()
            b = self.base_generator(inputs, training=False).numpy()
            total += float(np.abs(a.astype(np.float64) - b).sum())
            count += a.size
        return total / max(count, 1)

    def generate(self, char_ids, writer_ids, seed: int) -> np.ndarray:
        return self.trainer.generate(np.asarray(char_ids, np.int32),
                                     np.asarray(writer_ids, np.int32), seed)


def _logged(name: str, step: int, steps: int, keys, out, log) -> dict:
    """A phase's history entry at `step` (logged); RuntimeError on a non-finite loss."""
    vals = [float(v.numpy()) for v in out]
    if not all(np.isfinite(vals)):
        raise RuntimeError(f"adaptation {name}: non-finite loss at step {step} "
                           f"({vals}); lower --adapt_lr / --adapt_finetune_lr")
    log(f"adapt {name}: step {step}/{steps} " +
        " ".join(f"{k} {v:.3f}" for k, v in zip(keys, vals)))
    return {"step": step, **{k: round(v, 4) for k, v in zip(keys, vals)}}


class _Selection:
    """The embedding phase's selection: the new row's pixel distance on the writer's glyphs at
    step 0 (the start) and every `select_every` steps; the best row seen is kept."""

    def __init__(self, adapter: Adapter, images, chars):
        self.adapter, self.images, self.chars = adapter, images, chars
        self.scores = []
        self.best = None
        self.score(0)

    def score(self, step: int) -> None:
        a = self.adapter
        dist = a.pixel_distances(self.images, self.chars, [a.new_id])[0]
        self.scores.append({"step": step, "distance": round(float(dist), 5)})
        if self.best is None or dist < self.best[0]:
            self.best = (dist, step, a._new_rows())

    def keep(self, name: str, log) -> dict:
        """Puts the best row back; returns the report's "selection"."""
        dist, step, rows = self.best
        self.adapter._set_rows(rows)
        log(f"adapt {name}: kept the row of step {step} (pixel distance {dist:.4f})")
        return {"kept_step": step, "distance": round(float(dist), 5), "scores": self.scores}

