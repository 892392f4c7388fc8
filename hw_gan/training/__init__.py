"""Training: one GAN trainer shared by every family, under tf.distribute.

    make_trainer(cfg, strategy, manifest)   the trainer of cfg's family (stylegan and fewshot
                                            have their own)
    GANTrainer, StyleGANTrainer,            a train step, checkpoints, EMA, summaries, generate
    FewShotTrainer
    StopRequest                             how an entry point asks a running train() to stop
    run_dir                                 a run directory's files (config.json, dataset.json)
    strategy                                tf.distribute and dtype-policy set-up

Owns: the training loop and the files of a run. Must not import evaluation, export, adaptation,
inversion, render, serve or cli (they sit above); it builds models from hw_gan.models and reads
data through data_pipeline. It sets no global seed and installs no signal handler: its callers do.
"""

from __future__ import annotations

import tensorflow as tf

from hw_gan.config import ExperimentConfig
from hw_gan.training.fewshot_trainer import FewShotTrainer
from hw_gan.training.stylegan_trainer import StyleGANTrainer
from hw_gan.training.trainer import CHECKPOINT_DIR, GANTrainer, StopRequest, TrainingError

__all__ = ["CHECKPOINT_DIR", "FewShotTrainer", "GANTrainer", "StopRequest", "StyleGANTrainer", "TrainingError",
           "make_trainer"]


def make_trainer(cfg: ExperimentConfig, strategy: tf.distribute.Strategy, manifest: dict):
    """The trainer for cfg's model family (stylegan has its own, with the style encoder)."""
    if cfg.model.family == "stylegan":
        return StyleGANTrainer(cfg, strategy, manifest)
    if cfg.model.family == "fewshot":
        return FewShotTrainer(cfg, strategy, manifest)
    return GANTrainer(cfg, strategy, manifest)
