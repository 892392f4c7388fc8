"""Trained models shipped in the package, found by name.

Each shipped model is a folder `hw_gan/shipped/<name>/` (package data: a pip install carries it):

    model.json      name, family, resolution, writers, charset size, licence, export version,
                    and every file of the model with its size and sha256 (`files`)
    MODEL_CARD.md   data and licence attribution, how it was trained, its evaluation, its limits
    <version>/      the SavedModel export (TF Serving's NAME/VERSION layout, so `hwgan serve`
                    names it after the model and TF Serving can mount the folder as it is)
    run/            char+writer models: the run adaptation (--init) starts from: config.json,
                    dataset.json (with "untrained_writers": the dataset is not shipped), one
                    checkpoint of the trained models without optimizer state and without the
                    EMA generator (checkpoints/ckpt-N.*), and generator.json, which points at
                    the export's variables for the generator's weights (no weights twice)

`hwgan ship` (hw_gan/cli/ship.py) writes such a folder from a finished run and its export; no
file is larger than 10 MB (`MAX_FILE_BYTES`; larger variable files are split into shards).

A model is accepted by name wherever a model path is (`--model`, `--init`, `--base`,
`--export_name` of --mode=sample): a path that exists always wins, and a bare name (no folder
separator) that is not a path is looked up here. An unknown name is an error that lists the
shipped names (`UnknownModelError`); a file that is missing or differs from model.json is an
error that names it (`DamagedModelError`). `HWGAN_SHIPPED_MODELS=DIR` puts the registry's root
elsewhere (tests; a folder of models not yet committed).

This floor imports nothing of the project (standard library only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional, Union

ROOT_ENV = "HWGAN_SHIPPED_MODELS"
MODEL_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"
RUN_DIR = "run"
MAX_FILE_BYTES = 10 * 1000 * 1000  # per file in git (10 MB)
FORMAT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

PathLike = Union[str, os.PathLike]

__all__ = ["CARD_FILE", "DamagedModelError", "MAX_FILE_BYTES", "MODEL_FILE", "NAME_RE",
           "ROOT_ENV", "RUN_DIR", "ShippedModel", "UnknownModelError", "file_digest", "get",
           "is_name", "list_models", "names", "resolve_export", "resolve_run", "root"]


class UnknownModelError(ValueError):
    """A model name that is neither a path nor a shipped model; the message lists the names."""


class DamagedModelError(ValueError):
    """A shipped model whose files are missing or differ from its model.json; names the file."""


def root() -> Path:
    """The folder of shipped models: $HWGAN_SHIPPED_MODELS, else this package's folder."""
    override = os.environ.get(ROOT_ENV)
    return Path(override) if override else Path(__file__).resolve().parent


def names(folder: Optional[PathLike] = None) -> list[str]:
    """The shipped models' names (folders holding a model.json), sorted."""
    base = Path(folder) if folder is not None else root()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and NAME_RE.match(p.name) and (p / MODEL_FILE).is_file())


def is_name(spec: PathLike) -> bool:
    """Whether `spec` reads as a model name rather than a path: one word, no folder separator."""
    text = os.fspath(spec)
    return bool(NAME_RE.match(text)) and os.sep not in text and "/" not in text \
        and text not in (".", "..")


def file_digest(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    name: str
    path: Path
    info: dict

    @property
    def family(self) -> str:
        return str(self.info.get("family", "?"))

    @property
    def export_path(self) -> Path:
        """The SavedModel's version folder."""
        return self.path / str(int(self.info.get("export_version", 1)))

    @property
    def has_run(self) -> bool:
        return bool(self.info.get("run"))

    @property
    def run_path(self) -> Path:
        return self.path / RUN_DIR

    @property
    def size_bytes(self) -> int:
        return sum(int(entry["bytes"]) for entry in self.info.get("files", {}).values())

    def verify(self) -> None:
        """DamagedModelError naming the first file that is missing, of another size or of
        another sha256 than model.json records."""
        for rel, entry in sorted(self.info.get("files", {}).items()):
            path = self.path / rel
            if not path.is_file():
                raise DamagedModelError(f"shipped model {self.name} is damaged: {path} is "
                                        f"missing; {_REPAIR}")
            size = path.stat().st_size
            if size != int(entry["bytes"]):
                raise DamagedModelError(f"shipped model {self.name} is damaged: {path} has "
                                        f"{size} bytes, {MODEL_FILE} says {entry['bytes']}; "
                                        f"{_REPAIR}")
            if file_digest(path) != entry["sha256"]:
                raise DamagedModelError(f"shipped model {self.name} is damaged: {path} differs "
                                        f"from its sha256 in {MODEL_FILE}; {_REPAIR}")


_REPAIR = "reinstall hwgan (or `git checkout` the file in a clone)"
_verified: dict = {}  # (path, model.json mtime_ns, size) -> True: each model is checked once


def _read_info(folder: Path, name: str) -> dict:
    path = folder / MODEL_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedModelError(f"shipped model {name} is damaged: {path} cannot be read "
                                f"({type(e).__name__}: {str(e)[:120]}); {_REPAIR}") from None
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict):
        raise DamagedModelError(f"shipped model {name} is damaged: {path} is not a model "
                                f"description (no \"files\"); {_REPAIR}")
    if int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise DamagedModelError(f"{path} has format version {info['format_version']}; this "
                                f"hwgan reads up to {FORMAT_VERSION}: upgrade hwgan")
    return info


def unknown_message(name: str, what: str = "model") -> str:
    shipped = names()
    listed = ", ".join(shipped) if shipped else f"none (no models under {root()})"
    return (f"{what} {name!r} is neither an existing path nor a shipped model; shipped models: "
            f"{listed} (`hwgan models` lists them)")


def get(name: str, verify: bool = True) -> ShippedModel:
    """The shipped model `name`, its files checked against model.json (once per process)."""
    folder = root() / name
    if not is_name(name) or not (folder / MODEL_FILE).is_file():
        raise UnknownModelError(unknown_message(name))
    model = ShippedModel(name, folder, _read_info(folder, name))
    if verify:
        stat = (folder / MODEL_FILE).stat()
        key = (str(folder.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in _verified:
            model.verify()
            _verified[key] = True
    return model


def list_models() -> list[ShippedModel]:
    """Every shipped model (not verified: listing reads only the model.json files)."""
    return [get(name, verify=False) for name in names()]


def resolve_export(spec: PathLike, what: str = "model") -> Path:
    """`spec` as a path when it exists or is not a bare name; else the shipped model's export
    (UnknownModelError listing the names when there is none)."""
    if os.path.lexists(spec) or not is_name(spec):
        return Path(spec)
    if not (root() / os.fspath(spec) / MODEL_FILE).is_file():
        raise UnknownModelError(unknown_message(os.fspath(spec), what))
    return get(os.fspath(spec)).export_path


def resolve_run(spec: PathLike, what: str = "--init") -> Path:
    """`spec` as a path when it exists or is not a bare name; else the shipped model's run
    folder (a char+writer model: what adaptation starts from)."""
    if os.path.lexists(spec) or not is_name(spec):
        return Path(spec)
    name = os.fspath(spec)
    if not (root() / name / MODEL_FILE).is_file():
        raise UnknownModelError(unknown_message(name, what))
    model = get(name)
    if not model.has_run:
        with_runs = [m.name for m in list_models() if m.has_run]
        raise UnknownModelError(f"{what} {name}: the shipped model {name} ({model.family}) "
                                f"carries no training run to adapt; shipped models that do: "
                                f"{', '.join(with_runs) or 'none'}")
    return model.run_path
