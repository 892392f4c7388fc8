"""GAN losses as pure functions returning PER-EXAMPLE losses [B] in float32.

Inputs are cast to float32 first (logits may come from a mixed-precision model) and logits of
shape [B, 1] are flattened to [B]. The trainer reduces the results over the global batch with
`tf.nn.compute_average_loss`, so nothing here averages over the batch.

    nonsaturating (Goodfellow et al. 2014, the -log D trick):
        G: softplus(-fake)                 D: softplus(-real) + softplus(fake)
    hinge (Lim & Ye 2017; Miyato et al. 2018):
        G: -fake                           D: relu(1 - real) + relu(1 + fake)
    R1 (Mescheder et al. 2018): r1_penalty(dD(real)/dreal) = sum of squared gradients per
        example; the trainer scales it by gamma / 2 (and by the lazy-regularisation interval).
    auxiliary classifier (AC-GAN): weight x cross-entropy of a head on D's features, [B].

Reconstruction terms (the StyleGAN trainer's redrawn glyph, style projection, writer adaptation):

    l1_per_example(a, b)        mean |a - b| per example [N]
    feature_l1(f_fake, f_real)  mean |f_fake - f_real| per example [N], no gradient to f_real
    reconstruction_per_example  pixel L1 + feature_weight x feature L1, per example [N]
    best_of_draws               min over m draws per glyph (draw-major [m * n] -> [n])
    best_of_n_reconstruction    the mean over glyphs of the best of m draws' reconstruction
    locality_loss               mean |adapted - base| (keeps other outputs where they were)
    anchor_penalty              weight x |row - start|^2 / |start|^2

Unlike the GAN losses these take float32 inputs (the callers cast model outputs).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

LossFn = Callable[..., tf.Tensor]


def _logits(x) -> tf.Tensor:
    x = tf.cast(x, tf.float32)
    rank = x.shape.rank
    if rank == 2 and x.shape[-1] == 1:
        return x[:, 0]
    if rank is None:
        return tf.reshape(x, [-1])
    if rank != 1:
        raise ValueError(f"logits must have shape [B] or [B, 1], got {x.shape}")
    return x


def nonsaturating_generator_loss(fake_logits) -> tf.Tensor:
    """-log sigmoid(D(G(z))) = softplus(-fake_logits), per example [B]."""
    return tf.nn.softplus(-_logits(fake_logits))


def nonsaturating_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) = softplus(-real) + softplus(fake), [B]."""
    return tf.nn.softplus(-_logits(real_logits)) + tf.nn.softplus(_logits(fake_logits))


def hinge_generator_loss(fake_logits) -> tf.Tensor:
    """-D(G(z)), per example [B]."""
    return -_logits(fake_logits)


def hinge_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """relu(1 - D(x)) + relu(1 + D(G(z))), per example [B]."""
    return tf.nn.relu(1.0 - _logits(real_logits)) + tf.nn.relu(1.0 + _logits(fake_logits))


def r1_penalty(real_grads) -> tf.Tensor:
    """Sum of squared gradients over all but the batch axis, [B] (||grad_x D(x)||^2)."""
    if real_grads is None:
        raise ValueError("real_grads is None: the discriminator output does not depend on the "
                         "real images the tape watched")
    g = tf.cast(real_grads, tf.float32)
    if g.shape.rank == 0:
        raise ValueError("real_grads must have a batch axis")
    g = tf.reshape(g, [tf.shape(g)[0], -1])
    return tf.reduce_sum(tf.square(g), axis=1)


def aux_classifier_loss(logits, labels, weight) -> tf.Tensor:
    """weight x cross-entropy of an auxiliary classifier's logits [B, K] against int labels [B],
    per example [B]."""
    return weight * tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


# ------------------------------------------------------------------------------------------------
# Reconstruction.


def l1_per_example(a, b) -> tf.Tensor:
    """Mean |a - b| over every axis but the first, [N] (a and b: [N, ...], float32)."""
    d = tf.abs(a - b)
    return tf.reduce_mean(d, axis=list(range(1, d.shape.rank)))


def feature_l1(fake_features, real_features) -> tf.Tensor:
    """Mean |fake_features - real_features| over the last axis, [N]; the real features are a
    target (no gradient flows into them)."""
    return tf.reduce_mean(tf.abs(fake_features - tf.stop_gradient(real_features)), axis=-1)


