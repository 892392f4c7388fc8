"""An adapted writer as plain numbers, to move it to another computer without a SavedModel.

A SavedModel holds a graph, and a graph can hold ops that read or write files: one that comes
from outside is never loaded. What adaptation changes is numbers. The embedding phase changes
the new writer's rows; the fine-tune (pivotal tuning, or the GAN objective) changes every
generator weight but the base writers' rows. So the portable form of an adapted model is every
weight of its (EMA) generator, float32, keyed by the Keras variable's path, in an .npz file
read without pickle (`weights_bytes`, `read_weights`), beside what names the base it grew from
(`base_identity`: the base's model config, charset and writers, which fix every shape and what
each row means). `export_from_weights` builds the base's generator grown by one writer from the
base's own config (this package's code, nothing from the file), checks every array against its
variable, assigns them and writes the export as `adapt` does; drawn with the same seed, it draws
what the original export drew, pixel for pixel.

Not carried: the adapted run (its discriminator, checkpoint and adapt.json) - a hand file
writes, it does not adapt further - and the base writers' rows are carried as the adapted
generator has them (they equal the base's, and take a few kilobytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from hw_gan.adaptation.data import trained_writers
from hw_gan.config import AdaptError
from hw_gan.export import export_model
from hw_gan.models import get_family

WEIGHTS_DTYPE = np.dtype("<f4")
NPY_OVERHEAD = 4096  # an .npy member's header (and a zip entry's slack) beyond its data


def base_identity(base_cfg, base_info: Mapping) -> str:
    """What an adapted generator's weights fit: the first 16 hex digits of the sha256 of the
    base's model config, charset and writer names."""
    doc = {"model": dataclasses.asdict(base_cfg.model), "charset": list(base_info["charset"]),
           "writers": list(base_info["writers"])}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def grown_generator(base_cfg):
    """(generator, its model config): the base's generator with one more writer, freshly built
    from the base's config (its weights are Keras' initial ones)."""
    model_cfg = dataclasses.replace(base_cfg.model, num_writers=base_cfg.model.num_writers + 1)
    return get_family(model_cfg.family).build_generator(model_cfg), model_cfg


def weight_specs(generator) -> dict[str, tuple]:
    """{variable path: shape} of a generator, in its variables' order."""
    return {v.path: tuple(int(d) for d in v.shape) for v in generator.variables}


def export_weights(export, specs: Mapping[str, tuple]) -> dict[str, np.ndarray]:
    """The generator weights of an adapted export made on this computer (a LoadedExport: its
    variables, in the order the generator had them) by variable path; AdaptError when they do
    not fit `specs` (an export of another base)."""
    saved = list(export.module.generator_variables)
    if len(saved) != len(specs):
        raise AdaptError(f"the hand's model has {len(saved)} weights, the base's grown "
                         f"generator {len(specs)}: it was made from another base model")
    out = {}
    for var, (path, shape) in zip(saved, specs.items()):
        name = var.name.split(":")[0]
        if name != path or tuple(var.shape) != shape:
            raise AdaptError(f"the hand's weight {name} {tuple(var.shape)} is not the base's "
                             f"{path} {shape}: it was made from another base model")
        out[path] = np.asarray(var.numpy(), WEIGHTS_DTYPE)
    return out


def weights_bytes(weights: Mapping[str, np.ndarray]) -> bytes:
    """An .npz of float32 arrays (no pickle): what `read_weights` reads back."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v, WEIGHTS_DTYPE) for k, v in weights.items()})
    return buf.getvalue()


def read_weights(data: bytes, specs: Mapping[str, tuple],
                 what: str = "weights.npz") -> dict[str, np.ndarray]:
    """The arrays of an .npz file that must hold exactly `specs` ({name: shape}), float32 and
    finite. Every member is checked by name, size and .npy header before its data is read (an
    object array, i.e. pickle, is refused by its dtype and never loaded; np.lib.format reads
    with allow_pickle=False). AdaptError on one line naming `what` and the member."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise AdaptError(f"{what} is not an .npz file of weights") from None
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        expected = {f"{key}.npy": key for key in specs}
        if len(set(names)) != len(names):
            raise AdaptError(f"{what} holds a name twice")
        extra = [n for n in names if n not in expected]
        if extra:
            raise AdaptError(f"{what} holds {extra[0]!r}, which the base model's generator does "
                             "not have")
        missing = [key for name, key in expected.items() if name not in names]
        if missing:
            raise AdaptError(f"{what} lacks {missing[0]!r} ({len(missing)} of the base model's "
                             f"{len(specs)} generator weights are missing)")
        return {expected[info.filename]: _read_member(archive, info, specs[expected[
            info.filename]], f"{what}: {expected[info.filename]}") for info in infos}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple,
                 what: str) -> np.ndarray:
    nbytes = WEIGHTS_DTYPE.itemsize * math.prod(shape)
    if info.file_size > nbytes + NPY_OVERHEAD:
        raise AdaptError(f"{what} is {info.file_size} bytes, more than float32 {shape} takes")
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            found, _, dtype = header(f, max_header_size=NPY_OVERHEAD)
        if dtype != WEIGHTS_DTYPE or tuple(found) != shape:
            kind = "objects (pickle)" if dtype.hasobject else str(dtype)
            raise AdaptError(f"{what} is {kind} of shape {tuple(found)}; the base model's "
                             f"generator needs float32 of shape {shape}")
        with archive.open(info) as f:
            array = np.lib.format.read_array(f, allow_pickle=False,
                                             max_header_size=NPY_OVERHEAD)
            if f.read(1):
                raise AdaptError(f"{what} has bytes after its array")
    except AdaptError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise AdaptError(f"{what} is not a readable .npy array ({reason})") from None
    if not np.isfinite(array).all():
        raise AdaptError(f"{what} holds values that are not finite numbers")
    return np.array(array, WEIGHTS_DTYPE)


def export_from_weights(base, weights: Mapping[str, np.ndarray], writer: str, export_dir,
                        name: str, *, writer_geometry: Optional[Mapping] = None,
                        metadata: Optional[Mapping] = None) -> Path:
    """Writes the export of the base (load_base's (config, dataset info, ...)) grown by
    `writer`, whose generator weights are `weights` (read_weights' arrays of this base's
    specs): export_dir/name/1. writer_geometry: the writer's {char: [top, bottom]}."""
    base_cfg, base_info = base[0], base[1]
    generator, model_cfg = grown_generator(base_cfg)
    specs = weight_specs(generator)
    if set(weights) != set(specs):
        raise AdaptError("the weights are not those of the base model's grown generator")
    for var in generator.variables:
        value = weights[var.path]
        if value.shape != tuple(var.shape):
            raise AdaptError(f"weight {var.path} has shape {value.shape}, the base model's "
                             f"generator needs {tuple(var.shape)}")
        var.assign(value)
    writers = list(base_info["writers"]) + [writer]
    trained = set(trained_writers(base_cfg, base_info)[0])
    untrained = [w for i, w in enumerate(base_info["writers"]) if i not in trained]
    return export_model(generator, model_cfg, base_info["charset"], writers, export_dir, name, 1,
                        untrained_writers=untrained,
                        writer_geometry={writer: dict(writer_geometry)} if writer_geometry
                        else None, metadata=dict(metadata or {}))
