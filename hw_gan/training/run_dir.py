"""A run directory (--model_dir) on disk: written by training, read back by every caller.

    model_dir/config.json     the ExperimentConfig (written before the first step)
    model_dir/dataset.json    the dataset's charset, writers and resolution (their order = ids)
    model_dir/checkpoints/    the trainer's tf.train checkpoints (trainer.CHECKPOINT_DIR)

Writing and checking those files, resolving a checkpoint, and a trainer restored from a run live
here; training itself is trainer.py's. Writer adaptation (--init), style extraction (StyleModel)
and `hwgan style` read runs through here. Errors are RunDirError (a ValueError) whose message
starts with the path at fault, so a caller can put its flag in front ("--init=" + message).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Union

import tensorflow as tf

from data_pipeline import atomic
from data_pipeline.charset import check_same_charset
from hw_gan import config as config_lib
from hw_gan.training import make_trainer
from hw_gan.training.trainer import CHECKPOINT_DIR

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"

PathLike = Union[str, Path]


def dataset_info(manifest: dict) -> dict:
    """What a checkpoint depends on in its dataset: labels and writers (their order = ids)."""
    return {"charset": manifest["charset"], "writers": manifest["writers"],
            "resolution": manifest["resolution"]}


def check_dataset_matches(model_dir: Path, manifest: dict, data_dir: str) -> None:
    """A checkpoint trained on one charset/writer list must not resume on another."""
    path = Path(model_dir) / DATASET_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    check_same_charset(saved["charset"], manifest["charset"], f"the checkpoint in {model_dir}",
                       f"dataset {data_dir}")
    if saved["writers"] != manifest["writers"]:
        raise ValueError(f"the checkpoint in {model_dir} was trained on {len(saved['writers'])} "
                         f"writers, dataset {data_dir} has a different writer list "
                         f"({len(manifest['writers'])}); use another --model_dir")


def write_dataset_info(model_dir: Path, manifest: dict) -> None:
    atomic.write_text(Path(model_dir) / DATASET_FILE, json.dumps(dataset_info(manifest), indent=1))


def write_run(cfg: config_lib.ExperimentConfig, manifest: dict) -> None:
    """Creates cfg's model_dir with its config.json and dataset.json (before the first step)."""
    model_dir = Path(cfg.runtime.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(model_dir / CONFIG_FILE, cfg.to_json() + "\n")
    write_dataset_info(model_dir, manifest)


class RunDirError(ValueError):
    """A run directory or checkpoint that cannot be read; the message names the path."""


class NoCheckpointError(RunDirError):
    """A run directory without any checkpoint yet."""


def is_run_dir(path: PathLike) -> bool:
    """Whether `path` is a run directory (holds config.json) rather than e.g. an export."""
    return (Path(path) / CONFIG_FILE).is_file()


def latest_checkpoint(model_dir: PathLike) -> Optional[str]:
    """The prefix of the run's latest checkpoint, None when it has none."""
    return tf.train.latest_checkpoint(str(Path(model_dir) / CHECKPOINT_DIR))


def resolve_checkpoint(path: PathLike) -> tuple[Path, str]:
    """(model dir, checkpoint prefix) from a run directory (its latest checkpoint) or from one
    checkpoint prefix such as runs/x/checkpoints/ckpt-6000 (its run directory: the parent of
    checkpoints/). NoCheckpointError for a directory without checkpoints, RunDirError for a path
    that is neither."""
    given, path = str(path), Path(path)  # messages quote the path as it was given
    if path.is_dir():
        prefix = latest_checkpoint(path)
        if prefix is None:
            raise NoCheckpointError(f"{given}: no checkpoint in {path / CHECKPOINT_DIR}")
        return path, prefix
    if Path(str(path) + ".index").exists():
        model_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        return model_dir, str(path)
    raise RunDirError(f"{given} is neither a model directory nor a checkpoint prefix "
                      f"(no {given}.index)")


def load_run_config(model_dir: PathLike) -> tuple[config_lib.ExperimentConfig, dict]:
    """(the run's ExperimentConfig, its dataset info {charset, writers, resolution})."""
    model_dir = Path(model_dir)
    cfg = config_lib.load_json(str(model_dir / CONFIG_FILE))
    if cfg is None:
        raise RunDirError(f"{model_dir} holds no trained model (no {CONFIG_FILE})")
    info_path = model_dir / DATASET_FILE
    if not info_path.exists():
        raise RunDirError(f"{model_dir} has no {DATASET_FILE}")
    return cfg, json.loads(info_path.read_text(encoding="utf-8"))


def restore_trainer(model_dir: PathLike, checkpoint: Optional[str] = None,
                    run: Optional[tuple[config_lib.ExperimentConfig, dict]] = None):
    """The trainer of the run in `model_dir` (make_trainer: its family's, under the current
    distribution strategy) with `checkpoint` restored (default: the latest one); every object
    of the model must be in the checkpoint (a models-only checkpoint, `model_checkpoint`,
    restores the models and leaves the optimizers fresh). `run`: (cfg, info) when
    load_run_config has already been read. The config's model_dir is set to `model_dir` (a moved run still reads its own
    checkpoints)."""
    model_dir = Path(model_dir)
    cfg, info = run if run is not None else load_run_config(model_dir)
    prefix = checkpoint or resolve_checkpoint(model_dir)[1]
    cfg = cfg.replace(runtime=dataclasses.replace(cfg.runtime, model_dir=str(model_dir)))
    manifest = {"charset": info["charset"], "writers": info["writers"],
                "resolution": info.get("resolution"), "splits": {}}
    trainer = make_trainer(cfg, tf.distribute.get_strategy(), manifest)
    from_export = _generator_bundle(model_dir)
    try:
        full = has_optimizer_state(prefix)
        ckpt = trainer.checkpoint if full else trainer.model_checkpoint(
            with_generator=from_export is None)
        ckpt.restore(prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RunDirError(f"cannot restore {prefix} into the model its {CONFIG_FILE} "
                          f"describes: {str(e)[:300]}") from None
    if from_export is not None and not full:
        _assign_from_export(trainer.ema_generator, from_export)
    if not full:  # a models-only checkpoint: the raw generator starts as the EMA one
        for v, ema_v in zip(trainer.generator.weights, trainer.ema_generator.weights):
            v.assign(ema_v)
    return trainer


GENERATOR_FILE = "generator.json"  # a run whose EMA generator's weights are in an export


def _generator_bundle(model_dir: Path) -> Optional[Path]:
    """The variables prefix of the export that holds this run's EMA generator (a shipped base:
    GENERATOR_FILE says where, relative to the run), or None."""
    path = model_dir / GENERATOR_FILE
    if not path.is_file():
        return None
    try:
        rel = json.loads(path.read_text(encoding="utf-8"))["variables"]
    except (ValueError, KeyError, TypeError):
        raise RunDirError(f"{path} is damaged: expected {{\"variables\": PATH}}") from None
    return (model_dir / rel).resolve()


def _assign_from_export(generator, prefix: Path) -> None:
    """The generator's weights, in order, from an export's variable bundle (its module's
    `generator_variables`); RunDirError naming the bundle when they do not fit."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for i, v in enumerate(generator.variables):
            value = reader.get_tensor(f"generator_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
            if tuple(value.shape) != tuple(v.shape):
                raise ValueError(f"variable {i} ({v.path}) is {tuple(value.shape)}, the model "
                                 f"has {tuple(v.shape)}")
            v.assign(value)
    except (ValueError, tf.errors.OpError) as e:
        raise RunDirError(f"cannot take the generator's weights from {prefix}: "
                          f"{str(e).splitlines()[0][:300]}") from None


def has_optimizer_state(prefix: str) -> bool:
    """Whether a checkpoint holds the optimizers (a training checkpoint) or only the models
    (`trainer.model_checkpoint()`, as shipped models carry)."""
    return any(name.startswith("g_opt/") for name, _ in tf.train.list_variables(prefix))
