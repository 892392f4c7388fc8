"""Write-then-rename helpers: an output either exists complete or not at all.

Temporary files and directories are created beside their final names with the usual modes
(0o666 / 0o777) and the kernel applies the process's umask, so they end up exactly as a plain
`open(path, "wb")` / `mkdir` would make them; the umask itself is never read or changed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator, Union

PathLike = Union[str, os.PathLike]

_FILE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
_TRIES = 100


def _temp_name(path: Path, infix: str, suffix: str) -> Path:
    return path.parent / f".{path.name}.{infix}{secrets.token_hex(4)}{suffix}"


def create_temp_file(path: PathLike, suffix: str = ".tmp") -> tuple[int, Path]:
    """(fd open for writing, name) of a new empty file beside `path` (hidden, unique name), mode
    0o666 less the umask. The directory must exist."""
    path = Path(path)
    for _ in range(_TRIES):
        tmp = _temp_name(path, "", suffix)
        try:
            return os.open(tmp, _FILE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def create_temp_dir(path: PathLike) -> Path:
    """A new empty directory beside `path` (hidden, unique name), mode 0o777 less the umask.
    The parent directory must exist."""
    path = Path(path)
    for _ in range(_TRIES):
        tmp = _temp_name(path, "partial-", "")
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary directory beside {path}")


class StagedFiles:
    """Several files written under temporary names beside their final ones: `commit` syncs and
    renames them all (returning the final paths in the order they were opened), `abort` removes
    the temporaries. Nothing appears under a final name before `commit`."""

    def __init__(self, suffix: str = ".partial"):
        self.suffix = suffix
        self.items: list[tuple[Path, Path]] = []

    def open(self, path: PathLike) -> BinaryIO:
        """A binary file to write `path`'s contents to (close it before `commit`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temp_file(path, self.suffix)
        self.items.append((tmp, path))
        return os.fdopen(fd, "wb")

    def write(self, path: PathLike, data: bytes) -> None:
        with self.open(path) as f:
            f.write(data)

    def commit(self) -> list[Path]:
        for tmp, _ in self.items:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        for tmp, final in self.items:
            os.replace(tmp, final)
        return [final for _, final in self.items]

    def abort(self) -> None:
        for tmp, _ in self.items:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same directory."""
    staged = StagedFiles(suffix=".tmp")
    try:
        staged.write(path, data)
        staged.commit()
    except BaseException:
        staged.abort()
        raise


def write_text(path: PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary sibling directory; on success it replaces `path` in one rename.

    On any error (or KeyboardInterrupt) the temporary directory is removed and `path` is left as it
    was. Without `overwrite`, an existing non-empty `path` is a FileExistsError before any work.
    """
    path = Path(path)
    if path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temp_dir(path)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
