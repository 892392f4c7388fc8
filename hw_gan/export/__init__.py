"""SavedModel export of a trained generator, in the layout TF Serving loads as it is.

    export_root/
      name/
        1/                       <- one version: a SavedModel
          saved_model.pb
          fingerprint.pb
          variables/             <- the generator's weights, once (float32)
          assets/
            charset.txt          <- one charset label per line (UTF-8), in id order
            writers.txt          <- one writer name per line (UTF-8), in id order
            hwgan.json           <- family, resolution, latent_dim, charset, writers, format
                                    (+ "untrained_writers": writers with a row but no training
                                    glyphs, held out of a writer split; LoadedExport, the
                                    renderer and the server refuse them by name)
        2/ ...

A version is written to a temporary sibling (".1.partial-XXXX", which TF Serving ignores: not a
number) and renamed when complete. Only the inference generator (the EMA copy) is wrapped, in a
`GeneratorModule` (a tf.Module): no optimizer, no discriminator, no Keras object graph.

Signatures (every output is a deterministic function of the inputs and `seed`;
z = tf.random.stateless_normal([N, latent_dim], seed=[seed, 0]); for stylegan one z,
stateless_normal([1, latent_dim], seed=[seed, 0]), for all N glyphs: the seed picks one hand):

  glyphs, serving_default (the same function)
      chars    string [N]  each one character ("c") or an exact charset label ("Cc"); a merged
                           label serves every character in it
      writers  string [N] or [1] (one writer for all); ignored by families without writers
      seed     int64  []
    ->  images     uint8 [N, R, R, 1]  ink-high (0 paper, 255 ink; `data_pipeline.schema.to_uint8`)
        char_ids   int32 [N]
        writer_ids int32 [N]           (-1 when the family takes no writer)
    An unknown character or writer fails the call with InvalidArgumentError "character not in the
    model's charset" / "writer not known to the model", followed by the offending values.

  glyphs_by_id
      char_ids int32 [N], writer_ids int32 [N] or [1], seed int64 [] -> images uint8 [N, R, R, 1]
    Ids out of range fail with InvalidArgumentError.

  metadata
      (no inputs) -> charset string [C], writers string [W], resolution int32 [], family string [],
                     latent_dim int32 [], uses_writer bool []

More signatures (e.g. `extract_style`, `write`) are attached by passing
`extra_signatures={name: builder}` to `export_generator`; a builder receives the
`GeneratorModule` (with its lookup helpers, `synthesize` and `generate`) and returns a
`tf.function` with an input_signature, or a ConcreteFunction, whose outputs are a dict of tensors.

`load_export` loads such a directory back (in any process; TensorFlow only, no Keras) and
`write_sample_grid` draws a PNG grid of glyphs from it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from data_pipeline import atomic
from data_pipeline.charset import Charset, validate_charset
from data_pipeline.glyph import tile
from data_pipeline.schema import to_uint8
from hw_gan.config import ModelConfig

FORMAT = "hwgan-generator-export"
FORMAT_VERSION = 1
CHARSET_FILE = "charset.txt"
WRITERS_FILE = "writers.txt"
METADATA_FILE = "hwgan.json"

GLYPHS = "glyphs"
GLYPHS_BY_ID = "glyphs_by_id"
METADATA = "metadata"
SERVING_DEFAULT = "serving_default"
BUILTIN_SIGNATURES = (GLYPHS, GLYPHS_BY_ID, METADATA, SERVING_DEFAULT)

UNKNOWN_CHAR_MESSAGE = "character not in the model's charset"
UNKNOWN_WRITER_MESSAGE = "writer not known to the model"
UNTRAINED_WRITER_MESSAGE = ("writer held out when the model was trained (its style was never "
                            "learned)")
WRITER_COUNT_MESSAGE = "writers must have length 1 or the length of chars"
CHAR_ID_MESSAGE = "char_ids out of range [0, num_chars)"
WRITER_ID_MESSAGE = "writer_ids out of range [0, num_writers)"
WRITER_ID_COUNT_MESSAGE = "writer_ids must have length 1 or the length of char_ids"

PathLike = Union[str, os.PathLike]
SignatureBuilder = Callable[["GeneratorModule"], Any]

_SIGNATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ------------------------------------------------------------------------------------------------
# The exported module.


class _GeneratorCall:
    """Calls the Keras generator with the inputs it has. A plain object, so that tf.Module does not
    track the Keras model (only its variables are saved, through `generator_variables`)."""

    def __init__(self, generator, uses_writer: bool):
        self.generator = generator
        self.uses_writer = uses_writer

    def __call__(self, z, char_ids, writer_ids):
        inputs = {"z": z, "char": char_ids}
        if self.uses_writer:
            inputs["writer"] = writer_ids
        return self.generator(inputs, training=False)


def tf_variable(variable) -> tf.Variable:
    """The tf.Variable behind a Keras variable. The module tracks these, not the Keras wrappers:
    a Keras 3 Variable exports as a *copy* of its tf.Variable, so a TF1-style loader (TF Serving,
    saved_model_cli run) would restore the copy while the functions read the uninitialised
    original ("Could not find variable ...")."""
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "_value", None)
    if not isinstance(inner, tf.Variable):
        raise TypeError(f"generator variable {getattr(variable, 'path', variable)!r} is not backed "
                        f"by a tf.Variable (got {type(inner).__name__}); export needs the "
                        "TensorFlow backend")
    return inner


def _string_table(keys: Sequence[str], values: Sequence[int]) -> tf.lookup.StaticHashTable:
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(list(keys), tf.string), tf.constant(list(values), tf.int32))
    return tf.lookup.StaticHashTable(init, default_value=-1)


class GeneratorModule(tf.Module):
    """The tf.Module that is saved: the generator's variables, lookup tables, assets, functions.

    Helpers for signature builders (call them inside a tf.function):
      char_ids_for(chars)           string [N] -> int32 [N]; asserts every char is known
      writer_ids_for(writers, n)    string [N] or [1] -> int32 [n]; asserts known writers
                                    (-1s, and no checks, when the family takes no writer)
      check_ids(char_ids, writer_ids)  -> (char_ids, writer_ids broadcast to [N]), range-asserted
      latent(n, seed)               -> z float32 [n, latent_dim] (stateless, from seed)
      synthesize(z, char_ids, writer_ids)  tf.function -> float32 images [N, R, R, 1] in [-1, 1]
      generate(char_ids, writer_ids, seed) -> uint8 ink-high images [N, R, R, 1]
    """

    def __init__(self, generator, model_cfg: ModelConfig, charset_labels: Sequence[str],
                 writer_names: Sequence[str], uses_writer: bool, asset_paths: Mapping[str, str],
                 untrained_writers: Sequence[str] = ()):
        super().__init__(name="hwgan_generator")
        self.charset_labels = tuple(charset_labels)
        self.writer_names = tuple(writer_names)
        self.family = model_cfg.family
        self.resolution = int(model_cfg.resolution)
        self.latent_dim = int(model_cfg.latent_dim)
        self.uses_writer = bool(uses_writer)
        # Saved: the generator's variables (each once), the lookup tables, the asset files.
        self.generator_variables = [tf_variable(v) for v in generator.variables]
        self._call_generator = _GeneratorCall(generator, self.uses_writer)
        keys, values = [], []
        for i, label in enumerate(self.charset_labels):
            for ch in label:
                keys.append(ch)
                values.append(i)
            if len(label) > 1:
                keys.append(label)
                values.append(i)
        self.char_table = _string_table(keys, values)
        if self.uses_writer:
            # Never-trained writers keep their id (glyphs_by_id) but not their name: by name
            # they are "not known to the model", for TF Serving clients too.
            held = set(untrained_writers)
            named = [(w, i) for i, w in enumerate(self.writer_names) if w not in held]
            self.writer_table = _string_table([w for w, _ in named], [i for _, i in named])
        self.charset_asset = tf.saved_model.Asset(asset_paths[CHARSET_FILE])
        self.writers_asset = tf.saved_model.Asset(asset_paths[WRITERS_FILE])
        self.metadata_asset = tf.saved_model.Asset(asset_paths[METADATA_FILE])

        latent_dim, resolution = self.latent_dim, self.resolution

        @tf.function(input_signature=[
            tf.TensorSpec([None, latent_dim], tf.float32, name="z"),
            tf.TensorSpec([None], tf.int32, name="char_ids"),
            tf.TensorSpec([None], tf.int32, name="writer_ids"),
        ])
        def synthesize(z, char_ids, writer_ids):
            # An empty batch skips the generator (Keras convolutions reject a batch of 0).
            return tf.cond(
                tf.shape(z)[0] > 0,
                lambda: tf.cast(self._call_generator(z, char_ids, writer_ids), tf.float32),
                lambda: tf.zeros([0, resolution, resolution, 1], tf.float32))

        # The one function holding the generator's graph; every signature calls it.
        self.synthesize = synthesize

    # -- helpers for signature builders ----------------------------------------------------------

    @property
    def num_chars(self) -> int:
        return len(self.charset_labels)

    @property
    def num_writers(self) -> int:
        return len(self.writer_names)

    def char_ids_for(self, chars):
        chars = tf.convert_to_tensor(chars, tf.string)
        ids = self.char_table.lookup(chars)
        unknown = ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            [UNKNOWN_CHAR_MESSAGE + ":", tf.boolean_mask(chars, unknown)], summarize=32)
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def _broadcast(self, ids, n, message):
        m = tf.shape(ids, out_type=tf.int32)[0]
        n = tf.cast(n, tf.int32)
        check = tf.debugging.Assert(
            tf.logical_or(tf.equal(m, n), tf.equal(m, 1)),
            [message + "; got", m, "for", n], summarize=4)
        with tf.control_dependencies([check]):
            return tf.broadcast_to(ids, tf.reshape(n, [1]))

    def writer_ids_for(self, writers, n):
        writers = tf.convert_to_tensor(writers, tf.string)
        if not self.uses_writer:
            return tf.fill(tf.reshape(tf.cast(n, tf.int32), [1]), tf.constant(-1, tf.int32))
        ids = self.writer_table.lookup(writers)
        unknown = ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            [UNKNOWN_WRITER_MESSAGE + ":", tf.boolean_mask(writers, unknown)], summarize=32)
        with tf.control_dependencies([check]):
            ids = tf.identity(ids)
        return self._broadcast(ids, n, WRITER_COUNT_MESSAGE)

    def check_ids(self, char_ids, writer_ids):
        char_ids = tf.convert_to_tensor(char_ids, tf.int32)
        writer_ids = tf.convert_to_tensor(writer_ids, tf.int32)
        n = tf.shape(char_ids, out_type=tf.int32)[0]
        checks = [tf.debugging.Assert(
            tf.reduce_all((char_ids >= 0) & (char_ids < self.num_chars)),
            [CHAR_ID_MESSAGE + f" with num_chars={self.num_chars}; got", char_ids], summarize=32)]
        if self.uses_writer:
            checks.append(tf.debugging.Assert(
                tf.reduce_all((writer_ids >= 0) & (writer_ids < self.num_writers)),
                [WRITER_ID_MESSAGE + f" with num_writers={self.num_writers}; got", writer_ids],
                summarize=32))
            with tf.control_dependencies(checks):
                writer_ids = self._broadcast(writer_ids, n, WRITER_ID_COUNT_MESSAGE)
        else:
            writer_ids = tf.zeros([n], tf.int32)
        with tf.control_dependencies(checks):
            return tf.identity(char_ids), tf.identity(writer_ids)

    def latent(self, n, seed):
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        if self.family == "stylegan":
            # One style per call: the seed picks a hand, and every glyph of the call is in it.
            z = tf.random.stateless_normal([1, self.latent_dim], seed=seed, dtype=tf.float32)
            return tf.repeat(z, tf.cast(n, tf.int32), axis=0)
        return tf.random.stateless_normal(tf.stack([tf.cast(n, tf.int32), self.latent_dim]),
                                          seed=seed, dtype=tf.float32)

    def generate(self, char_ids, writer_ids, seed):
        """Validated ids (see check_ids) -> uint8 ink-high images [N, R, R, 1]."""
        n = tf.shape(char_ids, out_type=tf.int32)[0]
        images = self.synthesize(self.latent(n, seed), char_ids, writer_ids)
        return to_uint8(images)


# ------------------------------------------------------------------------------------------------
# Built-in signatures.


def _glyphs_signature(module: GeneratorModule):
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="chars"),
        tf.TensorSpec([None], tf.string, name="writers"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def glyphs(chars, writers, seed):
        char_ids = module.char_ids_for(chars)
        n = tf.shape(char_ids, out_type=tf.int32)[0]
        writer_ids = module.writer_ids_for(writers, n)
        gen_writer_ids = writer_ids if module.uses_writer else tf.zeros_like(writer_ids)
        images = module.generate(char_ids, gen_writer_ids, seed)
        return {"images": images, "char_ids": char_ids, "writer_ids": writer_ids}

    return glyphs


def _glyphs_by_id_signature(module: GeneratorModule):
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int32, name="char_ids"),
        tf.TensorSpec([None], tf.int32, name="writer_ids"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def glyphs_by_id(char_ids, writer_ids, seed):
        char_ids, writer_ids = module.check_ids(char_ids, writer_ids)
        return {"images": module.generate(char_ids, writer_ids, seed)}

    return glyphs_by_id


def _metadata_signature(module: GeneratorModule):
    charset = list(module.charset_labels)
    writers = list(module.writer_names)

    @tf.function(input_signature=[])
    def metadata():
        return {
            "charset": tf.constant(charset, tf.string, shape=[len(charset)]),
            "writers": tf.constant(writers, tf.string, shape=[len(writers)]),
            "resolution": tf.constant(module.resolution, tf.int32),
            "family": tf.constant(module.family, tf.string),
            "latent_dim": tf.constant(module.latent_dim, tf.int32),
            "uses_writer": tf.constant(module.uses_writer, tf.bool),
        }

    return metadata


_BUILTIN_BUILDERS: dict[str, SignatureBuilder] = {
    GLYPHS: _glyphs_signature,
    GLYPHS_BY_ID: _glyphs_by_id_signature,
    METADATA: _metadata_signature,
}


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


# ------------------------------------------------------------------------------------------------
# Export.


def _uses_writer(generator, family: str) -> bool:
    from hw_gan.models import input_keys

    keys = input_keys(generator)
    missing = [k for k in ("z", "char") if k not in keys]
    if missing:
        raise ValueError(f"generator {generator.name!r} lacks inputs {missing}; has {list(keys)}")
    uses = "writer" in keys
    try:
        from hw_gan.models import get_family

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


def version_dir(export_root: PathLike, name: str, version: int) -> Path:
    if not name or name in (".", "..") or "/" in name or os.sep in name or name.startswith("."):
        raise ValueError(f"export name {name!r} must be a plain directory name")
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"export version must be an integer >= 1, got {version!r}")
    return Path(export_root) / name / str(int(version))


def export_generator(generator, model_cfg: ModelConfig, charset_labels: Sequence[str],
                     writer_names: Sequence[str], export_root: PathLike, name: str,
                     version: int = 1, overwrite: bool = False,
                     extra_signatures: Optional[Mapping[str, SignatureBuilder]] = None,
                     extra_metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Writes `generator` (the inference / EMA copy) as SavedModel `export_root/name/version/`.

    charset_labels: the dataset's charset (label ids in order); writer_names: writer ids in order
    (may be empty for a family without writers). extra_signatures: {name: builder(module)} for
    more signatures (see the module docstring); extra_metadata: more keys for hwgan.json.
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
    untrained = list((extra_metadata or {}).get("untrained_writers", ()))
    if not set(untrained) <= set(writers) or len(untrained) >= max(len(writers), 1):
        raise ValueError(f"untrained_writers {untrained} must be some (not all) of the writers")
    extra_signatures = dict(extra_signatures or {})
    for sig_name in extra_signatures:
        if sig_name in BUILTIN_SIGNATURES or not _SIGNATURE_NAME.match(sig_name):
            raise ValueError(f"extra signature name {sig_name!r} is taken or not an identifier")
    signature_names = sorted([*BUILTIN_SIGNATURES, *extra_signatures])
    num_params = int(sum(np.prod(v.shape) for v in generator.variables))
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": model_cfg.family,
        "resolution": int(model_cfg.resolution),
        "latent_dim": int(model_cfg.latent_dim),
        "uses_writer": uses_writer,
        "charset": list(charset),
        "writers": list(writers),
        "signatures": signature_names,
        "num_parameters": num_params,
        "seeding": "z = tf.random.stateless_normal([N, latent_dim], seed=[seed, 0])",
        "image_convention": "uint8 ink-high: 0 paper, 255 ink",
        "model_config": dataclasses.asdict(model_cfg),
        **dict(extra_metadata or {}),
    }

    staging = Path(tempfile.mkdtemp(prefix="hwgan-export-assets-"))
    try:
        assets = {
            CHARSET_FILE: "".join(label + "\n" for label in charset),
            WRITERS_FILE: "".join(w + "\n" for w in writers),
            METADATA_FILE: json.dumps(info, indent=2, ensure_ascii=False) + "\n",
        }
        asset_paths = {}
        for fname, text in assets.items():
            (staging / fname).write_text(text, encoding="utf-8")
            asset_paths[fname] = str(staging / fname)

        module = GeneratorModule(generator, model_cfg, charset, writers, uses_writer, asset_paths,
                                 untrained)
        signatures = {}
        for sig_name, builder in [*_BUILTIN_BUILDERS.items(), *extra_signatures.items()]:
            if sig_name in extra_signatures and hasattr(module, sig_name):
                raise ValueError(f"extra signature name {sig_name!r} clashes with an attribute "
                                 "of GeneratorModule")
            fn = builder(module)
            setattr(module, sig_name, fn)
            signatures[sig_name] = _check_signature_fn(fn, sig_name)
        signatures[SERVING_DEFAULT] = signatures[GLYPHS]

        with atomic.atomic_dir(out, overwrite=True) as tmp:
            tf.saved_model.save(module, str(tmp), signatures=signatures)
            for fname, text in assets.items():
                saved = tmp / "assets" / fname
                if not saved.is_file() or saved.read_text(encoding="utf-8") != text:
                    raise RuntimeError(f"asset {fname} was not written to {tmp / 'assets'}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------------
# Loading.


def _is_saved_model(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def resolve_export_path(path: PathLike) -> Path:
    """`.../name/version` as it is, or `.../name` -> its highest numeric version directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"export path {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"export path {path} is not a directory")
    if _is_saved_model(path):
        return path
    versions = sorted((int(p.name), p) for p in path.iterdir()
                      if p.is_dir() and p.name.isdigit())
    if not versions:
        raise FileNotFoundError(f"{path} is neither a SavedModel (no saved_model.pb) nor a "
                                f"directory of numeric versions")
    best = versions[-1][1]
    if not _is_saved_model(best):
        raise FileNotFoundError(f"{best} (the highest version in {path}) is not a SavedModel: "
                                f"it has no saved_model.pb")
    return best


