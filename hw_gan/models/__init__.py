"""Model families. Each family is a module `hw_gan.models.<name>` exposing

    build_generator(cfg: ModelConfig) -> keras.Model
        G(inputs, training=...) with inputs {"z": [B, latent_dim] float32, "char": [B] int32,
        "writer": [B] int32} -> images [B, R, R, 1] float32 in [-1, 1].
    build_discriminator(cfg: ModelConfig) -> keras.Model
        D(inputs, training=...) with inputs {"image": [B, R, R, 1] float32, "char": [B] int32,
        "writer": [B] int32} -> logits [B] float32.
    USES_WRITER: bool
        False when the models have no "writer" input. Pass such models only the keys they have
        (`select_inputs`): a Keras functional model called with an extra dict key misaligns
        its inputs rather than ignoring the key.

The fewshot family (issue 18) differs: its generator takes the character as a font image and the
style as k reference glyphs ({"content", "style_images", "style_contents", "style_mask"}, see
hw_gan.models.fewshot) and has its own trainer; its discriminator follows the contract above.

Families are imported lazily by name (`get_family`), so importing this package does not build
or import any of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Mapping

from hw_gan.config import FAMILIES


def get_family(name: str) -> ModuleType:
    """The module of family `name`; ValueError naming the known families otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; expected one of {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{name}")


def input_keys(model) -> tuple[str, ...]:
    """The names of a functional model's dict inputs, e.g. ("z", "char", "writer")."""
    spec = model.input
    if isinstance(spec, Mapping):
        return tuple(spec.keys())
    return tuple(t.name for t in model.inputs)


def select_inputs(model, inputs: Mapping) -> dict:
    """The entries of `inputs` that `model` takes (KeyError if one it needs is missing)."""
    keys = input_keys(model)
    missing = [k for k in keys if k not in inputs]
    if missing:
        raise KeyError(f"model {model.name!r} needs inputs {missing}; got {sorted(inputs)}")
    return {k: inputs[k] for k in keys}
