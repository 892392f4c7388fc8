"""Writing an export: `export_generator` (one generator -> SavedModel `export_root/name/version/`,
with its built-in signatures, any extra ones, and the assets), `export_model` (the export every
trained or adapted hwgan model gets: `default_signatures` for its family plus the
untrained-writer and writer-geometry metadata), `version_dir` and the argument checks that run
before anything is written."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from data_pipeline import atomic
from data_pipeline.atomic import PathLike
from data_pipeline.charset import validate_charset
from hw_gan.config import ModelConfig
from hw_gan.export.limits import ExportLimits
from hw_gan.export.module import GeneratorModule
from hw_gan.export.names import (BUILTIN_SIGNATURES, CHARSET_FILE, FORMAT, FORMAT_VERSION,
                                 GLYPHS, METADATA_FILE, SERVING_DEFAULT, UNTRAINED_WRITERS_KEY,
                                 WRITER_GEOMETRY_KEY, WRITERS_FILE)
from hw_gan.export.signatures.fewshot import fewshot_signatures
from hw_gan.export.signatures.glyphs import BUILTIN_BUILDERS
from hw_gan.export.signatures.style import stylegan_signatures
from hw_gan.export.signatures.write import default_signatures as write_signatures
from hw_gan.models import get_family, input_keys, stylegan

__all__ = ["SignatureBuilder", "default_signatures", "export_generator", "export_model",
           "version_dir"]

SignatureBuilder = Callable[[GeneratorModule], Any]

_SIGNATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ------------------------------------------------------------------------------------------------
# Argument checks (all run before anything is written).


def _uses_writer(generator, family: str) -> bool:
    keys = input_keys(generator)
    missing = [k for k in ("z", "char") if k not in keys]
    if missing:
        raise ValueError(f"generator {generator.name!r} lacks inputs {missing}; has {list(keys)}")
    uses = "writer" in keys
    try:
        expected = getattr(get_family(family), "USES_WRITER", uses)
    except (ImportError, ValueError):
        expected = uses
    if expected != uses:
        raise ValueError(f"generator {generator.name!r} {'takes' if uses else 'lacks'} a 'writer' "
                         f"input, but family {family!r} has USES_WRITER={expected}")
    return uses


def _check_names(kind: str, names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    seen = set()
    for n in names:
        if not isinstance(n, str) or not n:
            raise ValueError(f"{kind} name {n!r} is not a non-empty string")
        if "\n" in n or "\r" in n:
            raise ValueError(f"{kind} name {n!r} contains a line break (assets are one per line)")
        if n in seen:
            raise ValueError(f"{kind} name {n!r} appears twice")
        seen.add(n)
    return names


def _check_export_args(generator, cfg: ModelConfig, charset, writers, uses_writer: bool):
    if cfg.num_chars and len(charset) != cfg.num_chars:
        raise ValueError(f"charset has {len(charset)} labels but model_cfg.num_chars is "
                         f"{cfg.num_chars}")
    if uses_writer:
        if not writers:
            raise ValueError(f"family {cfg.family!r} takes a writer but writer_names is empty")
        if cfg.num_writers and len(writers) != cfg.num_writers:
            raise ValueError(f"{len(writers)} writer names but model_cfg.num_writers is "
                             f"{cfg.num_writers}")
    out = getattr(generator, "output", None)
    shape = tuple(getattr(out, "shape", ()) or ())
    if shape and tuple(shape[1:]) != (cfg.resolution, cfg.resolution, 1):
        raise ValueError(f"generator output shape {shape} does not match resolution "
                         f"{cfg.resolution} (expected [B, {cfg.resolution}, {cfg.resolution}, 1])")
    z = getattr(generator, "input", {})
    if isinstance(z, Mapping) and "z" in z and z["z"].shape[-1] != cfg.latent_dim:
        raise ValueError(f"generator z input {tuple(z['z'].shape)} does not match latent_dim "
                         f"{cfg.latent_dim}")


def _check_untrained(untrained: Sequence[str], writers: Sequence[str]) -> None:
    if not set(untrained) <= set(writers) or len(untrained) >= max(len(writers), 1):
        raise ValueError(f"untrained_writers {list(untrained)} must be some (not all) of the "
                         "writers")


def _check_signature_names(extra_signatures: Mapping[str, SignatureBuilder]) -> None:
    for sig_name in extra_signatures:
        if sig_name in BUILTIN_SIGNATURES or not _SIGNATURE_NAME.match(sig_name):
            raise ValueError(f"extra signature name {sig_name!r} is taken or not an identifier")


def _check_signature_fn(fn, name: str):
    """A builder's result: a tf.function with an input_signature (traced once, while saving)
    or a ConcreteFunction (traced already; its graph is then stored beside the save-time trace
    of any tf.function it calls, so prefer tf.function)."""
    if isinstance(fn, tf.types.experimental.ConcreteFunction):
        return fn
    if isinstance(fn, tf.types.experimental.PolymorphicFunction):
        if fn.input_signature is None:
            raise ValueError(f"signature {name!r}: the tf.function needs an input_signature")
        return fn
    raise ValueError(f"signature {name!r}: the builder returned {type(fn).__name__}, not a "
                     "tf.function or ConcreteFunction")


def version_dir(export_root: PathLike, name: str, version: int) -> Path:
    if not name or name in (".", "..") or "/" in name or os.sep in name or name.startswith("."):
        raise ValueError(f"export name {name!r} must be a plain directory name")
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"export version must be an integer >= 1, got {version!r}")
    return Path(export_root) / name / str(int(version))


# ------------------------------------------------------------------------------------------------
# export_generator, step by step.


def _export_info(generator, model_cfg: ModelConfig, charset, writers, uses_writer: bool,
                 signature_names: Sequence[str],
                 extra_metadata: Optional[Mapping[str, Any]]) -> dict:
    """hwgan.json's content."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": model_cfg.family,
        "resolution": int(model_cfg.resolution),
        "latent_dim": int(model_cfg.latent_dim),
        "uses_writer": uses_writer,
        "charset": list(charset),
        "writers": list(writers),
        "signatures": list(signature_names),
        "num_parameters": int(sum(np.prod(v.shape) for v in generator.variables)),
        "seeding": "z = tf.random.stateless_normal([N, latent_dim], seed=[seed, 0])",
        "image_convention": "uint8 ink-high: 0 paper, 255 ink",
        "model_config": dataclasses.asdict(model_cfg),
        **dict(extra_metadata or {}),
    }


