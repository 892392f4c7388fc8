"""The trainer under the default and a real 2-replica strategy, resume, NaN handling, config."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import tfrecords
from hw_gan import config as config_lib
from hw_gan import experiment
from hw_gan.training import GANTrainer, StyleGANTrainer, make_trainer
from hw_gan.training import strategy as strategy_lib
from hw_gan.training import trainer as trainer_lib
from tests.conftest import ListSource, make_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    tfrecords.write_dataset(ListSource(make_records(chars="abcd", per=4, size=32)), out,
                            split="none", num_shards=2, progress=False)
    return out


def _cfg(data_dir, model_dir, family="style_cgan", steps=4, run_eagerly=False, **train):
    """A tiny run's config. run_eagerly: tests of what a step computes (not of its tracing, its
    XLA compilation or its strategy) run it eagerly, which costs less than tracing it."""
    manifest = tfrecords.load_manifest(data_dir)
    base = dict(batch_size=8, steps=steps, checkpoint_every=2, log_every=1, image_every=2,
                r1_interval=1, seed=3)
    base.update(train)
    return config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data_dir), shuffle_buffer=64),
        model=config_lib.ModelConfig(family=family, width=0.125, latent_dim=16, embed_dim=32,
                                     num_chars=len(manifest["charset"]),
                                     num_writers=len(manifest["writers"])),
        train=config_lib.TrainConfig(**base),
        runtime=config_lib.RuntimeConfig(model_dir=str(model_dir), strategy="default",
                                         run_eagerly=run_eagerly)))


def _trainer(cfg, strategy=None):
    keras.utils.set_random_seed(cfg.train.seed)  # as hw_gan.experiment does before each build
    return trainer_lib.GANTrainer(cfg, strategy or tf.distribute.get_strategy(),
                                  tfrecords.load_manifest(cfg.data.data_dir))


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize("family", ["char_cgan", "style_cgan"])
def test_training_steps_checkpoints_and_summaries(data_dir, tmp_path, family):
    trainer = _trainer(_cfg(data_dir, tmp_path, family))
    before = _weights(trainer.generator)
    out = trainer.train()
    assert out["step"] == 4 and out["trained_steps"] == 4
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(trainer.generator)))
    # The EMA copy moves more slowly than the generator it follows.
    ema, gen = _weights(trainer.ema_generator), _weights(trainer.generator)
    assert any(not np.array_equal(a, b) for a, b in zip(ema, gen))
    assert sorted(int(p.split("-")[-1]) for p in trainer.manager.checkpoints) == [2, 4]
    assert list((tmp_path / "train").glob("events.out.tfevents.*"))
    grid = trainer.sample_grid(np.array([0, 1, 2]), np.array([0, 1]))
    assert grid.shape == (1, 2 * 32, 3 * 32, 1) and grid.dtype == tf.uint8
    imgs = trainer.generate(np.array([0, 1, 2], np.int32), np.array([0, 0, 1], np.int32), seed=5)
    assert imgs.shape == (3, 32, 32, 1) and imgs.min() >= -1 and imgs.max() <= 1
    np.testing.assert_array_equal(
        imgs, trainer.generate(np.array([0, 1, 2], np.int32), np.array([0, 0, 1], np.int32), 5))


def test_ema_rampup_starts_the_average_as_a_copy_and_caps_its_half_life(data_dir, tmp_path):
    at = lambda step, rampup: float(trainer_lib.ema_decay_at(step, 0.999, rampup))
    assert at(0, 0.0) == at(10_000, 0.0) == pytest.approx(0.999)  # off: the fixed decay
    assert at(0, 0.05) == 0.0  # the first update copies the generator
    assert at(100, 0.05) == pytest.approx(0.5 ** (1 / 5.0))  # half-life 5 % of 100 steps
    assert at(10_000, 0.05) == pytest.approx(0.5 ** (1 / 500.0))  # 500 < 0.999's 693 steps
    assert at(20_000, 0.05) == pytest.approx(0.999)  # 1,000 > 693: capped at ema_decay
    # In a run: one step with the ramp leaves the EMA equal to the generator; without it the
    # EMA is still 99.9 % the starting weights.
    ramped = _trainer(_cfg(data_dir, tmp_path / "r", steps=1, run_eagerly=True, ema_rampup=0.05))
    fixed = _trainer(_cfg(data_dir, tmp_path / "f", steps=1, run_eagerly=True))
    start = _weights(fixed.generator)
    ramped.train(), fixed.train()
    for ema, live in zip(_weights(ramped.ema_generator), _weights(ramped.generator)):
        np.testing.assert_array_equal(ema, live)
    moved = [(e, s, g) for e, s, g in zip(_weights(fixed.ema_generator), start,
                                          _weights(fixed.generator)) if not np.array_equal(s, g)]
    assert moved
    for ema, s, live in moved:
        np.testing.assert_allclose(ema, 0.999 * s + 0.001 * live, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="ema_rampup"):
        _cfg(data_dir, tmp_path, ema_rampup=1.5)


def test_auxiliary_classifiers_learn_and_are_checkpointed(data_dir, tmp_path):
    cfg = _cfg(data_dir, tmp_path, steps=3, run_eagerly=True, aux_char_weight=1.0,
               aux_writer_weight=0.5)
    trainer = _trainer(cfg)
    assert set(trainer.aux_heads) == {"char", "writer"}
    head = trainer.aux_heads["writer"][0]
    before = head.kernel.numpy().copy()
    out = trainer.train()
    assert not np.array_equal(before, head.kernel.numpy()), "the writer head is trained with D"
    restored = _trainer(cfg)
    assert restored.restore() == 3
    np.testing.assert_array_equal(restored.aux_heads["writer"][0].kernel.numpy(),
                                  head.kernel.numpy())
    assert out["step"] == 3
    # char_cgan has no writer input: only the char head exists.
    char_only = _trainer(_cfg(data_dir, tmp_path / "c", "char_cgan", run_eagerly=True,
                              aux_char_weight=1.0, aux_writer_weight=1.0))
    assert set(char_only.aux_heads) == {"char"}


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(data_dir, tmp_path):
    straight = _trainer(_cfg(data_dir, tmp_path / "a", steps=6, r1_interval=2, run_eagerly=True))
    straight.train()
    first = _trainer(_cfg(data_dir, tmp_path / "b", steps=3, r1_interval=2, run_eagerly=True))
    first.train()
    resumed = _trainer(_cfg(data_dir, tmp_path / "b", steps=6, r1_interval=2, run_eagerly=True))
    assert resumed.restore() == 3
    # Optimizer state came back too (Adam's iteration counter).
    assert int(resumed.g_opt.iterations.numpy()) == 3
    out = resumed.train()
    assert out["resumed"] and out["trained_steps"] == 3
    for a, b in zip(_weights(straight.generator), _weights(resumed.generator)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(_weights(straight.discriminator), _weights(resumed.discriminator)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _shared_noise(trainer_class):
    """`trainer_class`'s alternating step, with the G update drawing the D update's noise."""

    def make_fakes(self, step, salt, chars, writers, batch_size, training=True):
        return trainer_class._make_fakes(self, step, 1, chars, writers, batch_size, training)

    return type("SharedNoise" + trainer_class.__name__, (trainer_class,),
                {"_make_fakes": make_fakes})


@pytest.mark.parametrize("family", ["style_cgan", "stylegan"])
def test_fused_step_is_the_alternating_step_with_the_d_steps_fakes(data_dir, tmp_path, family):
    """--fused_step runs G once per step: it must compute what two G passes on the same noise
    compute, R1 steps included (only the forward pass is shared, not the math)."""

    def run(name, trainer_factory, **train):
        cfg = _cfg(data_dir, tmp_path / name, family=family, steps=4, r1_interval=2,
                   style_group_size=2, run_eagerly=True, **train)
        keras.utils.set_random_seed(cfg.train.seed)
        trainer = trainer_factory(cfg, tf.distribute.get_strategy(),
                                  tfrecords.load_manifest(data_dir))
        it = iter(trainer.dataset(0))
        # Three steps, two with R1. Further on, stylegan's noise layers (seeded from their
        # input's sum) turn the two computations' different rounding into different noise.
        losses = [{k: float(v) for k, v in trainer._train_step_fn(s % 2 == 0)(it).items()}
                  for s in range(3)]
        return losses, [w for m in ("generator", "discriminator", "ema_generator")
                        for w in _weights(getattr(trainer, m))]

    fused, fused_w = run("fused", make_trainer, fused_step=True)
    plain, plain_w = run("plain", make_trainer, fused_step=False)
    ref, ref_w = run("ref", _shared_noise(StyleGANTrainer if family == "stylegan"
                                          else GANTrainer), fused_step=False)
    for i, (f, r) in enumerate(zip(fused, ref)):  # every loss of every step, R1 steps included
        assert f.keys() == r.keys()
        for k in f:
            assert f[k] == pytest.approx(r[k], rel=1e-3, abs=1e-4), (i, k, f, r)
    assert any(abs(f["g_loss"] - p["g_loss"]) > 1e-3 for f, p in zip(fused, plain))

    def share_apart(a, b):  # weights further apart than round-off (Adam can turn a ~0
        # gradient's rounding into a sign flip of one element's step: keep to a share)
        diff = np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)])
        return float(np.mean(diff > 2e-5))

    assert share_apart(fused_w, ref_w) < 0.01
    assert share_apart(fused_w, plain_w) > 0.2


def test_one_discriminator_pass_over_real_and_fake_gives_each_examples_logit(data_dir, tmp_path):
    trainer = _trainer(_cfg(data_dir, tmp_path, aux_char_weight=0.5))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (16, 32, 32, 1)), tf.float32)
    chars = tf.constant(rng.integers(0, 4, 16), tf.int32)
    writers = tf.constant(rng.integers(0, 3, 16), tf.int32)
    both, aux = trainer._discriminate(images, chars, writers)
    first, aux_first = trainer._discriminate(images[:8], chars[:8], writers[:8])
    second, _ = trainer._discriminate(images[8:], chars[8:], writers[8:])
    np.testing.assert_allclose(both.numpy(), np.concatenate([first, second]), atol=1e-5)
    np.testing.assert_allclose(aux.numpy()[:8], aux_first.numpy(), atol=1e-5)


def test_two_replica_mirrored_strategy_trains(data_dir, tmp_path):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, "conftest configures two logical CPUs"
    strategy = strategy_lib.mirrored(devices[:2])
    trainer = _trainer(_cfg(data_dir, tmp_path, steps=3), strategy)
    assert trainer.replicas == 2
    out = trainer.train()
    assert out["step"] == 3
    for w in trainer.generator.weights:
        assert np.isfinite(w.numpy()).all()
    with pytest.raises(ValueError, match="not divisible by the 2 replicas"):
        _trainer(_cfg(data_dir, tmp_path / "odd", batch_size=7), strategy)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_losses(data_dir, tmp_path, precision):
    strategy_lib.set_precision(precision)
    try:
        cfg = _cfg(data_dir, tmp_path, steps=2)
        cfg = cfg.replace(runtime=config_lib.dataclasses.replace(cfg.runtime, precision=precision))
        trainer = _trainer(cfg)
        scaled = isinstance(trainer.g_opt, __import__("keras").optimizers.LossScaleOptimizer)
        assert scaled == (precision == "mixed_float16")  # only float16 needs loss scaling
        assert trainer.train()["step"] == 2
        imgs = trainer.generate(np.array([0, 1], np.int32), np.array([0, 1], np.int32), seed=1)
        assert imgs.dtype == np.float32 and np.isfinite(imgs).all()
        assert all(np.isfinite(w.numpy()).all() for w in trainer.generator.weights)
    finally:
        strategy_lib.set_precision("float32")


def test_traced_xla_and_eager_steps_train_alike(data_dir, tmp_path):
    """--jit_compile compiles the step's math with XLA (not the input iterator, which XLA
    cannot compile: the whole-step version failed with IteratorGetNext); --run_eagerly runs it
    op by op, no tf.function (the other tests of what a step computes rely on that)."""
    eager = _trainer(_cfg(data_dir, tmp_path / "eager", steps=2, run_eagerly=True))
    eager.train()
    assert not hasattr(eager._train_step_fn(True), "get_concrete_function")
    traced = _trainer(_cfg(data_dir, tmp_path / "traced", steps=2))
    traced.train()
    assert traced._train_step_fn(True).experimental_get_tracing_count() == 1
    cfg = _cfg(data_dir, tmp_path / "jit", steps=2)
    jit = _trainer(cfg.replace(runtime=config_lib.dataclasses.replace(cfg.runtime,
                                                                       jit_compile=True)))
    assert jit.train()["step"] == 2
    for a, b, c in zip(traced.ema_generator.weights, eager.ema_generator.weights,
                       jit.ema_generator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)  # the same ops
        np.testing.assert_allclose(c.numpy(), b.numpy(), atol=1e-3)  # same math, XLA's rounding


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    trainer = _trainer(_cfg(data_dir, tmp_path, steps=2, run_eagerly=True))
    trainer.train()
    good = trainer.manager.latest_checkpoint
    nan_trainer = _trainer(_cfg(data_dir, tmp_path, steps=12, run_eagerly=True))
    nan_trainer.d_loss_fn = lambda real, fake: tf.cast(real, tf.float32) * np.nan
    with pytest.raises(trainer_lib.TrainingError, match=r"non-finite d_loss.* at step \d+ .*last good checkpoint \(step 2\)"):
        nan_trainer.train()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == good


def test_strategy_selection():
    assert strategy_lib.make_strategy("default") is tf.distribute.get_strategy()
    assert isinstance(strategy_lib.make_strategy("auto"), tf.distribute.MirroredStrategy)  # 2 CPUs
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy_lib.make_strategy("multi_worker")


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(tmp_path):
    with_bf16, without, unreadable = tmp_path / "a", tmp_path / "b", tmp_path / "missing"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 fma\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw fma\n")
    assert strategy_lib.cpu_has_native_bf16(str(with_bf16))
    assert not strategy_lib.cpu_has_native_bf16(str(without))
    assert not strategy_lib.cpu_has_native_bf16(str(unreadable))
    assert strategy_lib.resolve_precision("auto", str(with_bf16)) == "mixed_bfloat16"
    assert strategy_lib.resolve_precision("auto", str(without)) == "float32"
    assert strategy_lib.resolve_precision("auto", str(unreadable)) == "float32"
    assert strategy_lib.resolve_precision("float32", str(with_bf16)) == "float32"
    assert strategy_lib.resolve_precision("mixed_float16", str(without)) == "mixed_float16"


def test_auto_jit_compile_is_on_only_on_a_cpu_without_avx512(tmp_path, monkeypatch):
    """--jit_compile=auto: XLA where it measured faster (AVX2 only, no GPU), oneDNN's kernels
    where the CPU has AVX-512 or cannot be read, off on a GPU; a bool as given."""
    gpus = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: list(gpus))
    avx2, avx512, unreadable = tmp_path / "a", tmp_path / "b", tmp_path / "missing"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    avx512.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw fma\n")
    assert strategy_lib.cpu_flags(str(avx2)) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert strategy_lib.cpu_flags(str(unreadable)) is None
    assert strategy_lib.resolve_jit_compile("auto", str(avx2)) is True
    assert strategy_lib.resolve_jit_compile("auto", str(avx512)) is False
    assert strategy_lib.resolve_jit_compile("auto", str(unreadable)) is False
    assert strategy_lib.resolve_jit_compile(True, str(avx512)) is True
    assert strategy_lib.resolve_jit_compile(False, str(avx2)) is False
    gpus.append("GPU:0")  # a GPU: auto is off (not measured there); a bool still as given
    assert strategy_lib.resolve_jit_compile("auto", str(avx2)) is False
    assert strategy_lib.resolve_jit_compile(True, str(avx2), replicas=2) is True
    gpus.clear()
    with pytest.raises(ValueError, match=r"--jit_compile: 'on' is not true, false or auto"):
        strategy_lib.resolve_jit_compile("on", str(avx2))
    # Mirrored over logical CPUs XLA's step fails (it reads replica 1's variables from CPU:0):
    # auto stays off, and asking for it is refused by name.
    assert strategy_lib.resolve_jit_compile("auto", str(avx2), replicas=2) is False
    assert strategy_lib.resolve_jit_compile(False, str(avx2), replicas=2) is False
    with pytest.raises(ValueError, match=r"--jit_compile: XLA cannot compile a step mirrored "
                                         r"over 2 logical CPUs; use --nojit_compile"):
        strategy_lib.resolve_jit_compile(True, str(avx2), replicas=2)
    cfg = config_lib.ExperimentConfig()
    with pytest.raises(ValueError, match=r"--jit_compile.*'on' is not true, false or auto"):
        config_lib.validate(cfg.replace(runtime=config_lib.dataclasses.replace(
            cfg.runtime, jit_compile="on")))


def test_an_auto_jit_run_says_what_it_chose_and_records_it(data_dir, tmp_path, monkeypatch):
    """--jit_compile=auto on a CPU without AVX-512 (its flags faked): the run trains with XLA,
    says so in one line, and config.json records what ran (true), not "auto"."""
    monkeypatch.setattr(strategy_lib, "cpu_flags", lambda cpuinfo="": frozenset({"avx2", "fma"}))
    seen = tf.config.list_physical_devices  # and no GPU, as on the CPUs auto was measured on
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [] if kind == "GPU" else seen(kind))
    cfg = _cfg(data_dir, tmp_path / "run", steps=2)
    cfg = cfg.replace(runtime=config_lib.dataclasses.replace(cfg.runtime, jit_compile="auto",
                                                             strategy="default"),
                      eval=config_lib.dataclasses.replace(cfg.eval, eval_at_end=False))
    logs = []
    assert experiment.run(cfg, log=logs.append)["train"]["step"] == 2
    assert ("training in float32, XLA on (--precision=float32, --jit_compile=auto: chosen for "
            "this machine)") in logs
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["runtime"]["jit_compile"] is True


def test_bfloat16_training_evaluates_and_exports_float32_models(data_dir, tmp_path):
    """A run trained under mixed_bfloat16 is scored and shipped as float32: evaluation and
    export read the float32 checkpoint into float32 models."""
    cfg = _cfg(data_dir, tmp_path / "run", steps=2, run_eagerly=True, fused_step=True)
    cfg = cfg.replace(
        runtime=config_lib.dataclasses.replace(cfg.runtime, precision="mixed_bfloat16",
                                               export_dir=str(tmp_path / "export")),
        eval=config_lib.dataclasses.replace(cfg.eval, judge_steps=2, judge_batch=8,
                                            num_generated=8))
    try:
        summary = experiment.run(cfg)
    finally:
        strategy_lib.set_precision("float32")
    assert summary["train"]["step"] == 2 and summary["eval"]["step"] == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["runtime"]["precision"] == "mixed_bfloat16"
    assert _graph_dtypes(summary["export"]) >= {tf.float32.as_datatype_enum}
    assert tf.bfloat16.as_datatype_enum not in _graph_dtypes(summary["export"])
    restored = experiment.float32_trainer(cfg, tf.distribute.get_strategy(),
                                          tfrecords.load_manifest(data_dir))
    assert restored.ema_generator.compute_dtype == "float32"
    assert int(restored.step.numpy()) == 2


def _graph_dtypes(export_path) -> set:
    """Every dtype enum named by an attribute of a node of the SavedModel's graph and
    functions (a bfloat16 computation shows up as Cast / Conv2D nodes typed DT_BFLOAT16)."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((Path(export_path) / "saved_model.pb").read_bytes())
    graph = model.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    out = set()
    for node in nodes:
        for attr in node.attr.values():
            if attr.type:
                out.add(attr.type)
            out.update(attr.list.type)
    return out


