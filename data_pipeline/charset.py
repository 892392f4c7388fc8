"""The character set: which characters hwgan writes and how each sits on a baseline.

Vertical positions are in units of the writer's x-height, measured upward from the baseline
(baseline = 0, top of an "x" = 1). Layout code uses these defaults wherever a source does not
record a glyph's own geometry.

A dataset's charset is an ordered tuple of *labels*. A label is usually one character; a merged
class (EMNIST balanced/bymerge/letters lump "c" and "C" together) is a label of several characters
("Cc"), and that label serves every character in it.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Iterable, Sequence

DIGITS = string.digits
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
PUNCTUATION = ".,;:!?'\"-()/&"
# Every printable ASCII symbol (UNIPEN category 1d writes all 32).
SYMBOLS = "".join(c for c in map(chr, range(33, 127)) if not c.isalnum())
DEFAULT_CHARSET: tuple[str, ...] = tuple(DIGITS + UPPER + LOWER + PUNCTUATION)

# Typographic classes.
CAP = "cap"  # capitals and digits: baseline to cap height
XHEIGHT = "x"  # baseline to x-height
ASCENDER = "ascender"  # rises above x-height (b d f h k l t, dotted i j count here by their dot)
DESCENDER = "descender"  # drops below the baseline (g p q y, j)
PUNCT = "punct"  # punctuation, each with a position of its own

CAP_HEIGHT = 1.45
ASCENDER_HEIGHT = 1.6
DESCENDER_DEPTH = -0.6

# Where a punctuation mark sits: its class names the edge of its box that stays put when the
# mark's own size (a writer's measured geometry) replaces the default size of the table below.
# class: (anchor, what it means)
MARK_CLASSES = {
    "base": ("bottom", "stands on the baseline: . : ! ? # % &"),
    "hang": ("top", "hangs from dot height (or x-height) down below the baseline: , ;"),
    "high": ("top", "hangs from cap height: ' \" ` ^ *"),
    "mid": ("middle", "centred on mid x-height: - ~ + = < >"),
    "low": ("top", "a line just below the baseline: _"),
    "span": ("middle", "spans ascender to descender: ( ) [ ] { } / \\ | $ @"),
}

# The typographic table of punctuation: char: (class, top, bottom, typical width), in x-heights
# above the baseline (x-height 1, caps 1.45, ascenders 1.6, descenders -0.6). Used wherever a
# glyph's own geometry is unknown (EMNIST, simulated writers, models trained without geometry),
# and for the position of marks whose data has a size but no baseline (UNIPEN).
_A, _C, _D = ASCENDER_HEIGHT, CAP_HEIGHT, DESCENDER_DEPTH
PUNCT_TABLE: dict[str, tuple[str, float, float, float]] = {
    #      class    top    bottom   width
    ".": ("base", 0.18, 0.0, 0.18),
    ":": ("base", 0.85, 0.0, 0.18),
    "!": ("base", _C, 0.0, 0.2),
    "?": ("base", _C, 0.0, 0.7),
    "#": ("base", _C, 0.0, 1.0),
    "%": ("base", _C, 0.0, 1.1),
    "&": ("base", _C, 0.0, 1.1),
    ",": ("hang", 0.18, -0.3, 0.2),
    ";": ("hang", 0.85, -0.3, 0.2),
    "'": ("high", _C, 1.05, 0.15),
    '"': ("high", _C, 1.05, 0.4),
    "`": ("high", _C, 1.1, 0.2),
    "^": ("high", _C, 0.95, 0.6),
    "*": ("high", _C, 0.75, 0.6),
    "-": ("mid", 0.6, 0.4, 0.6),
    "~": ("mid", 0.62, 0.38, 0.8),
    "+": ("mid", 0.9, 0.1, 0.8),
    "=": ("mid", 0.72, 0.28, 0.8),
    "<": ("mid", 0.9, 0.1, 0.7),
    ">": ("mid", 0.9, 0.1, 0.7),
    "_": ("low", -0.1, -0.25, 0.9),
    "(": ("span", _A, _D * 0.6, 0.4),
    ")": ("span", _A, _D * 0.6, 0.4),
    "[": ("span", _A, _D * 0.6, 0.4),
    "]": ("span", _A, _D * 0.6, 0.4),
    "{": ("span", _A, _D * 0.6, 0.5),
    "}": ("span", _A, _D * 0.6, 0.5),
    "/": ("span", _A, _D * 0.4, 0.7),
    "\\": ("span", _A, _D * 0.4, 0.7),
    "|": ("span", _A, _D * 0.6, 0.15),
    "$": ("span", _A, -0.15, 0.8),
    "@": ("span", 1.25, -0.25, 1.4),
}


@dataclasses.dataclass(frozen=True)
class CharInfo:
    """Where a character's ink sits by default: `bottom`..`top` in x-heights above the baseline,
    and its typical width (ink extent) in x-heights."""

    char: str
    cls: str
    top: float
    bottom: float
    width: float
    mark: str = ""  # punctuation: its class in MARK_CLASSES

    def extent_of_height(self, height: float) -> tuple[float, float]:
        """(top, bottom) of a glyph `height` x-heights tall placed as this character: its
        class's anchor edge stays where the table puts it (letters and digits: on their
        bottom)."""
        anchor = MARK_CLASSES[self.mark][0] if self.mark else "bottom"
        if anchor == "top":
            return self.top, self.top - height
        if anchor == "middle":
            mid = (self.top + self.bottom) / 2
            return mid + height / 2, mid - height / 2
        return self.bottom + height, self.bottom


def _info(char: str) -> CharInfo:
    narrow = {"i": 0.3, "l": 0.3, "j": 0.45, "t": 0.5, "f": 0.55, "r": 0.65, "I": 0.35, "1": 0.45}
    wide = {"m": 1.35, "w": 1.3, "M": 1.55, "W": 1.6}
    if char in DIGITS:
        return CharInfo(char, CAP, CAP_HEIGHT, 0.0, narrow.get(char, 0.85))
    if char in UPPER:
        return CharInfo(char, CAP, CAP_HEIGHT, 0.0, wide.get(char, narrow.get(char, 1.05)))
    if char in LOWER:
        if char == "j":
            return CharInfo(char, DESCENDER, 1.35, DESCENDER_DEPTH, narrow[char])
        if char in "gpqy":
            return CharInfo(char, DESCENDER, 1.0, DESCENDER_DEPTH, 0.85)
        if char in "bdfhklt":
            top = 1.35 if char == "t" else ASCENDER_HEIGHT
            bottom = DESCENDER_DEPTH * 0.5 if char == "f" else 0.0
            return CharInfo(char, ASCENDER, top, bottom, narrow.get(char, 0.85))
        if char == "i":
            return CharInfo(char, ASCENDER, 1.35, 0.0, narrow[char])
        return CharInfo(char, XHEIGHT, 1.0, 0.0, wide.get(char, narrow.get(char, 0.85)))
    if char in PUNCT_TABLE:
        mark, top, bottom, width = PUNCT_TABLE[char]
        return CharInfo(char, PUNCT, top, bottom, width, mark)
    raise KeyError(f"no typographic information for character {char!r}")


CHAR_INFO: dict[str, CharInfo] = {c: _info(c) for c in DEFAULT_CHARSET}


def char_info(label: str) -> CharInfo:
    """Typographic defaults of a label; a merged label ("Cc") takes those of its first char."""
    if not label:
        raise KeyError("empty character label")
    return CHAR_INFO[label[0]] if label[0] in CHAR_INFO else _info(label[0])


def validate_charset(labels: Sequence[str]) -> tuple[str, ...]:
    """Checks that labels are non-empty, unique, and that no character is served by two labels."""
    labels = tuple(labels)
    if not labels:
        raise ValueError("charset is empty")
    seen: dict[str, str] = {}
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(f"charset label {label!r} is not a non-empty string")
        for ch in label:
            if ch in seen:
                raise ValueError(
                    f"character {ch!r} is served by two charset labels: {seen[ch]!r} and {label!r}")
            seen[ch] = label
    return labels


def parse_charset(spec: str | None) -> tuple[str, ...]:
    """Turns a command-line charset spec into labels.

    None or "default" gives DEFAULT_CHARSET; "digits", "upper", "lower", "letters", "alnum",
    "punct" (the default's punctuation) and "symbols" (all 32 printable ASCII symbols) name sets
    of characters and may be joined with "+"; anything else is taken literally as a
    string of characters ("abc123").
    """
    if spec is None or spec == "default":
        return DEFAULT_CHARSET
    parts = {
        "digits": DIGITS, "upper": UPPER, "lower": LOWER, "letters": UPPER + LOWER,
        "alnum": DIGITS + UPPER + LOWER, "punct": PUNCTUATION, "symbols": SYMBOLS,
    }
    names = spec.split("+")
    if all(name in parts for name in names):
        chars = "".join(parts[name] for name in names)
    else:
        chars = spec
    out: list[str] = []
    for ch in chars:
        if ch not in out:
            out.append(ch)
    return validate_charset(out)


SHOWN_LABELS = 120  # an error message lists a charset in full up to this many labels


def describe_labels(labels: Sequence[str], limit: int = SHOWN_LABELS) -> str:
    """A charset as an error message shows it: all of it up to `limit` labels ('abc...' when
    every label is one character, else a list), else the count and the first `limit`. A few-shot
    model's charset is every character its font covers (thousands): a message naming them all
    would bury the part that matters."""
    labels = tuple(labels)
    single = all(len(x) == 1 for x in labels)

    def shown(part):
        return repr("".join(part)) if single else repr(list(part))

    if len(labels) <= limit:
        return shown(labels)
    return (f"{len(labels)} {'characters' if single else 'labels'}, beginning "
            f"{shown(labels[:limit])}")


class Charset:
    """An ordered set of labels with lookups from labels and from single characters to ids."""

    def __init__(self, labels: Iterable[str]):
        self.labels = validate_charset(tuple(labels))
        self._label_to_id = {label: i for i, label in enumerate(self.labels)}
        self._char_to_id = {ch: i for i, label in enumerate(self.labels) for ch in label}

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    def __contains__(self, char: str) -> bool:
        return char in self._char_to_id or char in self._label_to_id

    def __eq__(self, other) -> bool:
        return isinstance(other, Charset) and self.labels == other.labels

    def __repr__(self) -> str:
        return f"Charset({''.join(self.labels)!r})" if all(
            len(label) == 1 for label in self.labels) else f"Charset({list(self.labels)!r})"

    def label_id(self, label: str) -> int:
        """Id of an exact label; KeyError naming the label otherwise."""
        try:
            return self._label_to_id[label]
        except KeyError:
            raise KeyError(f"label {label!r} is not in the charset "
                           f"{describe_labels(self.labels)}") from None

    def char_id(self, char: str) -> int:
        """Id of the label that serves one character (so "c" finds a merged "Cc")."""
        if char in self._char_to_id:
            return self._char_to_id[char]
        if char in self._label_to_id:
            return self._label_to_id[char]
        raise KeyError(f"character {char!r} is not in the charset {describe_labels(self.labels)}")

    def missing(self, text: str, ignore: str = " \n\t") -> list[str]:
        """Characters of `text` that no label serves, in order of first appearance."""
        out: list[str] = []
        for ch in text:
            if ch not in ignore and ch not in self._char_to_id and ch not in out:
                out.append(ch)
        return out


def check_same_charset(a: Sequence[str], b: Sequence[str], what_a: str, what_b: str) -> None:
    """Raises a ValueError that says how two charsets differ, naming both sides."""
    a, b = tuple(a), tuple(b)
    if a == b:
        return
    only_a = [x for x in a if x not in b]
    only_b = [x for x in b if x not in a]
    detail = []
    if only_a:
        detail.append(f"only in {what_a}: {''.join(only_a)!r}")
    if only_b:
        detail.append(f"only in {what_b}: {''.join(only_b)!r}")
    if not detail:
        detail.append("same labels in a different order")
    raise ValueError(f"charset mismatch between {what_a} and {what_b}: " + "; ".join(detail))
