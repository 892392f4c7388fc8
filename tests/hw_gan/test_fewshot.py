"""The fewshot family (issue 18): the generator's contract (any k, any order, padding), the
trainer's leave-one-out redraw, its losses, and an exact resume. Tiny models on synthetic
records: behaviour, not quality."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import font, tfrecords
from data_pipeline.schema import to_float
from hw_gan import config as config_lib
from hw_gan.models import fewshot, get_family
from hw_gan.training import FewShotTrainer, StopRequest, make_trainer
from tests.conftest import tiny_grouped_cfg, writer_split_dataset
from tests.hw_gan.test_stylegan import _trainer, check_exact_resume

CHARS = "abcde"
WRITERS = tuple(f"w{i}" for i in range(6))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return writer_split_dataset(tmp_path_factory.mktemp("fsdata") / "ds", WRITERS, CHARS)


def _model_cfg(**kw):
    return config_lib.ModelConfig(family="fewshot", resolution=32, width=0.125,
                                  num_chars=len(CHARS), num_writers=len(WRITERS), **kw)


def _cfg(data_dir, model_dir, steps=4, style_tokens=0, **train):
    train = {"aux_char_weight": 0.1, "aux_writer_weight": 0.1, **train}
    return tiny_grouped_cfg(data_dir, model_dir, _model_cfg(style_tokens=style_tokens), steps,
                            eval_at_end=False, **train)


def _inputs(rng, b, k):
    return {"content": rng.uniform(-1, 1, (b, 32, 32, 1)).astype("float32"),
            "style_images": rng.uniform(-1, 1, (b, k, 32, 32, 1)).astype("float32"),
            "style_contents": rng.uniform(-1, 1, (b, k, 32, 32, 1)).astype("float32"),
            "style_mask": np.ones((b, k), "float32")}


def _open_token_attention(generator, rng):
    """Token attention starts as the identity (zero output projection): open it, as training
    would, so that a test can see what the tokens carry."""
    attends = [l for l in fewshot.parts(generator)[2].layers if l.name.startswith("g_attend")]
    for layer in attends:
        layer.out.assign(rng.normal(0, 0.3, layer.out.shape).astype("float32"))
    return attends


@pytest.mark.parametrize("tokens", [0, 4])
def test_family_is_registered_and_takes_any_k_in_any_order_with_padding(tokens):
    assert "fewshot" in config_lib.FAMILIES and get_family("fewshot").USES_WRITER
    keras.utils.set_random_seed(0)
    g = fewshot.build_generator(_model_cfg(style_tokens=tokens))
    rng = np.random.default_rng(0)
    assert len(_open_token_attention(g, rng)) == (2 if tokens else 0)
    assert fewshot.parts(g)[1].output.shape[-1] == fewshot.style_dim(g_cfg := _model_cfg(
        style_tokens=tokens)) == fewshot.global_style_dim(g_cfg) + tokens * fewshot.TOKEN_DIM
    for k in (1, 3, 30):
        out = g(_inputs(rng, 2, k)).numpy()
        assert out.shape == (2, 32, 32, 1) and np.abs(out).max() <= 1.0
    x = _inputs(rng, 2, 5)
    base = g(x).numpy()
    perm = np.array([3, 0, 4, 1, 2])
    shuffled = {**x, "style_images": x["style_images"][:, perm],
                "style_contents": x["style_contents"][:, perm]}
    np.testing.assert_allclose(g(shuffled).numpy(), base, atol=1e-5)
    # Padding: two extra references masked out change nothing.
    pad = {k: np.concatenate([v, np.random.default_rng(1).uniform(
               -1, 1, (2, 2) + v.shape[2:]).astype("float32")], 1)
           for k, v in x.items() if k.startswith("style_") and k != "style_mask"}
    padded = {**x, **pad, "style_mask": np.concatenate([x["style_mask"], np.zeros((2, 2),
                                                                                  "float32")], 1)}
    np.testing.assert_allclose(g(padded).numpy(), base, atol=1e-5)
    d = fewshot.build_discriminator(_model_cfg())
    logits = d({"image": base, "char": np.array([0, 1]), "writer": np.array([2, 3])})
    assert logits.shape == (2,)


def test_decoder_width_widens_the_decoder_and_the_style_code_and_nothing_else(data_dir, tmp_path):
    """--decoder_width: the decoder's channels and the style code follow it, the style glyph
    net's convolutions and D keep --width; a run resumes only at its own decoder width; bad
    values and other families are refused naming the flag."""
    from hw_gan import experiment

    narrow_cfg, wide_cfg = _model_cfg(), _model_cfg(decoder_width=0.25)
    assert (fewshot.style_dim(narrow_cfg), fewshot.style_dim(wide_cfg)) == (32, 64)
    keras.utils.set_random_seed(0)
    narrow, wide = fewshot.build_generator(narrow_cfg), fewshot.build_generator(wide_cfg)

    def convs(model):
        return {l.name: l.kernel.shape for l in model.layers if isinstance(l, keras.layers.Conv2D)}

    (n_net, _, n_dec), (w_net, w_head, w_dec) = fewshot.parts(narrow), fewshot.parts(wide)
    assert convs(n_net) == convs(w_net) and convs(n_net)
    n_convs, w_convs = convs(n_dec), convs(w_dec)
    assert all(w_convs[k][-1] >= n_convs[k][-1] for k in n_convs)  # (8 channels at least)
    assert w_convs["g_mid_conv"] == (3, 3, 32, 32) and n_convs["g_mid_conv"] == (3, 3, 16, 16)
    assert w_head.output.shape[-1] == 64
    out = wide(_inputs(np.random.default_rng(0), 2, 3)).numpy()
    assert out.shape == (2, 32, 32, 1) and np.abs(out).max() <= 1.0
    assert (fewshot.build_discriminator(wide_cfg).count_params()
            == fewshot.build_discriminator(narrow_cfg).count_params())
    # A run at one decoder width does not resume at another.
    cfg = tiny_grouped_cfg(data_dir, tmp_path / "run", wide_cfg, 1, eval_at_end=False,
                           aux_char_weight=0.1, aux_writer_weight=0.1)
    experiment.run(cfg, log=lambda msg: None)
    with pytest.raises(ValueError, match=r"cannot resume: model\.decoder_width: 0\.25 -> 0\.0"):
        experiment.run(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, decoder_width=0.0), train=dataclasses.replace(cfg.train, steps=2)),
            log=lambda msg: None)
    with pytest.raises(ValueError, match=r"^--decoder_width: 5\.0 is outside \[0\.05, 4\]"):
        config_lib.validate(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, decoder_width=5.0)))
    with pytest.raises(ValueError, match=r"^--decoder_width: only the fewshot family"):
        config_lib.validate(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, family="stylegan")))


def test_content_skip_adds_the_font_images_16px_map_to_a_decoder_that_starts_as_the_plain_one(
        data_dir, tmp_path):
    """--content_skip: the decoder gains one 1x1 convolution of the font image's 16x16 trunk map,
    added after the 16 px up block and zero at start, so with the plain decoder's weights it draws
    what the plain one draws, then learns (its kernel gets a gradient) and the glyph follows the
    map; a run resumes only with its own setting; other families are refused naming the flag."""
    from hw_gan import experiment

    keras.utils.set_random_seed(0)
    plain = fewshot.build_generator(_model_cfg())
    skip = fewshot.build_generator(_model_cfg(content_skip=True))
    p_dec, s_dec = fewshot.parts(plain)[2], fewshot.parts(skip)[2]
    assert ({l.name for l in s_dec.layers} - {l.name for l in p_dec.layers}
            == {"g_content16", "g_content16_add"})
    conv = s_dec.get_layer("g_content16")
    channels = s_dec.get_layer("g_block16_conv2").kernel.shape[-1]
    assert conv.kernel.shape == (1, 1, s_dec.get_layer("c_block16_out").output.shape[-1], channels)
    assert not np.any(conv.kernel.numpy()) and not np.any(conv.bias.numpy())
    by_path = {v.path: v for v in plain.weights}
    for v in skip.weights:
        if not v.path.startswith("g_content16"):
            v.assign(by_path[v.path])
    inputs = _inputs(np.random.default_rng(1), 2, 3)
    np.testing.assert_array_equal(plain(inputs).numpy(), skip(inputs).numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(skip(inputs) - 0.5))
    assert np.abs(tape.gradient(loss, conv.kernel).numpy()).max() > 0
    conv.kernel.assign(np.random.default_rng(2).normal(0, 0.5, conv.kernel.shape))
    assert np.abs(skip(inputs).numpy() - plain(inputs).numpy()).max() > 1e-3
    # A run with the skip trains, records it, and does not resume without it.
    cfg = tiny_grouped_cfg(data_dir, tmp_path / "run", _model_cfg(content_skip=True), 1,
                           eval_at_end=False, aux_char_weight=0.1, aux_writer_weight=0.1)
    experiment.run(cfg, log=lambda msg: None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["content_skip"]
    with pytest.raises(ValueError, match=r"cannot resume: model\.content_skip: True -> False"):
        experiment.run(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, content_skip=False), train=dataclasses.replace(cfg.train, steps=2)),
            log=lambda msg: None)
    with pytest.raises(ValueError, match=r"^--content_skip: only the fewshot family"):
        config_lib.validate(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, family="stylegan")))


def test_drawing_settings_are_checked_by_name_and_may_change_on_resume(data_dir, tmp_path):
    """--untrained_style_clip: a bound in [0, 10] standard deviations, for the fewshot family
    only; read when drawing, so a run resumes or exports with another one. The same for
    --style_read_copies."""
    cfg = _cfg(data_dir, tmp_path)
    model = dataclasses.replace
    config_lib.validate(cfg.replace(model=model(cfg.model, untrained_style_clip=0.0)))
    for bad in (-0.1, 11.0):
        with pytest.raises(ValueError, match=rf"^--untrained_style_clip: {bad} is outside \[0, 10\]"):
            config_lib.validate(cfg.replace(model=model(cfg.model, untrained_style_clip=bad)))
    other = cfg.replace(model=model(cfg.model, family="stylegan", untrained_style_clip=0.1))
    with pytest.raises(ValueError, match=r"^--untrained_style_clip: only the fewshot family"):
        config_lib.validate(other)
    assert not config_lib.incompatible_changes(
        cfg, cfg.replace(model=model(cfg.model, untrained_style_clip=0.05)))
    # --style_read_copies likewise: how a style is read, in [0, 32], may change on resume.
    for bad in (-1, 33):
        with pytest.raises(ValueError, match=rf"^--style_read_copies: {bad} is outside \[0, 32\]"):
            config_lib.validate(cfg.replace(model=model(cfg.model, style_read_copies=bad)))
    assert not config_lib.incompatible_changes(
        cfg, cfg.replace(model=model(cfg.model, style_read_copies=0)))


def test_local_style_tokens_are_one_softmax_over_every_references_positions():
    """TokenSums per reference, the masked mean over references, then TokenSlots = for each
    learned query, softmax over the positions of ALL the set's references of its values."""
    rng = np.random.default_rng(2)
    sums = fewshot.TokenSums(3)
    maps = rng.normal(0, 1, (5, 8, 8, 6)).astype("float32")  # 5 references' feature maps
    per_ref = sums(maps)
    assert per_ref.shape == (5, 3 * (fewshot.TOKEN_DIM + 1))
    mask = np.array([[1, 1, 0, 1, 0]], "float32")
    slots = fewshot.TokenSlots(3)(fewshot.masked_mean(per_ref[None], mask)).numpy()[0]
    flat = maps[mask[0] > 0].reshape(-1, 6)  # every position of the 3 references in the set
    keys = (maps[mask[0] > 0].reshape(3, 64, 6) @ sums.key.numpy()
            + sums.position.numpy()).reshape(-1, fewshot.TOKEN_KEY)
    logits = sums.queries.numpy() @ keys.T / np.sqrt(fewshot.TOKEN_KEY)
    logits = fewshot.LOGIT_BOUND * np.tanh(logits / fewshot.LOGIT_BOUND)
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    np.testing.assert_allclose(slots, weights @ (flat @ sums.value.numpy()), rtol=1e-4,
                               atol=1e-5)


