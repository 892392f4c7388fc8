"""How the commands report errors: one line on stderr naming the file, field or flag, and a
traceback only with `--debug`.

The `hwgan` dispatcher takes `--debug` out of any command's arguments (`split_debug`) and turns
it on here; `python train_main.py --debug` does the same through its absl flag. `report(e)` is
what every command prints for an error it expected (exit code 2); the dispatcher and the
training entry point catch anything else as an unexpected error (exit code 1), still one line.
"""

from __future__ import annotations

import errno
import sys
import traceback
from typing import Sequence

DEBUG_FLAG = "--debug"
USER_ERROR = 2  # a mistake in the command, its flags or its files
UNEXPECTED = 1  # anything else (the message asks for --debug)

_state = {"debug": False}

# errno -> how an OSError about a file reads (else the system's own words).
_REASONS = {
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a folder on its path is not a folder",
    errno.ENOENT: "does not exist",
}


def split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """(argv without --debug, whether it was given); an argument after `--` is left as it is."""
    out, debug, rest = [], False, False
    for arg in argv:
        if arg == "--" and not rest:
            rest = True
        elif arg == DEBUG_FLAG and not rest:
            debug = True
            continue
        out.append(arg)
    return out, debug


def set_debug(on: bool) -> None:
    _state["debug"] = bool(on)


def debug() -> bool:
    return _state["debug"]


def describe(exc: BaseException) -> str:
    """One line saying what went wrong: an OSError names its file and says why in words; any
    other message is joined onto one line."""
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = _REASONS.get(exc.errno) or exc.strerror or type(exc).__name__
        text = f"{exc.filename}: {reason}"
    elif isinstance(exc, OSError) and exc.errno in _REASONS and exc.strerror:
        text = _REASONS[exc.errno]
    else:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, KeyError):  # str() of a KeyError is the bare key, quoted
            text = f"missing key {text}"
    return " ".join(text.split())


def report(exc: BaseException) -> int:
    """Prints an expected error (the traceback first with --debug); returns USER_ERROR."""
    if debug():
        traceback.print_exception(exc)
    print(f"error: {describe(exc)}", file=sys.stderr)
    return USER_ERROR


def unexpected(exc: BaseException) -> int:
    """Prints an error nobody planned for, still on one line; returns UNEXPECTED."""
    if debug():
        traceback.print_exception(exc)
    print(f"error: {type(exc).__name__}: {describe(exc)} (run again with --debug for the "
          "traceback)", file=sys.stderr)
    return UNEXPECTED
