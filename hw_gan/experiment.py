"""What each `--mode` of `python train_main.py` / `hwgan train` does.

    run(cfg)           train | evaluate | export | sample   (an ExperimentConfig)
    run_adapt(acfg)    adapt: add one writer to a trained char+writer model (an AdaptConfig)

This is the application floor: it joins the data pipeline, a trainer, the evaluation and the
export, and it is the one place below the entry points that sets process-wide TensorFlow state
(the CPU device split, the dtype policy, op determinism and the global seeds that Keras weight
initialisation reads), because every mode needs it before its first TensorFlow op. Signal
handling is the entry point's: it passes a `training.StopRequest` in. Flags live in
`hw_gan.cli.train`; nothing here parses a command line.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import keras
import tensorflow as tf

from data_pipeline import build, extents, tfrecords
from data_pipeline import charset as charset_lib
from hw_gan import adaptation
from hw_gan import config as config_lib
from hw_gan import export as export_lib
from hw_gan import shipped
from hw_gan.evaluation import evaluate as evaluate_lib
from hw_gan.evaluation import judge as judge_lib
from hw_gan.export import rebuild as rebuild_lib
from hw_gan.render.grid import write_sample_grid
from hw_gan.training import StopRequest, make_trainer
from hw_gan.training import run_dir as run_dir_lib
from hw_gan.training import strategy as strategy_lib

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run(cfg: config_lib.ExperimentConfig, deterministic: bool = False,
        overwrite_export: bool = False, stop: Optional[StopRequest] = None,
        log: Log = _stderr) -> dict:
    """Runs one mode of an experiment; returns a JSON-able summary."""
    if cfg.runtime.mode == "adapt":
        raise ValueError("--mode=adapt takes an AdaptConfig: use run_adapt")
    # Device layout and policies first: they must precede any TensorFlow op.
    strategy_lib.split_cpu(cfg.runtime.num_cpu_devices)
    if cfg.runtime.mode == "sample":
        return sample(cfg)
    strategy = strategy_lib.make_strategy(cfg.runtime.strategy)
    asked = cfg.runtime  # before "auto" is resolved for this machine
    cfg = cfg.replace(runtime=dataclasses.replace(
        cfg.runtime, precision=strategy_lib.resolve_precision(cfg.runtime.precision),
        jit_compile=not cfg.runtime.run_eagerly and strategy_lib.resolve_jit_compile(
            cfg.runtime.jit_compile, replicas=strategy.num_replicas_in_sync)))
    # Only training computes in reduced precision; evaluation and export read the float32
    # weights into a float32 model, so what is scored is what is shipped.
    strategy_lib.set_precision(cfg.runtime.precision if cfg.runtime.mode == "train"
                               else "float32")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    chief = strategy_lib.is_chief(strategy)

    manifest = ensure_dataset(cfg, log)
    cfg = cfg.replace(model=dataclasses.replace(
        cfg.model, num_chars=len(manifest["charset"]), num_writers=len(manifest["writers"])))
    check_run_dir(cfg, manifest)
    if chief and cfg.runtime.mode == "train":  # other modes read a run, they do not redefine it
        run_dir_lib.write_run(cfg, manifest)

    # The same seed before every build gives the same initial weights in any process, which a
    # resumed or compared run relies on.
    keras.utils.set_random_seed(cfg.train.seed)
    trainer = make_trainer(cfg, strategy, manifest)
    if (cfg.runtime.mode == "train" and cfg.train.init_from
            and trainer.manager.latest_checkpoint is None):
        try:
            path = rebuild_lib.init_fewshot_from(cfg.train.init_from,
                                                (trainer.generator, trainer.ema_generator))
        except rebuild_lib.RebuildError as e:
            raise ValueError(f"--init_from={cfg.train.init_from}: {e}") from None
        log(f"generator and EMA generator start from {path} (--init_from); the discriminator "
            "starts fresh")
    summary: dict = {"model_dir": str(cfg.runtime.model_dir)}
    if cfg.runtime.mode == "train":
        if chief and config_lib.JIT_AUTO in (asked.precision, asked.jit_compile):
            log(f"training in {cfg.runtime.precision}, XLA "
                f"{'on' if cfg.runtime.jit_compile else 'off'} (--precision={asked.precision}, "
                f"--jit_compile={str(asked.jit_compile).lower()}: chosen for this machine)")
        summary["train"] = trainer.train(stop=stop)
    elif trainer.restore() == 0:
        raise ValueError(f"--mode={cfg.runtime.mode}: no checkpoint in {cfg.runtime.model_dir}")
    if not chief:
        return summary
    at_end = cfg.runtime.mode == "train" and cfg.eval.eval_at_end
    if at_end and cfg.runtime.precision != "float32":
        trainer = float32_trainer(cfg, strategy, manifest)
    if cfg.runtime.mode == "evaluate" or at_end:
        summary["eval"] = evaluate(cfg, trainer, manifest)
    if cfg.runtime.mode == "export" or (at_end and cfg.runtime.export_dir):
        summary["export"] = export(cfg, trainer, manifest, overwrite_export, log)
    return summary


def float32_trainer(cfg: config_lib.ExperimentConfig, strategy, manifest: dict):
    """A trainer of float32 models restored from the run's latest checkpoint (its variables
    are float32 whatever the policy it was trained under; the optimizers keep the run's
    structure, loss scaling included, so the checkpoint matches); the global policy is float32
    afterwards."""
    strategy_lib.set_precision("float32")
    keras.utils.set_random_seed(cfg.train.seed)
    trainer = make_trainer(cfg, strategy, manifest)
    trainer.restore()
    return trainer


def ensure_dataset(cfg: config_lib.ExperimentConfig, log: Log = _stderr) -> dict:
    """The manifest of cfg's dataset, built first from --build_source when it is missing. A
    folder that holds something else is never replaced (this command has no --overwrite)."""
    data_dir = Path(cfg.data.data_dir)
    if not (data_dir / tfrecords.MANIFEST).exists() and cfg.data.build_source:
        if data_dir.is_dir() and any(data_dir.iterdir()):
            raise ValueError(
                f"--data_dir {data_dir} is not empty and holds no dataset (no "
                f"{tfrecords.MANIFEST}), so --build_source={cfg.data.build_source} will not build "
                f"over it: remove it, give another --data_dir, or rebuild it in place with "
                f"`hwgan build --source={cfg.data.build_source} --out={data_dir} --overwrite`")
        params = {k: build.parse_value(v) for k, v in cfg.data.build_params}
        split_args = {k: params.pop(k) for k in ("split", "test_fraction", "seed") if k in params}
        log(f"building dataset {data_dir} from source {cfg.data.build_source}")
        build.build(cfg.data.build_source, str(data_dir), params, **split_args)
    manifest = tfrecords.load_manifest(data_dir)
    required = dict(cfg.data.build_params).get("require_chars")
    if required:  # a dataset built before (say, without the symbols) is not silently reused
        absent = [c for c in charset_lib.parse_charset(required)
                  if not any(c in label for label in manifest["charset"])]
        if absent:
            raise ValueError(f"--data_dir={data_dir} was built without {''.join(absent)!r}, "
                             f"which --build_param=require_chars={required} asks for: rebuild it "
                             f"(remove the folder or give another --data_dir)")
    return manifest


def check_run_dir(cfg: config_lib.ExperimentConfig, manifest: dict) -> None:
    """ValueError when --model_dir holds a run this config cannot continue or read."""
    model_dir = Path(cfg.runtime.model_dir)
    config_path = model_dir / run_dir_lib.CONFIG_FILE
    # The dataset check comes first: a different charset is the clearer explanation.
    run_dir_lib.check_dataset_matches(model_dir, manifest, str(cfg.data.data_dir))
    saved = config_lib.load_json(str(config_path))
    if saved is not None:
        changes = config_lib.incompatible_changes(saved, cfg)
        if changes:
            raise ValueError(f"{config_path} holds a run this config cannot resume: "
                             + "; ".join(changes) + ". Use another --model_dir.")
    if cfg.runtime.mode != "train" and saved is None:
        raise ValueError(f"--mode={cfg.runtime.mode}: {model_dir} holds no trained model "
                         f"(no config.json); train first")


def evaluate(cfg: config_lib.ExperimentConfig, trainer, manifest: dict) -> dict:
    """Scores the trainer's EMA generator; writes eval.json and the eval summaries. Judges come
    from --judge_cache_dir, by default the dataset's shared cache (<data_dir>/judges/), and go to
    <model_dir>/judges/ when that cannot be written."""
    result = evaluate_lib.evaluate(
        trainer.generate, cfg.data.data_dir, cfg.eval.judge_cache_dir or None,
        image_size=cfg.model.resolution, num_generated=cfg.eval.num_generated,
        uses_writer=trainer.uses_writer, judge_steps=cfg.eval.judge_steps,
        judge_batch=cfg.eval.judge_batch, seed=cfg.train.seed, split=cfg.data.train_split,
        fallback_dir=Path(cfg.runtime.model_dir) / judge_lib.CACHE_DIRNAME)
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


def export(cfg: config_lib.ExperimentConfig, trainer, manifest: dict, overwrite: bool = False,
           log: Log = _stderr) -> str:
    """Exports the trainer's EMA generator (and the family's extra signatures) as a SavedModel."""
    if not cfg.runtime.export_dir:
        raise ValueError("--mode=export needs --export_dir")
    name = cfg.runtime.export_name or Path(cfg.runtime.model_dir).name
    # Writers held out of the training split (a writer split) have rows never trained.
    untrained = (tfrecords.writers_without_glyphs(manifest, cfg.data.train_split)
                 if trainer.uses_writer else [])
    stylegan = cfg.model.family == "stylegan"
    t0 = time.perf_counter()
    geometry = _writer_geometry(cfg, trainer, manifest, log)
    generator, style_parts, metadata = trainer.ema_generator, None, {}
    if cfg.model.family == "fewshot":
        log("export: the training writers' styles and the font's content table ...")
        generator, style_parts = trainer.serving_generator(untrained)
        metadata[export_lib.STYLE_CHARSET_KEY] = "".join(chr(c) for c in style_parts[2])
        metadata[export_lib.UNTRAINED_CHARS_KEY] = cfg.data.holdout_chars
    log(f"export: writing {Path(cfg.runtime.export_dir) / name} ...")
    path = export_lib.export_model(
        generator, cfg.model, manifest["charset"], manifest["writers"],
        cfg.runtime.export_dir, name, cfg.runtime.export_version, overwrite=overwrite,
        encoder=trainer.ema_encoder if stylegan else None,
        feature_net=trainer.d_feature_net if stylegan else None, style_parts=style_parts,
        untrained_writers=untrained, writer_geometry=geometry, metadata=metadata)
    log(f"export: {path} in {time.perf_counter() - t0:.0f} s")
    return str(path)


def _writer_geometry(cfg: config_lib.ExperimentConfig, trainer, manifest: dict,
                     log: Log) -> Optional[dict]:
    """Each trained writer's punctuation extents (data_pipeline.extents) where the dataset's
    records carry geometry or sizes; None otherwise (the layout's typographic classes)."""
    if not trainer.uses_writer or not (manifest.get("has_size") or manifest.get("has_geometry")):
        return None
    table = extents.writer_extents(
        tfrecords.read_records(cfg.data.data_dir, cfg.data.train_split))
    log(f"export: punctuation sizes of {len(table)} writers from {cfg.data.data_dir}")
    return table or None


def sample(cfg: config_lib.ExperimentConfig) -> dict:
    """--mode=sample: a grid of writers x characters from the run's export (--export_dir /
    --export_name), or from the shipped model --export_name names when there is no such
    export."""
    if not cfg.runtime.sample_out:
        raise ValueError("--mode=sample needs --sample_out=FILE.png")
    name = cfg.runtime.export_name or Path(cfg.runtime.model_dir).name
    path = Path(cfg.runtime.export_dir) / name
    if not path.exists() and name in shipped.names():  # --export_name of a shipped model
        path = shipped.get(name).export_path
    exported = export_lib.load_export(path)
    writers = list(cfg.runtime.sample_writers) or list(exported.trained_writers()[:8])
    chars = cfg.runtime.sample_chars or "".join(label[0] for label in exported.charset)
    write_sample_grid(exported, cfg.runtime.sample_out, chars, writers, cfg.train.seed)
    return {"sample": cfg.runtime.sample_out}


def run_adapt(acfg: config_lib.AdaptConfig, log: Log = _stderr) -> dict:
    """--mode=adapt: adds one writer to a trained style_cgan (hw_gan.adaptation)."""
    keras.utils.set_random_seed(acfg.seed)
    return adaptation.adapt(acfg, log=log)


__all__ = ["run", "run_adapt", "float32_trainer", "ensure_dataset", "check_run_dir", "evaluate",
           "export", "sample"]