def test_local_style_tokens_carry_what_the_global_code_does_not(data_dir, tmp_path):
    """With --style_tokens the style is the global code then the tokens; the decoder reads the
    tokens (change only them and the glyph changes), the trainer's leave-one-out redraw still
    equals the generator's, and --style_tokens is refused for another family."""
    trainer = _trainer(_cfg(data_dir, tmp_path, style_tokens=4))
    _open_token_attention(trainer.generator, np.random.default_rng(0))
    batch = next(iter(trainer.dataset(0)))
    images, chars = batch["image"], batch["char"]
    k = trainer.group_size
    fast = trainer.redraw(images, chars, training=False).numpy()
    refs = tf.reshape(images, [-1, k, 32, 32, 1])
    slow = trainer.generator({
        "content": trainer.content(chars), "style_images": tf.repeat(refs, k, axis=0),
        "style_contents": tf.repeat(tf.reshape(trainer.content(chars), [-1, k, 32, 32, 1]), k,
                                    axis=0),
        "style_mask": tf.constant(np.tile(1.0 - np.eye(k, dtype="float32"),
                                          (len(chars) // k, 1)))}, training=False).numpy()
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    decoder = fewshot.parts(trainer.generator)[2]
    style = np.random.default_rng(1).normal(0, 1, (2, fewshot.style_dim(trainer.cfg.model)))
    other = style.copy()
    g = fewshot.global_style_dim(trainer.cfg.model)
    other[:, g:] = np.random.default_rng(2).normal(0, 1, other[:, g:].shape)
    content = trainer.content(chars[:2])
    drawn = [decoder({"content": content, "style": tf.constant(s, tf.float32)}).numpy()
             for s in (style, other)]
    assert np.abs(drawn[0] - drawn[1]).max() > 1e-3
    with pytest.raises(ValueError, match="--style_tokens: only the fewshot family"):
        config_lib.validate(dataclasses.replace(
            trainer.cfg, model=dataclasses.replace(trainer.cfg.model, family="stylegan")))


def _bar(top, left, bottom, right, size=32):
    img = -np.ones((size, size, 1), np.float32)
    img[top:bottom, left:right] = 1.0
    return img


def test_place_scales_a_glyphs_ink_into_a_box_keeping_its_shape():
    glyphs = np.stack([_bar(4, 10, 24, 14), _bar(0, 0, 0, 0)])  # 20 x 4 ink; a blank glyph
    boxes = tf.constant([[2.0, 2.0, 12.0, 22.0], [0.0, 0.0, 32.0, 32.0]])
    np.testing.assert_array_equal(fewshot.ink_extent(tf.constant(glyphs)).numpy(),
                                  [[4, 10, 24, 14], [0, 0, 32, 32]])
    out = fewshot.place(glyphs, boxes).numpy()
    ink = out[0, ..., 0] > 0
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    # Scale min(10 / 20, 20 / 4) = 0.5: 10 rows x 2 columns, centred in the box.
    assert (rows[0], rows[-1] + 1) == (2, 12) and (cols[0], cols[-1] + 1) == (11, 13)
    assert out[0].max() > 0.7 and out[0].min() == pytest.approx(-1.0)  # area-sampled edges
    assert out[1].max() == pytest.approx(-1.0)  # nothing to place: paper


def test_untrained_characters_styles_are_kept_near_the_mean_and_the_others_left_alone():
    mean = np.array([0.0, 1.0, -1.0], np.float32)
    spread = np.array([1.0, 2.0, 0.5], np.float32)
    styles = np.array([[3.0, 1.5, -1.1], [3.0, 1.5, -1.1], [-0.2, -4.0, 2.0]], np.float32)
    out = fewshot.limit_untrained(styles, [True, False, False], mean, spread, 0.5).numpy()
    np.testing.assert_array_equal(out[0], styles[0])
    np.testing.assert_allclose(out[1], [0.5, 1.5, -1.1])  # within the bounds: kept
    np.testing.assert_allclose(out[2], [-0.2, 0.0, -0.75])
    np.testing.assert_array_equal(
        fewshot.limit_untrained(styles, [False] * 3, mean, spread, None).numpy(), styles)


def test_compose_puts_base_and_mark_copies_in_their_boxes_and_passes_others_through():
    base = np.stack([_bar(2, 8, 30, 24), _bar(2, 8, 30, 24)])
    mark = np.stack([_bar(0, 12, 32, 20), _bar(0, 12, 32, 20)])  # a tall stroke
    boxes = np.zeros((2, 3, 4), np.float32)
    boxes[:, 0] = [12, 8, 30, 24]
    boxes[:, 1] = [2, 8, 8, 12]
    boxes[:, 2] = [2, 18, 8, 22]
    out = fewshot.compose(base, mark, boxes, [True, False]).numpy()
    np.testing.assert_array_equal(out[1], base[1])  # not composed: the glyph as drawn
    ink = out[0, ..., 0] > 0
    # The 28 x 16 base into an 18 x 16 box: scale 18 / 28, so 18 rows x 10.3 columns, centred.
    assert ink[12:30, 12:20].all() and not ink[12:30, 8:10].any() and ink[:10, 8:24].any()
    allowed = np.zeros((32, 32), bool)
    for t, l, b, r in boxes[0].astype(int):
        allowed[t:b, l:r] = True
    assert not (ink & ~allowed).any()
    assert ink[2:8, 8:12].any() and ink[2:8, 18:22].any() and not ink[:10, 13:17].any()
    # A mark shrunk to a thin line keeps the pen's full strength.
    assert out[0, 2:8, 8:12].max() == pytest.approx(1.0)
    boxes[0, 2] = 0.0  # no second copy
    one = fewshot.compose(base, mark, boxes, [True, True]).numpy()
    assert not (one[0, 2:8, 18:22] > 0).any() and (one[0, 2:8, 8:12] > 0).any()


def test_trainer_redraw_is_the_generator_with_leave_one_out_references(data_dir, tmp_path):
    trainer = _trainer(_cfg(data_dir, tmp_path))
    assert isinstance(trainer, FewShotTrainer)
    batch = next(iter(trainer.dataset(0)))
    images, chars = batch["image"], batch["char"]
    fast = trainer.redraw(images, chars, training=False).numpy()
    k = trainer.group_size
    refs = tf.reshape(images, [-1, k, 32, 32, 1])
    ref_contents = tf.reshape(trainer.content(chars), [-1, k, 32, 32, 1])
    mask = 1.0 - np.eye(k, dtype="float32")
    slow = trainer.generator({
        "content": trainer.content(chars),
        "style_images": tf.repeat(refs, k, axis=0),
        "style_contents": tf.repeat(ref_contents, k, axis=0),
        "style_mask": tf.constant(np.tile(mask, (len(chars) // k, 1)))}, training=False).numpy()
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    # A seed disturbs the references only when --style_ref_augment asks for it.
    seed = tf.constant([0, 3], tf.int64)
    np.testing.assert_array_equal(trainer.redraw(images, chars, training=False, seed=seed), fast)
    augmented = _trainer(_cfg(data_dir, tmp_path / "aug", style_ref_augment=1.0))
    plain = augmented.redraw(images, chars, training=False).numpy()
    disturbed = augmented.redraw(images, chars, training=False, seed=seed).numpy()
    assert np.abs(disturbed - plain).max() > 1e-3
    np.testing.assert_array_equal(
        augmented.redraw(images, chars, training=False, seed=seed).numpy(), disturbed)


def test_fewshot_trains_with_its_losses_and_resumes_exactly(data_dir, tmp_path):
    straight = _trainer(_cfg(data_dir, tmp_path / "b", steps=4))
    straight.train()
    check_exact_resume(lambda steps: _cfg(data_dir, tmp_path / "c", steps=steps), straight,
                       lambda t: (t.generator, t.ema_generator, t.discriminator))
    grid = straight.sample_grid(np.array([0]), np.array([0]))
    assert grid.shape == (1, 2 * 2 * 32, 4 * 32, 1)
    # One more step of the straight run, with R1, reports every loss.
    out = straight._train_step_fn(True)(iter(straight.dataset(4)))
    assert {"d_loss", "g_loss", "g_aux", "d_aux", "r1", "recon_l1", "recon_feat"} <= set(out)
    assert all(np.isfinite(float(v)) for v in out.values())


def test_the_d_and_g_steps_run_alone_after_the_training_step(data_dir, tmp_path):
    """Each step that takes a batch hands its own real glyphs to the generator: the D and G
    steps run in tf.functions of their own after the training step traced (as
    benchmarks/train.py times them), and draw from their batch, not a stale one. (The family's
    traced training step: the other tests here run it eagerly.)"""
    trainer = _trainer(_cfg(data_dir, tmp_path / "parts", steps=2, run_eagerly=False))
    it = iter(trainer.dataset(0))
    trainer._train_step_fn(True)(it)
    batch = next(it)
    step = tf.constant(1, tf.int64)
    d = tf.function(lambda b, s: trainer._d_step(b, s, False))
    g = tf.function(lambda b, s: trainer._g_step(b, s))
    assert {"d_loss", "d_aux"} <= set(d(batch, step)) and "recon_l1" in g(batch, step)
    fakes = tf.function(lambda b: (trainer._g_step(b, step), trainer._real)[1])
    np.testing.assert_array_equal(fakes(batch).numpy(), batch["image"].numpy())


def test_a_style_is_read_from_the_references_and_fixed_disturbed_copies_of_them(trained):
    """fewshot.reading_copies: the references first, then `copies` disturbed copies, each draw
    fixed by the copy and the reference's position, so a set reads alike alone or among others;
    the style (Python and export alike, the export test) is read from all of them, and
    --style_read_copies=0 reads the references alone."""
    from hw_gan.inversion import load_model

    rng = np.random.default_rng(5)
    x = np.stack([np.stack([_bar(8, 10 + i, 24, 13 + i) for i in range(3)])] * 2)  # [2, 3, ...]
    x[1] = x[1, ::-1]
    read = fewshot.reading_copies(x, 4).numpy()
    assert read.shape == (2, 15, 32, 32, 1)
    np.testing.assert_array_equal(read[:, :3], x)
    np.testing.assert_array_equal(read, fewshot.reading_copies(x, 4).numpy())
    np.testing.assert_array_equal(read[1], fewshot.reading_copies(x[1:], 4).numpy()[0])
    copies = read[:, 3:].reshape(2, 4, 3, 32, 32, 1)
    assert all(not np.array_equal(copies[0, i], x[0]) for i in range(4))  # each copy disturbed
    assert not np.array_equal(copies[0, 0], copies[0, 1])  # and each its own way
    np.testing.assert_array_equal(fewshot.reading_copies(x, 0).numpy(), x)
    model = load_model(trained)
    assert model.cfg.model.style_read_copies == 8
    images = rng.uniform(-1, 1, (2, 3, 32, 32, 1)).astype("float32")
    chars = np.array([[0, 1, 2], [2, 3, 0]], np.int32)
    style = model.extract(images, chars)
    trainer = model.trainer
    trainer.cfg = trainer.cfg.replace(model=dataclasses.replace(trainer.cfg.model,
                                                                style_read_copies=0))
    try:
        plain = model.extract(images, chars)
        set_style, head = fewshot.set_style_parts(trainer.ema_generator)
        contents = tf.reshape(trainer.content(chars.reshape(-1)), images.shape)
        alone = head(set_style(images, contents, tf.ones([2, 3])), training=False).numpy()
        np.testing.assert_allclose(plain, alone, atol=1e-6)
        by_hand = head(set_style(fewshot.reading_copies(images, 8), tf.tile(contents, [1, 9, 1, 1, 1]),
                                 tf.ones([2, 27])), training=False).numpy()
        np.testing.assert_allclose(style, by_hand, atol=1e-6)
        assert np.abs(style - plain).max() > 1e-4
    finally:
        trainer.cfg = model.cfg


def test_references_are_disturbed_as_another_capture_would_and_reproducibly():
    """The draw comes from a stateless seed (in training: the step's), so a resumed run
    disturbs each step's references as an uninterrupted one does."""
    from hw_gan.models.fewshot import disturb_references

    glyphs = np.stack([_bar(8, 14, 24, 17)] * 64)  # a 3-pixel stroke, 64 times
    seed = tf.constant([3, 7], tf.int64)
    out = disturb_references(glyphs, 1.0, seed).numpy()
    np.testing.assert_array_equal(out, disturb_references(glyphs, 1.0, seed).numpy())
    assert not np.array_equal(out, disturb_references(glyphs, 1.0, seed + 1).numpy())
    np.testing.assert_allclose(disturb_references(glyphs, 0.0, seed).numpy(), glyphs)
    assert out.min() >= -1.0 and out.max() <= 1.0
    ink = ((out + 1) / 2).sum((1, 2, 3))
    plain = ((glyphs[0] + 1) / 2).sum()
    # Some pens came out thicker, some thinner, each glyph its own.
    assert ink.max() > 1.2 * plain and ink.min() < 0.85 * plain
    assert len(np.unique(np.round(ink, 3))) > 32
    # Off the ink, nothing appears far from the stroke (a pixel of pen, a pixel of blur).
    assert (out[:, :, :11] <= -1.0 + 1e-6).all() and (out[:, :, 20:] <= -1.0 + 1e-6).all()
    with pytest.raises(ValueError, match="style_ref_augment"):
        config_lib.validate(dataclasses.replace(
            config_lib.ExperimentConfig(), train=config_lib.TrainConfig(style_ref_augment=1.5)))


def test_content_shape_loss_asks_unseen_characters_to_keep_their_font_shape(data_dir, tmp_path,
                                                                          monkeypatch):
    """--content_shape_weight: characters the training data lacks (shape_pool) are drawn by the
    decoder in the batch's styles and penalised where their blurred ink strays from their
    fitted font image's further than a typical real glyph does (SHAPE_MARGIN); only the decoder
    learns from it, the draw is seeded by the step, and bad values are refused by name."""
    from hw_gan.training import fewshot_trainer as ft

    fitted = font.fitted_images("Oolx", 32)
    assert fitted.shape == (4, 32, 32) and fitted.dtype == np.uint8
    for img in fitted:  # placed as a handwritten sample: the ink's longer side fills the box
        ys, xs = np.nonzero(img >= 96)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) >= 24
    sig = ft.shape_signature(to_float(fitted)[..., None], 32).numpy()
    np.testing.assert_allclose(np.linalg.norm(sig, axis=1), 1.0, atol=1e-5)
    heavy = tf.nn.max_pool2d(to_float(fitted)[..., None], 3, 1, "SAME")
    same_shape = float(sig[0] @ ft.shape_signature(heavy, 32).numpy()[0])
    assert same_shape > 0.9 > float(sig[0] @ sig[2])  # a heavier pen is the same O; l is not
    assert not ft.shape_signature(-np.ones((1, 32, 32, 1), "float32"), 32).numpy().any()

    charset = list(tfrecords.load_manifest(data_dir)["charset"])
    pool, contents, signatures = ft.shape_pool(charset, "Z", 32)
    assert contents.shape == (len(pool), 32, 32, 1) and signatures.shape == (len(pool), 1024)
    assert {"ß", "Ж", "λ", "€", "←"} <= set(pool) and not set(pool) & set(charset + ["Z"])
    assert "é" not in pool and "Ζ" not in pool  # composed; a Greek Z looks like the held-out Z
    assert "Ζ" in ft.shape_pool(charset, "", 32)[0]
    # A pool character drawn exactly as its fitted font image costs nothing.
    own = ft.shape_signature(to_float(font.fitted_images(pool[:3], 32))[..., None], 32)
    np.testing.assert_allclose(tf.reduce_sum(own * signatures[:3], 1).numpy(), 1.0, atol=1e-5)

    trainer = _trainer(_cfg(data_dir, tmp_path, content_shape_weight=2.0, content_shape_glyphs=4))
    out = trainer._train_step_fn(False)(iter(trainer.dataset(0)))
    assert "content_shape" in out and 0.0 <= float(out["content_shape"]) <= 2.0 * 2.0
    step = tf.constant(5, tf.int64)
    batch = next(iter(trainer.dataset(0)))
    with tf.GradientTape() as tape:
        trainer.redraw(batch["image"], batch["char"])
        styles = trainer._style
        loss = trainer.content_shape_loss(step, styles)
    grads = tape.gradient(loss, trainer.decoder.trainable_variables
                          + trainer.glyph_net.trainable_variables)
    n = len(trainer.decoder.trainable_variables)
    assert float(loss) > 0 and any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[:n])
    assert all(g is None for g in grads[n:])  # the styles are held fixed
    assert float(trainer.content_shape_loss(step, styles)) == float(loss)
    assert float(trainer.content_shape_loss(step + 1, styles)) != float(loss)
    # Switched on for a resumed run's tuning phase; refused where it cannot apply.
    assert not config_lib.incompatible_changes(
        _cfg(data_dir, tmp_path), _cfg(data_dir, tmp_path, content_shape_weight=1.0))
    for bad, message in (({"content_shape_weight": -1.0}, "must be >= 0"),
                         ({"content_shape_glyphs": 0}, "must be >= 1")):
        with pytest.raises(ValueError, match=f"^--{next(iter(bad))}: {message}"):
            _cfg(data_dir, tmp_path, **bad)
    cfg = _cfg(data_dir, tmp_path, content_shape_weight=1.0)
    monkeypatch.setattr(ft, "SHAPE_BLOCKS", ())
    with pytest.raises(ValueError, match=r"^--content_shape_weight: every character of the pool"):
        _trainer(cfg)
    with pytest.raises(ValueError, match=r"^--content_shape_weight: only the fewshot family"):
        config_lib.validate(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, family="stylegan")))


def test_content_class_loss_asks_unseen_characters_to_be_told_apart(data_dir, tmp_path):
    """--content_class_weight: a classifier of the training characters and the pool's, trained
    on real glyphs (never a held-out character's) and on font images disturbed as handwriting,
    must read each drawn pool character as itself; it is kept in the run and reused on resume;
    only the decoder learns from it; bad values are refused by name."""
    from hw_gan.training import fewshot_trainer as ft

    fitted = to_float(font.fitted_images("Qß€", 32))[..., None]
    made = ft.handwrite(np.repeat(fitted, 2, 0), tf.constant([4, 2])).numpy()
    assert made.shape == (6, 32, 32, 1) and made.min() >= -1.0 and made.max() <= 1.0
    np.testing.assert_array_equal(made, ft.handwrite(np.repeat(fitted, 2, 0),
                                                     tf.constant([4, 2])).numpy())
    assert not np.array_equal(made[0], made[1])  # each glyph its own draw
    ink = (made + 1.0) / 2.0
    assert (ink.reshape(6, -1).sum(1) > 20).all()  # the shape stays on the paper
    sig = ft.shape_signature(made, 32).numpy()
    own = ft.shape_signature(np.repeat(fitted, 2, 0), 32).numpy()
    assert ((sig * own).sum(1) > 0.3).all()  # and recognisably its own

    cfg = _cfg(data_dir, tmp_path, content_class_weight=1.0, content_class_steps=3,
               content_shape_glyphs=4)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, holdout_chars="b"))
    trainer = _trainer(cfg)
    charset = list(tfrecords.load_manifest(data_dir)["charset"])
    assert trainer.content_classifier is None  # loaded by train(), not by building a trainer
    with pytest.raises(RuntimeError, match="content classifier is not loaded"):
        trainer.content_class_loss(tf.constant(0, tf.int64), tf.zeros([8, 64]))
    images, chars, labels, fonts, ids = trainer.content_class_data()
    assert len(images) == len(chars) > 0 and charset.index("b") not in set(chars.tolist())
    assert "b" not in labels and {"a", "ß", "€"} <= set(labels)
    classes = trainer.content_class_labels()
    assert classes[:len(charset)] == charset and classes[len(charset):] == trainer.shape_chars
    assert [classes[i] for i in ids] == labels and fonts.shape == (len(labels), 32, 32, 1)
    # A batch: half real glyphs, half font images, both inked alike (pen, blur, fade disturbed),
    # so the ink never tells the classifier which half a glyph came from.
    x, y = ft.class_batch(images, chars, fonts, ids, tf.constant([7, 1]))
    half = ft.CLASS_BATCH // 2
    assert x.shape == (2 * half, 32, 32, 1) and set(y[:half].numpy()) <= set(chars.tolist())
    assert set(y[half:].numpy()) <= set(ids.tolist())
    ridx = tf.random.stateless_uniform([half], tf.constant([7, 1], tf.int64), 0, len(chars),
                                       tf.int32)
    raw = tf.gather(images, ridx)
    np.testing.assert_array_equal(y[:half], chars[ridx.numpy()])  # the very glyphs drawn
    assert float(tf.reduce_max(tf.abs(x[:half] - raw))) > 0.1  # the real ones disturbed too
    np.testing.assert_array_equal(x, ft.class_batch(images, chars, fonts, ids,
                                                    tf.constant([7, 1]))[0])

    model = trainer.load_content_classifier()
    report = trainer.content_class_report
    assert report["status"] == "trained" and report["classes"] == len(classes)
    assert 0.0 <= report["accuracy"]["real"] <= 1.0 and 0.0 <= report["accuracy"]["font"] <= 1.0
    assert model.output.shape[-1] == len(classes) and not model.trainable_variables
    saved = sorted(p.name for p in (tmp_path / ft.CLASS_DIR).iterdir())
    assert saved == [ft.CLASS_META, ft.CLASS_WEIGHTS]
    trainer.content_classifier = model
    out = trainer._train_step_fn(False)(iter(trainer.dataset(0)))
    assert "content_class" in out and np.isfinite(float(out["content_class"]))
    assert float(out["content_class"]) >= 0.0

    # The gradient reaches the decoder and not the style net. A fixed random linear classifier
    # stands in for the 3-step one, whose loss may happen to be 0 for the drawn glyphs: with
    # its near-uniform reading of every glyph the loss is always > 0 and depends on the ink.
    c = len(classes)
    w = tf.random.stateless_normal([32 * 32, c], [3, 3]) * 0.01
    trainer.content_classifier = lambda x, training: tf.nn.softmax(tf.reshape(x, [-1, 1024]) @ w)
    step = tf.constant(5, tf.int64)
    batch = next(iter(trainer.dataset(0)))
    with tf.GradientTape(persistent=True) as tape:
        trainer.redraw(batch["image"], batch["char"])
        styles = trainer._style
        draw = trainer.pool_draw(step, styles)
        loss = trainer.content_class_loss(step, styles, draw)
    grads = tape.gradient(loss, trainer.decoder.trainable_variables
                          + trainer.glyph_net.trainable_variables)
    n = len(trainer.decoder.trainable_variables)
    assert float(loss) > 0 and any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[:n])
    assert all(g is None for g in grads[n:])  # the styles are held fixed
    assert float(trainer.content_class_loss(step, styles)) == float(loss)  # the same draw
    # A classifier that knows nothing (uniform) costs log(C x CLASS_MARGIN) per glyph; one
    # that reads every glyph as its own character costs nothing.
    trainer.content_classifier = lambda x, training: tf.fill([tf.shape(x)[0], c], 1.0 / c)
    np.testing.assert_allclose(float(trainer.content_class_loss(step, styles, draw)),
                               np.log(c * ft.CLASS_MARGIN), rtol=1e-5)
    trainer.content_classifier = lambda x, training: tf.one_hot(draw[0] + len(charset), c)
    assert float(trainer.content_class_loss(step, styles, draw)) == 0.0

    # A resumed run reads the saved classifier; another setting trains a new one.
    again = _trainer(cfg)
    np.testing.assert_array_equal(again.load_content_classifier().get_weights()[0],
                                  model.get_weights()[0])
    assert again.content_class_report["status"] == "reused"
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, content_class_steps=2))
    assert _trainer(other).load_content_classifier() is not None
    assert json.loads((tmp_path / ft.CLASS_DIR / ft.CLASS_META).read_text())[
        "identity"]["steps"] == 2
    # A stop asked for while it trains ends the run before any GAN step.
    stop = StopRequest()
    stop.request("signal 15")
    (tmp_path / ft.CLASS_DIR / ft.CLASS_META).unlink()
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        _trainer(cfg).train(stop)
    assert not list((tmp_path / "checkpoints").glob("ckpt-*"))

    assert not config_lib.incompatible_changes(
        _cfg(data_dir, tmp_path), _cfg(data_dir, tmp_path, content_class_weight=1.0))
    for bad, message in (({"content_class_weight": -1.0}, "must be >= 0"),
                         ({"content_class_steps": 0}, "must be >= 1")):
        with pytest.raises(ValueError, match=f"^--{next(iter(bad))}: {message}"):
            _cfg(data_dir, tmp_path, **bad)
    with pytest.raises(ValueError, match=r"^--content_class_weight: only the fewshot family"):
        config_lib.validate(dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, family="stylegan")))


