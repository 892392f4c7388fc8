"""Every configuration dataclass: the frozen experiment tree (data, model, train, eval, runtime),
writer adaptation (`AdaptConfig`) and style projection (`ProjectionConfig`).

`hw_gan.cli.train` is the only place that defines flags; it turns them into an `ExperimentConfig`
(or an `AdaptConfig`), validates it here, and `hw_gan.experiment` writes it to the model
directory before the first step. Library code receives these dataclasses and never reads flags.
This module imports nothing of the project (it is the floor every other package stands on, with
hw_gan.losses).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional, Union

FAMILIES = ("char_cgan", "style_cgan", "stylegan", "fewshot")
RESOLUTIONS = (32, 64)
LOSSES = ("nonsaturating", "hinge")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
# --jit_compile: XLA for the train step, or "auto" (on where it measured faster: a CPU without
# AVX-512 and no GPU; hw_gan.training.strategy.resolve_jit_compile).
JIT_AUTO = "auto"
MODES = ("train", "evaluate", "export", "sample", "adapt")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str = ""
    train_split: str = "train"
    eval_split: str = "test"
    shuffle_buffer: int = 10000
    cache: bool = True
    # If set and data_dir has no manifest, train_main builds the dataset there first from this
    # source (e.g. "simulated") with source_params.
    build_source: str = ""
    build_params: tuple[tuple[str, str], ...] = ()
    # Characters (one label each) whose glyphs training never sees: they stay in the charset and
    # the judges, so a model that draws them from something else (the few-shot family's font
    # image) can be scored on them.
    holdout_chars: str = ""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shapes: generators map z [B, latent_dim], char [B] int32, writer [B] int32 to images
    [B, resolution, resolution, 1] in [-1, 1]; discriminators map image, char, writer to logits [B].
    num_chars / num_writers come from the dataset manifest."""

    family: str = "style_cgan"
    resolution: int = 32
    width: float = 1.0  # channel multiplier: 1.0 is the full GPU model, 0.25 a CPU-sized one
    latent_dim: int = 128
    num_chars: int = 0
    num_writers: int = 0
    embed_dim: int = 128  # char / writer embedding size at width 1.0 (scaled by width, min 16)
    w_dim: int = 256  # stylegan: style vector size at width 1.0
    mapping_layers: int = 4  # stylegan
    # fewshot: local style tokens read from the references' 8 x 8 feature maps by attention and
    # attended to by the decoder's 8 x 8 and 16 x 16 maps (0: the global style code only)
    style_tokens: int = 0
    # fewshot: channel multiplier of the decoder (content trunk and the style-modulated blocks)
    # and of the style code it reads (0: --width; the style glyph net and D keep --width)
    decoder_width: float = 0.0
    # fewshot: the decoder also takes the font image's trunk map at each size between the 8 x 8
    # content map and the output (16 x 16 at 32 px), added after that size's up block through a
    # 1 x 1 convolution that starts at zero: the strokes' detail (Q's tail) at twice the 8 x 8
    # map's resolution (tried on the wide decoder: no better on unseen characters at 6k steps)
    content_skip: bool = False
    # fewshot: a character training never saw is drawn in its style kept within the training
    # writers' mean +- this many standard deviations per dimension (fewshot.limit_untrained),
    # by `generate` and by the export, which records it. 0.35 was chosen on 54 TRAINING writers'
    # Q q Z & @ for the shipped narrow model: the largest bound whose glyphs the character judge
    # reads as well as the mean style's (docs/results.md, issue 18). A model that follows its
    # font images less closely in far-off styles needs a tighter one; it may change on resume.
    untrained_style_clip: float = 0.35
    # fewshot: a style is read from the references and this many disturbed copies of them
    # (fewshot.reading_copies; 0: the references alone), in Python and in the export's
    # extract_style. Read when drawing, not trained: it may change on resume and at export.
    style_read_copies: int = 8


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64  # global batch, split across replicas
    steps: int = 2000
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.99
    loss: str = "nonsaturating"
    r1_gamma: float = 1.0
    r1_interval: int = 4  # lazy R1: every N discriminator steps, scaled by N
    # One generator forward pass per step, shared by the D and G updates (GANTrainer._fused_step)
    fused_step: bool = True
    ema_decay: float = 0.999
    ema_start: int = 0
    # EMA ramp-up (StyleGAN2-ADA's ema_rampup): the EMA's half-life is at most this fraction
    # of the steps trained so far, and ema_decay's half-life once that is longer (0 = off: a
    # fixed ema_decay from the first step). A fixed 0.999 averages the last ~700 steps even
    # when the generator is still changing fast, so an early EMA is a blur of its past.
    ema_rampup: float = 0.0
    style_mixing_prob: float = 0.9  # stylegan
    # stylegan: batches come in groups of `style_group_size` glyphs of one writer; the style
    # encoder reads all but one of a group and G must redraw the last one in that style
    # (pixel L1 + D-feature L1), and G's own styles must be recoverable from k of its glyphs
    # that share one w (latent cycle). Path-length regularisation is optional (0 = off).
    style_group_size: int = 4
    style_recon_weight: float = 1.0
    style_feature_weight: float = 1.0
    style_cycle_weight: float = 1.0
    pl_weight: float = 0.0
    # fewshot: the same groups; every glyph of a group is redrawn from the group's OTHER glyphs
    # and its character's font image (pixel L1 at style_recon_weight, D-feature L1 at
    # style_feature_weight, plus the adversarial and auxiliary classifier losses).
    # Lazy style regularisation (stylegan): the encoder's cycle and reconstruction losses and the
    # path length on one step in N (the steps that end a group of N, so the logged steps carry
    # them when N divides --log_every), weighted by N; the other steps are adversarial only.
    style_reg_interval: int = 1
    # fewshot: how much the REFERENCE glyphs (what the style is read from, not the targets) are
    # disturbed in training as another capture would (0 = not at all, 1 = fully): each one's pen
    # made thinner or thicker by up to one pixel, blurred, its ink faded. A person's glyphs come
    # from another pen, printer, camera and extraction than the training data.
    style_ref_augment: float = 0.0
    # fewshot: G is also rewarded when, in D's feature space, each redrawn glyph lies nearer its
    # own writer's other real glyphs (the group's mean but for the glyph it redraws) than the
    # other writers' groups of the batch (InfoNCE, losses.group_contrast; 0 = off).
    writer_contrast_weight: float = 0.0
    # fewshot: characters of the content font that are not in the training data (Greek,
    # Cyrillic, Latin extensions, symbols), content_shape_glyphs per replica and step, are drawn
    # in the batch's styles, and the decoder is penalised where their blurred ink keeps their
    # font shape less well than a real glyph keeps its character's (0 = off): so it learns to
    # follow a font image it was never taught, as it must for characters nobody wrote.
    content_shape_weight: float = 0.0
    content_shape_glyphs: int = 16
    # fewshot: the same drawn pool characters must also be told apart as their own characters
    # (p >= CLASS_MARGIN) by a content classifier (the judges' network) over the training
    # characters and the pool's, trained for content_class_steps before the GAN on the training
    # split's real glyphs and on the font images of both, disturbed as handwriting is (0 = off):
    # a blurred shape cannot see the tail that makes Q of O or the bar that makes Ø; this can.
    # The classifier is kept in <model_dir>/content_classifier/ and reused by a resumed run.
    content_class_weight: float = 0.0
    content_class_steps: int = 600
    # fewshot: a fresh run (no checkpoint yet) starts its generator and EMA generator from this
    # fewshot export's weights (a SavedModel directory, its parent or a shipped model's name);
    # the discriminator starts fresh. Ignored once the run has a checkpoint.
    init_from: str = ""
    # The generator's learning rate is 0 for its first N updates (its Adam moments still
    # gather): with --init_from, the fresh discriminator learns before G follows its gradients.
    g_freeze_steps: int = 0
    # Auxiliary classifiers on the discriminator's features (AC-GAN style, trained on real
    # glyphs only): G is also rewarded when its glyph is classified as the intended char/writer.
    aux_char_weight: float = 0.0
    aux_writer_weight: float = 0.0
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    image_every: int = 500


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    # The judges' recipe (hw_gan.evaluation.judge; docs/results.md, "Judges"): 300 x 256 glyphs,
    # about 9 passes over the quickstart's 8,700 training glyphs.
    judge_steps: int = 300
    judge_batch: int = 256
    # Where judges are cached ("": <data_dir>/judges/, shared by every run on the dataset, or
    # the run's model_dir when the data directory is not writable).
    judge_cache_dir: str = ""
    num_generated: int = 4000
    eval_at_end: bool = True


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    model_dir: str = ""
    mode: str = "train"
    strategy: str = "auto"
    precision: str = "float32"
    jit_compile: Union[bool, str] = False  # True, False or JIT_AUTO
    # The train step op by op, without tf.function (as Keras's run_eagerly): no tracing, so a
    # run of a few steps starts at once (debugging, the tests' tiny runs); slower per step.
    run_eagerly: bool = False
    num_cpu_devices: int = 0  # >1 splits the CPU into logical devices (tests, 2-replica checks)
    export_dir: str = ""
    export_name: str = ""
    export_version: int = 1
    sample_out: str = ""
    sample_writers: tuple[str, ...] = ()
    sample_chars: str = ""


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExperimentConfig":
        def build(klass, values):
            fields = {f.name: f for f in dataclasses.fields(klass)}
            unknown = set(values) - set(fields)
            if unknown:
                raise ValueError(f"unknown {klass.__name__} field(s): {sorted(unknown)}")
            kwargs = {}
            for name, value in values.items():
                default = getattr(klass(), name)
                if isinstance(default, tuple):
                    value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
                kwargs[name] = value
            return klass(**kwargs)

        return cls(
            data=build(DataConfig, d.get("data", {})),
            model=build(ModelConfig, d.get("model", {})),
            train=build(TrainConfig, d.get("train", {})),
            eval=build(EvalConfig, d.get("eval", {})),
            runtime=build(RuntimeConfig, d.get("runtime", {})),
        )

    def replace(self, **sections) -> "ExperimentConfig":
        return dataclasses.replace(self, **sections)


