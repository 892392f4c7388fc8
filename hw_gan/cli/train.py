"""`hwgan train` and `python train_main.py`: flags -> a validated config -> hw_gan.experiment.

    hwgan train --flagfile=configs/quickstart.cfg [--mode=train|evaluate|export|sample|adapt]

This is the only module that defines the training flags; `define_flags()` registers them with
absl (once, when an entry point asks: importing this module registers nothing). They become a
frozen, validated ExperimentConfig (or, with --mode=adapt, an AdaptConfig) whose defaults are the
config dataclasses' own; --dry_run prints it. A flag the config refuses is one line on stderr and
exit code 2. A job is run by hw_gan.cli.train_job (named by string, so that neither of those waits
for TensorFlow), which owns the SIGTERM/SIGINT handlers that ask training to save and stop.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from typing import Optional, Sequence

from absl import app, flags, logging

from hw_gan import config as config_lib
from hw_gan.cli import errors

FLAGS = flags.FLAGS
# What runs a validated config (imports TensorFlow and the experiment).
JOB_MODULE = "hw_gan.cli.train_job"

# --mode=adapt: flag -> AdaptConfig field, help. Defaults are AdaptConfig's.
ADAPT_FLAGS = (
    ("writer_data", "writer_data", "Adapt: dataset directory of ONE new writer's glyphs (e.g. "
     "extracted from scanned templates); adds that writer to --init."),
    ("init", "init", "Adapt: base style_cgan model directory (its latest checkpoint) or a "
     "checkpoint prefix; its config.json/dataset.json are used."),
    ("writer_name", "writer_name", "Adapt: the new writer's name (default: the dataset's)."),
    ("adapt_split", "split", "Adapt: split of --writer_data to adapt on."),
    ("adapt_steps", "steps", "Adapt: steps optimising only the new writer rows."),
    ("adapt_batch_size", "batch_size", "Adapt: batch size."),
    ("adapt_lr", "lr", "Adapt: learning rate of G's new writer row."),
    ("adapt_d_lr", "d_lr", "Adapt: learning rate of D's new writer row."),
    ("adapt_finetune_steps", "finetune_steps",
     "Adapt: then fine-tune the whole generator this many steps (0 = off)."),
    ("adapt_finetune_lr", "finetune_lr", "Adapt: generator fine-tune learning rate."),
    ("adapt_start", "start", "Adapt: start the new writer as the mean of the nearest base "
     "writers (by how well their generated glyphs reproduce the writer's) or of all base writers."),
    ("adapt_start_top", "start_top", "Adapt: how many nearest base writers to average."),
    ("adapt_samples", "samples",
     "Adapt: generated draws per glyph in the pixel distance (start, selection)."),
    ("adapt_select_every", "select_every",
     "Adapt: score the new row every N embedding steps and keep the best (0=off)."),
    ("adapt_objective", "objective", "Adapt: embedding-phase loss: the base's GAN loss (G's and "
     "D's new rows) or projection (G's new row fitted to reconstruct the writer's glyphs: pixel "
     "L1 + --adapt_feature_weight x L1 of D's features)."),
    ("adapt_feature_weight", "feature_weight",
     "Adapt: projection: weight of the discriminator-feature L1 (pixel L1 is 1)."),
    ("adapt_anchor", "anchor", "Adapt: projection: weight of |row - start|^2 / |start|^2."),
    ("adapt_space", "space", "Adapt: projection: fit a free row, or a softmax blend of the "
     "trained writers' rows (starting from the start's weights)."),
    ("adapt_finetune_objective", "finetune_objective", "Adapt: fine-tune loss: the base's GAN "
     "loss, or pivotal tuning (the generator tuned so the new row reproduces the writer's "
     "glyphs, base writers kept by --adapt_locality)."),
    ("adapt_finetune_samples", "finetune_samples",
     "Adapt: pivotal fine-tune: draws per glyph (the closest is pulled to it)."),
    ("adapt_locality", "locality", "Adapt: pivotal fine-tune: weight of the base writers' glyph "
     "change."),
    ("adapt_finetune_min_variants", "finetune_min_variants", "Adapt: fine-tune only when "
     "--writer_data holds at least this many glyphs per character it covers (else only the "
     "embedding is adapted; 0 = always)."),
)
# Choices of the adapt flags that take one of a few values.
ADAPT_CHOICES = {"start": config_lib.STARTS, "objective": config_lib.OBJECTIVES,
                 "space": config_lib.SPACES, "finetune_objective": config_lib.FINETUNE_OBJECTIVES}


def define_flags() -> None:
    """Registers every training flag with absl's FLAGS (a no-op when already done)."""
    if "model_dir" in FLAGS:
        return
    _define_experiment_flags()
    _define_adapt_flags()


