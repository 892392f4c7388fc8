"""Growing a trained style_cgan by one writer: the config with one more writer, and a trainer
of it whose weights are the base's (the writer embeddings and the auxiliary writer head get one
more row, the mean of the base's)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from hw_gan import config as config_lib
from hw_gan.config import AdaptConfig, AdaptError
from hw_gan.training.trainer import GANTrainer

EMBEDDING = "writer_embedding"


def copy_grown(src, dst) -> None:
    """Copies the weights of keras model `src` into `dst` (the same model with one more writer):
    equal shapes are copied, "writer_embedding" gets the mean of its rows appended."""
    for layer in dst.layers:
        if not layer.weights:
            continue
        old = src.get_layer(layer.name)
        for w_new, w_old in zip(layer.weights, old.weights):
            value = w_old.numpy()
            if tuple(w_new.shape) != value.shape:
                if layer.name != EMBEDDING or value.shape[0] + 1 != w_new.shape[0]:
                    raise AdaptError(f"cannot grow weight {w_new.path}: {value.shape} -> "
                                     f"{tuple(w_new.shape)}")
                value = np.concatenate([value, value.mean(axis=0, keepdims=True)], axis=0)
            w_new.assign(value)


def copy_head(src, dst) -> None:
    """The auxiliary writer head: one more output column (kernel [F, W], bias [W])."""
    kernel, bias = src.kernel.numpy(), src.bias.numpy()
    dst.kernel.assign(np.concatenate([kernel, kernel.mean(axis=1, keepdims=True)], axis=1))
    dst.bias.assign(np.append(bias, bias.mean()))


def grown_config(base_cfg, acfg: AdaptConfig) -> config_lib.ExperimentConfig:
    """The base's config with one more writer, reading the writer's data, written to
    acfg.model_dir (the adapted run's config.json)."""
    return base_cfg.replace(
        model=dataclasses.replace(base_cfg.model, num_writers=base_cfg.model.num_writers + 1),
        data=dataclasses.replace(base_cfg.data, data_dir=acfg.writer_data,
                                 train_split=acfg.split, build_source="", build_params=()),
        runtime=dataclasses.replace(base_cfg.runtime, model_dir=acfg.model_dir, mode="train",
                                    export_dir=acfg.export_dir, export_name=acfg.export_name,
                                    export_version=acfg.export_version, num_cpu_devices=0,
                                    strategy="default"))


def grow_trainer(base: GANTrainer, cfg: config_lib.ExperimentConfig, charset,
                 writers) -> GANTrainer:
    """A trainer of the grown config `cfg` (`writers`: the base's + the new one) holding the
    base's weights; the generators start from the base's EMA generator (the exported one)."""
    trainer = GANTrainer(cfg, tf.distribute.get_strategy(),
                         {"charset": charset, "writers": list(writers)})
    copy_grown(base.ema_generator, trainer.generator)
    copy_grown(base.ema_generator, trainer.ema_generator)
    copy_grown(base.discriminator, trainer.discriminator)
    for key, (head, _) in trainer.aux_heads.items():
        old = base.aux_heads[key][0]
        if key == "writer":
            copy_head(old, head)
        else:
            head.kernel.assign(old.kernel.numpy())
            head.bias.assign(old.bias.numpy())
    return trainer
