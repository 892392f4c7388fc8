"""The stylegan family: model contract, modulated convolutions, writer-grouped batches, training
(resume, two replicas), style extraction, style files, export signatures, CLI and write --style.

A tiny model (width 0.125) trained a few steps on synthetic records is enough: these tests check
behaviour (shapes, determinism, round trips, errors, that projection lowers its own loss), not
quality; quality is measured by benchmarks/style_eval.py on UNIPEN."""

import dataclasses
import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import dataset, tfrecords
from hw_gan import config as config_lib
from hw_gan.models import stylegan
from hw_gan.models.stylegan_encoder import StyleEncoder
from hw_gan.training import strategy as strategy_lib
from hw_gan import experiment
from hw_gan.training import make_trainer
from tests.conftest import tiny_grouped_cfg, writer_split_dataset

CHARS = "abcde"
WRITERS = tuple(f"w{i}" for i in range(6))


def _model_cfg(resolution=32, **kw):
    return config_lib.ModelConfig(family="stylegan", resolution=resolution, width=0.125,
                                  latent_dim=16, embed_dim=32, num_chars=len(CHARS), **kw)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return writer_split_dataset(tmp_path_factory.mktemp("sgdata") / "ds", WRITERS, CHARS)


def _cfg(data_dir, model_dir, steps=4, **train):
    return tiny_grouped_cfg(data_dir, model_dir, _model_cfg(), steps, **train)


