"""hw_gan.losses against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from hw_gan import losses


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


REAL = [0.0, 2.0, -1.0]
FAKE = [1.0, -3.0, 0.0]


def test_nonsaturating_generator_loss_is_softplus_of_minus_logits():
    got = losses.nonsaturating_generator_loss(tf.constant(REAL))
    # softplus(-0) = ln 2, softplus(-2) = ln(1 + e^-2), softplus(1) = ln(1 + e).
    want = [math.log(2.0), math.log(1.0 + math.exp(-2.0)), math.log(1.0 + math.e)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(want, [0.6931472, 0.1269280, 1.3132617], rtol=1e-6)


def test_nonsaturating_discriminator_loss():
    got = losses.nonsaturating_discriminator_loss(tf.constant(REAL), tf.constant(FAKE))
    want = [softplus(-r) + softplus(f) for r, f in zip(REAL, FAKE)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    # First example: real logit 0, fake logit 1 -> ln 2 + ln(1 + e).
    assert got.numpy()[0] == pytest.approx(math.log(2.0) + math.log(1.0 + math.e), rel=1e-6)


def test_hinge_losses():
    got = losses.hinge_generator_loss(tf.constant(REAL))
    np.testing.assert_allclose(got.numpy(), [0.0, -2.0, 1.0])
    # relu(1 - [0, 2, -1]) = [1, 0, 2]; relu(1 + [1, -3, 0]) = [2, 0, 1].
    got = losses.hinge_discriminator_loss(tf.constant(REAL), tf.constant(FAKE))
    np.testing.assert_allclose(got.numpy(), [3.0, 0.0, 3.0])


def test_r1_penalty_sums_squares_per_example():
    grads = np.zeros([2, 2, 2, 1], np.float32)
    grads[0] = 1.0  # 4 ones -> 4
    grads[1, :, :, 0] = [[1.0, -2.0], [3.0, 0.5]]  # 1 + 4 + 9 + 0.25
    got = losses.r1_penalty(tf.constant(grads))
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), [4.0, 14.25])


def test_r1_penalty_of_a_real_gradient():
    x = tf.constant([[1.0, 2.0], [3.0, -1.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(tf.square(x))  # d/dx = 2x
    np.testing.assert_allclose(losses.r1_penalty(tape.gradient(out, x)).numpy(), [20.0, 40.0])
    with pytest.raises(ValueError, match="None"):
        losses.r1_penalty(None)


@pytest.mark.parametrize("name", ["nonsaturating", "hinge"])
def test_float16_inputs_give_float32_per_example_losses(name):
    g_loss, d_loss = losses.get_losses(name)
    real = tf.constant(REAL, tf.float16)
    fake = tf.constant(FAKE, tf.float16)
    for value in (g_loss(fake), d_loss(real, fake)):
        assert value.dtype == tf.float32
        assert value.shape == (3,)
    f32 = d_loss(tf.constant(REAL), tf.constant(FAKE))
    np.testing.assert_allclose(d_loss(real, fake).numpy(), f32.numpy(), rtol=1e-6)
    r1 = losses.r1_penalty(tf.ones([2, 4, 4, 1], tf.float16) * 300.0)  # 300^2 * 16 overflows fp16
    assert r1.dtype == tf.float32
    np.testing.assert_allclose(r1.numpy(), [1.44e6, 1.44e6])


def test_column_logits_are_flattened_and_other_shapes_rejected():
    got = losses.nonsaturating_generator_loss(tf.constant([[0.0], [2.0]]))
    assert got.shape == (2,)
    with pytest.raises(ValueError, match="shape"):
        losses.hinge_generator_loss(tf.zeros([2, 3]))


def test_losses_are_finite_for_extreme_logits():
    big = tf.constant([-200.0, 200.0])
    for g_loss, d_loss in (losses.get_losses("nonsaturating"), losses.get_losses("hinge")):
        assert np.all(np.isfinite(g_loss(big).numpy()))
        assert np.all(np.isfinite(d_loss(big, big).numpy()))
    got = losses.nonsaturating_generator_loss(big)
    np.testing.assert_allclose(got.numpy(), [200.0, 0.0], atol=1e-6)


def test_losses_work_in_tf_function_with_unknown_batch():
    signature = [tf.TensorSpec([None], tf.float32), tf.TensorSpec([None, None, None, 1])]

    @tf.function(input_signature=signature)
    def step(logits, grads):
        return losses.nonsaturating_discriminator_loss(logits, logits), losses.r1_penalty(grads)

    d, r1 = step(tf.constant(REAL), tf.ones([3, 2, 2, 1]))
    assert d.shape == (3,) and r1.shape == (3,)
    np.testing.assert_allclose(r1.numpy(), [4.0, 4.0, 4.0])


def test_get_losses():
    assert losses.get_losses("nonsaturating") == (
        losses.nonsaturating_generator_loss, losses.nonsaturating_discriminator_loss)
    assert losses.get_losses("hinge") == (
        losses.hinge_generator_loss, losses.hinge_discriminator_loss)
    with pytest.raises(ValueError, match="nonsaturating.*hinge"):
        losses.get_losses("wasserstein")


# -- reconstruction terms (style projection, writer adaptation, the StyleGAN trainer) ----------


def test_aux_classifier_loss_is_weighted_cross_entropy():
    logits = tf.constant([[0.0, math.log(3.0)], [0.0, 0.0]])
    got = losses.aux_classifier_loss(logits, tf.constant([1, 0]), 0.5)
    # softmax([0, ln 3]) = [1/4, 3/4]: -ln(3/4); two equal logits: ln 2.
    np.testing.assert_allclose(got.numpy(), [0.5 * math.log(4.0 / 3.0), 0.5 * math.log(2.0)],
                               rtol=1e-6)


def test_l1_per_example_averages_all_but_the_batch_axis():
    a = tf.constant([[1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_allclose(losses.l1_per_example(a, tf.zeros([2, 2])).numpy(), [1.5, 3.5])
    images = tf.reshape(tf.range(8, dtype=tf.float32), [2, 2, 2, 1])  # [0..3], [4..7]
    np.testing.assert_allclose(losses.l1_per_example(images, tf.ones([2, 2, 2, 1])).numpy(),
                               [(1 + 0 + 1 + 2) / 4, (3 + 4 + 5 + 6) / 4])


def test_feature_l1_gives_no_gradient_to_the_real_features():
    fake = tf.constant([[1.0, -1.0], [0.0, 2.0]])
    real = tf.constant([[0.0, 1.0], [0.0, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([fake, real])
        got = losses.feature_l1(fake, real)
    np.testing.assert_allclose(got.numpy(), [(1 + 2) / 2, (0 + 2) / 2])
    assert tape.gradient(got, real) is None
    np.testing.assert_allclose(tape.gradient(got, fake).numpy(), [[0.5, -0.5], [0.0, 0.5]])


def test_reconstruction_per_example_adds_weighted_features():
    fake, real = tf.constant([[1.0, 1.0]]), tf.constant([[0.0, 2.0]])  # pixel L1: 1
    total, pixel = losses.reconstruction_per_example(fake, real)
    assert float(total[0]) == float(pixel[0]) == 1.0
    total, pixel = losses.reconstruction_per_example(fake, real, 3.0, tf.constant([[2.0]]),
                                                     tf.constant([[0.5]]))
    np.testing.assert_allclose([float(total[0]), float(pixel[0])], [1.0 + 3.0 * 1.5, 1.0])


def test_best_of_draws_takes_the_smallest_draw_per_glyph():
    # Draw-major: draw 0 of glyphs 0..2 = [5, 1, 4], draw 1 = [2, 3, 6].
    got = losses.best_of_draws(tf.constant([5.0, 1.0, 4.0, 2.0, 3.0, 6.0]), 2)
    np.testing.assert_allclose(got.numpy(), [2.0, 1.0, 4.0])


def test_best_of_n_reconstruction_picks_each_glyphs_best_draw():
    real = tf.constant([[0.0], [1.0]])  # two one-pixel glyphs
    fake = tf.constant([[0.5], [1.0],   # draw 0: pixel errors 0.5, 0
                        [0.1], [3.0]])  # draw 1: pixel errors 0.1, 2
    loss, pixel = losses.best_of_n_reconstruction(fake, real, 2)
    np.testing.assert_allclose([float(loss), float(pixel)], [0.05, 0.05], rtol=1e-6)
    # With features (weight 2) glyph 0's best draw becomes draw 0: 0.5 + 2 * 1 < 0.1 + 2 * 2;
    # glyph 1 keeps draw 0 (0 + 2 * 0). The pixel-only best stays (0.1 + 0) / 2.
    real_f = tf.constant([[0.0, 0.0], [1.0, 1.0]])
    fake_f = tf.constant([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
    loss, pixel = losses.best_of_n_reconstruction(fake, real, 2, 2.0, fake_f, real_f)
    np.testing.assert_allclose([float(loss), float(pixel)], [(2.5 + 0.0) / 2, 0.05], rtol=1e-6)


def test_locality_loss_and_anchor_penalty():
    adapted = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    assert float(losses.locality_loss(adapted, tf.ones([2, 2]))) == 1.5  # (0 + 1 + 2 + 3) / 4
    # |[1, 2] - [1, 0]|^2 = 4, |[1, 0]|^2 = 1, weight 3 -> 12.
    got = losses.anchor_penalty(tf.constant([1.0, 2.0]), tf.constant([1.0, 0.0]), 3.0)
    assert float(got) == pytest.approx(12.0)
    # A zero start: the denominator is 1e-8, not 0.
    got = losses.anchor_penalty(tf.constant([1.0, 0.0]), tf.zeros([2]), 1.0)
    assert np.isfinite(float(got)) and float(got) == pytest.approx(1e8, rel=1e-6)


def test_group_contrast_rewards_a_glyph_near_its_writers_other_glyphs_only():
    # Two groups of 2 (writers A, B), features in 2-D; the batch's mean real feature is 0.
    real = tf.constant([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    # Fake i on its own writer's side: positive cosine 1, negative -1, temperature 0.5:
    # -log(e^2 / (e^2 + e^-2)) = log(1 + e^-4).
    got = losses.group_contrast(real, real, 2, temperature=0.5)
    np.testing.assert_allclose(got.numpy(), [math.log1p(math.exp(-4.0))] * 4, rtol=1e-5)
    # Each fake on the other writer's side: log(1 + e^4).
    swapped = tf.reverse(real, [0])
    np.testing.assert_allclose(losses.group_contrast(swapped, real, 2, 0.5).numpy(),
                               [math.log1p(math.exp(4.0))] * 4, rtol=1e-5)
    # The positive leaves out the glyph a fake redraws: a fake equal to real 0 = [1, 0] has
    # cosine 0 with its group-mate [0, 1] (the positive) and -1/sqrt 2 with B's mean:
    # log(1 + e^-sqrt 2), not the log(1 + e^-2 sqrt 2) of a positive that held real 0 itself.
    odd = tf.constant([[1.0, 0.0], [0.0, 1.0], [-0.5, -0.5], [-0.5, -0.5]])  # mean 0
    got = losses.group_contrast(odd, odd, 2, 0.5).numpy()
    np.testing.assert_allclose(got[0], math.log1p(math.exp(-math.sqrt(2))), rtol=1e-5)
    # No gradient reaches the real features; one group has no negative: 0 per glyph.
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(real)
        fake = real * 1.0
        loss = tf.reduce_sum(losses.group_contrast(fake, real + 0.0, 2, 0.5))
    assert tape.gradient(loss, real) is not None  # through `fake` only
    with tf.GradientTape() as tape:
        tape.watch(real)
        loss = tf.reduce_sum(losses.group_contrast(tf.ones([4, 2]), real, 2, 0.5))
    assert tape.gradient(loss, real) is None
    np.testing.assert_allclose(losses.group_contrast(real[:2], real[:2], 2).numpy(), [0.0, 0.0],
                               atol=1e-6)