def test_config_validation_and_resume_compatibility(tmp_path):
    cfg = config_lib.ExperimentConfig(data=config_lib.DataConfig(data_dir="d"),
                                      runtime=config_lib.RuntimeConfig(model_dir="m"))
    config_lib.validate(cfg)
    bad = cfg.replace(model=config_lib.dataclasses.replace(cfg.model, resolution=48))
    with pytest.raises(ValueError, match=r"--resolution: 48 is not one of \(32, 64\)"):
        config_lib.validate(bad)
    assert config_lib.ExperimentConfig.from_dict(json.loads(cfg.to_json())) == cfg
    longer = cfg.replace(train=config_lib.dataclasses.replace(cfg.train, steps=99))
    assert config_lib.incompatible_changes(cfg, longer) == []
    wider = cfg.replace(model=config_lib.dataclasses.replace(cfg.model, width=0.5))
    assert config_lib.incompatible_changes(cfg, wider) == ["model.width: 1.0 -> 0.5"]
    # Auxiliary loss weights may be rebalanced on resume, but not switched on or off (the heads
    # are part of the checkpoint).
    t = config_lib.dataclasses.replace
    aux = cfg.replace(train=t(cfg.train, aux_char_weight=0.5, aux_writer_weight=1.0))
    reweighted = aux.replace(train=t(aux.train, aux_char_weight=1.5, aux_writer_weight=3.0))
    assert config_lib.incompatible_changes(aux, reweighted) == []
    off = aux.replace(train=t(aux.train, aux_char_weight=0.0))
    assert config_lib.incompatible_changes(aux, off) == ["train.aux_char_weight: 0.5 -> 0.0"]
    assert config_lib.incompatible_changes(cfg, aux) == [
        "train.aux_char_weight: 0.0 -> 0.5", "train.aux_writer_weight: 0.0 -> 1.0"]