def check_exact_resume(cfg_of, straight, models_of):
    """Trains cfg_of(2) 2 steps, resumes it to cfg_of(4)'s 4 steps, and checks the weights of
    models_of(trainer) equal those of `straight` (4 steps in one go)."""
    _trainer(cfg_of(2)).train()
    resumed = _trainer(cfg_of(4))
    assert resumed.restore() == 2
    resumed.train()
    for model_a, model_b in zip(models_of(straight), models_of(resumed)):
        for a, b in zip(model_a.weights, model_b.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def _trainer(cfg, strategy=None):
    keras.utils.set_random_seed(cfg.train.seed)  # as hw_gan.experiment does before each build
    return make_trainer(cfg, strategy or tf.distribute.get_strategy(),
                                    tfrecords.load_manifest(cfg.data.data_dir))


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """A trained (6 steps) and exported tiny stylegan run, through hw_gan.experiment.run."""

    root = tmp_path_factory.mktemp("sgrun")
    cfg = _cfg(data_dir, root / "run", steps=6)
    cfg = cfg.replace(
        eval=dataclasses.replace(cfg.eval, eval_at_end=False),
        runtime=dataclasses.replace(cfg.runtime, export_dir=str(root / "export"),
                                    export_name="sg"))
    experiment.run(cfg)
    experiment.run(cfg.replace(runtime=dataclasses.replace(cfg.runtime, mode="export")))
    return {"model_dir": root / "run", "export": root / "export" / "sg" / "1", "root": root,
            "data_dir": data_dir}


# -- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [32, 64])
def test_generator_contract_and_content_style_split(resolution):
    cfg = _model_cfg(resolution)
    g = stylegan.build_generator(cfg)
    mapping, synthesis = stylegan.parts(g)
    assert [t.name for t in mapping.inputs] == ["z"]  # the character never enters the mapping
    L = stylegan.num_ws(cfg)
    assert L == (7 if resolution == 32 else 9)
    assert synthesis.input["ws"].shape[1:] == (L, stylegan.w_dim(cfg))
    z = tf.random.stateless_normal([4, 16], seed=[1, 2])
    chars = tf.constant([0, 1, 2, 3])
    img = g({"z": z, "char": chars}, training=False).numpy()
    assert img.shape == (4, resolution, resolution, 1)
    assert img.min() >= -1 and img.max() <= 1 and img.std() > 0.05
    # Inference is deterministic (constant noise maps); one w writes different characters.
    np.testing.assert_array_equal(img, g({"z": z, "char": chars}, training=False).numpy())
    w = mapping(z[:1]).numpy()
    two = stylegan.synthesize(g, np.repeat(w, 2, 0), [0, 1]).numpy()
    assert np.abs(two[0] - two[1]).mean() > 1e-3
    # Training noise is fresh but a pure function of the inputs.
    for layer in g.get_layer("synthesis").layers:
        if isinstance(layer, stylegan.NoiseInjection):
            layer.strength.assign(tf.ones_like(layer.strength))
    t1 = g({"z": z, "char": chars}, training=True).numpy()
    np.testing.assert_array_equal(t1, g({"z": z, "char": chars}, training=True).numpy())
    assert np.abs(t1 - g({"z": z, "char": chars}, training=False).numpy()).max() > 1e-4


def test_modulated_conv_demodulates_and_styles_modulate():
    x = tf.random.stateless_normal([3, 8, 8, 16], seed=[0, 1])
    style = tf.random.stateless_normal([3, 10], seed=[0, 2])
    conv = stylegan.ModulatedConv2D(12, 3)
    y = conv([x, style]).numpy()
    # Demodulation: output statistics do not depend on the weights' scale.
    conv.kernel.assign(conv.kernel * 7.0)
    np.testing.assert_allclose(conv([x, style]).numpy(), y, rtol=1e-4, atol=1e-4)
    assert 0.3 < y.std() < 3.0
    # The style changes the output (per example).
    y2 = conv([x, style * 3.0]).numpy()
    assert np.abs(y2 - y).mean() > 1e-3
    rgb = stylegan.ModulatedConv2D(1, 1, demodulate=False)
    out = rgb([x, style]).numpy()
    rgb.kernel.assign(rgb.kernel * 2.0)
    np.testing.assert_allclose(rgb([x, style]).numpy(), 2.0 * out - rgb.bias.numpy(), rtol=1e-4,
                               atol=1e-4)


def test_style_mixing_and_truncation():
    a = tf.zeros([2, 5, 4])
    b = tf.ones([2, 5, 4])
    mixed = stylegan.mix_styles(a, b, [3, 4]).numpy()
    assert (mixed[:, :3] == 0).all() and (mixed[:, 3:] == 1).all()
    avg = tf.fill([4], 2.0)
    np.testing.assert_allclose(stylegan.truncate(b, avg, 0.0).numpy(), 2.0)
    np.testing.assert_allclose(stylegan.truncate(b, avg, 1.0).numpy(), 1.0)
    np.testing.assert_allclose(stylegan.truncate(b, avg, 0.5).numpy(), 1.5)


# -- data and training ----------------------------------------------------------------------------


def test_encoder_reads_several_sets_in_one_pass_as_it_reads_each():
    enc = StyleEncoder(_model_cfg(32))
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (3, 4, 32, 32, 1)).astype(np.float32)
    b = rng.uniform(-1, 1, (3, 2, 32, 32, 1)).astype(np.float32)
    ca, cb = rng.integers(0, 4, (3, 4)), rng.integers(0, 4, (3, 2))
    wa, wb = enc.encode_sets([(a, ca), (b, cb)])
    assert wa.shape == wb.shape == (3, stylegan.w_dim(_model_cfg(32)))
    np.testing.assert_allclose(wa.numpy(), enc(a, ca).numpy(), atol=1e-5)
    np.testing.assert_allclose(wb.numpy(), enc(b, cb).numpy(), atol=1e-5)
    assert not np.allclose(wa.numpy(), wb.numpy(), atol=1e-3)


def test_grouped_batches_come_from_one_writer(data_dir):
    ds = dataset.make_dataset(data_dir, "train", 8, group_size=4, seed=1, shuffle_buffer=64)
    batches = [b for _, b in zip(range(5), ds)]
    for b in batches:
        assert b["image"].shape == (8, 32, 32, 1)
        w = b["writer"].numpy().reshape(2, 4)
        assert (w == w[:, :1]).all()
    skipped = dataset.make_dataset(data_dir, "train", 8, group_size=4, seed=1,
                                   shuffle_buffer=64, skip_batches=3)
    np.testing.assert_array_equal(next(iter(skipped))["image"], batches[3]["image"])
    with pytest.raises(ValueError, match="group_size 3 must be >= 1 and divide"):
        dataset.make_dataset(data_dir, "train", 8, group_size=3)


def test_group_size_flag_is_validated(data_dir, tmp_path):
    with pytest.raises(ValueError, match="--style_group_size: 3 must divide --batch_size=8"):
        _cfg(data_dir, tmp_path, style_group_size=3)
    with pytest.raises(ValueError, match="--style_group_size: must be >= 2"):
        _cfg(data_dir, tmp_path, style_group_size=1)