def scaled(channels: int, width: float, minimum: int = 8) -> int:
    """Channels after the width multiplier, rounded to a multiple of 4 and at least `minimum`."""
    return max(minimum, int(round(channels * width / 4.0)) * 4)


def _check(condition: bool, flag: str, message: str) -> None:
    if not condition:
        raise ValueError(f"--{flag}: {message}")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Raises ValueError naming the flag at fault; returns cfg unchanged when it is sound."""
    m, t, r, d, e = cfg.model, cfg.train, cfg.runtime, cfg.data, cfg.eval
    _check(m.family in FAMILIES, "model", f"{m.family!r} is not one of {FAMILIES}")
    _check(m.resolution in RESOLUTIONS, "resolution", f"{m.resolution} is not one of {RESOLUTIONS}")
    _check(0.05 <= m.width <= 4.0, "width", f"{m.width} is outside [0.05, 4]")
    _check(m.latent_dim >= 1, "latent_dim", "must be >= 1")
    _check(m.embed_dim >= 1, "embed_dim", "must be >= 1")
    _check(m.w_dim >= 1, "w_dim", "must be >= 1")
    _check(1 <= m.mapping_layers <= 16, "mapping_layers", "must be in [1, 16]")
    _check(0 <= m.style_tokens <= 64, "style_tokens", f"{m.style_tokens} is outside [0, 64]")
    _check(m.style_tokens == 0 or m.family == "fewshot", "style_tokens",
           "only the fewshot family reads local style tokens")
    _check(m.decoder_width == 0 or 0.05 <= m.decoder_width <= 4.0, "decoder_width",
           f"{m.decoder_width} is outside [0.05, 4] (0: --width)")
    _check(m.decoder_width == 0 or m.family == "fewshot", "decoder_width",
           "only the fewshot family has a decoder of its own width")
    _check(not m.content_skip or m.family == "fewshot", "content_skip",
           "only the fewshot family draws from a font image")
    _check(0.0 <= m.untrained_style_clip <= 10.0, "untrained_style_clip",
           f"{m.untrained_style_clip} is outside [0, 10] (standard deviations)")
    _check(0 <= m.style_read_copies <= 32, "style_read_copies",
           f"{m.style_read_copies} is outside [0, 32]")
    _check(m.untrained_style_clip == ModelConfig.untrained_style_clip or m.family == "fewshot",
           "untrained_style_clip", "only the fewshot family draws characters it never trained on")
    _check(t.batch_size >= 1, "batch_size", "must be >= 1")
    _check(t.steps >= 0, "steps", "must be >= 0")
    _check(t.g_lr > 0 and t.d_lr > 0, "g_lr/d_lr", "learning rates must be > 0")
    _check(0.0 <= t.beta1 < 1.0 and 0.0 <= t.beta2 < 1.0, "beta1/beta2", "must be in [0, 1)")
    _check(t.loss in LOSSES, "loss", f"{t.loss!r} is not one of {LOSSES}")
    _check(t.r1_gamma >= 0, "r1_gamma", "must be >= 0")
    _check(t.r1_interval >= 1, "r1_interval", "must be >= 1")
    _check(t.style_reg_interval >= 1, "style_reg_interval", "must be >= 1")
    _check(0.0 <= t.ema_decay < 1.0, "ema_decay", "must be in [0, 1)")
    _check(0.0 <= t.ema_rampup <= 1.0, "ema_rampup", "must be in [0, 1]")
    _check(0.0 <= t.style_mixing_prob <= 1.0, "style_mixing_prob", "must be in [0, 1]")
    _check(t.style_group_size >= 2, "style_group_size", "must be >= 2")
    if m.family in ("stylegan", "fewshot"):
        _check(t.batch_size % t.style_group_size == 0, "style_group_size",
               f"{t.style_group_size} must divide --batch_size={t.batch_size}")
    for name in ("style_recon_weight", "style_feature_weight", "style_cycle_weight", "pl_weight"):
        _check(getattr(t, name) >= 0, name, "must be >= 0")
    _check(0.0 <= t.style_ref_augment <= 1.0, "style_ref_augment", "must be in [0, 1]")
    _check(t.writer_contrast_weight >= 0, "writer_contrast_weight", "must be >= 0")
    _check(t.writer_contrast_weight == 0 or m.family == "fewshot", "writer_contrast_weight",
           "only the fewshot family has writer groups to contrast")
    _check(t.content_shape_weight >= 0, "content_shape_weight", "must be >= 0")
    _check(t.content_shape_weight == 0 or m.family == "fewshot", "content_shape_weight",
           "only the fewshot family draws characters from their font image")
    _check(t.content_shape_glyphs >= 1, "content_shape_glyphs", "must be >= 1")
    _check(t.content_class_weight >= 0, "content_class_weight", "must be >= 0")
    _check(t.content_class_weight == 0 or m.family == "fewshot", "content_class_weight",
           "only the fewshot family draws characters from their font image")
    _check(t.content_class_steps >= 1, "content_class_steps", "must be >= 1")
    _check(not t.init_from or m.family == "fewshot", "init_from",
           "only a fewshot run starts from an export's weights")
    _check(t.g_freeze_steps >= 0, "g_freeze_steps", "must be >= 0")
    _check(t.aux_char_weight >= 0, "aux_char_weight", "must be >= 0")
    _check(t.aux_writer_weight >= 0, "aux_writer_weight", "must be >= 0")
    _check(t.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
    _check(t.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
    _check(t.log_every >= 1, "log_every", "must be >= 1")
    _check(t.image_every >= 1, "image_every", "must be >= 1")
    _check(e.judge_steps >= 1 and e.judge_batch >= 1, "judge_steps/judge_batch", "must be >= 1")
    _check(e.num_generated >= 1, "num_generated", "must be >= 1")
    _check(r.mode in MODES, "mode", f"{r.mode!r} is not one of {MODES}")
    _check(r.strategy in STRATEGIES, "strategy", f"{r.strategy!r} is not one of {STRATEGIES}")
    _check(r.precision in PRECISIONS, "precision", f"{r.precision!r} is not one of {PRECISIONS}")
    _check(isinstance(r.jit_compile, bool) or r.jit_compile == JIT_AUTO, "jit_compile",
           f"{r.jit_compile!r} is not true, false or {JIT_AUTO}")
    _check(not (r.run_eagerly and r.jit_compile is True), "run_eagerly",
           "an eager step is not XLA-compiled: drop --jit_compile")
    _check(bool(r.model_dir), "model_dir", "is required")
    _check(r.num_cpu_devices >= 0, "num_cpu_devices", "must be >= 0")
    _check(r.export_version >= 1, "export_version", "must be >= 1")
    _check(bool(d.data_dir), "data_dir", "is required")
    _check(d.shuffle_buffer >= 1, "shuffle_buffer", "must be >= 1")
    _check(len(set(d.holdout_chars)) == len(d.holdout_chars), "holdout_chars",
           f"{d.holdout_chars!r} names a character twice")
    return cfg


# Fields that may differ between a checkpoint's config and a resumed run's.
RESUMABLE_CHANGES = {
    "train": {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "image_every",
              "fused_step", "style_ref_augment", "writer_contrast_weight", "init_from",
              "content_shape_weight", "content_shape_glyphs", "content_class_weight",
              "content_class_steps"},
    "eval": None,  # any
    "runtime": None,
    "data": {"shuffle_buffer", "cache", "build_source", "build_params", "eval_split"},
    "model": {"untrained_style_clip", "style_read_copies"},  # read when drawing, not weights
}


# Loss weights that may be rebalanced on resume as long as they stay > 0 (the auxiliary heads they
# switch on are part of the checkpoint, so on/off is not resumable; a new weight is).
REWEIGHTABLE = {"train": {"aux_char_weight", "aux_writer_weight"}}


def incompatible_changes(saved: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Names the fields whose change makes `new` unable to resume from `saved`'s checkpoints."""
    out = []
    a, b = saved.to_dict(), new.to_dict()
    for section, allowed in RESUMABLE_CHANGES.items():
        if allowed is None:
            continue
        for key, value in a[section].items():
            if key in allowed:
                continue
            if (key in REWEIGHTABLE.get(section, ()) and value > 0
                    and (b[section].get(key) or 0) > 0):
                continue
            if json.dumps(value) != json.dumps(b[section].get(key)):
                out.append(f"{section}.{key}: {value!r} -> {b[section].get(key)!r}")
    return out