def group_contrast(fake_features, real_features, group_size: int,
                   temperature: float = 0.1) -> tf.Tensor:
    """InfoNCE of writer groups, [N]: features [N, F] of N = G x group_size glyphs in groups of
    one writer each, fake i redrawing real i. Fake i's positive is its group's mean real
    feature without real i (the writer's OTHER glyphs, so matching the glyph it redraws earns
    nothing here); its negatives are the other groups' mean real features; similarity is the
    cosine over `temperature`, of features centred on the batch's mean real feature (what all
    glyphs share says nothing of the writer). The real features are a target (no gradient
    flows into them).
    A batch of one group has no negative: the loss is then log 1 = 0 for every glyph."""
    k = int(group_size)
    real = tf.stop_gradient(tf.cast(real_features, tf.float32))
    centre = tf.reduce_mean(real, 0, keepdims=True)
    real -= centre
    fake = tf.math.l2_normalize(tf.cast(fake_features, tf.float32) - centre, -1)
    n, f = tf.shape(real)[0], tf.shape(real)[1]
    groups = tf.reshape(real, [-1, k, f])  # [G, k, F]
    total = tf.reduce_sum(groups, 1, keepdims=True)
    others = tf.reshape((total - groups) / float(k - 1), [n, f])  # [N, F]: leave-one-out
    means = tf.math.l2_normalize(tf.reduce_mean(groups, 1), -1)  # [G, F]
    own = tf.repeat(tf.range(n // k), k)  # each glyph's group
    logits = tf.matmul(fake, means, transpose_b=True)  # [N, G]
    positive = tf.reduce_sum(fake * tf.math.l2_normalize(others, -1), -1)
    logits = tf.tensor_scatter_nd_update(
        logits, tf.stack([tf.range(n), own], 1), positive) / temperature
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=own, logits=logits)


def reconstruction_per_example(fake, real, feature_weight=0.0, fake_features=None,
                               real_features=None) -> tuple[tf.Tensor, tf.Tensor]:
    """(total, pixel), each [N]: pixel = l1_per_example(fake, real); total = pixel +
    feature_weight x feature_l1(fake_features, real_features), or pixel without features."""
    pixel = l1_per_example(fake, real)
    if fake_features is None:
        return pixel, pixel
    return pixel + feature_weight * feature_l1(fake_features, real_features), pixel


def best_of_draws(per_draw, draws: int) -> tf.Tensor:
    """[n]: the smallest of `draws` values per glyph; per_draw [draws * n] is draw-major (entry
    j * n + i is draw j of glyph i)."""
    return tf.reduce_min(tf.reshape(per_draw, [draws, -1]), axis=0)


def best_of_n_reconstruction(fake, real, draws: int, feature_weight=0.0, fake_features=None,
                             real_features=None) -> tuple[tf.Tensor, tf.Tensor]:
    """(loss, pixel), scalars: fake [draws * n, ...] holds `draws` attempts at each of the n
    glyphs `real` [n, ...] (draw-major, as tf.tile(real) lays them out), and likewise the
    features ([draws * n, F] and [n, F]). For each glyph the attempt with the smallest
    reconstruction_per_example counts; loss is its mean over the glyphs, pixel the same with
    the pixel L1 alone."""
    tiled = tf.tile(real, [draws] + [1] * (real.shape.rank - 1))
    if real_features is not None:
        real_features = tf.tile(real_features, [draws, 1])
    total, pixel = reconstruction_per_example(fake, tiled, feature_weight, fake_features,
                                              real_features)
    return (tf.reduce_mean(best_of_draws(total, draws)),
            tf.reduce_mean(best_of_draws(pixel, draws)))


def locality_loss(adapted, base) -> tf.Tensor:
    """Mean |adapted - base| over everything, a scalar: how far a tuned generator's outputs moved
    from the outputs it must keep (the caller weights it)."""
    return tf.reduce_mean(tf.abs(adapted - base))


def anchor_penalty(row, start, weight) -> tf.Tensor:
    """weight x |row - start|^2 / |start|^2 (the denominator at least 1e-8), a scalar."""
    scale = tf.maximum(tf.reduce_sum(tf.square(start)), 1e-8)
    return weight * tf.reduce_sum(tf.square(row - start)) / scale


_LOSSES: dict[str, tuple[LossFn, LossFn]] = {
    "nonsaturating": (nonsaturating_generator_loss, nonsaturating_discriminator_loss),
    "hinge": (hinge_generator_loss, hinge_discriminator_loss),
}


def get_losses(name: str) -> tuple[LossFn, LossFn]:
    """(generator_loss, discriminator_loss) for "nonsaturating" or "hinge"."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(_LOSSES)}") from None