def test_stylegan_trains_with_its_losses_and_resumes_exactly(data_dir, tmp_path):
    straight = _trainer(_cfg(data_dir, tmp_path / "b", steps=4))
    enc_before = [w.numpy().copy() for w in straight.encoder.weights]
    straight.train()
    assert any(not np.array_equal(a, b.numpy())
               for a, b in zip(enc_before, straight.encoder.weights))  # the encoder learns
    check_exact_resume(lambda steps: _cfg(data_dir, tmp_path / "c", steps=steps), straight,
                       lambda t: (t.generator, t.encoder.glyph_net, t.ema_encoder.set_head))
    grid = straight.sample_grid(np.array([0, 1, 2]), np.array([0]))
    assert grid.shape == (1, 8 * 32, 3 * 32, 1)
    # One more step of the straight run, without R1, reports the style losses.
    out = straight._train_step_fn(False)(iter(straight.dataset(4)))
    assert {"cycle", "recon_l1", "recon_adv", "recon_feat"} <= set(out)
    assert all(np.isfinite(float(v)) for v in out.values())


def test_lazy_style_regularisation_skips_the_encoder_and_weighs_its_losses_by_n(data_dir,
                                                                               tmp_path):
    """--style_reg_interval=N: the cycle/reconstruction losses on the steps that end a group of
    N, weighted by N in G's objective (logged unweighted); the other steps leave the encoder be."""
    lazy = _trainer(_cfg(data_dir, tmp_path / "lazy", style_reg_interval=2))
    every = _trainer(_cfg(data_dir, tmp_path / "every"))
    assert [lazy.regularises(s) for s in range(4)] == [False, True, False, True]
    assert all(every.regularises(s) for s in range(4))
    batch = next(iter(dataset.make_dataset(data_dir, "train", 8, group_size=4, seed=1,
                                           shuffle_buffer=64)))
    step = tf.constant(0, tf.int64)
    fake, info = lazy._make_fakes(step, 1, batch["char"], batch["writer"], 8)
    objectives = {}
    for name, trainer in (("lazy", lazy), ("every", every)):
        for with_reg in (True, False):
            out, total = trainer._g_objective(batch, step, fake, info, with_reg)
            objectives[name, with_reg] = ({k: float(v) for k, v in out.items()}, float(total))
    regs = ("cycle", "recon_l1", "recon_adv", "recon_feat")
    (lazy_out, lazy_total), (every_out, every_total) = objectives["lazy", True], \
        objectives["every", True]
    assert lazy_out == pytest.approx(every_out, rel=1e-5)  # logged per step
    extra = sum(lazy_out[k] for k in regs)
    assert abs(extra) > 1e-3
    assert lazy_total == pytest.approx(every_total + extra, rel=1e-4)
    plain_out, plain_total = objectives["lazy", False]
    assert not set(regs) & set(plain_out)
    assert plain_total == pytest.approx(every_total - extra, rel=1e-4, abs=1e-5)
    paths = {r: {v.path for v in lazy._g_variables(r)} for r in (True, False)}
    assert paths[False] == {v.path for v in lazy.generator.trainable_variables}
    assert paths[True] - paths[False] == {v.path for v in lazy.encoder.trainable_variables}

    enc_before = [w.numpy().copy() for w in lazy.encoder.weights]
    it = iter(lazy.dataset(0))
    out = lazy._train_step_fn(False, False)(it)
    assert not set(regs) & set(out)
    for a, b in zip(enc_before, lazy.encoder.weights):
        np.testing.assert_array_equal(a, b.numpy())  # no gradient reached the encoder
    out = lazy._train_step_fn(False, True)(it)
    assert set(regs) <= set(out)
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(enc_before, lazy.encoder.weights))
    with pytest.raises(ValueError, match="--style_reg_interval: must be >= 1"):
        _cfg(data_dir, tmp_path, style_reg_interval=0)


def test_stylegan_two_replicas_and_path_length(data_dir, tmp_path):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = strategy_lib.mirrored(devices)
    # One step, eagerly (the tiny configs' default): step 0 is an R1 step and computes the path
    # length. (A traced step under two replicas: test_training's two-replica test.)
    trainer = _trainer(_cfg(data_dir, tmp_path, steps=1, pl_weight=1.0), strategy)
    assert trainer.replicas == 2 and trainer.train()["step"] == 1
    assert "path_length" in trainer._train_step_fn(True)(iter(trainer.dataset(1)))
    assert all(np.isfinite(w.numpy()).all() for w in trainer.generator.weights)
    with pytest.raises(ValueError, match="must divide the per-replica batch 4"):
        _trainer(_cfg(data_dir, tmp_path / "x", batch_size=8, style_group_size=8), strategy)


