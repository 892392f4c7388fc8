"""Adding a writer to a trained style_cgan (hw_gan.adaptation) and its train_main entry."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import tfrecords
from hw_gan import config as config_lib
from hw_gan.export import load_export
from hw_gan import adaptation as adapt_lib
from hw_gan.training import run_dir
from hw_gan.training import trainer as trainer_lib
from tests.conftest import ListSource, make_records

ROOT = Path(__file__).resolve().parents[2]
BASE_WRITERS = ("w0", "w1", "w2", "w3")


def _dataset(out, writers, chars, per=2, seed=0):
    tfrecords.write_dataset(ListSource(make_records(writers=writers, chars=chars, per=per, size=32,
                                                    seed=seed)),
                            out, split="none", num_shards=1, progress=False)
    return out


def _train_base(data, model_dir, **train):
    """A tiny style_cgan trained 2 steps, laid out as train_main does."""
    manifest = tfrecords.load_manifest(data)
    cfg = config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data), shuffle_buffer=64),
        model=config_lib.ModelConfig(family="style_cgan", width=0.125, latent_dim=16, embed_dim=32,
                                     num_chars=4, num_writers=4),
        train=config_lib.TrainConfig(batch_size=8, steps=2, checkpoint_every=2, log_every=1,
                                     image_every=2, r1_interval=1, seed=3, **train),
        runtime=config_lib.RuntimeConfig(model_dir=str(model_dir), strategy="default",
                                         run_eagerly=True)))  # 2 steps: cheaper than a trace
    model_dir.mkdir()
    (model_dir / "config.json").write_text(cfg.to_json())
    run_dir.write_dataset_info(model_dir, manifest)
    keras.utils.set_random_seed(cfg.train.seed)  # as hw_gan.experiment does
    trainer = trainer_lib.GANTrainer(cfg, tf.distribute.get_strategy(), manifest)
    trainer.train()
    return cfg


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The base: 4 writers x "abcd"; the new writer "alice" wrote "abc" only."""
    root = tmp_path_factory.mktemp("adapt")
    data = _dataset(root / "data", BASE_WRITERS, "abcd", per=3)
    model_dir = root / "base"
    cfg = _train_base(data, model_dir)
    alice = _dataset(root / "alice", ("alice",), "abc", per=2, seed=5)  # "d" never written
    return {"root": root, "data": data, "dir": model_dir, "cfg": cfg, "alice": alice}


def _acfg(base, out, **kw):
    """An adaptation of a few steps, run eagerly (cheaper than tracing them; the traced steps:
    the projection test here, test_shipped's pivotal tuning, the end-to-end adaptation)."""
    args = dict(writer_data=str(base["alice"]), init=str(base["dir"]), model_dir=str(out),
                writer_name="alice", steps=3, batch_size=4, finetune_steps=0, log_every=1,
                run_eagerly=True)
    args.update(kw)
    return adapt_lib.AdaptConfig(**args)