def _define_experiment_flags() -> None:
    """The flags of ExperimentConfig, defaults from its dataclasses."""
    _define_data_flags()
    _define_model_flags()
    _define_training_flags()
    _define_evaluation_flags()
    _define_runtime_flags()


def _define_data_flags() -> None:
    _d = config_lib.DataConfig()
    flags.DEFINE_string("data_dir", _d.data_dir, "Dataset directory (built by data_pipeline.build).")
    flags.DEFINE_string("train_split", _d.train_split, "Split to train on.")
    flags.DEFINE_string("eval_split", _d.eval_split, "Split of held-out glyphs, where one is needed.")
    flags.DEFINE_integer("shuffle_buffer", _d.shuffle_buffer, "Records in the shuffle buffer.")
    flags.DEFINE_boolean("cache", _d.cache, "Cache the training records in memory.")
    flags.DEFINE_string("holdout_chars", _d.holdout_chars,
                        "Characters whose glyphs training never sees (kept in the charset and "
                        "the judges), e.g. 'QqZ&@'.")
    flags.DEFINE_string("build_source", _d.build_source,
                        "If --data_dir has no manifest, build it first from this source.")
    flags.DEFINE_multi_string("build_param", [], "KEY=VALUE parameters for --build_source; "
                              "split=, test_fraction= and seed= set the build's split.")


def _define_model_flags() -> None:
    _m = config_lib.ModelConfig()
    flags.DEFINE_enum("model", _m.family, config_lib.FAMILIES, "Model family.")
    flags.DEFINE_integer("resolution", _m.resolution, "Glyph resolution (32 or 64).")
    flags.DEFINE_float("width", _m.width, "Channel width multiplier (1.0 full, 0.25 CPU-sized).")
    flags.DEFINE_integer("latent_dim", _m.latent_dim, "Noise size.")
    flags.DEFINE_integer("embed_dim", _m.embed_dim, "Char/writer embedding size at width 1.")
    flags.DEFINE_integer("w_dim", _m.w_dim, "StyleGAN style vector size at width 1.")
    flags.DEFINE_integer("mapping_layers", _m.mapping_layers, "StyleGAN mapping network depth.")
    flags.DEFINE_integer("style_tokens", _m.style_tokens,
                         "Few-shot local style tokens (0: the global style code only).")
    flags.DEFINE_float("decoder_width", _m.decoder_width,
                       "Few-shot: width of the decoder and the style code (0: --width).")
    flags.DEFINE_boolean("content_skip", _m.content_skip,
                         "Few-shot: the decoder also reads the font image's 16x16 trunk map.")
    flags.DEFINE_float("untrained_style_clip", _m.untrained_style_clip,
                       "Few-shot: characters never trained on are drawn in the style kept within "
                       "the training writers' mean +- this many standard deviations.")
    flags.DEFINE_integer("style_read_copies", _m.style_read_copies,
                         "Few-shot: a style is read from the references and this many disturbed "
                         "copies of them (0: the references alone).")