def _asset_texts(charset, writers, info: dict) -> dict[str, str]:
    return {
        CHARSET_FILE: "".join(label + "\n" for label in charset),
        WRITERS_FILE: "".join(w + "\n" for w in writers),
        METADATA_FILE: json.dumps(info, indent=2, ensure_ascii=False) + "\n",
    }


def _attach_signatures(module: GeneratorModule,
                       extra_signatures: Mapping[str, SignatureBuilder]) -> dict:
    """Builds every signature function on `module` -> {signature name: function} for saving."""
    signatures = {}
    for sig_name, builder in [*BUILTIN_BUILDERS.items(), *extra_signatures.items()]:
        if sig_name in extra_signatures and hasattr(module, sig_name):
            raise ValueError(f"extra signature name {sig_name!r} clashes with an attribute "
                             "of GeneratorModule")
        fn = builder(module)
        setattr(module, sig_name, fn)
        signatures[sig_name] = _check_signature_fn(fn, sig_name)
    signatures[SERVING_DEFAULT] = signatures[GLYPHS]
    return signatures


def _save(module: GeneratorModule, signatures: dict, assets: Mapping[str, str], out: Path):
    """Saves atomically (a hidden sibling renamed when complete) and checks the assets."""
    with atomic.atomic_dir(out, overwrite=True) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        for fname, text in assets.items():
            saved = tmp / "assets" / fname
            if not saved.is_file() or saved.read_text(encoding="utf-8") != text:
                raise RuntimeError(f"asset {fname} was not written to {tmp / 'assets'}")


