"""Text -> tokens: normalisation, words and spaces, the glyphs to generate (TextPlan), the
substitutes of missing characters (nearest_char), and the blocks glyphs are generated in."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

from data_pipeline.charset import Charset, describe_labels

GLYPH = "glyph"
BOX = "box"
GAP = "gap"
MISSING_MODES = ("error", "skip", "box", "nearest")

UNKNOWN_CHARS_MESSAGE = "not in the model's charset"

CHUNK = 512  # glyphs are generated in blocks of this many requests, in text order


def chunk_seed(seed: int, chunk: int) -> int:
    """The `.glyphs` seed of block `chunk` (a non-negative int64) for document seed `seed`."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x7772, int(chunk)])
    return int(state.generate_state(1, np.uint64)[0] & np.uint64(0x7FFFFFFFFFFFFFFF))


@dataclasses.dataclass(frozen=True)
class Token:
    """One non-space character of the text.

    char: as in the text; kind: GLYPH (generated), BOX (empty rectangle) or GAP (skipped: blank);
    request: what the model is asked for (the char itself or its substitute; "" unless GLYPH);
    index: generation index k of a GLYPH (-1 otherwise); pos: index among all tokens (noise).
    """

    char: str
    kind: str
    request: str
    index: int
    pos: int


@dataclasses.dataclass(frozen=True)
class Word:
    tokens: tuple[Token, ...]


@dataclasses.dataclass(frozen=True)
class Spaces:
    count: int


@dataclasses.dataclass(frozen=True)
class Paragraph:
    lines: tuple[tuple[Union[Word, Spaces], ...], ...]  # hard lines ("\n"-separated)
    blank_lines_before: int = 0  # empty lines beyond the one blank line that separates paragraphs


@dataclasses.dataclass(frozen=True)
class TextPlan:
    paragraphs: tuple[Paragraph, ...]
    requests: tuple[str, ...]  # model request for generation index k
    substitutions: Mapping[str, str]  # missing char -> substitute ("nearest")
    missing: tuple[str, ...]  # characters the charset does not serve
    num_tokens: int


_LOOKALIKES = {
    "0": "Oo", "O": "0", "o": "0",
    "1": "lI|i", "l": "1I|", "I": "l1|", "|": "lI1", "i": "l1",
    "2": "Zz", "Z": "2", "z": "2",
    "5": "Ss", "S": "5", "s": "5",
    "8": "B", "B": "8", "6": "b", "b": "6", "9": "gq", "g": "9", "q": "9",
    "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"',
    "‘": "'", "’": "'", "‚": ",", "‛": "'", "`": "'", "´": "'", "′": "'",
    '"': "'", "'": '"',
    "–": "-", "—": "-", "‒": "-", "―": "-", "−": "-", "‐": "-", "‑": "-", "_": "-", "~": "-",
    "…": ".", "·": ".", "•": ".",
    "[": "(", "{": "(", "<": "(", "]": ")", "}": ")", ">": ")", "\\": "/",
    ";": ":,", ":": ";", "+": "&", "×": "xX",
}


