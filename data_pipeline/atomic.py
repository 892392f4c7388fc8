"""Write-then-rename helpers: an output either exists complete or not at all.

Temporary files and directories are created beside their final names with the usual modes
(0o666 / 0o777) and the kernel applies the process's umask, so they end up exactly as a plain
`open(path, "wb")` / `mkdir` would make them; the umask itself is never read or changed.

Outputs are regular files (or, for `atomic_dir`, directories) and nothing else: `check_output`
refuses a directory, a device, a FIFO or a socket where a file is to go, a read-only file, and a
symbolic link unless the caller was told to overwrite (then the link itself is replaced, never
what it points to). Every temporary carries the id of the process that made it:

    .NAME.PID-XXXXXXXX.partial    a file being written (.tmp for single small files)
    .NAME.partial-PID-XXXXXXXX/   a directory being built
    .NAME.old-PID/                the directory being replaced, for the instant of the swap

so the next write to NAME (`clean_stale`) can remove what a killed process left, and only that:
a temporary whose process is still alive is never touched. A killed directory swap is undone
(the old directory comes back) before anything else happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Iterator, Union

PathLike = Union[str, os.PathLike]

_FILE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
_TRIES = 100
_PARTIAL_DIR = "partial-"
_OLD_DIR = "old-"


class OutputError(ValueError):
    """An output path that must not be written (a directory, a device, a read-only file, ...);
    the message names the path and says why."""


def _temp_name(path: Path, infix: str, suffix: str) -> Path:
    return path.parent / f".{path.name}.{infix}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output(path: PathLike, overwrite: bool = False, what: str = "output") -> None:
    """OutputError unless `path` may be (re)written as a regular file: it is absent, or a
    writable regular file, or a symbolic link and `overwrite` is set; and its folder, where it
    exists, is a writable directory (else PermissionError: callers may fall back to another
    place). `what` names the path in the message (e.g. "--out")."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise OutputError(f"{what} {path}: a folder on its path is a file") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            if not overwrite:
                raise OutputError(f"{what} {path} is a symbolic link; pass --overwrite to "
                                  "replace the link (what it points to is left alone)")
        elif not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{what} {path} is {_kind(st.st_mode)}: only a regular file can "
                              "be written")
        elif not st.st_mode & 0o222 or not os.access(path, os.W_OK):
            raise OutputError(f"{what} {path} is read-only: make it writable or choose "
                              "another name")
    parent = _existing_parent(path)
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: the folder {parent} is not writable")


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    return parent


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a number we cannot ask about): leave it
    return True