def _define_training_flags() -> None:
    _t = config_lib.TrainConfig()
    flags.DEFINE_integer("batch_size", _t.batch_size, "Global batch size (split across replicas).")
    flags.DEFINE_integer("steps", _t.steps, "Total training steps.")
    flags.DEFINE_float("g_lr", _t.g_lr, "Generator learning rate.")
    flags.DEFINE_float("d_lr", _t.d_lr, "Discriminator learning rate.")
    flags.DEFINE_float("beta1", _t.beta1, "Adam beta1.")
    flags.DEFINE_float("beta2", _t.beta2, "Adam beta2.")
    flags.DEFINE_enum("loss", _t.loss, config_lib.LOSSES, "GAN loss.")
    flags.DEFINE_float("r1_gamma", _t.r1_gamma, "R1 penalty weight (0 disables).")
    flags.DEFINE_integer("r1_interval", _t.r1_interval, "Apply R1 every N steps (lazy R1).")
    flags.DEFINE_boolean("fused_step", _t.fused_step,
                         "One generator forward pass per step, shared by the D and G updates "
                         "(the G update sees the fakes D just learned from); off: G draws "
                         "fresh fakes for its update.")
    flags.DEFINE_float("ema_decay", _t.ema_decay, "Generator EMA decay.")
    flags.DEFINE_integer("ema_start", _t.ema_start, "Step before which the EMA copies the generator.")
    flags.DEFINE_float("ema_rampup", _t.ema_rampup,
                       "EMA half-life at most this fraction of the steps so far (0 = off).")
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
    flags.DEFINE_float("style_ref_augment", _t.style_ref_augment,
                       "Fewshot: disturb the reference glyphs in training as another capture "
                       "would (pen width, blur, faded ink), 0 (off) to 1.")
    flags.DEFINE_float("writer_contrast_weight", _t.writer_contrast_weight,
                       "Fewshot: weight of the writer-contrastive term (in D's features, each "
                       "redrawn glyph nearer its writer's other glyphs than other writers'; 0 = off).")
    flags.DEFINE_float("content_shape_weight", _t.content_shape_weight,
                       "Fewshot: weight of keeping the font shape of characters the training "
                       "data lacks, drawn in the batch's styles (0 = off).")
    flags.DEFINE_integer("content_shape_glyphs", _t.content_shape_glyphs,
                         "Fewshot: such characters drawn per replica and step.")
    flags.DEFINE_float("content_class_weight", _t.content_class_weight,
                       "Fewshot: weight of those characters being told apart as themselves by a "
                       "content classifier trained before the GAN (0 = off).")
    flags.DEFINE_integer("content_class_steps", _t.content_class_steps,
                         "Fewshot: training steps of that content classifier.")
    flags.DEFINE_string("init_from", _t.init_from,
                        "Fewshot: a fresh run starts its generator from this fewshot export (a "
                        "SavedModel dir, its parent or a shipped model's name); D starts fresh.")
    flags.DEFINE_integer("g_freeze_steps", _t.g_freeze_steps,
                         "The generator's learning rate is 0 for its first N updates (a fresh "
                         "discriminator under --init_from learns first).")
    flags.DEFINE_integer("style_reg_interval", _t.style_reg_interval,
                         "StyleGAN: lazy style regularisation: the cycle, reconstruction and "
                         "path-length losses every N steps, weighted by N (1 = every step).")
    flags.DEFINE_float("aux_char_weight", _t.aux_char_weight,
                       "Weight of the auxiliary character classifier on D's features (0 = off).")
    flags.DEFINE_float("aux_writer_weight", _t.aux_writer_weight,
                       "Weight of the auxiliary writer classifier on D's features (0 = off).")
    flags.DEFINE_integer("seed", _t.seed, "Seed for weights, noise and data order.")
    flags.DEFINE_integer("checkpoint_every", _t.checkpoint_every, "Steps between checkpoints.")
    flags.DEFINE_integer("keep_checkpoints", _t.keep_checkpoints, "Checkpoints kept.")
    flags.DEFINE_integer("log_every", _t.log_every, "Steps between logged scalars.")
    flags.DEFINE_integer("image_every", _t.image_every, "Steps between sample grids.")


def _define_evaluation_flags() -> None:
    _e = config_lib.EvalConfig()
    flags.DEFINE_integer("judge_steps", _e.judge_steps, "Training steps of the judge classifiers.")
    flags.DEFINE_integer("judge_batch", _e.judge_batch, "Batch size of the judge classifiers.")
    flags.DEFINE_string("judge_cache_dir", _e.judge_cache_dir,
                        "Cache of trained judges, shared by runs (empty: DATA_DIR/judges, or "
                        "MODEL_DIR/judges when the data directory is not writable).")
    flags.DEFINE_integer("num_generated", _e.num_generated, "Generated glyphs scored by evaluation.")
    flags.DEFINE_boolean("eval_at_end", _e.eval_at_end, "Evaluate (and export) after training.")