def load_json(path: str) -> Optional[ExperimentConfig]:
    import os

    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return ExperimentConfig.from_dict(json.load(f))


# ------------------------------------------------------------------------------------------------
# Writer adaptation (hw_gan.adaptation): adding a writer to a trained style_cgan.

STARTS = ("nearest", "mean")
OBJECTIVES = ("gan", "projection")
SPACES = ("row", "writers")
FINETUNE_OBJECTIVES = ("gan", "pivotal")


class AdaptError(ValueError):
    """The adaptation cannot run with these inputs; the message says why."""


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    writer_data: str
    init: str
    model_dir: str
    writer_name: str = ""  # default: the dataset's writer name
    split: str = "train"
    steps: int = 300  # embedding-only steps
    batch_size: int = 32
    lr: float = 0.001  # G's new embedding row (base rows differ by ~0.45 in L2, entries ~0.09)
    d_lr: float = 0.002  # D's new projection row
    finetune_steps: int = 0
    finetune_lr: float = 2e-5
    finetune_objective: str = "gan"  # fine-tune loss: the base's "gan" loss or "pivotal" tuning
    finetune_samples: int = 1  # pivotal: draws per glyph (the closest one is pulled to it)
    locality: float = 1.0  # pivotal: weight of |G(base writer) - G_base(base writer)|
    # Fine-tune only when the writer's data hold at least this many glyphs per character they
    # cover (a template filled in with 3 variants: 3.0); below it only the embedding is adapted.
    finetune_min_variants: float = 0.0
    start: str = "nearest"  # the "nearest" base writers' rows (see start_rows) or the "mean" row
    start_top: int = 4  # "nearest": the mean of this many nearest base writers' rows
    samples: int = 8  # draws per glyph in the pixel distance (start and selection)
    select_every: int = 50  # embedding phase: score the row every N steps, keep the best (0: off)
    objective: str = "gan"  # embedding phase: the base's "gan" loss or "projection"
    feature_weight: float = 3.0  # projection: weight of the L1 of D's features (pixel L1 is 1)
    anchor: float = 0.0  # projection: weight of |row - start|^2 / |start|^2
    space: str = "row"  # projection: the free "row", or a softmax blend of the trained "writers"
    seed: int = 0
    export_dir: str = ""
    export_name: str = ""
    export_version: int = 1
    overwrite_export: bool = False
    log_every: int = 50
    run_eagerly: bool = False  # the steps op by op, no tf.function (--run_eagerly)

    def validate(self) -> "AdaptConfig":
        def check(ok, flag, msg):
            if not ok:
                raise AdaptError(f"--{flag}: {msg}")

        check(bool(self.writer_data), "writer_data", "is required")
        check(bool(self.init), "init", "is required")
        check(bool(self.model_dir), "model_dir", "is required (a new directory)")
        check(self.steps >= 0, "adapt_steps", "must be >= 0")
        check(self.finetune_steps >= 0, "adapt_finetune_steps", "must be >= 0")
        check(self.steps + self.finetune_steps >= 1 or self.start == "nearest", "adapt_steps",
              "adapt_steps + adapt_finetune_steps must be >= 1 with --adapt_start=mean")
        check(self.batch_size >= 1, "adapt_batch_size", "must be >= 1")
        check(self.start in STARTS, "adapt_start", f"must be one of {STARTS}, got {self.start!r}")
        check(self.start_top >= 1, "adapt_start_top", "must be >= 1")
        check(self.samples >= 1, "adapt_samples", "must be >= 1")
        check(self.select_every >= 0, "adapt_select_every", "must be >= 0")
        check(self.objective in OBJECTIVES, "adapt_objective",
              f"must be one of {OBJECTIVES}, got {self.objective!r}")
        check(self.feature_weight >= 0, "adapt_feature_weight", "must be >= 0")
        check(self.anchor >= 0, "adapt_anchor", "must be >= 0")
        check(self.space in SPACES, "adapt_space", f"must be one of {SPACES}, got {self.space!r}")
        check(self.finetune_objective in FINETUNE_OBJECTIVES, "adapt_finetune_objective",
              f"must be one of {FINETUNE_OBJECTIVES}, got {self.finetune_objective!r}")
        check(self.finetune_samples >= 1, "adapt_finetune_samples", "must be >= 1")
        check(self.locality >= 0, "adapt_locality", "must be >= 0")
        check(self.finetune_min_variants >= 0, "adapt_finetune_min_variants", "must be >= 0")
        check(self.lr > 0 and self.d_lr > 0 and self.finetune_lr > 0, "adapt_lr",
              "learning rates must be > 0")
        check(self.export_version >= 1, "export_version", "must be >= 1")
        return self