def test_group_size_must_divide_the_batch(data_dir, tmp_path):
    with pytest.raises(ValueError, match="--style_group_size: 3 must divide --batch_size=8"):
        _cfg(data_dir, tmp_path, style_group_size=3)


def test_held_out_characters_never_reach_training(data_dir, tmp_path):
    from data_pipeline import dataset

    charset = list(tfrecords.load_manifest(data_dir)["charset"])
    gone = [charset.index("b"), charset.index("d")]
    for group in (1, 4):
        ds = dataset.make_dataset(data_dir, "train", 8, group_size=group, seed=2,
                                  shuffle_buffer=64, exclude_chars=["b", "d"])
        seen = set()
        for b in [b for _, b in zip(range(6), ds)]:
            assert b["image"].shape == (8, 32, 32, 1)
            seen |= set(b["char"].numpy().tolist())
            if group > 1:
                w = b["writer"].numpy().reshape(2, 4)
                assert (w == w[:, :1]).all()
        assert seen and not seen & set(gone)
        assert seen == set(range(len(charset))) - set(gone)
    with pytest.raises(ValueError, match=r"characters to leave out \['Q'\] are not in the "
                                         r"charset of"):
        dataset.make_dataset(data_dir, "train", 8, exclude_chars=["b", "Q"])
    # The flag reaches the trainer's dataset.
    cfg = _cfg(data_dir, tmp_path)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, holdout_chars="bd"))
    trainer = _trainer(cfg)
    chars = np.concatenate([b["char"].numpy() for _, b in zip(range(4), trainer.dataset(0))])
    assert not set(chars.tolist()) & set(gone)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A tiny fewshot run with 4 local style tokens that never trained on 'e' (2 steps,
    checkpointed)."""
    model_dir = tmp_path_factory.mktemp("fsrun") / "run"
    cfg = _cfg(data_dir, model_dir, steps=2, style_tokens=4)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, holdout_chars="e"))
    from hw_gan.training import run_dir

    trainer = _trainer(cfg)
    run_dir.write_run(cfg, tfrecords.load_manifest(data_dir))
    trainer.train()
    return model_dir


def test_fewshot_style_model_reads_styles_and_draws_any_covered_character(trained):
    from hw_gan.inversion import FewShotModel, StyleError, load_model

    model = load_model(trained)
    assert isinstance(model, FewShotModel) and model.family == "fewshot"
    assert model.holdout_chars == "e" and model.methods == ("encoder",)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3, 32, 32, 1)).astype("float32")
    c = np.array([[0, 1, 2], [2, 3, 0]], np.int32)
    styles = model.extract(x, c)
    assert styles.shape == (2, fewshot.style_dim(model.cfg.model))
    # Padding a set changes nothing; an empty set is refused.
    xp = np.concatenate([x, x[:, :1]], 1)
    cp = np.concatenate([c, c[:, :1]], 1)
    mp = np.array([[1, 1, 1, 0], [1, 1, 1, 0]], np.float32)
    np.testing.assert_allclose(model.extract(xp, cp, mp), styles, atol=1e-5)
    with pytest.raises(StyleError, match="at least one reference"):
        model.extract(x, c, np.array([[1, 1, 1], [0, 0, 0]], np.float32))
    with pytest.raises(StyleError, match="no projection"):
        model.extract(x, c, method="both")
    by_id = model.generate(styles[0], np.array([0, 4]))
    by_label = model.generate_labels(styles[0], [model.charset[0], model.charset[4]])
    assert by_id.shape == (2, 32, 32, 1)
    np.testing.assert_allclose(by_id, by_label, atol=1e-5)
    other = model.generate_labels(styles[0], ["é", "ß", "@"])
    assert other.shape == (3, 32, 32, 1) and np.abs(other).max() <= 1.0
    with pytest.raises(font.FontCoverageError, match="no glyph for"):
        model.generate_labels(styles[0], ["中"])
    assert model.mean_ws(3).shape == (3, styles.shape[1])
    # The trainer's generate (the run's evaluation): a training writer's glyphs as references.
    manifest = tfrecords.load_manifest(model.cfg.data.data_dir)
    ids = {s: sorted(manifest["writers"].index(w) for w in manifest["splits"][s]["per_writer"])
           for s in ("train", "test")}
    writers = np.array([ids["train"][0], ids["train"][0], ids["train"][1]])
    glyphs = model.trainer.generate(np.array([0, 1, 2]), writers, seed=4)
    assert glyphs.shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(glyphs, model.trainer.generate(np.array([0, 1, 2]), writers,
                                                                 seed=4))
    held = manifest["writers"][ids["test"][0]]
    with pytest.raises(ValueError, match=f"writer '{held}' has no glyph among the"):
        model.trainer.generate(np.array([0]), np.array([ids["test"][0]]), seed=4)


def test_heldout_evaluation_of_the_fewshot_family_scores_unseen_characters(trained, data_dir):
    from hw_gan.inversion import evaluate as style_eval
    from hw_gan.inversion import load_model

    model = load_model(trained)
    result = style_eval.evaluate_styles(
        model, data_dir, ks=(1, 2), writer_judge_steps=3, char_judge_steps=3, max_targets=6,
        log=lambda m: None, cache_dir=trained / "judges")
    rows = result["table"]
    names = [r["method"] for r in rows if r["k"] == 1]
    assert names == ["mean style (baseline)", "random training writer (baseline)",
                     style_eval.FEWSHOT_METHOD,
                     "mean style (baseline)" + style_eval.UNSEEN,
                     style_eval.FEWSHOT_METHOD + style_eval.UNSEEN]
    assert len(rows) == 10
    e = model.charset.index("e")
    for r in rows:
        assert 0 <= r["writer_match"] <= 1 and np.isfinite(r["fid"]) and r["num_generated"] > 0
    # Main rows never target 'e'; unseen rows target only 'e', from the same references.
    h = style_eval.load_heldout(data_dir, "test", "train", 32, 0)
    refs, targets = style_eval._sets(h.pools, h.writer_ids, 2, 6, 0, frozenset({e}))
    u_refs, u_targets = style_eval._sets(h.pools, h.writer_ids, 2, 6, 0, frozenset({e}), True)
    for a, b, t, u in zip(refs, u_refs, targets, u_targets):
        np.testing.assert_array_equal(a, b)
        assert e not in h.chars[a] and e not in h.chars[t] and set(h.chars[u]) <= {e}
    assert sum(len(u) for u in u_targets) > 0
    assert style_eval.picture(result, n_writers=2, n_chars=3).shape[1] == 3 * 32


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from hw_gan import experiment
    from hw_gan.inversion import load_model

    model = load_model(trained)
    cfg = model.cfg.replace(runtime=dataclasses.replace(
        model.cfg.runtime, export_dir=str(tmp_path_factory.mktemp("fsexport")),
        export_name="fs"))
    manifest = tfrecords.load_manifest(cfg.data.data_dir)
    return experiment.export(cfg, model.trainer, manifest, log=lambda m: None)


def test_fewshot_export_draws_writers_by_name_and_any_character_in_a_style(trained, exported):
    """The SavedModel (TensorFlow only): the built-in signatures draw the training writers by
    name; extract_style / glyphs_with_style / mean_style take any character the font covers."""
    from data_pipeline.schema import to_float, to_uint8
    from hw_gan.export import load_export
    from hw_gan.inversion import load_model

    model = load_model(trained)
    cfg = model.cfg
    manifest = tfrecords.load_manifest(cfg.data.data_dir)
    loaded = load_export(exported)
    assert "".join(loaded.style_charset) == "".join(chr(c) for c in font.content_table(32)[0])
    assert loaded.family == "fewshot" and loaded.default_style_method == "encoder"
    train_writers = sorted(manifest["splits"]["train"]["per_writer"])
    held = sorted(manifest["splits"]["test"]["per_writer"])
    assert set(loaded.untrained_writers) == set(held)
    out = loaded.glyphs("abc", train_writers[0], seed=3)
    assert out.shape == (3, 32, 32, 1) and out.dtype == np.uint8
    sig = loaded.signatures
    # The exported writer style is the trainer's: the same glyphs with no variation.
    styles = model.trainer.writer_styles(held)
    w = manifest["writers"].index(train_writers[0])
    direct = to_uint8(tf.constant(model.generate_labels(styles[w], list("abc")))).numpy()
    with_style = sig["glyphs_with_style"](chars=tf.constant(list("abc")),
                                          style=tf.constant(styles[w][None]),
                                          seed=tf.constant(3, tf.int64),
                                          variation=tf.constant(0.0))
    np.testing.assert_allclose(with_style["images"].numpy().astype(int), direct.astype(int),
                               atol=1)
    np.testing.assert_array_equal(with_style["char_ids"].numpy(),
                                  [model.charset.index(c) for c in "abc"])
    # Any covered character: accents, a held-out one, a symbol never in the charset.
    images, chars, _ = (np.asarray(a) for a in run_dir_glyphs(cfg))
    ex = sig["extract_style"](images=tf.constant(to_uint8(tf.constant(images[:3])).numpy()),
                              chars=tf.constant([model.charset[c] for c in chars[:3]]),
                              steps=tf.constant(0))
    np.testing.assert_allclose(ex["style"].numpy(), model.extract(images[None, :3],
                                                                  chars[None, :3]), atol=1e-4)
    more = sig["glyphs_with_style"](chars=tf.constant(["é", "ß", "€", "e"]), style=ex["style"],
                                    seed=tf.constant(1, tf.int64),
                                    variation=tf.constant(0.1))
    assert more["images"].shape == (4, 32, 32, 1)
    assert more["char_ids"].numpy().tolist()[:3] == [-1, -1, -1]
    again = sig["glyphs_with_style"](chars=tf.constant(["é", "ß", "€", "e"]), style=ex["style"],
                                     seed=tf.constant(1, tf.int64), variation=tf.constant(0.1))
    np.testing.assert_array_equal(more["images"].numpy(), again["images"].numpy())
    # Accented letters are put together (base letter + mark) alike in the graph and in Python.
    labels = ["é", "ö", "ç", "e", "ß"]
    graph = sig["glyphs_with_style"](chars=tf.constant(labels), style=ex["style"],
                                     seed=tf.constant(1, tf.int64), variation=tf.constant(0.0))
    python = to_uint8(tf.constant(model.generate_labels(ex["style"].numpy()[0], labels)))
    np.testing.assert_allclose(graph["images"].numpy().astype(int), python.numpy().astype(int),
                               atol=1)
    plain = to_uint8(tf.constant(model.trainer.draw(
        np.repeat(ex["style"].numpy(), 2, 0),
        to_float(font.content_images(["é", "e"], 32))[..., None], labels=["é", "e"]))).numpy()
    assert not np.array_equal(python.numpy()[0], plain[0])  # é is not its font image's drawing
    np.testing.assert_array_equal(python.numpy()[3], plain[1])  # e is
    mean = sig["mean_style"]()["style"].numpy()
    np.testing.assert_allclose(mean[0], styles[np.abs(styles).sum(1) > 0].mean(0), atol=1e-5)
    # Characters training never saw ('e' held out, '€' outside the charset) are drawn in the
    # style limited to the mean +- --untrained_style_clip spreads: two far-off styles on the same
    # side draw them alike (both at the bound), and a trained 'a' apart.
    mean_s, spread = model.trainer.style_statistics()
    np.testing.assert_allclose(mean[0], mean_s, atol=1e-5)
    sign = np.where(np.arange(len(mean_s)) % 2, 1.0, -1.0).astype(np.float32)
    far = (mean_s + 6.0 * spread * sign)[None]
    farther = (mean_s + 9.0 * spread * sign)[None]
    drawn = [sig["glyphs_with_style"](chars=tf.constant(["e", "€", "a"]), style=tf.constant(s),
                                      seed=tf.constant(1, tf.int64),
                                      variation=tf.constant(0.0))["images"].numpy()
             for s in (far, farther)]
    np.testing.assert_array_equal(drawn[0][:2], drawn[1][:2])
    assert not np.array_equal(drawn[0][2], drawn[1][2])
    python_far = to_uint8(tf.constant(model.generate_labels(far[0], ["e", "€", "a"]))).numpy()
    np.testing.assert_allclose(drawn[0].astype(int), python_far.astype(int), atol=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="content font cannot draw"):
        sig["glyphs_with_style"](chars=tf.constant(["a", "中"]), style=ex["style"],
                                 seed=tf.constant(1, tf.int64), variation=tf.constant(0.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many images as chars"):
        sig["extract_style"](images=tf.zeros([2, 32, 32, 1], tf.uint8),
                             chars=tf.constant(["a"]), steps=tf.constant(0))


def run_dir_glyphs(cfg):
    from data_pipeline.dataset import load_glyphs

    return load_glyphs(cfg.data.data_dir, "test", 32, limit=8)


def test_write_and_style_extract_from_a_folder_of_glyphs_with_a_fewshot_export(
        trained, exported, tmp_path, capsys):
    """`hwgan write --samples DIR` and `hwgan style extract` + `--style`: accents and symbols
    outside the training charset are written; what the font lacks follows --missing."""
    import cv2

    from data_pipeline.schema import to_uint8
    from hw_gan.cli import main
    from hw_gan.inversion import load_style

    images, chars, _ = run_dir_glyphs(tfrecords_cfg(trained))
    charset = list(tfrecords.load_manifest(tfrecords_cfg(trained).data.data_dir)["charset"])
    folder = tmp_path / "glyphs"
    folder.mkdir()
    for i, (img, c) in enumerate(zip(images[:5], chars[:5])):
        cv2.imwrite(str(folder / f"{charset[c]}_{i}.png"),
                    255 - to_uint8(tf.constant(img)).numpy()[..., 0])
    out = tmp_path / "note.png"
    assert main(["write", "--model", str(exported), "--samples", str(folder), "Café, à 3€!",
                 "--out", str(out), "--page", "a5", "--missing", "box"]) == 0
    assert out.is_file() and "from 5 glyphs" in capsys.readouterr().err
    style = tmp_path / "me.style"
    assert main(["style", "extract", "--model", str(exported), "--samples", str(folder),
                 "--out", str(style)]) == 0
    ws, meta = load_style(style)
    assert ws.shape == (1, fewshot.style_dim(tfrecords_cfg(trained).model))
    assert meta["method"] == "encoder" and meta["model"]["family"] == "fewshot"
    out2 = tmp_path / "note2.png"
    assert main(["write", "--model", str(exported), "--style", str(style), "Ça va? ß",
                 "--out", str(out2), "--page", "a5"]) == 0
    # What the font lacks: an error by default, naming it.
    assert main(["write", "--model", str(exported), "--style", str(style), "a中",
                 "--out", str(tmp_path / "x.png"), "--page", "a5"]) == 2
    assert "中" in capsys.readouterr().err
    assert main(["style", "extract", "--model", str(exported), "--samples", str(folder),
                 "--method", "both", "--out", str(tmp_path / "y.style")]) == 2
    assert "reads a style in one pass" in capsys.readouterr().err
    assert main(["write", "--model", str(exported), "--samples", str(folder), "--style",
                 str(style), "a", "--out", str(tmp_path / "z.png")]) == 2
    assert "not both" in capsys.readouterr().err


def tfrecords_cfg(model_dir):
    from hw_gan.training import run_dir

    return run_dir.load_run_config(model_dir)[0]


def test_write_with_style_in_the_graph_matches_the_python_renderer(trained, exported):
    """TF Serving clients write in a style (accents included) with no Python: the in-graph
    `write_with_style` lays out the same glyphs as `hwgan write --style`."""
    from hw_gan.export import load_export
    from hw_gan.render.glyphs import apply_style
    from hw_gan.render.lines import render_lines_python
    from tests.hw_gan.test_write_signature import _compare

    loaded = load_export(exported)
    fn = loaded.signatures["write_with_style"]
    style = loaded.signatures["mean_style"]()["style"].numpy() + 0.3
    text, seed, width, variation = "Café à 3€, ça va?\nAu revoir.", 5, 160, 0.1
    out = fn(text=tf.constant(text), style=tf.constant(style), seed=tf.constant(seed, tf.int64),
             variation=tf.constant(variation), line_width=tf.constant(width))
    graph = out["image"].numpy()
    python = render_lines_python(apply_style(loaded, style, variation), text, None, seed,
                                 width)
    assert graph.shape == python.shape and graph.shape[1] == width
    assert int(out["num_lines"]) >= 2
    mad, iou = _compare(graph, python)
    assert mad < 0.5 and iou > 0.95, (mad, iou)
    with pytest.raises(tf.errors.InvalidArgumentError, match="character not in the model"):
        fn(text=tf.constant("a中"), style=tf.constant(style), seed=tf.constant(1, tf.int64),
           variation=tf.constant(0.0), line_width=tf.constant(width))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be finite"):
        fn(text=tf.constant("ab"), style=tf.constant(style * np.nan),
           seed=tf.constant(1, tf.int64), variation=tf.constant(0.0),
           line_width=tf.constant(width))


def test_an_export_is_rebuilt_from_its_weights_with_this_checkouts_graph(trained, exported,
                                                                         tmp_path):
    """hw_gan.export.rebuild: the same weights, styles and drawing of trained characters; the
    held-out characters recorded; bad input refused by name."""
    import json
    import shutil

    from hw_gan.export import rebuild
    from hw_gan.inversion import load_model

    from pathlib import Path

    with open(Path(exported) / "assets" / "hwgan.json", encoding="utf-8") as f:
        info = json.load(f)
    assert info["untrained_chars"] == "e"
    out = rebuild.rebuild_fewshot(exported, tmp_path, "again")
    with open(out / "assets" / "hwgan.json", encoding="utf-8") as f:
        again_info = json.load(f)
    assert again_info["untrained_chars"] == "e"
    assert again_info["writers"] == info["writers"] and again_info["limits"] == info["limits"]
    old, new = (tf.saved_model.load(str(p)) for p in (exported, out))
    images = tf.constant(np.arange(3 * 32 * 32).reshape(3, 32, 32, 1) % 251, tf.uint8)
    chars = tf.constant(["a", "b", "c"])
    styles = [m.signatures["extract_style"](images=images, chars=chars, steps=tf.constant(0))
              ["style"].numpy() for m in (old, new)]
    np.testing.assert_array_equal(styles[0], styles[1])
    drawn = [m.signatures["glyphs_with_style"](
        chars=tf.constant(list("abé€e")), style=tf.constant(styles[0]),
        seed=tf.constant(2, tf.int64), variation=tf.constant(0.1))["images"].numpy()
        for m in (old, new)]
    np.testing.assert_array_equal(drawn[0], drawn[1])
    np.testing.assert_array_equal(old.signatures["mean_style"]()["style"].numpy(),
                                  new.signatures["mean_style"]()["style"].numpy())
    assert again_info["model_config"]["untrained_style_clip"] == 0.35  # the run's, recorded
    # --untrained_style_clip 0: what training never saw ('e' held out, '€' outside the charset)
    # is drawn in the mean style whatever style is asked for; trained characters as before.
    mean = rebuild.rebuild_fewshot(exported, tmp_path, "mean", untrained_style_clip=0.0,
                                   style_read_copies=0)
    with open(mean / "assets" / "hwgan.json", encoding="utf-8") as f:
        config = json.load(f)["model_config"]
    assert config["untrained_style_clip"] == 0.0 and config["style_read_copies"] == 0
    from hw_gan.export.style_model import ExportFewShotModel

    assert [ExportFewShotModel(p).style_read_copies for p in (exported, mean)] == [8, 0]
    at_mean = tf.saved_model.load(str(mean))
    mean_style = at_mean.signatures["mean_style"]()["style"]
    far = tf.constant(styles[0] + 5.0)
    by = {name: m.signatures["glyphs_with_style"](
        chars=tf.constant(list("e€a")), style=style, seed=tf.constant(2, tf.int64),
        variation=tf.constant(0.0))["images"].numpy()
        for name, m, style in (("far", at_mean, far), ("mean", at_mean, mean_style),
                               ("old", old, far))}
    np.testing.assert_array_equal(by["far"][:2], by["mean"][:2])
    assert not np.array_equal(by["old"][:2], by["mean"][:2])  # 0.35 spreads off the mean
    np.testing.assert_array_equal(by["far"][2], by["old"][2])
    # --style_read_copies 0: extract_style reads the glyphs alone, as the trainer does at 0.
    read_alone = at_mean.signatures["extract_style"](images=images, chars=chars,
                                                     steps=tf.constant(0))["style"].numpy()
    assert np.abs(read_alone - styles[0]).max() > 1e-4
    glyph_net, head, _ = fewshot.parts(load_model(trained).trainer.ema_generator)
    from data_pipeline.schema import to_float

    contents = to_float(font.content_images(["a", "b", "c"], 32))[..., None]
    pairs = tf.concat([to_float(images), tf.constant(contents, tf.float32)], -1)
    alone = head(tf.reduce_mean(glyph_net(pairs, training=False), 0, keepdims=True),
                 training=False).numpy()
    np.testing.assert_allclose(read_alone, alone, atol=1e-5)
    with pytest.raises(rebuild.RebuildError, match=r"^--style_read_copies: 40 is outside"):
        rebuild.rebuild_fewshot(exported, tmp_path, "never", style_read_copies=40)
    assert rebuild.main([str(exported), str(tmp_path), "more", "--untrained_chars", "e中"]) == 2
    with pytest.raises(rebuild.RebuildError, match=r"^--untrained_style_clip: -1\.0 is outside"):
        rebuild.rebuild_fewshot(exported, tmp_path, "never", untrained_style_clip=-1.0)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    del info["limits"]
    (broken / "assets" / "hwgan.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(rebuild.RebuildError, match=r"hwgan.json: no 'limits' field"):
        rebuild.rebuild_fewshot(broken, tmp_path, "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(FileExistsError):
        rebuild.rebuild_fewshot(exported, tmp_path, "again")
    # An export whose font table is not this checkout's (another font version) is refused.
    real_table = font.content_table

    def other_font(size=32):
        codes, contents = real_table(size)
        contents = contents.copy()
        contents[0, 0, 0] ^= 255
        return codes, contents

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(font, "content_table", other_font)
        with pytest.raises(rebuild.RebuildError, match="font content table is not this"):
            rebuild.rebuild_fewshot(exported, tmp_path, "other_font")
    assert not (tmp_path / "other_font").exists()


def test_an_export_is_scored_as_its_run_is_through_its_own_signatures(trained, exported,
                                                                       data_dir):
    """hw_gan.export.style_model: the held-out evaluation of an export (no run directory)
    reads the same styles and draws the same glyphs as the run, up to uint8 rounding."""
    from hw_gan.inversion import StyleError, load_model
    from hw_gan.inversion import evaluate as style_eval
    from hw_gan.export.style_model import ExportFewShotModel

    run, export = load_model(trained), ExportFewShotModel(exported)
    assert export.charset == run.charset and export.holdout_chars == "e"
    assert export.resolution == 32
    rng = np.random.default_rng(5)
    x = np.round(rng.uniform(0, 255, (2, 3, 32, 32, 1))).astype("float32") / 127.5 - 1
    c = np.array([[0, 1, 2], [2, 3, 0]], np.int32)
    m = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
    styles = export.extract(x, c, m)
    np.testing.assert_allclose(styles, run.extract(x, c, m), atol=1e-4)
    e = run.charset.index("e")
    ids = np.array([0, e, 4, e])
    ws = np.repeat(styles, 2, 0)
    np.testing.assert_allclose(export.generate(ws, ids), run.generate(ws, ids), atol=2.5 / 255)
    np.testing.assert_allclose(export.mean_ws(2), run.mean_ws(2), atol=1e-5)
    with pytest.raises(StyleError, match="at least one reference"):
        export.extract(x, c, np.array([[1, 1, 1], [0, 0, 0]], np.float32))
    result = style_eval.evaluate_styles(
        export, data_dir, ks=(1,), writer_judge_steps=3, char_judge_steps=3, max_targets=4,
        log=lambda msg: None, cache_dir=trained / "judges")
    assert [r["method"] for r in result["table"]][-1] == (style_eval.FEWSHOT_METHOD
                                                         + style_eval.UNSEEN)


def test_a_run_starts_from_an_exports_generator_with_its_discriminator_fresh(
        trained, exported, data_dir, tmp_path):
    """--init_from: a fresh fewshot run takes an export's generator weights (G and its EMA); with
    --g_freeze_steps G does not move while D learns; a resumed run reads its checkpoint and not
    the export; bad input is refused naming the flag."""
    from hw_gan import experiment
    from hw_gan.inversion import load_model

    source = load_model(trained).trainer.ema_generator
    cfg = _cfg(data_dir, tmp_path / "warm", steps=2, style_tokens=4, init_from=str(exported),
               g_freeze_steps=2, writer_contrast_weight=1.0)
    logs = []
    experiment.run(cfg, log=logs.append)
    assert any(f"start from {exported} (--init_from)" in m for m in logs)
    warm = _trainer(cfg)
    assert warm.restore() == 2
    for a, b in zip(warm.ema_generator.weights, source.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    for a, b in zip(warm.generator.weights, source.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    fresh = _trainer(_cfg(data_dir, tmp_path / "cold", steps=2, style_tokens=4))
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(warm.discriminator.weights, fresh.discriminator.weights))
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(fresh.generator.weights, source.weights))
    # The writer-contrastive term is one of G's losses; unfrozen, G moves from the export's.
    moving = _trainer(dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, g_freeze_steps=0)))
    out = moving._train_step_fn(False)(iter(moving.dataset(0)))
    assert "writer_contrast" in out and np.isfinite(float(out["writer_contrast"]))
    # Resumed: the checkpoint is read, the export is not (here: it no longer exists).
    logs.clear()
    experiment.run(dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, steps=3, init_from=str(tmp_path / "gone"))), log=logs.append)
    assert not any("--init_from" in m for m in logs)
    # Bad input: a missing export, another architecture, another family.
    with pytest.raises(ValueError, match=r"^--init_from=\S+gone: export path \S+ does not exist"):
        experiment.run(_cfg(data_dir, tmp_path / "x1", steps=1, style_tokens=4,
                            init_from=str(tmp_path / "gone")), log=logs.append)
    with pytest.raises(ValueError, match=r"^--init_from=\S+: \S+: the export has \d+ weights "
                                         r"this run's model lacks"):
        experiment.run(_cfg(data_dir, tmp_path / "x2", steps=1, style_tokens=0,
                            init_from=str(exported)), log=logs.append)
    with pytest.raises(ValueError, match=r"^--init_from=\S+: \S+: weight '\S+' is \(.*\) in the "
                                         r"export"):
        experiment.run(tiny_grouped_cfg(
            data_dir, tmp_path / "x3", dataclasses.replace(_model_cfg(style_tokens=4), width=0.25),
            1, eval_at_end=False, init_from=str(exported)), log=logs.append)
    stylegan = dataclasses.replace(cfg.model, family="stylegan", style_tokens=0)
    with pytest.raises(ValueError, match=r"^--init_from: only a fewshot run"):
        config_lib.validate(dataclasses.replace(cfg, model=stylegan, train=dataclasses.replace(
            cfg.train, writer_contrast_weight=0.0)))
    with pytest.raises(ValueError, match=r"^--writer_contrast_weight: only the fewshot"):
        config_lib.validate(dataclasses.replace(cfg, model=stylegan, train=dataclasses.replace(
            cfg.train, init_from="")))