def test_adapt_grows_writer_keeps_base_rows_and_exports(base, tmp_path):
    out = tmp_path / "alice-run"
    report = adapt_lib.adapt(_acfg(base, out, export_dir=str(tmp_path / "export"),
                                   export_name="alice", select_every=0), log=lambda m: None)
    assert report["writer_id"] == 4 and report["num_writers"] == 5
    assert report["unseen_chars"] == ["d"] and report["seen_chars"] == 3
    assert report["base_rows_unchanged"] and report["new_row_moved"] > 0
    assert report["base_writer_drift"] == 0.0
    for name in ("config.json", "dataset.json", "adaptation.json", "adapt.json"):
        assert (out / name).is_file()
    assert json.loads((out / "dataset.json").read_text())["writers"] == [*BASE_WRITERS, "alice"]
    cfg = config_lib.load_json(str(out / "config.json"))
    assert cfg.model.num_writers == 5

    # Restored with the trainer of the saved configs: the embeddings grew by one row and every
    # base row (generator, EMA generator, discriminator) is the base's (EMA G's / D's) row.
    new = trainer_lib.GANTrainer(cfg, tf.distribute.get_strategy(),
                                 json.loads((out / "dataset.json").read_text()))
    assert new.restore() == 3
    old = trainer_lib.GANTrainer(base["cfg"], tf.distribute.get_strategy(),
                                 json.loads((base["dir"] / "dataset.json").read_text()))
    assert old.restore() == 2
    pairs = [(new.generator, old.ema_generator), (new.ema_generator, old.ema_generator),
             (new.discriminator, old.discriminator)]
    for grown, src in pairs:
        e_new = grown.get_layer("writer_embedding").embeddings.numpy()
        e_old = src.get_layer("writer_embedding").embeddings.numpy()
        assert e_new.shape[0] == 5 and e_old.shape[0] == 4
        np.testing.assert_array_equal(e_new[:4], e_old)
        assert not np.allclose(e_new[4], e_old.mean(axis=0))  # the new row was trained
        other = [w.numpy() for w in grown.weights if "writer_embedding" not in w.path]
        base_other = [w.numpy() for w in src.weights if "writer_embedding" not in w.path]
        for a, b in zip(other, base_other):
            np.testing.assert_array_equal(a, b)  # everything else frozen

    exported = load_export(tmp_path / "export" / "alice")
    assert exported.writers == (*BASE_WRITERS, "alice")
    assert exported.info["adapted_writer"] == "alice" and exported.info["finetuned"] is False
    assert exported.info["base_writer_drift"] == 0.0
    images = exported.glyphs(["a", "d"], ["alice"], 0)  # "d" was never seen: still drawn
    assert images.shape == (2, 32, 32, 1) and images.dtype == np.uint8
    # The sheets' geometry travels with the export (make_records: top 1 + 0.1 * char index,
    # bottom -0.1 * sample): the median of alice's two samples per character.
    geometry = exported.info["writer_geometry"]["alice"]
    assert sorted(geometry) == ["a", "b", "c"] and report["writer_geometry_chars"] == 3
    np.testing.assert_allclose(geometry["c"], [1.2, -0.05], atol=1e-4)


def test_finetune_trains_the_generator_but_not_base_rows(base, tmp_path):
    report = adapt_lib.adapt(_acfg(base, tmp_path / "ft", steps=1, finetune_steps=2,
                                   finetune_lr=1e-3), log=lambda m: None)
    assert report["finetuned"] and report["phases"]["finetune"]["steps"] == 2
    assert report["base_rows_unchanged"] and report["base_writer_drift"] > 0
    assert "export" not in report


def test_finetune_needs_enough_variants_per_character(base, tmp_path):
    """alice wrote 2 glyphs of each of 3 characters: a threshold above 2 skips the fine-tune
    (said in the report and the log, the generator untouched); 2 or below runs it."""
    logs = []
    report = adapt_lib.adapt(_acfg(base, tmp_path / "few", steps=1, finetune_steps=2,
                                   finetune_lr=1e-3, finetune_objective="pivotal",
                                   finetune_min_variants=2.5), log=logs.append)
    assert report["variants_per_char"] == 2.0 and not report["finetuned"]
    skipped = report["phases"]["finetune"]
    assert skipped["steps"] == 0
    assert "2.00 glyphs per character" in skipped["skipped"]
    assert "--adapt_finetune_min_variants=2.5" in skipped["skipped"]
    assert any("finetune: skipped" in m for m in logs)
    assert report["base_writer_drift"] == 0.0  # only the new rows were trained
    report = adapt_lib.adapt(_acfg(base, tmp_path / "enough", steps=1, finetune_steps=2,
                                   finetune_lr=1e-3, finetune_objective="pivotal",
                                   finetune_min_variants=2.0), log=lambda m: None)
    assert report["finetuned"] and report["phases"]["finetune"]["steps"] == 2
    assert report["base_writer_drift"] > 0
    assert adapt_lib.variants_per_char([3, 3, 3, 1, 2, 2]) == 2.0
    assert adapt_lib.variants_per_char([]) == 0.0


