"""The conditional GAN families (char_cgan, style_cgan) and the family registry."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hw_gan import config
from hw_gan.config import ModelConfig
from hw_gan.models import FAMILIES, get_family, input_keys, select_inputs
from hw_gan.models import layers as blocks

CGANS = ("char_cgan", "style_cgan")
NUM_CHARS, NUM_WRITERS, LATENT = 10, 7, 16


def make_cfg(family, resolution=32, width=0.25, **kw):
    return ModelConfig(family=family, resolution=resolution, width=width, latent_dim=LATENT,
                       num_chars=NUM_CHARS, num_writers=NUM_WRITERS, **kw)


def build(family, resolution=32, width=0.25, seed=0):
    keras.utils.set_random_seed(seed)
    cfg = make_cfg(family, resolution, width)
    module = get_family(family)
    return cfg, module.build_generator(cfg), module.build_discriminator(cfg)


def feed(batch=2, char=(1, 2), writer=(3, 4), seed=0, resolution=32):
    rng = np.random.default_rng(seed)
    return {
        "z": tf.constant(rng.standard_normal((batch, LATENT)), tf.float32),
        "char": tf.constant(char[:batch], tf.int32),
        "writer": tf.constant(writer[:batch], tf.int32),
        "image": tf.constant(rng.uniform(-1, 1, (batch, resolution, resolution, 1)), tf.float32),
    }


def run(model, inputs, training=False):
    return model(select_inputs(model, inputs), training=training).numpy()


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("family", CGANS)
def test_shapes_dtypes_and_range(family, resolution):
    cfg, G, D = build(family, resolution)
    x = feed(resolution=resolution)
    fake = G(select_inputs(G, x), training=True)
    assert fake.shape == (2, resolution, resolution, 1) and fake.dtype == tf.float32
    assert np.all(np.abs(fake.numpy()) <= 1.0) and np.all(np.isfinite(fake.numpy()))
    for image in (x["image"], fake):
        logits = D(select_inputs(D, {**x, "image": image}), training=True)
        assert logits.shape == (2,) and logits.dtype == tf.float32
        assert np.all(np.isfinite(logits.numpy()))
    uses_writer = get_family(family).USES_WRITER
    assert input_keys(G) == (("z", "char", "writer") if uses_writer else ("z", "char"))
    assert input_keys(D) == (("image", "char", "writer") if uses_writer else ("image", "char"))
    assert G.get_layer("char_embedding").input_dim == NUM_CHARS
    # embed_dim 128 * width 0.25
    assert G.get_layer("char_embedding").output_dim == blocks.embedding_size(cfg) == 32


@pytest.mark.parametrize("family", CGANS)
def test_generator_depends_on_char_and_writer(family):
    _, G, _ = build(family)
    base = run(G, feed(char=(1, 2), writer=(3, 4)))
    other_char = run(G, feed(char=(5, 6), writer=(3, 4)))
    assert np.abs(base - other_char).max() > 1e-3
    other_writer = run(G, feed(char=(1, 2), writer=(0, 6)))
    if get_family(family).USES_WRITER:
        assert np.abs(base - other_writer).max() > 1e-3
    else:
        np.testing.assert_array_equal(base, other_writer)  # the writer is dropped by select_inputs


@pytest.mark.parametrize("family", CGANS)
def test_generator_is_batch_and_mode_independent(family):
    """No batch norm: an example's image depends only on its own inputs, not on training=."""
    _, G, _ = build(family)
    x = feed()
    pair = run(G, x, training=True)
    np.testing.assert_allclose(run(G, x, training=False), pair, atol=1e-6)
    single = run(G, {k: v[:1] for k, v in x.items()})
    np.testing.assert_allclose(single[0], pair[0], atol=1e-5)


