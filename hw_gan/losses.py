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