# -- style extraction -----------------------------------------------------------------------------


def _writer_glyphs(data_dir, writer="w0"):
    from hw_gan import inversion as extract

    manifest = tfrecords.load_manifest(data_dir)
    return extract.samples_from_dataset(data_dir, manifest["charset"], 32, writer=writer)


def test_extraction_methods_and_projection_lowers_its_loss(run):
    from hw_gan import inversion as extract

    model = extract.StyleModel(run["model_dir"])
    images, ids, writer = _writer_glyphs(run["data_dir"])
    x, c = images[None, :6], ids[None, :6]
    enc = model.extract(x, c, method="encoder")
    assert enc.shape == (1, model.num_ws, model.w_dim)
    assert np.allclose(enc[0, 0], enc[0, -1])  # the encoder gives one w for every layer
    cfg = extract.ProjectionConfig(steps=40, lr=0.05, reg_weight=0.0, layer_weight=0.0,
                                   feature="none")

    def pixel_loss(ws):
        fake = model.generate(np.repeat(ws, 6, axis=0), c[0])
        return float(np.abs(fake - x[0]).mean())

    both = model.extract(x, c, method="both", projection=cfg)
    assert both.shape == enc.shape and not np.allclose(both, enc)
    assert pixel_loss(both) < pixel_loss(enc)
    # Deterministic, and a second call with the same settings reuses the traced projection.
    traced = model._projectors[cfg].experimental_get_tracing_count()
    np.testing.assert_array_equal(model.extract(x, c, method="both", projection=cfg), both)
    assert model._projectors[cfg].experimental_get_tracing_count() == traced
    proj = model.extract(x, c, method="projection",
                         projection=dataclasses.replace(cfg, wplus=False))
    assert np.allclose(proj[0, 0], proj[0, 3])  # W, not W+
    # Several styles in one call are independent of each other.
    two = model.extract(np.concatenate([x, x[:, ::-1]]), np.concatenate([c, c[:, ::-1]]),
                        method="both", projection=cfg)
    np.testing.assert_allclose(two[0], both[0], rtol=1e-3, atol=1e-3)
    with pytest.raises(extract.StyleError, match="method 'magic'"):
        model.extract(x, c, method="magic")
    with pytest.raises(extract.StyleError, match="feature 'pixels'"):
        model.extract(x, c, projection=dataclasses.replace(cfg, feature="pixels"))


