"""The adaptation's training steps, built for one Adapter (`adapter`: its trainer, the new
writer's id, the embeddings and their masks): the base's GAN loss on the new rows (or the whole
generator), the projection of the new row, pivotal tuning, and the pixel distance that scores
rows. The loss terms are hw_gan.losses'."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hw_gan import losses
from hw_gan.training.trainer import FEATURES_LAYER

# The reconstruction fits (projection, pivotal tuning) have no adversary: Adam's usual betas.
RECONSTRUCTION_BETAS = {"beta_1": 0.9, "beta_2": 0.999}


def traced(adapter, fn):
    """`fn` as a tf.function, or `fn` itself under --run_eagerly (no tracing: a few steps of a
    small model run sooner op by op)."""
    return fn if adapter.acfg.run_eagerly else tf.function(fn)


def gan_optimizers(adapter, lr: float):
    """(G's, D's) Adam with the base run's betas (TrainConfig.beta1/beta2) and the trainer's
    epsilon; G's at `lr`, D's at the adaptation's d_lr."""
    t = adapter.base_cfg.train
    g_opt = keras.optimizers.Adam(lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=1e-8)
    d_opt = keras.optimizers.Adam(adapter.acfg.d_lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=1e-8)
    return g_opt, d_opt


def discriminate_fn(trainer):
    """d(images, chars, writers) -> (logits, weighted auxiliary char loss): the auxiliary char
    head (frozen) still rewards legible glyphs; the writer head's new column has no negatives
    here, so it is not trained nor used."""
    char_head = trainer.aux_heads.get("char")

    def d_logits(images, chars, writers):
        inputs = {"image": images, "char": chars, "writer": writers}
        if char_head is None:
            return trainer.discriminator(inputs, training=True), 0.0
        logits, feats = trainer.d_features(inputs, training=True)
        aux = losses.aux_classifier_loss(char_head[0](tf.cast(feats, tf.float32)), chars,
                                         char_head[1])
        return logits, aux

    return d_logits


def gan_step(adapter, finetune: bool, lr: float):
    """One step of the base's GAN loss on the new writer's glyphs: D's new row, then G's new row
    (with `finetune` every generator weight but the base writers' rows)."""
    t = adapter.trainer
    g_opt, d_opt = gan_optimizers(adapter, lr)
    g_vars = list(t.generator.trainable_variables) if finetune else [adapter.g_embed]
    d_vars = [adapter.d_embed]
    embed_index = next(i for i, v in enumerate(g_vars) if v is adapter.g_embed)
    latent = adapter.cfg.model.latent_dim
    g_loss_fn, d_loss_fn = t.g_loss_fn, t.d_loss_fn
    d_logits = discriminate_fn(t)

    def step(images, chars, seed):
        writers = tf.fill(tf.shape(chars), tf.constant(adapter.new_id, tf.int32))
        n = tf.shape(chars)[0]
        z = tf.random.stateless_normal([n, latent], seed=tf.stack([seed, 1]))
        fake = t.generator({"z": z, "char": chars, "writer": writers}, training=True)
        with tf.GradientTape() as tape:
            real, _ = d_logits(images, chars, writers)
            fake_l, _ = d_logits(fake, chars, writers)
            d_loss = tf.reduce_mean(d_loss_fn(real, fake_l))
        grads = tape.gradient(d_loss, d_vars)
        d_opt.apply_gradients([(tf.convert_to_tensor(grads[0]) * adapter.d_mask, d_vars[0])])
        z = tf.random.stateless_normal([n, latent], seed=tf.stack([seed, 2]))
        with tf.GradientTape() as tape:
            fake = t.generator({"z": z, "char": chars, "writer": writers}, training=True)
            fake_l, aux = d_logits(fake, chars, writers)
            g_loss = tf.reduce_mean(g_loss_fn(fake_l) + aux)
        grads = tape.gradient(g_loss, g_vars)
        # Base writers' rows stay as they are.
        grads[embed_index] = tf.convert_to_tensor(grads[embed_index]) * adapter.g_mask
        g_opt.apply_gradients(zip(grads, g_vars))
        return d_loss, g_loss, tf.reduce_mean(real), tf.reduce_mean(fake_l)

    return traced(adapter, step)


def feature_fn(trainer):
    """features(images, chars, writers) -> [n, F] float32: the discriminator's image features
    (before any condition), with D frozen."""
    model = keras.Model(trainer.discriminator.inputs,
                        trainer.discriminator.get_layer(FEATURES_LAYER).output)

    def features(images, chars, writers):
        return tf.cast(model(trainer.d_inputs(images, chars, writers), training=False),
                       tf.float32)

    return features


def reconstruction(adapter, features, images, chars, m: int, seed):
    """(loss, pixel) of the new writer's row on the glyphs `images` of `chars`, for use inside
    a gradient tape: for each glyph x of character c, the closest of m draws z_j (stateless,
    `seed`) by |x - G(z_j, c, w)| + feature_weight x |F(x) - F(G(z_j, c, w))| (F: D's image
    features, `feature_fn`), averaged over the glyphs; pixel: the same with the L1 alone
    (losses.best_of_n_reconstruction)."""
    fw = adapter.acfg.feature_weight
    n = tf.shape(chars)[0]
    writers = tf.fill([m * n], tf.constant(adapter.new_id, tf.int32))
    mchars = tf.tile(chars, [m])
    z = tf.random.stateless_normal([m * n, adapter.cfg.model.latent_dim], seed=seed)
    fake = tf.cast(adapter.trainer.generator({"z": z, "char": mchars, "writer": writers},
                                             training=False), tf.float32)
    if not fw:
        return losses.best_of_n_reconstruction(fake, images, m)
    return losses.best_of_n_reconstruction(fake, images, m, fw, features(fake, mchars, writers),
                                           features(images, chars, writers[:n]))