def _train_main(*args, env=None, timeout=240):
    return subprocess.run([sys.executable, str(ROOT / "train_main.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


def _flags(data_dir, model_dir, *extra):
    return [f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--width=0.125",
            "--latent_dim=16", "--batch_size=8", "--log_every=1", "--shuffle_buffer=64",
            "--eval_at_end=false", *extra]


def test_train_main_flag_errors_dry_run_and_incompatible_resume(data_dir, tmp_path):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text("--model=style_cgan\n--no_such_flag=1\n")
    res = _train_main(f"--flagfile={flagfile}")
    assert res.returncode != 0 and "no_such_flag" in res.stderr
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--resolution=48", "--dry_run"))
    assert res.returncode == 2 and "--resolution: 48" in res.stderr
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--dry_run"))
    assert res.returncode == 0 and json.loads(res.stdout)["model"]["width"] == 0.125
    assert not (tmp_path / "m").exists(), "a dry run writes nothing"
    res = _train_main(*_flags(tmp_path / "nodata", tmp_path / "m", "--steps=1"))
    assert res.returncode == 2 and "does not exist" in res.stderr
    # (Eagerly: the traced step through train_main is the sigterm and multi-worker tests'.)
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--steps=2", "--checkpoint_every=1",
                              "--run_eagerly"))
    assert res.returncode == 0, res.stderr
    saved = json.loads((tmp_path / "m/config.json").read_text())
    assert saved["model"]["num_chars"] == 4 and saved["train"]["steps"] == 2
    assert saved["runtime"]["run_eagerly"] is True
    export = [f"--export_dir={tmp_path / 'export'}", "--export_name=tiny"]
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--mode=export", *export))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "export/tiny/1/saved_model.pb").exists()
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--mode=export", *export))
    assert res.returncode == 2 and "already exists" in res.stderr
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--mode=sample", *export,
                              f"--sample_out={tmp_path / 'grid.png'}", "--sample_writers=w0,zz"))
    assert res.returncode == 2 and "zz" in res.stderr and not (tmp_path / "grid.png").exists()
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--mode=sample", *export,
                              f"--sample_out={tmp_path / 'grid.png'}", "--sample_writers=w0,w3",
                              "--sample_chars=abd"))
    assert res.returncode == 0, res.stderr
    import cv2

    grid = cv2.imread(str(tmp_path / "grid.png"), cv2.IMREAD_GRAYSCALE)
    assert abs(grid.shape[0] / grid.shape[1] - 2 / 3) < 0.1  # 2 writers x 3 characters
    assert grid.std() > 5  # glyphs drawn, not a blank page
    res = _train_main(*_flags(data_dir, tmp_path / "m", "--steps=4", "--width=0.25"))
    assert res.returncode == 2 and "model.width: 0.125 -> 0.25" in res.stderr
    assert json.loads((tmp_path / "m/config.json").read_text()) == saved, "nothing overwritten"
    other = tmp_path / "other"
    tfrecords.write_dataset(ListSource(make_records(chars="xyz", size=32)), other, split="none",
                            progress=False)
    res = _train_main(*_flags(other, tmp_path / "m", "--steps=4"))
    assert res.returncode == 2 and "charset mismatch" in res.stderr


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(data_dir, tmp_path):
    args = [sys.executable, str(ROOT / "train_main.py"),
            *_flags(data_dir, tmp_path / "m", "--steps=100000", "--checkpoint_every=100000")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.time() + 180
    while time.time() < deadline and not list((tmp_path / "m/train").glob("events*")):
        time.sleep(0.5)
    time.sleep(4)  # let a few steps run
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = int(tf.train.latest_checkpoint(str(tmp_path / "m/checkpoints")).rsplit("-", 1)[1])
    assert step > 0 and f"checkpoint saved at step {step}" in err
    res = _train_main(*_flags(data_dir, tmp_path / "m", f"--steps={step + 2}",
                              "--checkpoint_every=100000"))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["train"]["resumed"] and summary["train"]["trained_steps"] == 2


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_training_on_localhost(data_dir, tmp_path):
    """Two worker processes on this machine, coordinated through TF_CONFIG."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "train_main.py"),
             *_flags(data_dir, tmp_path / "m", "--strategy=multi_worker", "--steps=3",
                     "--checkpoint_every=2")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)}))
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=300))
    finally:
        for proc in procs:
            proc.kill()
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    chief = json.loads(outs[0][0])
    assert chief["train"]["step"] == 3
    ckpts = sorted(p.name for p in (tmp_path / "m/checkpoints").glob("ckpt-*.index"))
    assert ckpts == ["ckpt-2.index", "ckpt-3.index"]
    assert not list((tmp_path / "m").glob(".worker-*")), "non-chief copies are cleaned up"