# ------------------------------------------------------------------------------------------------
# Style projection (hw_gan.inversion): fitting a stylegan style to a few glyphs.

FEATURES = ("encoder", "discriminator", "none")  # the feature loss of a projection


class StyleError(ValueError):
    """Bad samples, a style file that does not fit the model, an unknown method (style
    extraction, hw_gan.inversion; defined here because ProjectionConfig.validate raises it)."""


@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
    # Defaults chosen on held-out UNIPEN writers (docs/results.md): the discriminator's features
    # at weight 3 gave the best writer match and FID at k = 10 with legibility still ~1.
    steps: int = 150
    lr: float = 0.05
    feature: str = "discriminator"
    feature_weight: float = 3.0
    reg_weight: float = 0.05
    layer_weight: float = 0.5
    wplus: bool = True

    def validate(self) -> "ProjectionConfig":
        if self.steps < 0 or self.lr <= 0:
            raise StyleError(f"projection steps ({self.steps}) must be >= 0 and lr ({self.lr}) > 0")
        if self.feature not in FEATURES:
            raise StyleError(f"projection feature {self.feature!r} is not one of {FEATURES}")
        if min(self.feature_weight, self.reg_weight, self.layer_weight) < 0:
            raise StyleError("projection weights must be >= 0")
        return self