def test_style_file_round_trip_and_errors(run, tmp_path):
    from hw_gan import inversion as extract

    model = extract.StyleModel(run["model_dir"])
    info = model.model_info()
    ws = np.random.default_rng(0).normal(size=(model.num_ws, model.w_dim)).astype(np.float32)
    path = tmp_path / "a.style"
    extract.save_style(path, ws, info, writer="w0", method="encoder")
    back, meta = extract.load_style(path, info)
    np.testing.assert_array_equal(back, ws)  # exact: a saved style draws what it drew in memory
    assert meta["writer"] == "w0" and meta["model"]["num_ws"] == model.num_ws
    with pytest.raises(extract.StyleError, match="does not match the model"):
        extract.save_style(tmp_path / "b.style", ws[:2], info)
    (tmp_path / "bad.style").write_text("{not json")
    with pytest.raises(extract.StyleError, match="bad.style is not JSON"):
        extract.load_style(tmp_path / "bad.style")
    other = dict(info, charset=["x", "y"])
    with pytest.raises(extract.StyleError, match="charset differs"):
        extract.load_style(path, other)
    with pytest.raises(extract.StyleError, match="does not exist"):
        extract.load_style(tmp_path / "missing.style")
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_export_style_signatures(run):
    from hw_gan.export import load_export
    from hw_gan import inversion as extract

    loaded = load_export(run["export"])
    sigs = loaded.signatures
    assert {"extract_style", "glyphs_with_style", "mean_style", "glyphs"} <= set(sigs)
    images, ids, _ = _writer_glyphs(run["data_dir"])
    from data_pipeline.schema import to_uint8

    labels = [loaded.charset[i] for i in ids[:5]]
    out = sigs["extract_style"](images=to_uint8(tf.constant(images[:5])),
                                chars=tf.constant(labels), steps=tf.constant(0))
    model = extract.StyleModel(run["model_dir"])
    np.testing.assert_allclose(out["style"].numpy(),
                               model.extract(images[None, :5], ids[None, :5], method="encoder")[0],
                               rtol=1e-3, atol=1e-3)
    refined = sigs["extract_style"](images=to_uint8(tf.constant(images[:5])),
                                    chars=tf.constant(labels), steps=tf.constant(10))["style"]
    assert not np.allclose(refined.numpy(), out["style"].numpy())

    def draw(seed, variation):
        return sigs["glyphs_with_style"](chars=tf.constant(["a", "a", "b"]), style=refined,
                                         seed=tf.constant(seed, tf.int64),
                                         variation=tf.constant(variation))["images"].numpy()

    same = draw(1, 0.0)
    assert same.shape == (3, 32, 32, 1) and same.dtype == np.uint8
    np.testing.assert_array_equal(same[0], same[1])  # no variation: every "a" alike
    varied = draw(1, 0.5)
    assert not np.array_equal(varied[0], varied[1])
    np.testing.assert_array_equal(varied, draw(1, 0.5))  # deterministic per seed
    assert sigs["mean_style"]()["style"].shape == refined.shape
    # The built-in glyphs signature writes a whole call in one hand (one z per call).
    g = loaded.glyphs(["a", "a"], [""], seed=3)
    np.testing.assert_array_equal(g[0], g[1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many images as chars"):
        sigs["extract_style"](images=to_uint8(tf.constant(images[:2])),
                              chars=tf.constant(labels[:3]), steps=tf.constant(0))


def test_style_cli_extract_mix_and_write(run, tmp_path):
    from hw_gan.cli import main

    out = tmp_path / "w0.style"
    assert main(["style", "extract", "--model", str(run["model_dir"]), "--samples",
                 str(run["data_dir"]), "--writer", "w0", "--k", "5", "--steps", "5",
                 "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["writer"] == "w0" and doc["k"] == 5 and doc["method"] == "both"
    # A folder of images named by character, dark ink on white, from the export.
    folder = tmp_path / "glyphs"
    folder.mkdir()
    images, ids, _ = _writer_glyphs(run["data_dir"], "w1")
    for n, (img, i) in enumerate(zip(images[:4], ids[:4])):
        gray = (255 - (img[..., 0] + 1) * 127.5).astype(np.uint8)
        gray[8:24, 8:24] = np.minimum(gray[8:24, 8:24], 40)  # some certain ink
        cv2.imwrite(str(folder / f"{CHARS[i] if i < len(CHARS) else 'a'}_{n}.png"), gray)
    out2 = tmp_path / "w1.style"
    assert main(["style", "extract", "--model", str(run["export"]), "--samples", str(folder),
                 "--method", "encoder", "--out", str(out2)]) == 0
    assert json.loads(out2.read_text())["writer"] == "glyphs"
    grid = tmp_path / "mix.png"
    assert main(["style", "mix", str(out), str(out2), "--model", str(run["export"]),
                 "--layers", "3-6", "--chars", "abc", "--out", str(grid),
                 "--save", str(tmp_path / "mix.style")]) == 0
    img = cv2.imread(str(grid), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (4 * 32 * 2, 3 * 32 * 2)
    assert json.loads((tmp_path / "mix.style").read_text())["layers_from_b"] == [3, 4, 5, 6]
    page = tmp_path / "note.png"
    assert main(["write", "--model", str(run["export"]), "--style", str(out), "abc cab",
                 "--out", str(page)]) == 0
    assert cv2.imread(str(page)) is not None
    # Truncation 0 is the mean hand whatever the style; 1 keeps the style.
    from hw_gan.export import load_export
    from hw_gan.render import apply_style
    from hw_gan import inversion as extract_lib

    loaded = load_export(run["export"])
    mean = loaded.signatures["mean_style"]()["style"].numpy()
    ws, _ = extract_lib.load_style(out)
    np.testing.assert_allclose(apply_style(loaded, str(out), 0.0, 0.0).ws, mean, atol=1e-6)
    np.testing.assert_allclose(apply_style(loaded, str(out), 0.0, 1.0).ws, ws, atol=1e-6)
    with pytest.raises(ValueError, match="truncation 1.5 must be in"):
        apply_style(loaded, str(out), 0.0, 1.5)


def test_style_cli_errors(run, tmp_path, capsys):
    from hw_gan.cli import main

    def fails(*argv, match):
        assert main(list(argv)) == 2
        assert match in capsys.readouterr().err

    fails("style", "extract", "--model", str(run["model_dir"]), "--samples",
          str(run["data_dir"]), "--out", str(tmp_path / "x.style"),
          match="holds 6 writers")
    fails("style", "extract", "--model", str(run["export"]), "--samples", str(run["data_dir"]),
          "--writer", "w0", "--method", "projection", "--out", str(tmp_path / "x.style"),
          match="needs a run directory")
    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "Z_1.png"), np.zeros((20, 20), np.uint8))
    fails("style", "extract", "--model", str(run["export"]), "--samples", str(bad),
          "--out", str(tmp_path / "x.style"), match="character 'Z' (from the file name)")
    style = tmp_path / "ok.style"
    assert main(["style", "extract", "--model", str(run["export"]), "--samples",
                 str(run["data_dir"]), "--writer", "w2", "--method", "encoder",
                 "--out", str(style)]) == 0
    fails("style", "mix", str(style), str(style), "--model", str(run["export"]), "--layers",
          "9", "--out", str(tmp_path / "m.png"), match="layers must be in 0..6")
    fails("style", "mix", str(style), str(tmp_path / "none.style"), "--model",
          str(run["export"]), "--out", str(tmp_path / "m.png"), match="does not exist")
    assert not (tmp_path / "x.style").exists() and not (tmp_path / "m.png").exists()


def test_heldout_style_evaluation_protocol(run):
    from hw_gan.inversion import evaluate as style_eval
    from hw_gan.inversion import ProjectionConfig, StyleModel

    model = StyleModel(run["model_dir"])
    result = style_eval.evaluate_styles(
        model, run["data_dir"], ks=(2,), projection=ProjectionConfig(steps=3), ablations_k=2,
        writer_judge_steps=3, char_judge_steps=3, max_targets=4, log=lambda m: None)
    manifest = tfrecords.load_manifest(run["data_dir"])
    assert result["writers"] == len(manifest["splits"]["test"]["per_writer"]) >= 2
    methods = [row["method"] for row in result["table"]]
    assert methods[:5] == ["mean style (baseline)", "random training writer (baseline)",
                           "encoder", "projection", "encoder + projection"]
    assert len(methods) == 8  # + three ablations at k = 2
    for row in result["table"]:
        assert 0 <= row["writer_match"] <= 1 and np.isfinite(row["fid"])
        assert row["num_generated"] > 0
    pic = style_eval.picture(result, n_writers=2, n_chars=3)
    assert pic.dtype == np.uint8 and pic.shape[1] == 3 * 32


def test_server_extracts_a_style_and_writes_in_it(run):
    """Over HTTP: samples -> extract_style (:predict) -> :write with that style."""
    import io
    import threading

    from data_pipeline.schema import to_uint8
    from hw_gan.serve import make_server
    from tests.hw_gan.test_serve import call, request

    srv = make_server(run["export"].parent, "127.0.0.1", 0, log=io.StringIO())
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        images, ids, _ = _writer_glyphs(run["data_dir"], "w3")
        glyphs = np.asarray(to_uint8(tf.constant(images[:4]))).tolist()
        chars = [CHARS[i] for i in ids[:4]]
        out = call(srv, "POST", "/v1/models/sg:predict", {
            "signature_name": "extract_style",
            "inputs": {"images": glyphs, "chars": chars, "steps": 5}})
        style = out["outputs"]["style"]
        assert np.asarray(style).shape == (stylegan.num_ws(_model_cfg()), 32)
        status, headers, png = request(srv, "POST", "/v1/models/sg:write",
                                       {"text": "abc", "style": style, "variation": 0.0})
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE) is not None
        status, _, body = request(srv, "POST", "/v1/models/sg:write",
                                  {"text": "abc", "style": [[1.0, 2.0]]})
        assert status == 400 and b"does not fit this model" in body
        status, _, body = request(srv, "POST", "/v1/models/sg:write",
                                  {"text": "abc", "style": "alice"})
        assert status == 400 and b"matrix of numbers" in body
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_write_with_style_in_the_graph_matches_the_python_renderer(run):
    from hw_gan.export import load_export
    from hw_gan.render.glyphs import apply_style
    from hw_gan.render.lines import render_lines_python
    from tests.hw_gan.test_write_signature import _compare

    loaded = load_export(run["export"])
    fn = loaded.signatures["write_with_style"]
    _, kwargs = fn.structured_input_signature
    assert {k: v.shape.as_list() for k, v in kwargs.items()} == {
        "text": [], "style": [stylegan.num_ws(_model_cfg(32)), stylegan.w_dim(_model_cfg(32))],
        "seed": [], "variation": [], "line_width": []}
    style = loaded.signatures["mean_style"]()["style"].numpy()
    text = (CHARS[:4] + " " + CHARS[1:3]) * 3
    out = fn(text=tf.constant(text), style=tf.constant(style), seed=tf.constant(4, tf.int64),
             variation=tf.constant(0.2), line_width=tf.constant(120))
    python = render_lines_python(apply_style(loaded, style, 0.2), text, None, 4, 120)
    mad, iou = _compare(out["image"].numpy(), python)
    assert mad < 0.5 and iou > 0.95, (mad, iou)


def test_shipping_with_a_style_table_sets_the_exports_default_method(run, tmp_path):
    """`hwgan ship --style_eval` records the export-offered method with the best writer match at
    k = 10 in the export's hwgan.json; extraction with no --method then uses it, and a value
    that is not a method is refused naming the file."""
    from hw_gan import shipped
    from hw_gan.cli import main
    from hw_gan.cli import ship as ship_cli
    from hw_gan.cli import style as style_cli
    from hw_gan.export import load_export

    def row(method, match, fid=5.0):
        return {"k": 10, "method": method, "legibility": 1.0, "writer_match": match,
                "writer_match_vs_chance": match * 31, "fid": fid}

    doc = {"writers": 31, "table": [row("mean style (baseline)", 0.05, 8.4),
                                    row("encoder", 0.107, 5.56), row("projection", 0.2),
                                    row("encoder + projection", 0.087, 6.0)]}
    assert ship_cli.style_method(doc) == "encoder"  # projection (needs the run) is not offered
    assert ship_cli.style_method({"table": doc["table"][:1]}) is None
    path = tmp_path / "style_eval.json"
    path.write_text(json.dumps(doc))
    root = tmp_path / "reg"
    assert main(["ship", str(run["model_dir"]), "--export", str(run["export"]), "--name",
                 "tiny_styles", "--root", str(root), "--style_eval", str(path)]) == 0
    shipped_dir = root / "tiny_styles"
    assert json.loads((shipped_dir / shipped.MODEL_FILE).read_text())["style_method"] == "encoder"
    card = (shipped_dir / shipped.CARD_FILE).read_text()
    assert "At k = 10, encoder: writer match 0.107, 2.1x the mean-style baseline" in card
    assert "default method of `hwgan style extract`" in card and "(encoder: the best" in card
    loaded = load_export(shipped_dir / "1")
    assert loaded.style_method == "encoder" and load_export(run["export"]).style_method is None
    assert loaded.default_style_method == "encoder"
    assert load_export(run["export"]).default_style_method == "both"  # nothing recorded
    images, ids, _ = _writer_glyphs(run["data_dir"], "w2")
    styles = style_cli.ExportStyles(loaded)
    default = styles.extract(images[:5], ids[:5], None, 20)
    np.testing.assert_array_equal(default, styles.extract(images[:5], ids[:5], "encoder", 20))
    assert not np.allclose(default, styles.extract(images[:5], ids[:5], "both", 20))
    plain = style_cli.ExportStyles(run["export"])  # no recorded method: the family's (both)
    np.testing.assert_array_equal(plain.extract(images[:5], ids[:5], None, 20),
                                  plain.extract(images[:5], ids[:5], "both", 20))
    # The style file says which method made it.
    out = tmp_path / "w2.style"
    assert main(["style", "extract", "--model", str(shipped_dir / "1"), "--samples",
                 str(run["data_dir"]), "--writer", "w2", "--k", "5", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["method"] == "encoder"  # with 0 projection steps
    assert json.loads(out.read_text())["steps"] == 0
    # A damaged value is named with its file.
    info_path = shipped_dir / "1" / "assets" / "hwgan.json"
    info_path.write_text(info_path.read_text().replace('"style_method": "encoder"',
                                                       '"style_method": "fast"'))
    with pytest.raises(ValueError, match=r"hwgan.json is damaged: style_method 'fast' is not"):
        load_export(shipped_dir / "1")