def export_generator(generator, model_cfg: ModelConfig, charset_labels: Sequence[str],
                     writer_names: Sequence[str], export_root: PathLike, name: str,
                     version: int = 1, overwrite: bool = False,
                     extra_signatures: Optional[Mapping[str, SignatureBuilder]] = None,
                     extra_metadata: Optional[Mapping[str, Any]] = None,
                     limits: Optional[ExportLimits] = None) -> Path:
    """Writes `generator` (the inference / EMA copy) as SavedModel `export_root/name/version/`.

    charset_labels: the dataset's charset (label ids in order); writer_names: writer ids in order
    (may be empty for a family without writers). extra_signatures: {name: builder(module)} for
    more signatures (see hw_gan.export's docstring); extra_metadata: more keys for hwgan.json;
    limits: the caps the glyph and style signatures check in the graph (hw_gan.export.limits;
    recorded in hwgan.json as "limits").
    Raises FileExistsError if the version exists and overwrite is False; returns the version dir.
    """
    out = version_dir(export_root, name, version)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"export version {out} already exists; pass overwrite=True to replace it, "
            f"or export a new version")
    charset = validate_charset(charset_labels)
    writers = _check_names("writer", writer_names)
    uses_writer = _uses_writer(generator, model_cfg.family)
    _check_export_args(generator, model_cfg, charset, writers, uses_writer)
    untrained = list((extra_metadata or {}).get(UNTRAINED_WRITERS_KEY, ()))
    _check_untrained(untrained, writers)
    extra_signatures = dict(extra_signatures or {})
    _check_signature_names(extra_signatures)
    limits = limits or ExportLimits()
    info = _export_info(generator, model_cfg, charset, writers, uses_writer,
                        sorted([*BUILTIN_SIGNATURES, *extra_signatures]),
                        {"limits": dataclasses.asdict(limits), **dict(extra_metadata or {})})
    assets = _asset_texts(charset, writers, info)

    staging = Path(tempfile.mkdtemp(prefix="hwgan-export-assets-"))
    try:
        asset_paths = {}
        for fname, text in assets.items():
            (staging / fname).write_text(text, encoding="utf-8")
            asset_paths[fname] = str(staging / fname)
        module = GeneratorModule(generator, model_cfg, charset, writers, uses_writer, asset_paths,
                                 untrained, limits)
        _save(module, _attach_signatures(module, extra_signatures), assets, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------------
# The export of a trained (or adapted) model.


def default_signatures(model_cfg: ModelConfig, generator=None, *, encoder=None,
                       feature_net=None, writer_geometry=None, style_parts=None) -> dict:
    """The extra signatures every hwgan export of `model_cfg.family` carries:
    {"write": ...} for every family; a stylegan export adds extract_style, glyphs_with_style and
    mean_style, which need the (EMA) `generator` and style `encoder` (feature_net: the
    discriminator's feature model for the projection, optional). writer_geometry must be the
    table the export's hwgan.json carries (export_model passes both the same)."""
    extra = write_signatures(writer_geometry)
    if model_cfg.family == "stylegan":
        if generator is None or encoder is None:
            raise ValueError("a stylegan export needs its generator and style encoder for the "
                             "style signatures")
        w_avg, spread = stylegan.w_statistics(generator, model_cfg.latent_dim)
        extra.update(stylegan_signatures(generator, encoder, w_avg, spread,
                                         feature_net=feature_net))
    if model_cfg.family == "fewshot":
        if style_parts is None:
            raise ValueError("a fewshot export needs its serving generator's style parts "
                             "(glyph net, head, content code points) for the style signatures")
        extra.update(fewshot_signatures(generator, *style_parts,
                                        read_copies=model_cfg.style_read_copies))
    return extra


def export_model(generator, model_cfg: ModelConfig, charset: Sequence[str],
                 writers: Sequence[str], export_dir: PathLike, name: str, version: int = 1, *,
                 overwrite: bool = False, encoder=None, feature_net=None, style_parts=None,
                 untrained_writers: Sequence[str] = (),
                 writer_geometry: Optional[Mapping[str, Any]] = None,
                 extra_signatures: Optional[Mapping[str, SignatureBuilder]] = None,
                 metadata: Optional[Mapping[str, Any]] = None,
                 limits: Optional[ExportLimits] = None) -> Path:
    """The export of a trained or adapted model: export_generator with `default_signatures` for
    its family (encoder / feature_net: see there; extra_signatures are added, and replace a
    default of the same name) and hwgan.json holding `metadata`, then "untrained_writers"
    (writers with a row the model never trained: refused by name) when there are any, then
    "writer_geometry" ({writer: {char: [top, bottom]}}, also given to the write signature)
    when given; limits: the glyph and style signatures' caps (export_generator). Returns the
    version directory."""
    extra = default_signatures(model_cfg, generator, encoder=encoder, feature_net=feature_net,
                               writer_geometry=writer_geometry, style_parts=style_parts)
    extra.update(extra_signatures or {})
    info = dict(metadata or {})
    if untrained_writers:
        info[UNTRAINED_WRITERS_KEY] = list(untrained_writers)
    if writer_geometry:
        info[WRITER_GEOMETRY_KEY] = writer_geometry
    return export_generator(generator, model_cfg, charset, writers, export_dir, name, version,
                            overwrite=overwrite, extra_signatures=extra, extra_metadata=info,
                            limits=limits)