class _JitParser(flags.BooleanParser):
    """A boolean flag (--jit_compile, --nojit_compile, =true/false) that also takes "auto"."""

    def parse(self, argument):
        if isinstance(argument, str) and argument.lower() == config_lib.JIT_AUTO:
            return config_lib.JIT_AUTO
        try:
            return super().parse(argument)
        except (TypeError, ValueError):
            raise ValueError(f"{argument!r} is not true, false or {config_lib.JIT_AUTO}") from None

    def flag_type(self) -> str:
        return f"bool or {config_lib.JIT_AUTO}"


def _define_runtime_flags() -> None:
    _r = config_lib.RuntimeConfig()
    flags.DEFINE_string("model_dir", _r.model_dir, "Checkpoints, summaries, config and eval.json.")
    flags.DEFINE_enum("mode", _r.mode, config_lib.MODES,
                      "What to do (adapt: add one writer to a trained style_cgan).")
    flags.DEFINE_enum("strategy", _r.strategy, config_lib.STRATEGIES, "tf.distribute strategy.")
    flags.DEFINE_enum("precision", _r.precision, config_lib.PRECISIONS, "Keras dtype policy.")
    flags.DEFINE_flag(flags.Flag(
        _JitParser(), None, "jit_compile", _r.jit_compile,
        f"XLA-compile the train step: true, false or {config_lib.JIT_AUTO} (on a CPU without "
        "AVX-512 and no GPU, where it measured faster; docs/results.md).", boolean=True))
    flags.DEFINE_boolean("run_eagerly", _r.run_eagerly,
                         "Run the train step op by op, without tf.function: no tracing, slower "
                         "steps (debugging; a run of a few steps).")
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
    flags.DEFINE_boolean("debug", False, "Show the traceback of an error (else one line).")


def _define_adapt_flags() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(config_lib.AdaptConfig)}
    for flag, field, help_text in ADAPT_FLAGS:
        default = defaults.get(field, "")
        if default is dataclasses.MISSING:
            default = ""
        if field in ADAPT_CHOICES:
            flags.DEFINE_enum(flag, default, list(ADAPT_CHOICES[field]), help_text)
        elif isinstance(default, bool):
            flags.DEFINE_boolean(flag, default, help_text)
        elif isinstance(default, int):
            flags.DEFINE_integer(flag, default, help_text)
        elif isinstance(default, float):
            flags.DEFINE_float(flag, default, help_text)
        else:
            flags.DEFINE_string(flag, default, help_text)


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
            build_source=FLAGS.build_source, build_params=tuple(params),
            holdout_chars=FLAGS.holdout_chars),
        model=config_lib.ModelConfig(
            family=FLAGS.model, resolution=FLAGS.resolution, width=FLAGS.width,
            latent_dim=FLAGS.latent_dim, embed_dim=FLAGS.embed_dim, w_dim=FLAGS.w_dim,
            mapping_layers=FLAGS.mapping_layers, style_tokens=FLAGS.style_tokens,
            decoder_width=FLAGS.decoder_width, content_skip=FLAGS.content_skip,
            untrained_style_clip=FLAGS.untrained_style_clip,
            style_read_copies=FLAGS.style_read_copies),
        train=config_lib.TrainConfig(
            batch_size=FLAGS.batch_size, steps=FLAGS.steps, g_lr=FLAGS.g_lr, d_lr=FLAGS.d_lr,
            beta1=FLAGS.beta1, beta2=FLAGS.beta2, loss=FLAGS.loss, r1_gamma=FLAGS.r1_gamma,
            r1_interval=FLAGS.r1_interval, fused_step=FLAGS.fused_step,
            ema_decay=FLAGS.ema_decay, ema_start=FLAGS.ema_start,
            ema_rampup=FLAGS.ema_rampup,
            style_mixing_prob=FLAGS.style_mixing_prob, style_group_size=FLAGS.style_group_size,
            style_recon_weight=FLAGS.style_recon_weight,
            style_feature_weight=FLAGS.style_feature_weight,
            style_ref_augment=FLAGS.style_ref_augment,
            writer_contrast_weight=FLAGS.writer_contrast_weight, init_from=FLAGS.init_from,
            content_shape_weight=FLAGS.content_shape_weight,
            content_shape_glyphs=FLAGS.content_shape_glyphs,
            content_class_weight=FLAGS.content_class_weight,
            content_class_steps=FLAGS.content_class_steps,
            g_freeze_steps=FLAGS.g_freeze_steps,
            style_cycle_weight=FLAGS.style_cycle_weight, pl_weight=FLAGS.pl_weight,
            style_reg_interval=FLAGS.style_reg_interval,
            aux_char_weight=FLAGS.aux_char_weight,
            aux_writer_weight=FLAGS.aux_writer_weight, seed=FLAGS.seed,
            checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
            log_every=FLAGS.log_every, image_every=FLAGS.image_every),
        eval=config_lib.EvalConfig(
            judge_steps=FLAGS.judge_steps, judge_batch=FLAGS.judge_batch,
            judge_cache_dir=FLAGS.judge_cache_dir,
            num_generated=FLAGS.num_generated, eval_at_end=FLAGS.eval_at_end),
        runtime=config_lib.RuntimeConfig(
            model_dir=FLAGS.model_dir, mode=FLAGS.mode, strategy=FLAGS.strategy,
            precision=FLAGS.precision, jit_compile=FLAGS.jit_compile,
            run_eagerly=FLAGS.run_eagerly, num_cpu_devices=FLAGS.num_cpu_devices,
            export_dir=FLAGS.export_dir, export_name=FLAGS.export_name,
            export_version=FLAGS.export_version,
            sample_out=FLAGS.sample_out, sample_writers=tuple(FLAGS.sample_writers),
            sample_chars=FLAGS.sample_chars),
    )
    return config_lib.validate(cfg)


