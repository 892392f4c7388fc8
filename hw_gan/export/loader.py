"""Loading an export back, in any process (TensorFlow only; no Keras): `load_export` takes
`.../name` (its highest numeric version) or `.../name/version` and gives a `LoadedExport`, which
draws glyphs through the built-in signatures and checks chars and writers by name first
(`check_known`), with the messages of hw_gan.export.names. A shipped model's name
(hw_gan.shipped) loads that model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from data_pipeline.atomic import PathLike
from data_pipeline.charset import Charset, describe_labels
from hw_gan import shipped
from hw_gan.export.names import (FORMAT_VERSION, GLYPHS, GLYPHS_BY_ID, METADATA, METADATA_FILE,
                                 STYLE_CHARSET_KEY, STYLE_METHOD_KEY, STYLE_METHODS,
                                 default_style_method,
                                 UNKNOWN_CHAR_MESSAGE, UNKNOWN_WRITER_MESSAGE,
                                 UNTRAINED_WRITER_MESSAGE, UNTRAINED_WRITERS_KEY,
                                 WRITER_COUNT_MESSAGE)

__all__ = ["LoadedExport", "load_export", "resolve_export_path"]


def _is_saved_model(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def resolve_export_path(path: PathLike) -> Path:
    """`.../name/version` as it is, or `.../name` -> its highest numeric version directory; a
    bare name that is not a path -> that shipped model's export (hw_gan.shipped: an unknown name
    lists the shipped ones, a damaged shipped model names its file)."""
    path = shipped.resolve_export(path)
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
            self.info = _read_info(info_path)
            if int(self.info.get("format_version", 0)) > FORMAT_VERSION:
                raise ValueError(f"{path} has export format version "
                                 f"{self.info['format_version']}; this hwgan reads up to "
                                 f"{FORMAT_VERSION}")
        self._charset = Charset(self.charset)
        self._writer_set = set(self.writers)
        # Writers the model has a row for but never trained (hwgan.json "untrained_writers"):
        # refused by glyphs() / the renderer / the server with UNTRAINED_WRITER_MESSAGE.
        self.untrained_writers: tuple[str, ...] = tuple(self.info.get(UNTRAINED_WRITERS_KEY, ()))
        # Characters a style can draw: a fewshot export's whole content font, else the charset.
        self.style_charset: tuple[str, ...] = (tuple(self.info[STYLE_CHARSET_KEY])
                                               if STYLE_CHARSET_KEY in self.info else self.charset)
        # The extraction method this model's evaluation found best (None: the family's default).
        self.style_method: Optional[str] = self.info.get(STYLE_METHOD_KEY)
        if self.style_method not in (None,) + STYLE_METHODS:
            raise ValueError(f"{info_path} is damaged: {STYLE_METHOD_KEY} "
                             f"{self.style_method!r} is not one of {STYLE_METHODS}")

    @property
    def default_style_method(self) -> str:
        """extract_style's method when none is asked for (names.default_style_method)."""
        return default_style_method(self.family, self.style_method)

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
                             f"{describe_labels(self.charset)}")
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


def _read_info(path: Path) -> dict:
    """assets/hwgan.json as a dict; ValueError naming the file when it is not one."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is damaged (not JSON: {e}); export the model again") from None
    if not isinstance(info, dict) or not isinstance(info.get("format_version", 0), int):
        raise ValueError(f"{path} is damaged (not an hwgan.json object); export the model again")
    return info


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0][:limit]


def load_export(path: PathLike) -> LoadedExport:
    """Loads `.../name` (its highest numeric version) or `.../name/version`. A SavedModel that
    cannot be read (a truncated variables file, a damaged saved_model.pb) is a ValueError on one
    line that names the files."""
    resolved = resolve_export_path(path)
    try:
        module = tf.saved_model.load(str(resolved))
    except Exception as exc:  # TF raises IndexError, DecodeError, OpError, ... for damaged files
        variables = sorted(p.name for p in (resolved / "variables").glob("variables.*"))
        raise ValueError(f"cannot load SavedModel {resolved}: its saved_model.pb or "
                         f"variables/{{{', '.join(variables)}}} are damaged or truncated "
                         f"({type(exc).__name__}: {_first_line(exc)}); export it again or copy "
                         f"it whole") from exc
    return LoadedExport(resolved, module)
