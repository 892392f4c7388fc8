"""Train, evaluate, export and sample hwgan models.

  python train_main.py --flagfile=configs/quickstart.cfg
  python train_main.py --flagfile=configs/quickstart.cfg --mode=evaluate
  python train_main.py --flagfile=configs/quickstart.cfg --mode=sample --sample_out=grid.png

This is the only module that defines flags: they become a frozen, validated ExperimentConfig
(hw_gan.config) that is written to --model_dir before the first step; --dry_run prints it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hw_gan import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS
_d, _m, _t, _e, _r = (config_lib.DataConfig(), config_lib.ModelConfig(), config_lib.TrainConfig(),
                      config_lib.EvalConfig(), config_lib.RuntimeConfig())

# Data.
flags.DEFINE_string("data_dir", _d.data_dir, "Dataset directory (built by data_pipeline.build).")
flags.DEFINE_string("train_split", _d.train_split, "Split to train on.")
flags.DEFINE_string("eval_split", _d.eval_split, "Split of held-out glyphs, where one is needed.")
flags.DEFINE_integer("shuffle_buffer", _d.shuffle_buffer, "Records in the shuffle buffer.")
flags.DEFINE_boolean("cache", _d.cache, "Cache the training records in memory.")
flags.DEFINE_string("build_source", _d.build_source,
                    "If --data_dir has no manifest, build it first from this source.")
flags.DEFINE_multi_string("build_param", [], "KEY=VALUE parameters for --build_source; "
                          "split=, test_fraction= and seed= set the build's split.")
# Model.
flags.DEFINE_enum("model", _m.family, config_lib.FAMILIES, "Model family.")
flags.DEFINE_integer("resolution", _m.resolution, "Glyph resolution (32 or 64).")
flags.DEFINE_float("width", _m.width, "Channel width multiplier (1.0 full, 0.25 CPU-sized).")
flags.DEFINE_integer("latent_dim", _m.latent_dim, "Noise size.")
flags.DEFINE_integer("embed_dim", _m.embed_dim, "Char/writer embedding size at width 1.")
flags.DEFINE_integer("w_dim", _m.w_dim, "StyleGAN style vector size at width 1.")
flags.DEFINE_integer("mapping_layers", _m.mapping_layers, "StyleGAN mapping network depth.")
# Training.
flags.DEFINE_integer("batch_size", _t.batch_size, "Global batch size (split across replicas).")
flags.DEFINE_integer("steps", _t.steps, "Total training steps.")
flags.DEFINE_float("g_lr", _t.g_lr, "Generator learning rate.")
flags.DEFINE_float("d_lr", _t.d_lr, "Discriminator learning rate.")
flags.DEFINE_float("beta1", _t.beta1, "Adam beta1.")
flags.DEFINE_float("beta2", _t.beta2, "Adam beta2.")
flags.DEFINE_enum("loss", _t.loss, config_lib.LOSSES, "GAN loss.")
flags.DEFINE_float("r1_gamma", _t.r1_gamma, "R1 penalty weight (0 disables).")
flags.DEFINE_integer("r1_interval", _t.r1_interval, "Apply R1 every N steps (lazy R1).")
flags.DEFINE_float("ema_decay", _t.ema_decay, "Generator EMA decay.")
flags.DEFINE_integer("ema_start", _t.ema_start, "Step before which the EMA copies the generator.")
flags.DEFINE_float("style_mixing_prob", _t.style_mixing_prob, "StyleGAN style mixing probability.")
flags.DEFINE_integer("style_group_size", _t.style_group_size,
                     "StyleGAN: glyphs of one writer per group in a batch (encoder training).")
flags.DEFINE_float("style_recon_weight", _t.style_recon_weight,
                   "StyleGAN: pixel L1 weight of redrawing a writer's glyph from the encoded style.")
flags.DEFINE_float("style_feature_weight", _t.style_feature_weight,
                   "StyleGAN: D-feature L1 weight of that reconstruction.")
flags.DEFINE_float("style_cycle_weight", _t.style_cycle_weight,
                   "StyleGAN: weight of recovering w from glyphs generated with it.")
flags.DEFINE_float("pl_weight", _t.pl_weight, "StyleGAN: path-length regularisation (0 = off).")
flags.DEFINE_float("aux_char_weight", _t.aux_char_weight,
                   "Weight of the auxiliary character classifier on D's features (0 = off).")
flags.DEFINE_float("aux_writer_weight", _t.aux_writer_weight,
                   "Weight of the auxiliary writer classifier on D's features (0 = off).")
flags.DEFINE_integer("seed", _t.seed, "Seed for weights, noise and data order.")
flags.DEFINE_integer("checkpoint_every", _t.checkpoint_every, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", _t.keep_checkpoints, "Checkpoints kept.")
flags.DEFINE_integer("log_every", _t.log_every, "Steps between logged scalars.")
flags.DEFINE_integer("image_every", _t.image_every, "Steps between sample grids.")
# Evaluation.
flags.DEFINE_integer("judge_steps", _e.judge_steps, "Training steps of the judge classifiers.")
flags.DEFINE_integer("judge_batch", _e.judge_batch, "Batch size of the judge classifiers.")
flags.DEFINE_integer("num_generated", _e.num_generated, "Generated glyphs scored by evaluation.")
flags.DEFINE_boolean("eval_at_end", _e.eval_at_end, "Evaluate (and export) after training.")
# Runtime.
flags.DEFINE_string("model_dir", _r.model_dir, "Checkpoints, summaries, config and eval.json.")
flags.DEFINE_enum("mode", _r.mode, config_lib.MODES, "What to do.")
flags.DEFINE_enum("strategy", _r.strategy, config_lib.STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_enum("precision", _r.precision, config_lib.PRECISIONS, "Keras dtype policy.")
flags.DEFINE_boolean("jit_compile", _r.jit_compile, "XLA-compile the train step.")
flags.DEFINE_integer("num_cpu_devices", _r.num_cpu_devices,
                     "Split the CPU into N logical devices (2-replica runs without GPUs).")
flags.DEFINE_string("export_dir", _r.export_dir, "Root of SavedModel exports (NAME/VERSION).")
flags.DEFINE_string("export_name", _r.export_name, "Export name (default: model_dir's name).")
flags.DEFINE_integer("export_version", _r.export_version, "Export version number.")
flags.DEFINE_string("sample_out", _r.sample_out, "--mode=sample: PNG to write.")
flags.DEFINE_list("sample_writers", list(_r.sample_writers), "--mode=sample: writer names.")
flags.DEFINE_string("sample_chars", _r.sample_chars, "--mode=sample: characters to draw.")
flags.DEFINE_boolean("dry_run", False, "Print the resolved config and exit.")
flags.DEFINE_boolean("deterministic", False, "Enable TensorFlow op determinism (slower).")
flags.DEFINE_boolean("overwrite_export", False, "Replace an existing export version.")
# Adding a writer to a trained style_cgan (hw_gan.adaptation); --writer_data selects this.
flags.DEFINE_string("writer_data", "", "Adapt: dataset directory of ONE new writer's glyphs "
                    "(e.g. extracted from scanned templates); adds that writer to --init.")
flags.DEFINE_string("init", "", "Adapt: base style_cgan model directory (its latest checkpoint) "
                    "or a checkpoint prefix; its config.json/dataset.json are used.")
flags.DEFINE_string("writer_name", "", "Adapt: the new writer's name (default: the dataset's).")
flags.DEFINE_string("adapt_split", "train", "Adapt: split of --writer_data to adapt on.")
flags.DEFINE_integer("adapt_steps", 300, "Adapt: steps optimising only the new writer rows.")
flags.DEFINE_integer("adapt_batch_size", 32, "Adapt: batch size.")
flags.DEFINE_float("adapt_lr", 0.001, "Adapt: learning rate of G's new writer row.")
flags.DEFINE_float("adapt_d_lr", 0.002, "Adapt: learning rate of D's new writer row.")
flags.DEFINE_integer("adapt_finetune_steps", 0,
                     "Adapt: then fine-tune the whole generator this many steps (0 = off).")
flags.DEFINE_float("adapt_finetune_lr", 2e-5, "Adapt: generator fine-tune learning rate.")
flags.DEFINE_enum("adapt_start", "nearest", ["nearest", "mean"],
                  "Adapt: start the new writer as the mean of the nearest base writers (by how "
                  "well their generated glyphs reproduce the writer's) or of all base writers.")
flags.DEFINE_integer("adapt_start_top", 4, "Adapt: how many nearest base writers to average.")
flags.DEFINE_integer("adapt_samples", 8,
                     "Adapt: generated draws per glyph in the pixel distance (start, selection).")
flags.DEFINE_integer("adapt_select_every", 50,
                     "Adapt: score the new row every N embedding steps and keep the best (0=off).")
flags.DEFINE_enum("adapt_objective", "gan", ["gan", "projection"],
                  "Adapt: embedding-phase loss: the base's GAN loss (G's and D's new rows) or "
                  "projection (G's new row fitted to reconstruct the writer's glyphs: pixel L1 + "
                  "--adapt_feature_weight x L1 of D's features).")
flags.DEFINE_float("adapt_feature_weight", 3.0,
                   "Adapt: projection: weight of the discriminator-feature L1 (pixel L1 is 1).")
flags.DEFINE_float("adapt_anchor", 0.0,
                   "Adapt: projection: weight of |row - start|^2 / |start|^2.")
flags.DEFINE_enum("adapt_space", "row", ["row", "writers"],
                  "Adapt: projection: fit a free row, or a softmax blend of the trained writers' "
                  "rows (starting from the start's weights).")
flags.DEFINE_enum("adapt_finetune_objective", "gan", ["gan", "pivotal"],
                  "Adapt: fine-tune loss: the base's GAN loss, or pivotal tuning (the generator "
                  "tuned so the new row reproduces the writer's glyphs, base writers kept by "
                  "--adapt_locality).")
flags.DEFINE_integer("adapt_finetune_samples", 1,
                     "Adapt: pivotal fine-tune: draws per glyph (the closest is pulled to it).")
flags.DEFINE_float("adapt_locality", 1.0,
                   "Adapt: pivotal fine-tune: weight of the base writers' glyph change.")
flags.DEFINE_float("adapt_finetune_min_variants", 0.0,
                   "Adapt: fine-tune only when --writer_data holds at least this many glyphs per "
                   "character it covers (else only the embedding is adapted; 0 = always).")


def config_from_flags() -> config_lib.ExperimentConfig:
    """Flags -> validated, frozen config."""
    params = []
    for item in FLAGS.build_param:
        if "=" not in item:
            raise ValueError(f"--build_param {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        params.append((key.strip(), value.strip()))
    cfg = config_lib.ExperimentConfig(
        data=config_lib.DataConfig(
            data_dir=FLAGS.data_dir, train_split=FLAGS.train_split, eval_split=FLAGS.eval_split,
            shuffle_buffer=FLAGS.shuffle_buffer, cache=FLAGS.cache,
            build_source=FLAGS.build_source, build_params=tuple(params)),
        model=config_lib.ModelConfig(
            family=FLAGS.model, resolution=FLAGS.resolution, width=FLAGS.width,
            latent_dim=FLAGS.latent_dim, embed_dim=FLAGS.embed_dim, w_dim=FLAGS.w_dim,
            mapping_layers=FLAGS.mapping_layers),
        train=config_lib.TrainConfig(
            batch_size=FLAGS.batch_size, steps=FLAGS.steps, g_lr=FLAGS.g_lr, d_lr=FLAGS.d_lr,
            beta1=FLAGS.beta1, beta2=FLAGS.beta2, loss=FLAGS.loss, r1_gamma=FLAGS.r1_gamma,
            r1_interval=FLAGS.r1_interval, ema_decay=FLAGS.ema_decay, ema_start=FLAGS.ema_start,
            style_mixing_prob=FLAGS.style_mixing_prob, style_group_size=FLAGS.style_group_size,
            style_recon_weight=FLAGS.style_recon_weight,
            style_feature_weight=FLAGS.style_feature_weight,
            style_cycle_weight=FLAGS.style_cycle_weight, pl_weight=FLAGS.pl_weight,
            aux_char_weight=FLAGS.aux_char_weight,
            aux_writer_weight=FLAGS.aux_writer_weight, seed=FLAGS.seed,
            checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
            log_every=FLAGS.log_every, image_every=FLAGS.image_every),
        eval=config_lib.EvalConfig(
            judge_steps=FLAGS.judge_steps, judge_batch=FLAGS.judge_batch,
            num_generated=FLAGS.num_generated, eval_at_end=FLAGS.eval_at_end),
        runtime=config_lib.RuntimeConfig(
            model_dir=FLAGS.model_dir, mode=FLAGS.mode, strategy=FLAGS.strategy,
            precision=FLAGS.precision, jit_compile=FLAGS.jit_compile,
            num_cpu_devices=FLAGS.num_cpu_devices, export_dir=FLAGS.export_dir,
            export_name=FLAGS.export_name, export_version=FLAGS.export_version,
            sample_out=FLAGS.sample_out, sample_writers=tuple(FLAGS.sample_writers),
            sample_chars=FLAGS.sample_chars),
    )
    return config_lib.validate(cfg)


def run(cfg: config_lib.ExperimentConfig, deterministic: bool = False,
        overwrite_export: bool = False) -> dict:
    """Runs one mode of an experiment; returns a JSON-able summary."""
    # Device layout and policies first: they must precede any TensorFlow op.
    from hw_gan.training import strategy as strategy_lib

    strategy_lib.split_cpu(cfg.runtime.num_cpu_devices)
    import keras
    import tensorflow as tf

    from data_pipeline import atomic, build, tfrecords
    from hw_gan.training import trainer as trainer_lib

    if cfg.runtime.mode == "sample":
        return sample(cfg)
    strategy = strategy_lib.make_strategy(cfg.runtime.strategy)
    strategy_lib.set_precision(cfg.runtime.precision)
    keras.utils.set_random_seed(cfg.train.seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    chief = strategy_lib.is_chief(strategy)

    data_dir = Path(cfg.data.data_dir)
    if not (data_dir / tfrecords.MANIFEST).exists() and cfg.data.build_source:
        params = {k: build.parse_value(v) for k, v in cfg.data.build_params}
        split_args = {k: params.pop(k) for k in ("split", "test_fraction", "seed") if k in params}
        print(f"building dataset {data_dir} from source {cfg.data.build_source}", file=sys.stderr)
        build.build(cfg.data.build_source, str(data_dir), params, **split_args)
    manifest = tfrecords.load_manifest(data_dir)
    cfg = cfg.replace(model=config_lib.dataclasses.replace(
        cfg.model, num_chars=len(manifest["charset"]), num_writers=len(manifest["writers"])))

    model_dir = Path(cfg.runtime.model_dir)
    config_path = model_dir / "config.json"
    # The dataset check comes first: a different charset is the clearer explanation.
    trainer_lib.check_dataset_matches(model_dir, manifest, str(data_dir))
    saved = config_lib.load_json(str(config_path))
    if saved is not None:
        changes = config_lib.incompatible_changes(saved, cfg)
        if changes:
            raise ValueError(f"{config_path} holds a run this config cannot resume: "
                             + "; ".join(changes) + ". Use another --model_dir.")
    if cfg.runtime.mode != "train" and saved is None:
        raise ValueError(f"--mode={cfg.runtime.mode}: {model_dir} holds no trained model "
                         f"(no config.json); train first")
    if chief and cfg.runtime.mode == "train":  # other modes read a run, they do not redefine it
        model_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(config_path, cfg.to_json() + "\n")
        trainer_lib.write_dataset_info(model_dir, manifest)

    trainer = trainer_lib.make_trainer(cfg, strategy, manifest)
    summary: dict = {"model_dir": str(model_dir)}
    if cfg.runtime.mode == "train":
        summary["train"] = trainer.train()
    elif trainer.restore() == 0:
        raise ValueError(f"--mode={cfg.runtime.mode}: no checkpoint in {model_dir}")
    if not chief:
        return summary
    if cfg.runtime.mode == "evaluate" or (cfg.runtime.mode == "train" and cfg.eval.eval_at_end):
        summary["eval"] = evaluate(cfg, trainer, manifest)
    if cfg.runtime.mode == "export" or (cfg.runtime.mode == "train" and cfg.eval.eval_at_end
                                        and cfg.runtime.export_dir):
        summary["export"] = export(cfg, trainer, manifest, overwrite_export)
    return summary


def evaluate(cfg, trainer, manifest) -> dict:
    import tensorflow as tf

    from hw_gan.evaluation import evaluate as evaluate_lib  # the module, not the function

    result = evaluate_lib.evaluate(
        trainer.generate, cfg.data.data_dir, cfg.runtime.model_dir,
        image_size=cfg.model.resolution, num_generated=cfg.eval.num_generated,
        uses_writer=trainer.uses_writer, judge_steps=cfg.eval.judge_steps,
        judge_batch=cfg.eval.judge_batch, seed=cfg.train.seed, split=cfg.data.train_split)
    result["step"] = int(trainer.step.numpy())
    evaluate_lib.write_eval_json(Path(cfg.runtime.model_dir) / "eval.json", result)
    writer = tf.summary.create_file_writer(str(Path(cfg.runtime.model_dir) / "eval"))
    with writer.as_default(step=result["step"]):
        tf.summary.scalar("legibility_ratio", result["legibility"]["ratio"])
        tf.summary.scalar("fid", result["fid"])
        tf.summary.scalar("kid", result["kid"])
        if "writer_match" in result:
            tf.summary.scalar("writer_match", result["writer_match"]["generated"])
    writer.flush()
    return result


def export(cfg, trainer, manifest, overwrite: bool = False) -> str:
    from hw_gan import export as export_lib

    if not cfg.runtime.export_dir:
        raise ValueError("--mode=export needs --export_dir")
    name = cfg.runtime.export_name or Path(cfg.runtime.model_dir).name
    untrained = []
    if trainer.uses_writer:
        from data_pipeline import tfrecords

        # Writers held out of the training split (a writer split) have rows never trained.
        untrained = tfrecords.writers_without_glyphs(manifest, cfg.data.train_split)
    stylegan = cfg.model.family == "stylegan"
    path = export_lib.export_model(
        trainer.ema_generator, cfg.model, manifest["charset"], manifest["writers"],
        cfg.runtime.export_dir, name, cfg.runtime.export_version, overwrite=overwrite,
        encoder=trainer.ema_encoder if stylegan else None,
        feature_net=trainer.d_feature_net if stylegan else None, untrained_writers=untrained)
    return str(path)


def sample(cfg) -> dict:
    from hw_gan import export as export_lib
    from hw_gan.render.grid import write_sample_grid

    if not cfg.runtime.sample_out:
        raise ValueError("--mode=sample needs --sample_out=FILE.png")
    name = cfg.runtime.export_name or Path(cfg.runtime.model_dir).name
    path = Path(cfg.runtime.export_dir) / name
    exported = export_lib.load_export(path)
    writers = list(cfg.runtime.sample_writers) or list(exported.trained_writers()[:8])
    chars = cfg.runtime.sample_chars or "".join(label[0] for label in exported.charset)
    write_sample_grid(path, cfg.runtime.sample_out, chars, writers, cfg.train.seed)
    return {"sample": cfg.runtime.sample_out}


def adapt_config_from_flags():
    from hw_gan import adaptation as adapt_lib

    return adapt_lib.AdaptConfig(
        writer_data=FLAGS.writer_data, init=FLAGS.init, model_dir=FLAGS.model_dir,
        writer_name=FLAGS.writer_name, split=FLAGS.adapt_split, steps=FLAGS.adapt_steps,
        batch_size=FLAGS.adapt_batch_size, lr=FLAGS.adapt_lr, d_lr=FLAGS.adapt_d_lr,
        finetune_steps=FLAGS.adapt_finetune_steps, finetune_lr=FLAGS.adapt_finetune_lr,
        start=FLAGS.adapt_start, start_top=FLAGS.adapt_start_top, samples=FLAGS.adapt_samples,
        select_every=FLAGS.adapt_select_every, objective=FLAGS.adapt_objective,
        feature_weight=FLAGS.adapt_feature_weight, anchor=FLAGS.adapt_anchor,
        space=FLAGS.adapt_space, finetune_objective=FLAGS.adapt_finetune_objective,
        finetune_samples=FLAGS.adapt_finetune_samples, locality=FLAGS.adapt_locality,
        finetune_min_variants=FLAGS.adapt_finetune_min_variants,
        seed=FLAGS.seed, export_dir=FLAGS.export_dir,
        export_name=FLAGS.export_name,
        export_version=FLAGS.export_version, overwrite_export=FLAGS.overwrite_export,
        log_every=FLAGS.log_every).validate()


def adapt_main() -> int:
    """--writer_data / --init: add one writer to a trained style_cgan (hw_gan.adaptation)."""
    from hw_gan import adaptation as adapt_lib

    try:
        acfg = adapt_config_from_flags()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if FLAGS.dry_run:
        print(json.dumps(adapt_lib.dataclasses.asdict(acfg), indent=2, sort_keys=True))
        return 0
    return _report(lambda: adapt_lib.adapt(acfg, log=lambda m: print(m, file=sys.stderr)))


def _report(job) -> int:
    """Runs a job, prints its JSON summary; user errors become one line and exit code 2, an
    interruption (checkpoint already saved) exit code 130."""
    try:
        summary = job()
    except KeyboardInterrupt as e:
        print(f"\ninterrupted: {e}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1, default=str))
    return 0


def main(argv):
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.writer_data or FLAGS.init:
        return adapt_main()
    try:
        cfg = config_from_flags()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if FLAGS.dry_run:
        print(cfg.to_json())
        return 0
    return _report(lambda: run(cfg, deterministic=FLAGS.deterministic,
                               overwrite_export=FLAGS.overwrite_export))


def entry():
    app.run(main)


if __name__ == "__main__":
    entry()