def adapt_config_from_flags() -> config_lib.AdaptConfig:
    """--mode=adapt flags -> a validated AdaptConfig."""
    values = {field: FLAGS[flag].value for flag, field, _ in ADAPT_FLAGS}
    return config_lib.AdaptConfig(
        **values, model_dir=FLAGS.model_dir, seed=FLAGS.seed, export_dir=FLAGS.export_dir,
        export_name=FLAGS.export_name, export_version=FLAGS.export_version,
        overwrite_export=FLAGS.overwrite_export, log_every=FLAGS.log_every,
        run_eagerly=FLAGS.run_eagerly).validate()


def adapt_main() -> int:
    """--mode=adapt: add one writer to a trained style_cgan (hw_gan.adaptation)."""
    try:
        acfg = adapt_config_from_flags()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if FLAGS.dry_run:
        print(json.dumps(dataclasses.asdict(acfg), indent=2, sort_keys=True))
        return 0
    return _job().adapt(acfg)


def _job():
    """hw_gan.cli.train_job, named as a string (as the `hwgan` dispatcher names its commands):
    it imports TensorFlow, which a dry run or a flag error has no need to wait for (~7 s)."""
    return importlib.import_module(JOB_MODULE)


def main(argv: Sequence[str]) -> int:
    """absl main: the parsed FLAGS -> one mode of the experiment; returns the exit code."""
    logging.set_verbosity(logging.WARNING)
    errors.set_debug(errors.debug() or FLAGS.debug)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.mode == "adapt":
        return adapt_main()
    given = [f"--{name}" for name in ("writer_data", "init") if FLAGS[name].value]
    if given:
        print(f"error: {' and '.join(given)}: only with --mode=adapt (adding a writer to a "
              f"trained model; configs/adapt_writer.cfg sets it)", file=sys.stderr)
        return 2
    try:
        cfg = config_from_flags()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if FLAGS.dry_run:
        print(cfg.to_json())
        return 0
    return _job().train(cfg, deterministic=FLAGS.deterministic,
                        overwrite_export=FLAGS.overwrite_export)


def entry(argv: Optional[Sequence[str]] = None) -> None:
    """`python train_main.py ...`: parses sys.argv (or `argv`, program name first) and exits."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    argv = list(sys.argv if argv is None else argv)
    try:
        app.run(main, argv=argv)
    except UnicodeDecodeError as e:  # absl reads flag files as UTF-8 and does not catch this
        if errors.DEBUG_FLAG in argv or errors.debug():
            raise
        files = [a.split("=", 1)[1] for a in argv if a.startswith("--flagfile=")]
        sys.exit(errors.report(ValueError(f"--flagfile {', '.join(files)}: not UTF-8 text "
                                          f"({e})")))


def train_main(argv: Sequence[str]) -> int:
    """`hwgan train ARGS`: the same as train_main.py, returning the exit code."""
    try:
        entry(["hwgan train", *argv])  # absl's app.run always ends in sys.exit
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0