@pytest.mark.parametrize("family", CGANS)
def test_discriminator_is_a_projection_on_its_conditions(family):
    _, _, D = build(family)
    x = feed()
    base = run(D, x)
    assert np.abs(base - run(D, {**x, "char": tf.constant([7, 8])})).max() > 1e-5
    if get_family(family).USES_WRITER:
        assert np.abs(base - run(D, {**x, "writer": tf.constant([0, 6])})).max() > 1e-5

    # logit(char=c) - logit(char=c') = <e_c - e_c', h>: check it with chosen embedding rows.
    features = keras.Model(D.inputs, D.get_layer("d_features_act").output)
    h = features(select_inputs(D, x)).numpy()
    emb = D.get_layer("char_embedding")
    table = np.zeros(emb.embeddings.shape, np.float32)
    table[1] = np.linspace(-1, 1, table.shape[1])
    emb.embeddings.assign(table)
    with_row = run(D, {**x, "char": tf.constant([1, 1])})
    zero_row = run(D, {**x, "char": tf.constant([0, 0])})
    np.testing.assert_allclose(with_row - zero_row, h @ table[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", CGANS)
def test_every_weight_gets_a_gradient(family):
    _, G, D = build(family)
    x = feed()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x["image"])
        fake = G(select_inputs(G, x), training=True)
        g_obj = tf.reduce_sum(D(select_inputs(D, {**x, "image": fake}), training=True))
        d_real = tf.reduce_sum(D(select_inputs(D, x), training=True))
    g_grads = tape.gradient(g_obj, G.trainable_variables)
    d_grads = tape.gradient(d_real, D.trainable_variables)
    assert all(g is not None for g in g_grads) and all(g is not None for g in d_grads)
    assert tape.gradient(d_real, x["image"]) is not None  # R1 can be computed


def test_style_cgan_writer_embedding_is_replaceable():
    _, G, D = build("style_cgan")
    for model in (G, D):
        layer = model.get_layer("writer_embedding")
        assert isinstance(layer, keras.layers.Embedding) and layer.input_dim == NUM_WRITERS
    # Copying writer 3's row onto writer 0 makes writer 0 draw exactly like writer 3.
    table = G.get_layer("writer_embedding").embeddings
    rows = table.numpy()
    rows[0] = rows[3]
    table.assign(rows)
    np.testing.assert_allclose(run(G, feed(writer=(0, 0))), run(G, feed(writer=(3, 3))), atol=1e-6)


def test_parameter_counts_scale_with_width():
    for family in CGANS:
        _, G1, D1 = build(family, width=1.0)
        _, Gq, Dq = build(family, width=0.25)
        assert Gq.count_params() < 0.2 * G1.count_params()
        assert Dq.count_params() < 0.2 * D1.count_params()
        assert G1.count_params() > 1_000_000 and D1.count_params() > 1_000_000


def test_channel_plan():
    assert blocks.channel_plan(32, 1.0) == {4: 256, 8: 128, 16: 64, 32: 32}
    assert blocks.channel_plan(64, 1.0) == {4: 256, 8: 256, 16: 128, 32: 64, 64: 32}
    assert blocks.channel_plan(32, 0.25) == {4: 64, 8: 32, 16: 16, 32: 8}


@pytest.mark.parametrize("family", CGANS)
def test_mixed_float16_outputs_are_float32(family, mixed_float16):
    _, G, D = build(family)
    assert G.get_layer("g_out_conv").compute_dtype == "float16"  # the policy is followed ...
    assert D.get_layer("d_features").compute_dtype == "float16"
    x = feed()
    fake = G(select_inputs(G, x), training=True)
    logits = D(select_inputs(D, {**x, "image": fake}), training=True)
    assert fake.dtype == tf.float32 and logits.dtype == tf.float32  # ... up to the outputs
    assert np.all(np.abs(fake.numpy()) <= 1.0) and np.all(np.isfinite(logits.numpy()))


def test_construction_is_deterministic_given_the_seed():
    _, G1, D1 = build("style_cgan", seed=5)
    _, G2, D2 = build("style_cgan", seed=5)
    _, G3, _ = build("style_cgan", seed=6)
    for a, b in ((G1, G2), (D1, D2)):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wb) for wa, wb in zip(G1.get_weights(), G3.get_weights()))


def test_save_and_load_round_trip(tmp_path):
    _, G, D = build("style_cgan")
    x = feed()
    for model in (G, D):
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(run(loaded, x), run(model, x), atol=1e-6)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="num_chars"):
        get_family("char_cgan").build_generator(ModelConfig(family="char_cgan", num_chars=0))
    with pytest.raises(ValueError, match="num_writers"):
        get_family("style_cgan").build_discriminator(
            ModelConfig(family="style_cgan", num_chars=5, num_writers=0))
    with pytest.raises(ValueError, match="resolution"):
        get_family("char_cgan").build_generator(ModelConfig(resolution=48, num_chars=5))


def test_family_registry():
    assert set(FAMILIES) == set(config.FAMILIES)
    for name in CGANS:
        module = get_family(name)
        assert callable(module.build_generator) and callable(module.build_discriminator)
        assert isinstance(module.USES_WRITER, bool)
    assert get_family("char_cgan").USES_WRITER is False
    assert get_family("style_cgan").USES_WRITER is True
    with pytest.raises(ValueError, match="char_cgan.*style_cgan.*stylegan"):
        get_family("dcgan")


def test_select_inputs_requires_the_model_keys():
    _, G, _ = build("char_cgan")
    x = feed()
    assert set(select_inputs(G, x)) == {"z", "char"}
    with pytest.raises(KeyError, match="char"):
        select_inputs(G, {"z": x["z"]})