def test_auxiliary_heads_grow_too(base, tmp_path):
    model_dir = tmp_path / "aux-base"
    cfg = _train_base(base["data"], model_dir, aux_char_weight=1.0,
                      aux_writer_weight=0.5)
    old = trainer_lib.GANTrainer(cfg, tf.distribute.get_strategy(),
                                 json.loads((model_dir / "dataset.json").read_text()))
    old.restore()
    report = adapt_lib.adapt(_acfg(base, tmp_path / "out", init=str(model_dir), steps=2,
                                   start="mean"), log=lambda m: None)
    new_cfg = config_lib.load_json(str(tmp_path / "out" / "config.json"))
    new = trainer_lib.GANTrainer(new_cfg, tf.distribute.get_strategy(),
                                 json.loads((tmp_path / "out" / "dataset.json").read_text()))
    assert new.restore() == 2 and report["base_rows_unchanged"]
    head, old_head = new.aux_heads["writer"][0], old.aux_heads["writer"][0]
    assert head.kernel.shape[-1] == 5
    np.testing.assert_array_equal(head.kernel.numpy()[:, :4], old_head.kernel.numpy())
    np.testing.assert_allclose(head.kernel.numpy()[:, 4], old_head.kernel.numpy().mean(1),
                               rtol=1e-6)
    np.testing.assert_array_equal(new.aux_heads["char"][0].kernel.numpy(),
                                  old.aux_heads["char"][0].kernel.numpy())
    # The nearest start takes the head's column and bias from the same writers as the rows.
    adapter, data, _ = adapt_lib.prepare(_acfg(base, tmp_path / "n", init=str(model_dir),
                                               start="nearest", start_top=2, samples=2))
    src = [BASE_WRITERS.index(w) for w in adapter.start_rows(data)["start_writers"]]
    head = adapter.trainer.aux_heads["writer"][0]
    np.testing.assert_allclose(head.kernel.numpy()[:, 4], head.kernel.numpy()[:, src].mean(1),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(head.bias.numpy()[4], head.bias.numpy()[src].mean(),
                               rtol=1e-6, atol=1e-7)
    assert not np.allclose(head.kernel.numpy()[:, 4], head.kernel.numpy()[:, :4].mean(1))


def test_nearest_start_is_the_mean_of_the_closest_base_rows(base, tmp_path):
    """start="nearest": the new rows (G, EMA G, D) are the mean of the start_top base writers
    whose generated glyphs are closest to the writer's (by the pixel distance)."""
    acfg = _acfg(base, tmp_path / "n", start="nearest", start_top=2, steps=0, samples=3)
    adapter, data, _ = adapt_lib.prepare(acfg)
    distances = adapter.pixel_distances(data["images"], data["chars"], range(4))
    assert distances.shape == (4,) and np.all(np.isfinite(distances)) and np.all(distances > 0)
    info = adapter.start_rows(data)
    chosen = np.argsort(distances, kind="stable")[:2]
    assert info["start_writers"] == [BASE_WRITERS[i] for i in chosen]
    for model in (adapter.trainer.generator, adapter.trainer.ema_generator,
                  adapter.trainer.discriminator):
        rows = model.get_layer("writer_embedding").embeddings.numpy()
        np.testing.assert_allclose(rows[4], rows[chosen].mean(axis=0), rtol=1e-6, atol=1e-7)
    # The whole command with no optimisation steps exports that start as it is.
    report = adapt_lib.adapt(acfg, log=lambda m: None)
    assert report["start_writers"] == info["start_writers"] and report["new_row_moved"] == 0.0


def test_start_candidates_are_the_writers_the_base_was_trained_on(base, tmp_path):
    """A base trained on a writer split has rows for its held-out writers too (never trained):
    neither start takes them; without the base's dataset every writer is a candidate."""
    info = {"writers": [*BASE_WRITERS, "held-out"]}
    cfg = base["cfg"]
    ids, why = adapt_lib.trained_writers(cfg, info)
    assert ids == [0, 1, 2, 3] and str(base["data"]) in why
    gone = cfg.replace(data=dataclasses.replace(cfg.data, data_dir=str(tmp_path / "gone")))
    ids, why = adapt_lib.trained_writers(gone, info)
    assert ids == [0, 1, 2, 3, 4] and "not readable" in why and "gone" in why

    adapter, data, _ = adapt_lib.prepare(_acfg(base, tmp_path / "n", start="nearest",
                                               start_top=2, steps=0, samples=3))
    distances = adapter.pixel_distances(data["images"], data["chars"], range(4))
    adapter.trained_ids = [i for i in range(4) if i != int(np.argmin(distances))]
    info = adapter.start_rows(data)
    want = sorted(adapter.trained_ids, key=lambda i: distances[i])[:2]
    assert info["start_writers"] == [BASE_WRITERS[i] for i in want]
    adapter.acfg = dataclasses.replace(adapter.acfg, start="mean")
    adapter.start_rows(data)
    rows = adapter.g_embed.numpy()
    np.testing.assert_allclose(rows[4], rows[adapter.trained_ids].mean(axis=0), rtol=1e-6,
                               atol=1e-7)


def test_pixel_distance_is_the_closest_of_the_draws(base, tmp_path):
    """The pixel distance: for each real glyph, mean |x - G(z_j, c, w)| of the best of `samples`
    draws (z_j from the seed), checked against the same draws recomputed."""
    adapter, data, _ = adapt_lib.prepare(_acfg(base, tmp_path / "d", samples=3))
    images, chars = data["images"][:5], data["chars"][:5]
    got = adapter._pixel_distance(tf.constant(images), tf.constant(chars), 1, 9).numpy()
    z = tf.random.stateless_normal([15, adapter.cfg.model.latent_dim], seed=[9, 3])
    fake = adapter.trainer.generator({"z": z, "char": tf.constant(np.tile(chars, 3)),
                                      "writer": tf.fill([15], 1)}).numpy()
    want = np.abs(fake.reshape(3, 5, -1) - images.reshape(1, 5, -1)).mean(-1).min(0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.shape == (5,) and np.all(want > 0)


def test_selection_keeps_the_closest_row_seen(base, tmp_path):
    """select_every: the embedding phase scores the new row (step 0 = the start included) and
    ends with the best one; the kept row reproduces its recorded distance."""
    acfg = _acfg(base, tmp_path / "s", steps=6, select_every=2, lr=0.05, samples=3)
    adapter, data, _ = adapt_lib.prepare(acfg)
    report = adapter.run(data, log=lambda m: None)
    sel = report["phases"]["embedding"]["selection"]
    assert [s["step"] for s in sel["scores"]] == [0, 2, 4, 6]
    best = min(sel["scores"], key=lambda s: s["distance"])
    assert sel["kept_step"] == best["step"] and sel["distance"] == best["distance"]
    now = adapter.pixel_distances(data["images"], data["chars"], [4])[0]
    assert now == pytest.approx(best["distance"], abs=2e-5)
    # The exported (EMA) generator holds the kept row too.
    np.testing.assert_array_equal(adapter.ema_embed.numpy()[4], adapter.g_embed.numpy()[4])


def test_projection_fits_only_g_new_row_and_lowers_its_loss(base, tmp_path):
    """objective=projection: one step with a fixed seed lowers the reconstruction loss it
    reports, only G's new row moves (D's rows and the base rows stay), and a strong anchor keeps
    the row nearer its start. (The traced projection step: the other tests run eagerly.)"""
    acfg = _acfg(base, tmp_path / "p", steps=0, objective="projection", lr=0.01, samples=3,
                 feature_weight=1.0, select_every=0, run_eagerly=False)
    adapter, data, _ = adapt_lib.prepare(acfg)
    adapter.start_rows(data)
    g0, d0 = adapter.g_embed.numpy().copy(), adapter.d_embed.numpy().copy()
    step = adapter._proj_step_fn(0.002)
    x, c, seed = tf.constant(data["images"]), tf.constant(data["chars"]), tf.constant(7, tf.int64)
    losses = [float(step(x, c, seed)[0]) for _ in range(4)]
    assert losses[-1] < losses[0], losses
    g1 = adapter.g_embed.numpy()
    np.testing.assert_array_equal(g1[:4], g0[:4])
    assert not np.array_equal(g1[4], g0[4])
    np.testing.assert_array_equal(adapter.d_embed.numpy(), d0)

    moved = {}
    for anchor in (0.0, 100.0):
        acfg = _acfg(base, tmp_path / f"a{anchor}", steps=10, objective="projection", lr=0.05,
                     samples=2, anchor=anchor, select_every=0)
        adapter, data, _ = adapt_lib.prepare(acfg)
        report = adapter.run(data, log=lambda m: None)
        phase = report["phases"]["embedding"]
        assert phase["objective"] == "projection" and phase["anchor"] == anchor
        assert set(phase["history"][0]) == {"step", "loss", "reconstruction", "pixel",
                                            "row_moved"}
        assert report["base_rows_unchanged"]
        moved[anchor] = report["new_row_moved"]
    assert 0 < moved[100.0] < moved[0.0]


def test_projection_blend_stays_a_mix_of_the_trained_writers(base, tmp_path):
    """space=writers: the fitted row is softmax(logits) @ the trained writers' rows, starting
    from the nearest start's weights (1/start_top on the start writers), and moves."""
    acfg = _acfg(base, tmp_path / "b", steps=5, objective="projection", space="writers",
                 lr=0.2, samples=2, start_top=2, select_every=0)
    adapter, data, _ = adapt_lib.prepare(acfg)
    start = adapter.start_rows(data)
    assert sorted(adapter.start_weights.tolist()) == [0.0, 0.0, 0.5, 0.5]
    report = adapter.run(data, log=lambda m: None, start=start)
    weights = tf.nn.softmax(adapter.blend_logits).numpy()
    assert weights.shape == (4,) and weights.sum() == pytest.approx(1.0, abs=1e-5)
    rows = adapter.g_embed.numpy()
    np.testing.assert_allclose(rows[4], weights @ rows[:4], atol=1e-5)
    assert report["new_row_moved"] > 0 and report["base_rows_unchanged"]
    blend = report["phases"]["embedding"]["blend"]
    assert set(blend) <= set(BASE_WRITERS)
    assert sum(blend.values()) == pytest.approx(1.0, abs=1e-3)
    # The exported (EMA) generator holds the fitted row.
    np.testing.assert_array_equal(adapter.ema_embed.numpy()[4], rows[4])


def test_pivotal_finetune_tunes_the_generator_around_the_fixed_row(base, tmp_path):
    """finetune_objective=pivotal: with a fixed seed the reconstruction it reports falls, every
    embedding row (the new writer's pivot included) stays bit for bit while the other generator
    weights move, D is untouched, and a strong locality term changes the base writers' glyphs
    less than none."""
    acfg = _acfg(base, tmp_path / "pv", steps=0, finetune_steps=0, finetune_objective="pivotal",
                 finetune_samples=2, feature_weight=1.0, locality=0.0)
    adapter, data, _ = adapt_lib.prepare(acfg)
    adapter.start_rows(data)
    g0 = adapter.g_embed.numpy().copy()
    d0 = [w.numpy().copy() for w in adapter.trainer.discriminator.weights]
    other0 = [v.numpy().copy() for v in adapter.trainer.generator.trainable_variables
              if v is not adapter.g_embed]
    step = adapter._pivotal_step_fn(0.003)
    x, c, seed = tf.constant(data["images"]), tf.constant(data["chars"]), tf.constant(3, tf.int64)
    out = [[float(v) for v in step(x, c, seed)] for _ in range(5)]
    assert out[-1][1] < out[0][1], out  # reconstruction
    assert out[0][3] == pytest.approx(0.0, abs=1e-6)  # base writers unchanged before the update
    np.testing.assert_array_equal(adapter.g_embed.numpy(), g0)
    for w, w0 in zip(adapter.trainer.discriminator.weights, d0):
        np.testing.assert_array_equal(w.numpy(), w0)
    after = [v.numpy() for v in adapter.trainer.generator.trainable_variables
             if v is not adapter.g_embed]
    assert any(not np.array_equal(a, b) for a, b in zip(after, other0))

    drift = {}
    for locality in (0.0, 50.0):
        acfg = _acfg(base, tmp_path / f"l{locality}", steps=0, finetune_steps=6,
                     finetune_lr=0.003, finetune_objective="pivotal", locality=locality)
        adapter, data, _ = adapt_lib.prepare(acfg)
        report = adapter.run(data, log=lambda m: None)
        phase = report["phases"]["finetune"]
        assert (phase["objective"], phase["locality"], phase["samples"]) == (
            "pivotal", locality, 1)
        assert set(phase["history"][0]) == {"step", "loss", "reconstruction", "pixel",
                                            "base_drift"}
        assert report["base_rows_unchanged"] and report["new_row_moved"] == 0.0
        drift[locality] = report["base_writer_drift"]
        # Measured a few glyphs at a time (memory) it is the same figure as in one call.
        assert adapter.base_drift(batch=5) == pytest.approx(drift[locality], rel=1e-5)
        assert adapter.base_drift(batch=100000) == pytest.approx(drift[locality], rel=1e-5)
    assert 0 < drift[50.0] < drift[0.0], drift


@pytest.mark.parametrize("kw,flag", [({"objective": "clip"}, "adapt_objective"),
                                     ({"feature_weight": -1.0}, "adapt_feature_weight"),
                                     ({"anchor": -0.5}, "adapt_anchor"),
                                     ({"space": "pixels"}, "adapt_space"),
                                     ({"finetune_objective": "l2"}, "adapt_finetune_objective"),
                                     ({"finetune_samples": 0}, "adapt_finetune_samples"),
                                     ({"finetune_min_variants": -1.0},
                                      "adapt_finetune_min_variants"),
                                     ({"locality": -1.0}, "adapt_locality")])
def test_bad_projection_settings_name_the_flag(base, tmp_path, kw, flag):
    with pytest.raises(adapt_lib.AdaptError, match=f"--{flag}"):
        _acfg(base, tmp_path / "x", **kw).validate()


@pytest.mark.parametrize("case", ["no_manifest", "several_writers", "charset", "no_checkpoint",
                                  "not_style_cgan", "known_name", "model_dir_exists"])
def test_bad_input_is_a_clear_error_and_writes_nothing(base, tmp_path, case):
    out = tmp_path / "out"
    kw = {}
    if case == "no_manifest":
        (tmp_path / "empty").mkdir()
        kw["writer_data"], match = str(tmp_path / "empty"), "manifest"
    elif case == "several_writers":
        kw["writer_data"], match = str(base["data"]), "holds 4 writers"
    elif case == "charset":
        kw["writer_data"] = str(_dataset(tmp_path / "xyz", ("bob",), "az"))
        match = "charset mismatch"
    elif case == "no_checkpoint":
        bare = tmp_path / "bare"
        bare.mkdir()
        shutil.copy(base["dir"] / "config.json", bare)
        kw["init"], match = str(bare), "no checkpoint"
    elif case == "not_style_cgan":
        other = tmp_path / "other"
        shutil.copytree(base["dir"], other)
        d = json.loads((other / "config.json").read_text())
        d["model"]["family"] = "char_cgan"
        (other / "config.json").write_text(json.dumps(d))
        kw["init"], match = str(other), "style_cgan"
    elif case == "known_name":
        kw["writer_name"], match = "w2", "already known"
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        match = "not empty"
    with pytest.raises(ValueError, match=match):
        adapt_lib.adapt(_acfg(base, out, **kw), log=lambda m: None)
    if case == "model_dir_exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
        assert (out / "keep.txt").read_text() == "mine"
    else:
        assert not out.exists()


def test_train_main_dispatches_adaptation(base, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, str(ROOT / "train_main.py"),
           f"--flagfile={ROOT / 'configs' / 'adapt_writer.cfg'}",
           f"--writer_data={base['alice']}", f"--init={base['dir'] / 'checkpoints' / 'ckpt-2'}",
           "--writer_name=carol",
           f"--model_dir={out}", f"--export_dir={tmp_path / 'export'}", "--adapt_steps=2",
           "--adapt_batch_size=4", "--adapt_finetune_steps=2", "--run_eagerly"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["writer_name"] == "carol" and Path(report["export"]).is_dir()
    assert report["base_step"] == 2 and report["base_model_dir"] == str(base["dir"])
    assert load_export(tmp_path / "export" / "cli").writers[-1] == "carol"
    # The same command again: the model dir exists -> error, nothing replaced.
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 2 and "not empty" in proc.stderr


def test_train_main_passes_projection_and_finetune_flags(base, tmp_path):
    out = tmp_path / "proj"
    cmd = [sys.executable, str(ROOT / "train_main.py"),
           f"--flagfile={ROOT / 'configs' / 'adapt_writer.cfg'}",
           f"--writer_data={base['alice']}", f"--init={base['dir']}", "--writer_name=dora",
           f"--model_dir={out}", "--export_dir=", "--adapt_steps=2", "--adapt_batch_size=4",
           "--adapt_objective=projection", "--adapt_space=writers", "--adapt_feature_weight=0.5",
           "--adapt_anchor=0.1", "--adapt_finetune_steps=1", "--adapt_finetune_objective=pivotal",
           "--adapt_finetune_samples=2", "--adapt_locality=0.25",
           "--adapt_finetune_min_variants=1.5", "--run_eagerly"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    phase = json.loads((out / "adapt.json").read_text())["phases"]["embedding"]
    assert (phase["objective"], phase["space"], phase["feature_weight"], phase["anchor"]) == (
        "projection", "writers", 0.5, 0.1)
    finetune = json.loads((out / "adapt.json").read_text())["phases"]["finetune"]
    assert (finetune["objective"], finetune["samples"], finetune["locality"]) == (
        "pivotal", 2, 0.25)
    settings = json.loads((out / "adaptation.json").read_text())
    assert settings["objective"] == "projection" and settings["space"] == "writers"
    assert settings["finetune_objective"] == "pivotal" and settings["locality"] == 0.25
    assert settings["finetune_min_variants"] == 1.5 and settings["run_eagerly"] is True