class LoadedExport:
    """An exported generator loaded back (TensorFlow only; no Keras needed)."""

    def __init__(self, path: Path, module):
        self.path = path
        self.module = module
        sigs = module.signatures
        if METADATA not in sigs or GLYPHS not in sigs:
            raise ValueError(f"{path} is a SavedModel but not an hwgan generator export "
                             f"(signatures: {sorted(sigs)})")
        meta = {k: v.numpy() for k, v in sigs[METADATA]().items()}
        self.charset: tuple[str, ...] = tuple(s.decode("utf-8") for s in meta["charset"])
        self.writers: tuple[str, ...] = tuple(s.decode("utf-8") for s in meta["writers"])
        self.resolution = int(meta["resolution"])
        self.family = meta["family"].decode("utf-8")
        self.latent_dim = int(meta["latent_dim"])
        self.uses_writer = bool(meta["uses_writer"]) if "uses_writer" in meta else True
        self.info: dict = {}
        info_path = path / "assets" / METADATA_FILE
        if info_path.is_file():
            self.info = json.loads(info_path.read_text(encoding="utf-8"))
            if int(self.info.get("format_version", 0)) > FORMAT_VERSION:
                raise ValueError(f"{path} has export format version "
                                 f"{self.info['format_version']}; this hwgan reads up to "
                                 f"{FORMAT_VERSION}")
        self._charset = Charset(self.charset)
        self._writer_set = set(self.writers)
        # Writers the model has a row for but never trained (hwgan.json "untrained_writers"):
        # refused by glyphs() / the renderer / the server with UNTRAINED_WRITER_MESSAGE.
        self.untrained_writers: tuple[str, ...] = tuple(self.info.get("untrained_writers", ()))

    @property
    def version(self) -> Optional[int]:
        return int(self.path.name) if self.path.name.isdigit() else None

    @property
    def signatures(self):
        return self.module.signatures

    def unknown_chars(self, chars: Sequence[str]) -> list[str]:
        out = []
        for c in chars:
            if c not in self._charset and c not in out:
                out.append(c)
        return out

    def unknown_writers(self, writers: Sequence[str]) -> list[str]:
        if not self.uses_writer:
            return []
        out = []
        for w in writers:
            if w not in self._writer_set and w not in out:
                out.append(w)
        return out

    def untrained_of(self, writers: Sequence[str]) -> list[str]:
        """Those of `writers` the model never trained (see untrained_writers), once each."""
        held = set(self.untrained_writers) if self.uses_writer else set()
        return list(dict.fromkeys(w for w in writers if w in held))

    def trained_writers(self) -> tuple[str, ...]:
        held = set(self.untrained_writers)
        return tuple(w for w in self.writers if w not in held)

    def _check(self, chars: list[str], writers: list[str]) -> None:
        self.check_known(chars, writers)
        if self.uses_writer and len(writers) not in (1, len(chars)):
            raise ValueError(f"{WRITER_COUNT_MESSAGE}: {len(writers)} writers for "
                             f"{len(chars)} chars")

    def check_known(self, chars: Sequence[str], writers: Sequence[str]) -> None:
        """ValueError listing the chars / writers this export does not know."""
        bad = self.unknown_chars(chars)
        if bad:
            raise ValueError(f"{UNKNOWN_CHAR_MESSAGE} ({self.path}): {bad}; the charset is "
                             f"{list(self.charset)}")
        bad = self.unknown_writers(writers)
        if bad:
            shown = list(self.writers[:20]) + (["..."] if len(self.writers) > 20 else [])
            raise ValueError(f"{UNKNOWN_WRITER_MESSAGE} ({self.path}): {bad}; known writers: "
                             f"{shown}")
        bad = self.untrained_of(writers)
        if bad:
            shown = list(self.trained_writers()[:20])
            raise ValueError(f"{UNTRAINED_WRITER_MESSAGE} ({self.path}): {bad}; writers it "
                             f"learned: {shown}")

    def glyphs(self, chars: Union[str, Sequence[str]], writers: Union[str, Sequence[str]],
               seed: int = 0) -> np.ndarray:
        """uint8 ink-high images [N, R, R, 1] for chars (a str is taken character by character)
        by writers (one name for all, or one per char). ValueError names unknown chars/writers."""
        chars = list(chars)
        writers = [writers] if isinstance(writers, str) else list(writers)
        self._check(chars, writers)
        if not self.uses_writer and not writers:
            writers = [""]
        out = self.signatures[GLYPHS](
            chars=tf.constant(chars, tf.string, shape=[len(chars)]),
            writers=tf.constant(writers, tf.string, shape=[len(writers)]),
            seed=tf.constant(int(seed), tf.int64))
        return out["images"].numpy()

    def glyphs_by_id(self, char_ids: Sequence[int], writer_ids: Sequence[int],
                     seed: int = 0) -> np.ndarray:
        out = self.signatures[GLYPHS_BY_ID](
            char_ids=tf.constant(np.asarray(char_ids, np.int32).reshape(-1)),
            writer_ids=tf.constant(np.asarray(writer_ids, np.int32).reshape(-1)),
            seed=tf.constant(int(seed), tf.int64))
        return out["images"].numpy()

    def __repr__(self) -> str:
        return (f"LoadedExport({str(self.path)!r}, family={self.family!r}, "
                f"resolution={self.resolution}, chars={len(self.charset)}, "
                f"writers={len(self.writers)})")