def pivotal_step(adapter, lr: float):
    """One "pivotal" fine-tune step (pivotal tuning, Roich et al. 2021): the new writer's row
    stays where the embedding phase left it (the pivot) and every other generator weight is
    tuned so that the pivot reproduces the writer's glyphs: for each glyph x of character c,
    min over `finetune_samples` draws z_j of |x - G(z_j, c, w)| + feature_weight x
    |F(x) - F(G(z_j, c, w))| (F: D's image features), plus `locality` x the mean |G - G_base|
    of random glyphs of random trained base writers, which keeps their styles where the base
    drew them. D is frozen."""
    t = adapter.trainer
    opt = keras.optimizers.Adam(lr, **RECONSTRUCTION_BETAS)
    features = feature_fn(t)
    g_vars = [v for v in t.generator.trainable_variables if v is not adapter.g_embed]
    pool = tf.constant(np.array(adapter.trained_ids, np.int32))
    m, latent = adapter.acfg.finetune_samples, adapter.cfg.model.latent_dim
    num_chars, locality = adapter.cfg.model.num_chars, adapter.acfg.locality
    base = adapter.base_generator

    def step(images, chars, seed):
        n = tf.shape(chars)[0]
        other = {"z": tf.random.stateless_normal([n, latent], seed=tf.stack([seed, 6])),
                 "char": tf.random.stateless_uniform([n], tf.stack([seed, 7]), 0, num_chars,
                                                     tf.int32),
                 "writer": tf.gather(pool, tf.random.stateless_uniform(
                     [n], tf.stack([seed, 8]), 0, pool.shape[0], tf.int32))}
        ref = tf.cast(base(other, training=False), tf.float32)
        with tf.GradientTape() as tape:
            rec, pix = reconstruction(adapter, features, images, chars, m, tf.stack([seed, 5]))
            drift = losses.locality_loss(
                tf.cast(t.generator(other, training=False), tf.float32), ref)
            loss = rec + locality * drift
        opt.apply_gradients(zip(tape.gradient(loss, g_vars), g_vars))
        return loss, rec, pix, drift

    return traced(adapter, step)


def blend_logits(adapter) -> tf.Variable:
    """space="writers": logits over the trained writers, starting at the start's weights (the
    mean of them all when the start set none)."""
    weights = adapter.start_weights
    if weights is None:
        weights = np.full(len(adapter.trained_ids), 1.0 / len(adapter.trained_ids))
    return tf.Variable(np.log(np.maximum(weights, 1e-5)).astype(np.float32))


def projection_step(adapter, lr: float):
    """(step, blend logits or None). One "projection" step: G's new row only, minimising for
    each of the writer's glyphs x of character c the best-of-`samples` reconstruction
    min_j |x - G(z_j, c, w)| + feature_weight x |F(x) - F(G(z_j, c, w))| (F: the discriminator's
    image features, before any condition), plus `anchor` x |w - start|^2 / |start|^2. The same
    loss as the StyleGAN route's projection (hw_gan.inversion), on the writer row instead of W+.
    With space="writers" the row is softmax(logits) @ the trained writers' rows: it stays among
    the styles G knows."""
    opt = keras.optimizers.Adam(lr, **RECONSTRUCTION_BETAS)
    features = feature_fn(adapter.trainer)
    embed, new_id = adapter.g_embed, adapter.new_id
    start = tf.constant(embed.numpy()[new_id])
    logits = blend_logits(adapter) if adapter.acfg.space == "writers" else None
    pool_rows = (tf.constant(embed.numpy()[np.array(adapter.trained_ids)])
                 if logits is not None else None)
    m, anchor = adapter.acfg.samples, adapter.acfg.anchor

    def blended_row():
        return tf.linalg.matvec(pool_rows, tf.nn.softmax(logits), transpose_a=True)

    def step(images, chars, seed):
        with tf.GradientTape() as tape:
            rec, pix = reconstruction(adapter, features, images, chars, m, tf.stack([seed, 4]))
            row = embed[new_id]
            loss = rec + losses.anchor_penalty(row, start, anchor)
        grad = tf.convert_to_tensor(tape.gradient(loss, embed)) * adapter.g_mask
        if logits is not None:
            with tf.GradientTape() as tape2:
                surrogate = tf.reduce_sum(blended_row() * tf.stop_gradient(grad[new_id]))
            opt.apply_gradients([(tape2.gradient(surrogate, logits), logits)])
            embed.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(embed), [[new_id]],
                                                     blended_row()[None]))
        else:
            opt.apply_gradients([(grad, embed)])
        return loss, rec, pix, tf.norm(row - start)

    return traced(adapter, step), logits


def pixel_distance(adapter, images, chars, writer_id, seed):
    """[n]: for each real glyph, the mean |x - G(z_j, c, writer_id)| of the closest of
    `samples` draws z_j (stateless, from `seed`) - see the package docstring."""
    m = adapter.acfg.samples
    n = tf.shape(chars)[0]
    z = tf.random.stateless_normal([m * n, adapter.cfg.model.latent_dim],
                                   seed=tf.stack([tf.cast(seed, tf.int64), 3]))
    fake = adapter.trainer.generator({"z": z, "char": tf.tile(chars, [m]),
                                      "writer": tf.fill([m * n], tf.cast(writer_id, tf.int32))},
                                     training=False)
    return losses.best_of_draws(losses.l1_per_example(fake, tf.tile(images, [m, 1, 1, 1])), m)