def clean_stale(path: PathLike) -> list[Path]:
    """Removes the temporaries of `path` (see the module docstring) left by processes that no
    longer run, and returns what it removed. A directory swap cut short (the old directory set
    aside and the new one not yet in place) is undone first: the old directory comes back."""
    path = Path(path)
    name = re.escape(path.name)
    tag = r"(\d+)-[0-9a-f]{8}"
    files = re.compile(rf"\.{name}\.{tag}\.(partial|tmp)")
    dirs = re.compile(rf"\.{name}\.{_PARTIAL_DIR}{tag}")
    olds = re.compile(rf"\.{name}\.{_OLD_DIR}(\d+)")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    removed = []
    for entry in sorted(entries, key=lambda e: e.name):
        for pattern, kind in ((files, "file"), (dirs, "dir"), (olds, "old")):
            m = pattern.fullmatch(entry.name)
            if m is None or _alive(int(m.group(1))):
                continue
            p = Path(entry.path)
            if kind == "old" and not os.path.lexists(path):
                os.replace(p, path)  # the swap was cut between its two renames: undo it
            elif kind == "file":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
                removed.append(p)
            else:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def create_temp_file(path: PathLike, suffix: str = ".tmp") -> tuple[int, Path]:
    """(fd open for writing, name) of a new empty file beside `path` (hidden, named after `path`
    and this process), mode 0o666 less the umask. The directory must exist."""
    path = Path(path)
    for _ in range(_TRIES):
        tmp = _temp_name(path, "", suffix)
        try:
            return os.open(tmp, _FILE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def create_temp_dir(path: PathLike) -> Path:
    """A new empty directory beside `path` (hidden, named after `path` and this process), mode
    0o777 less the umask. The parent directory must exist."""
    path = Path(path)
    for _ in range(_TRIES):
        tmp = _temp_name(path, _PARTIAL_DIR, "")
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary directory beside {path}")


def _named(e: OSError, path: Path) -> OSError:
    """`e` naming the final output rather than its hidden temporary."""
    out = OSError(e.errno, e.strerror or str(e), str(path))
    out.__cause__ = e
    return out


class StagedFiles:
    """Several files written under temporary names beside their final ones: `commit` syncs and
    renames them all (returning the final paths in the order they were opened), `abort` removes
    the temporaries. Nothing appears under a final name before `commit`. Each final name is
    checked (`check_output`; `overwrite` allows replacing a symbolic link) when it is opened and
    again just before the renames, and what killed writers left beside it is cleaned first. An
    OSError (a full disk, a folder that cannot be written) names the final file."""

    def __init__(self, suffix: str = ".partial", overwrite: bool = False):
        self.suffix = suffix
        self.overwrite = overwrite
        self.items: list[tuple[Path, Path]] = []

    def open(self, path: PathLike) -> BinaryIO:
        """A binary file to write `path`'s contents to (close it before `commit`)."""
        path = Path(path)
        check_output(path, self.overwrite)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale(path)
            fd, tmp = create_temp_file(path, self.suffix)
        except OSError as e:
            raise _named(e, path) from None
        self.items.append((tmp, path))
        return _NamedFile(os.fdopen(fd, "wb"), path)

    def write(self, path: PathLike, data: bytes) -> None:
        with self.open(path) as f:
            f.write(data)

    def commit(self) -> list[Path]:
        for tmp, final in self.items:
            check_output(final, self.overwrite)
            try:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            except OSError as e:
                raise _named(e, final) from None
        for tmp, final in self.items:
            try:
                os.replace(tmp, final)
            except OSError as e:
                raise _named(e, final) from None
        return [final for _, final in self.items]

    def abort(self) -> None:
        for tmp, _ in self.items:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


class _NamedFile:
    """A binary file whose OSErrors name the final output (`_named`)."""

    def __init__(self, f: BinaryIO, path: Path):
        self._f, self._path = f, path

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            raise _named(e, self._path) from None

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as e:
            raise _named(e, self._path) from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise _named(e, self._path) from None

    def fileno(self) -> int:
        return self._f.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_bytes(path: PathLike, data: bytes, overwrite: bool = False) -> None:
    """Writes `data` to `path` through a temporary file in the same directory (see
    StagedFiles: `path` must be absent or a writable regular file, or a symbolic link with
    `overwrite`)."""
    staged = StagedFiles(suffix=".tmp", overwrite=overwrite)
    try:
        staged.write(path, data)
        staged.commit()
    except BaseException:
        staged.abort()
        raise


def write_text(path: PathLike, text: str, overwrite: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), overwrite)


@contextlib.contextmanager
def atomic_dir(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary sibling directory; on success it replaces `path` in one rename.

    On any error (or KeyboardInterrupt) the temporary directory is removed and `path` is left as it
    was; what a killed run left beside `path` is cleaned first (`clean_stale`). Without
    `overwrite`, an existing non-empty `path` is a FileExistsError before any work and a
    symbolic link an OutputError; a path that is neither a directory nor a link (a file, a
    device, a FIFO) is always an OutputError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode) and not overwrite:
        raise OutputError(f"{path} is a symbolic link; pass --overwrite to replace the link "
                          "(what it points to is left alone)")
    if st is not None and not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path} is {_kind(st.st_mode)}, not a directory; choose another name")
    if st is not None and not overwrite and any(path.iterdir()):
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: the folder {path.parent} is not writable")
    tmp = create_temp_dir(path)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.lexists(path):
        old = path.parent / f".{path.name}.{_OLD_DIR}{os.getpid()}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        if old.is_symlink() or not old.is_dir():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