def load_export(path: PathLike) -> LoadedExport:
    """Loads `.../name` (its highest numeric version) or `.../name/version`."""
    resolved = resolve_export_path(path)
    try:
        module = tf.saved_model.load(str(resolved))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ValueError(f"cannot load SavedModel {resolved}: {exc}") from exc
    return LoadedExport(resolved, module)


# ------------------------------------------------------------------------------------------------
# Sample grid.

def sample_grid(images: np.ndarray, rows: int, cols: int, blank: Sequence[bool] = ()) -> np.ndarray:
    """uint8 ink-high [rows*cols, R, R, 1] -> uint8 grey [H, W]: dark ink on white paper, each
    glyph scaled up 2x, cells separated by light grey lines. `blank[i]` leaves cell i empty."""
    return tile(images, cols, rows=rows, gap=2, gap_value=200, scale=2, invert=True, blank=blank)


def write_sample_grid(export_path: Union[PathLike, LoadedExport], out_png: PathLike, chars: str,
                      writers: Sequence[str], seed: int = 0) -> Path:
    """PNG grid: one row per writer, one column per character of `chars` (a space is a blank
    column). Dark ink on white, 2x. Unknown chars/writers -> ValueError before anything is
    written; the PNG is written atomically. For a family without writers, `writers` only sets
    the number of rows (an empty list gives one)."""
    loaded = export_path if isinstance(export_path, LoadedExport) else load_export(export_path)
    chars = list(chars)
    writers = [writers] if isinstance(writers, str) else list(writers)
    if not chars:
        raise ValueError("no characters to draw")
    if not writers:
        if loaded.uses_writer:
            raise ValueError("no writers to draw")
        writers = [""]
    blank = [c == " " for c in chars]
    known_chars = [c for c in chars if c != " "]
    loaded.check_known(known_chars, writers)
    fill = known_chars[0] if known_chars else loaded.charset[0][0]
    flat_chars = [fill if c == " " else c for _ in writers for c in chars]
    flat_writers = [w for w in writers for _ in chars]
    images = loaded.glyphs(flat_chars, flat_writers if loaded.uses_writer else [""], seed)
    grid = sample_grid(images, len(writers), len(chars), blank * len(writers))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    out_png = Path(out_png)
    atomic.write_bytes(out_png, buf.getvalue())
    return out_png
