"""The StyleGAN trainer: GANTrainer's loop, checkpoints and strategies, plus what makes one style
write every character in one hand.

Batches arrive in groups of `style_group_size` glyphs of one writer (make_dataset(group_size=k)).
Per replica step, on top of the usual D step and non-saturating G loss (with R1):

  style mixing   each group of fakes shares one w; with probability style_mixing_prob a second
                 w takes over from a random layer on (StyleGAN's mixing regularisation).
  latent cycle   the style encoder reads a group of k fakes (one w, k characters) and must return
                 that w (mean squared error, unmixed groups): G learns to show its style in every
                 character, E learns to read it.
  reconstruction the encoder reads k-1 real glyphs of a writer; G must redraw the writer's k-th
                 glyph (its character) in that style: pixel L1 + L1 of D's features + the
                 adversarial loss on the redrawn glyph. This ties W to real writers' styles.
  path length    optional (pl_weight): (|J_w^T y| - mean)^2 with y image-space noise, against
                 the batch mean.

The encoder has an EMA copy like the generator; the EMA pair is what style extraction and the
export use. Noise, mixing cut-offs and the mixing coin are drawn statelessly from
(seed, step, replica), so resumed runs match uninterrupted ones.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from data_pipeline.schema import to_uint8
from hw_gan import losses as losses_lib
from hw_gan.models import stylegan
from hw_gan.models.stylegan_encoder import StyleEncoder
from hw_gan.training.trainer import FEATURES_LAYER, GANTrainer, summary_grid


class StyleGANTrainer(GANTrainer):
    def __init__(self, cfg, strategy, manifest):
        self.group_size = int(cfg.train.style_group_size)
        super().__init__(cfg, strategy, manifest)
        self.per_replica = self.grouped_per_replica()
        self.num_ws = stylegan.num_ws(cfg.model)
        self.mapping, self.synthesis = stylegan.parts(self.generator)
        self.d_feature_net = keras.Model(self.discriminator.inputs,
                                         self.discriminator.get_layer(FEATURES_LAYER).output)
        # D's logit and image features in one pass (the reconstruction's losses use both).
        self.d_logits_features = keras.Model(
            self.discriminator.inputs,
            [self.discriminator.output, self.discriminator.get_layer(FEATURES_LAYER).output])

    # -- models ----------------------------------------------------------------------------------
    def _build_extra(self) -> dict:
        self.encoder = StyleEncoder(self.cfg.model, name="style_encoder")
        self.ema_encoder = StyleEncoder(self.cfg.model, name="ema_style_encoder")
        for ema_v, v in zip(self.ema_encoder.weights, self.encoder.weights):
            ema_v.assign(v)
        return {"encoder_glyph": self.encoder.glyph_net, "encoder_head": self.encoder.set_head,
                "ema_encoder_glyph": self.ema_encoder.glyph_net,
                "ema_encoder_head": self.ema_encoder.set_head}

    def _uses_encoder(self) -> bool:
        t = self.cfg.train
        return (t.style_cycle_weight + t.style_recon_weight + t.style_feature_weight) > 0

    def regularises(self, step: int) -> bool:
        """Lazy style regularisation: the steps that end a group of style_reg_interval."""
        return (step + 1) % self.cfg.train.style_reg_interval == 0

    def _reg_scale(self) -> float:
        return float(self.cfg.train.style_reg_interval)

    def _g_variables(self, with_reg: bool = True) -> list:
        # The encoder learns only from the regularisation losses.
        extra = self.encoder.trainable_variables if with_reg and self._uses_encoder() else []
        return self.generator.trainable_variables + extra

    def _ema_pairs(self) -> list:
        return [(self.ema_generator, self.generator),
                (self.ema_encoder.glyph_net, self.encoder.glyph_net),
                (self.ema_encoder.set_head, self.encoder.set_head)]

    # -- one step --------------------------------------------------------------------------------
    def _make_fakes(self, step, salt: int, chars, writers, batch_size, training: bool = True):
        k = self.group_size
        groups = self.per_replica // k
        latent = self.cfg.model.latent_dim
        z1 = tf.random.stateless_normal([groups, latent], seed=self._seed(step, salt))
        z2 = tf.random.stateless_normal([groups, latent], seed=self._seed(step, salt + 100))
        w1 = tf.cast(self.mapping(z1, training=training), tf.float32)
        w2 = tf.cast(self.mapping(z2, training=training), tf.float32)
        L = self.num_ws
        coin = tf.random.stateless_uniform([groups], seed=self._seed(step, salt + 200))
        mixed = coin < self.cfg.train.style_mixing_prob
        cut = tf.random.stateless_uniform([groups], minval=1, maxval=L, dtype=tf.int32,
                                          seed=self._seed(step, salt + 300))
        cut = tf.where(mixed, cut, L)
        from_first = tf.range(L)[None, :] < cut[:, None]  # [G, L]
        ws = tf.where(from_first[:, :, None], w1[:, None, :], w2[:, None, :])
        ws = tf.repeat(ws, k, axis=0)  # one style per group of k glyphs
        images = self.synthesis({"ws": ws, "char": chars}, training=training)
        return images, {"w": w1, "mixed": mixed, "ws": ws}

    def _average_groups(self, per_group):
        return tf.nn.compute_average_loss(tf.cast(per_group, tf.float32),
                                          global_batch_size=self.global_batch // self.group_size)

    def _g_extra_losses(self, batch, step, fake, info, with_reg: bool = True) -> dict:
        if not with_reg:
            return {}
        t = self.cfg.train
        k, r = self.group_size, self.cfg.model.resolution
        groups = self.per_replica // k
        chars = tf.reshape(batch["char"], [groups, k])
        out = {}
        cycle = t.style_cycle_weight > 0
        recon = t.style_recon_weight > 0 or t.style_feature_weight > 0
        images = tf.reshape(batch["image"], [groups, k, r, r, 1])
        # The encoder reads G's fakes (cycle) and the writers' real glyphs (reconstruction) in
        # one pass of its glyph net.
        sets = ([(tf.reshape(fake, [groups, k, r, r, 1]), chars)] if cycle else []) + (
            [(images[:, :-1], chars[:, :-1])] if recon else [])
        styles = self.encoder.encode_sets(sets, training=True) if sets else []
        if cycle:
            w_hat = styles.pop(0)
            err = tf.reduce_mean(tf.square(w_hat - info["w"]), axis=-1)
            err = err * tf.cast(tf.logical_not(info["mixed"]), tf.float32)
            out["cycle"] = t.style_cycle_weight * self._average_groups(err)
        if recon:
            w_e = styles.pop(0)
            target, target_char = images[:, -1], chars[:, -1]
            ws = tf.repeat(w_e[:, None, :], self.num_ws, axis=1)
            rec = self.synthesis({"ws": ws, "char": target_char}, training=True)
            rec = tf.cast(rec, tf.float32)
            # One D pass over the redrawn glyphs and, for the feature loss, the real targets.
            n = tf.shape(rec)[0]
            with_target = t.style_feature_weight > 0
            d_in = tf.concat([rec, target], 0) if with_target else rec
            d_chars = tf.concat([target_char, target_char], 0) if with_target else target_char
            logits, feats = self.d_logits_features({"image": d_in, "char": d_chars},
                                                   training=True)
            if t.style_recon_weight > 0:
                l1 = losses_lib.l1_per_example(rec, target)
                out["recon_l1"] = t.style_recon_weight * self._average_groups(l1)
                out["recon_adv"] = self._average_groups(self.g_loss_fn(logits[:n]))
            if with_target:
                feats = tf.cast(feats, tf.float32)
                feat = losses_lib.feature_l1(feats[:n], feats[n:])
                out["recon_feat"] = t.style_feature_weight * self._average_groups(feat)
        if t.pl_weight > 0:
            ws = info["ws"]
            with tf.GradientTape() as pl_tape:
                pl_tape.watch(ws)
                img = tf.cast(self.synthesis({"ws": ws, "char": batch["char"]}, training=True),
                              tf.float32)
                y = tf.random.stateless_normal(tf.shape(img), seed=self._seed(step, 400))
                proj = tf.reduce_sum(img * y) / float(r)
            grads = pl_tape.gradient(proj, ws)
            lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=-1), axis=-1))
            penalty = tf.square(lengths - tf.stop_gradient(tf.reduce_mean(lengths)))
            out["path_length"] = t.pl_weight * self._average(penalty)
        return out

    # -- sampling --------------------------------------------------------------------------------
    def sample_grid(self, chars: np.ndarray, writers: np.ndarray, seed: int = 1234):
        """uint8 [1, rows*R, cols*R, 1]: each row one style (one fixed z) writing every char."""
        rows, cols = 8, len(chars)
        z = tf.random.stateless_normal([rows, self.cfg.model.latent_dim], seed=[seed, 0])
        mapping, _ = stylegan.parts(self.ema_generator)
        w = tf.repeat(mapping(z, training=False), cols, axis=0)
        c = tf.constant(np.tile(chars, rows).astype(np.int32))
        return summary_grid(to_uint8(stylegan.synthesize(self.ema_generator, w, c)), rows, cols)