def nearest_char(char: str, known: Callable[[str], bool]) -> Optional[str]:
    """A similar character `known` accepts: the other case, the base letter of an accented one,
    a look-alike (and look-alikes of those, two steps at most); None if there is none."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    level = [char] + ([base] if len(base) == 1 and base != char else [])
    seen = set(level)
    order: list[str] = []
    for _ in range(3):
        nxt = []
        for c in level:
            for alt in [c.swapcase(), *_LOOKALIKES.get(c, "")]:
                if len(alt) == 1 and alt not in seen:
                    seen.add(alt)
                    nxt.append(alt)
        order += level
        level = nxt
    order += level
    for c in order:
        if c != char and known(c):
            return c
    return None


def normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "".join(" " if (c.isspace() and c != "\n") else c for c in text)


def plan_text(text: str, charset: Union[Charset, Sequence[str]],
              missing: str = "error") -> TextPlan:
    """Splits text into paragraphs, hard lines, words and spaces, and numbers the glyphs to
    generate. Raises ValueError for empty text, for missing characters with missing="error"
    (listing all of them), and when nothing would be drawn."""
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {MISSING_MODES}, got {missing!r}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    cs = charset if isinstance(charset, Charset) else Charset(charset)
    text = normalise_text(text)
    if not text.strip():
        raise ValueError("the text is empty: nothing to write")
    missing_chars = cs.missing(text, ignore=" \n")
    if missing_chars and missing == "error":
        raise _unknown_chars_error(cs, missing_chars)
    subs = _substitutions(cs, missing_chars) if missing == "nearest" else {}
    tokeniser = _Tokeniser(cs, subs, missing)
    paragraphs = _paragraphs(text, tokeniser.line)
    if tokeniser.drawn == 0:
        raise ValueError(f"nothing to write: every character of the text is {UNKNOWN_CHARS_MESSAGE}"
                         f" and was skipped ({missing_chars})")
    return TextPlan(tuple(paragraphs), tuple(tokeniser.requests), subs, tuple(missing_chars),
                    tokeniser.pos)


def _unknown_chars_error(cs: Charset, missing_chars) -> ValueError:
    return ValueError(
        f"characters {UNKNOWN_CHARS_MESSAGE}: {missing_chars}; to write the rest, choose "
        f"missing 'skip', 'box' or 'nearest' (--missing of hwgan write); the charset is "
        f"{describe_labels(cs.labels)}")


def _substitutions(cs: Charset, missing_chars) -> dict[str, str]:
    """missing="nearest": each missing character that has a similar one in the charset -> it."""
    subs: dict[str, str] = {}
    for c in missing_chars:
        alt = nearest_char(c, lambda x: x in cs)
        if alt is not None:
            subs[c] = alt
    return subs


class _Tokeniser:
    """Turns hard lines into words and spaces, numbering tokens (`pos`) and the glyphs to
    generate (`requests`) in text order; `drawn` counts the tokens that will show."""

    def __init__(self, cs: Charset, subs: Mapping[str, str], missing: str):
        self.cs, self.subs, self.missing = cs, subs, missing
        self.requests: list[str] = []
        self.pos = 0
        self.drawn = 0

    def token(self, c: str) -> Token:
        if c in self.cs:
            tok = Token(c, GLYPH, c, len(self.requests), self.pos)
        elif c in self.subs:
            tok = Token(c, GLYPH, self.subs[c], len(self.requests), self.pos)
        elif self.missing == "skip":
            tok = Token(c, GAP, "", -1, self.pos)
        else:  # box, or nearest without a substitute
            tok = Token(c, BOX, "", -1, self.pos)
        if tok.kind == GLYPH:
            self.requests.append(tok.request)
        if tok.kind != GAP:
            self.drawn += 1
        self.pos += 1
        return tok

    def line(self, line: str) -> tuple:
        items: list[Union[Word, Spaces]] = []
        for m in re.finditer(r" +|[^ ]+", line):
            run = m.group(0)
            if run[0] == " ":
                items.append(Spaces(len(run)))
            else:
                items.append(Word(tuple(self.token(c) for c in run)))
        return tuple(items)


def _paragraphs(text: str, tokenise: Callable[[str], tuple]) -> list[Paragraph]:
    """Blank lines split paragraphs (each one beyond the first adds an empty line); every other
    line is a hard line, tokenised in text order."""
    paragraphs: list[Paragraph] = []
    current: list[tuple] = []
    blank_run = 0
    pending_blank = 0
    for raw in text.split("\n"):
        if raw.strip() == "":
            blank_run += 1
            continue
        if blank_run and current:
            paragraphs.append(Paragraph(tuple(current), pending_blank))
            current = []
            pending_blank = blank_run - 1
        elif blank_run and not current:
            pending_blank += blank_run  # blank lines at the very start
        blank_run = 0
        current.append(tokenise(raw))
    if current:
        paragraphs.append(Paragraph(tuple(current), pending_blank))
    return paragraphs
