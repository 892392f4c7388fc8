"""The UNIPEN release train_r01_v07 as published (Zenodo doi:10.5281/zenodo.1195803, CC BY 4.0)
-> the `ink` source's records.

Layout: `ROOT/data/<category>/<lab>/*.dat` (categories 1a digits, 1b upper case, 1c lower case,
1d symbols) label pen data that they `.INCLUDE` from `ROOT/include/` (paths relative to it;
included files may include others). How the files are read, checked against the release's own
files (../shared/data/unipen/raw_sample, which reproduces the shared .npz rows exactly):

- A component is a `.PEN_DOWN` or `.PEN_UP` block that holds points (`x y` lines; `.COORD`
  names the columns, X and Y are read), numbered from 0 in order of appearance across everything
  a `.dat` file includes. A block without points (the bare `.PEN_UP` that ends a stroke in most
  labs) is not a component.
- `.SEGMENT CHARACTER <delineation> [<quality>] "<label>"`: the delineation is a comma-separated
  list of `c1[:p1]-c2[:p2]` ranges (both ends included) or single `c[:p]`; the sample's strokes
  are the pen-down components it covers (pen-up movement is left out). Labels escape `"` and `\\`
  with a backslash. Segments of other levels are counted and ignored.
- The writer is `<lab>:<WRITER_ID>`, the `.WRITER_ID` in force at the segment's first component.
- y is negated: the tablets' y points up, the project's strokes point down.
- Samples come in the order category (1a, 1b, 1c, 1d), lab, file name, segment.

Known defects of the release, handled and counted (`counts`, kept in the manifest under
`source.counts`): points at exactly (0, 0) inside strokes (a recording glitch, mostly lab `ibm`;
dropped unless `zero_points=keep`), segments labelled `\\@` (ligatures cut from cursive words,
not symbols; dropped), `.dat` files whose `.INCLUDE`d file is missing (the file is skipped, since
its component numbers cannot be known; the manifest lists the paths), delineations that run past
the data (the segment is dropped), labels that are not one character and segments with no
pen-down points (dropped).

Bad input (a directory that is not the release, a malformed line) is a ValueError of one line
that names the path, and the line number where there is one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from data_pipeline.sources.ink import InkSource, StrokeSamples, as_list

CATEGORIES = {"1a": "digits", "1b": "upper case", "1c": "lower case", "1d": "symbols"}
LIGATURE = "\\@"  # the raw label of a ligature segment (not the symbol "@", which is "@")
ZERO_POINTS = ("drop", "keep")
PEN_KEYWORDS = {".PEN_DOWN": True, ".PEN_UP": False}
RELEASE = "UNIPEN release train_r01_v07"

_KEYWORD = re.compile(r"^\.[A-Z][A-Z0-9_]*")
_SEGMENT = re.compile(r'^(\S+)\s+(\S+)(?:\s+([^\s"]+))?(?:\s+"(.*)")?\s*$')
_POSITION = re.compile(r"^(\d+)(?::(\d+))?$")


class UnipenFormatError(ValueError):
    """A malformed line: the message is `FILE:LINE: what is wrong`."""

    def __init__(self, path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")


class MissingInclude(Exception):
    """An `.INCLUDE` that names a file which is not there."""

    def __init__(self, path, line: int, target: Path):
        super().__init__(f"{path}:{line}: .INCLUDE names {target}, which does not exist")
        self.path, self.line, self.target = path, line, target


@dataclasses.dataclass(frozen=True)
class Component:
    down: bool
    points: np.ndarray  # (n, 2) float32, y down
    writer: Optional[str]


@dataclasses.dataclass(frozen=True)
class _State:
    """What a file inherits from the one that includes it, and hands back after it."""
    columns: tuple[int, int] = (0, 1)  # of X and Y in a point line
    writer: Optional[str] = None


@dataclasses.dataclass
class _Parsed:
    components: list[Component]
    segments: list[tuple[Path, int, str]]  # (file, line, text after ".SEGMENT")
    state: _State


@dataclasses.dataclass
class ReleaseSamples:
    """The samples read from a release, with their keys, categories and labs, and the counts of
    what was read, dropped and why."""
    samples: StrokeSamples
    keys: list[str]
    categories: np.ndarray
    labs: np.ndarray
    counts: dict


def _coord_columns(text: str, path, line: int) -> tuple[int, int]:
    names = text.split()
    if "X" not in names or "Y" not in names:
        raise UnipenFormatError(path, line, f".COORD {text!r} does not name the X and Y columns")
    return names.index("X"), names.index("Y")


def _points(path, lines: list[tuple[int, str]], columns: tuple[int, int]) -> np.ndarray:
    """A block's `x y` lines -> (n, 2) float32 with y negated."""
    xi, yi = columns
    rows = [text.split() for _, text in lines]
    try:
        pts = np.array([[r[xi], r[yi]] for r in rows], np.float64)
        ok = bool(np.isfinite(pts).all())
    except (ValueError, IndexError):
        ok = False
    if not ok:
        for (line, text), r in zip(lines, rows):
            try:
                if len(r) > max(xi, yi) and np.isfinite([float(r[xi]), float(r[yi])]).all():
                    continue
            except ValueError:
                pass
            raise UnipenFormatError(path, line,
                                    f"point line {text!r} is not an x y pair of numbers")
    pts[:, 1] *= -1
    return pts.astype(np.float32)


def _delineation(text: str, path, line: int) -> list[tuple[int, Optional[int], int, Optional[int]]]:
    """`c1[:p1]-c2[:p2],c[:p],...` -> [(c1, p1, c2, p2)] (a single position is c-c)."""
    ranges = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        a = _POSITION.match(first)
        b = _POSITION.match(last) if dash else a
        if a is None or b is None:
            raise UnipenFormatError(path, line, f"delineation {text!r} is not a comma-separated "
                                    f"list of c[:p] or c[:p]-c[:p]")
        ca, pa = int(a[1]), (int(a[2]) if a[2] else None)
        cb, pb = int(b[1]), (int(b[2]) if b[2] else None)
        if cb < ca or (cb == ca and pa is not None and pb is not None and pb < pa):
            raise UnipenFormatError(path, line, f"delineation {text!r} runs backwards")
        ranges.append((ca, pa, cb, pb))
    return ranges


def _unescape(raw: str, path, line: int) -> str:
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\":
            if i + 1 >= len(raw) or raw[i + 1] not in '"\\':
                raise UnipenFormatError(path, line, f'label "{raw}" has an escape other than '
                                        f'\\" and \\\\')
            i += 1
        out.append(raw[i])
        i += 1
    return "".join(out)


class _Reader:
    """Parses a release's files (each included file once per inherited state) and cuts
    segments into samples, counting what it drops."""

    def __init__(self, root: Path, zero_points: str):
        self.root = root
        self.include_dir = root / "include"
        self.zero_points = zero_points
        self._cache: dict[tuple[Path, _State], _Parsed] = {}
        self.counts = {
            "dat_files": 0, "dat_files_skipped": 0, "missing_includes": [], "segments": 0,
            "other_segments": 0, "ligatures_dropped": 0, "labels_not_a_character": 0,
            "delineations_past_data": 0, "zero_point_samples": 0, "zero_points": 0,
            "segments_without_ink": 0, "samples": 0,
        }

    def forget(self) -> None:
        """Drops the parsed files (the samples cut from them stay)."""
        self._cache.clear()

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def parse(self, path: Path, state: _State, stack: tuple[Path, ...] = ()) -> _Parsed:
        key = (path, state)
        if key not in self._cache:
            self._cache[key] = self._parse(path, state, stack + (path,))
        return self._cache[key]

    def _parse(self, path: Path, state: _State, stack: tuple[Path, ...]) -> _Parsed:
        components: list[Component] = []
        segments: list[tuple[Path, int, str]] = []
        block: Optional[tuple[bool, Optional[str], list]] = None

        def close():
            if block is not None and block[2]:
                components.append(Component(block[0], _points(path, block[2], state.columns),
                                            block[1]))

        text = path.read_bytes().decode("latin-1")
        for line, raw in enumerate(text.splitlines(), 1):
            stripped = raw.strip()
            if not stripped:
                continue
            if not _KEYWORD.match(stripped):
                if block is not None:
                    block[2].append((line, stripped))
                continue  # else: text that continues a descriptive keyword (.WRITER_INFO, ...)
            close()
            block = None
            word, _, rest = stripped.replace("\t", " ").partition(" ")
            rest = rest.strip()
            if word in PEN_KEYWORDS:
                block = (PEN_KEYWORDS[word], state.writer, [])
            elif word == ".INCLUDE":
                state = self._include(path, line, rest, state, stack, components, segments)
            elif word == ".WRITER_ID":
                if not rest:
                    raise UnipenFormatError(path, line, ".WRITER_ID names no writer")
                state = dataclasses.replace(state, writer=rest)
            elif word == ".COORD":
                state = dataclasses.replace(state, columns=_coord_columns(rest, path, line))
            elif word == ".SEGMENT":
                segments.append((path, line, rest))
        close()
        return _Parsed(components, segments, state)

    def _include(self, path, line, rest, state, stack, components, segments) -> _State:
        if not rest:
            raise UnipenFormatError(path, line, ".INCLUDE names no file")
        target = self.include_dir / rest
        if not target.is_file():
            raise MissingInclude(path, line, target)
        if target in stack:
            raise UnipenFormatError(path, line, f".INCLUDE {rest} includes itself (a cycle)")
        parsed = self.parse(target, state, stack)
        components.extend(parsed.components)
        segments.extend(parsed.segments)
        return parsed.state

    def read_dat(self, path: Path, lab: str):
        """Yields (label, quality, writer, strokes, key) for each usable segment of a .dat file."""
        try:
            parsed = self.parse(path, _State())
        except MissingInclude as e:
            self.counts["dat_files_skipped"] += 1
            self.counts["missing_includes"].append(
                f"{self.rel(Path(e.path))}:{e.line}: {self.rel(e.target)}")
            return
        self.counts["dat_files"] += 1
        for file, line, text in parsed.segments:
            sample = self._segment(parsed.components, file, line, text, lab)
            if sample is not None:
                yield sample

    def _segment(self, components, file, line, text, lab):
        m = _SEGMENT.match(text)
        if m is None:
            raise UnipenFormatError(file, line, f'.SEGMENT {text!r} is not '
                                    f'<level> <delineation> [<quality>] "<label>"')
        level, delineation, quality, raw_label = m.groups()
        if level != "CHARACTER":
            self.counts["other_segments"] += 1
            return None
        if raw_label is None:
            raise UnipenFormatError(file, line, f'.SEGMENT {text!r} has no "<label>"')
        ranges = _delineation(delineation, file, line)
        self.counts["segments"] += 1
        if raw_label == LIGATURE:
            self.counts["ligatures_dropped"] += 1
            return None
        label = _unescape(raw_label, file, line)
        if len(label) != 1 or label.isspace():
            self.counts["labels_not_a_character"] += 1
            return None
        cut = self._cut(components, ranges)
        if cut is None:
            self.counts["delineations_past_data"] += 1
            return None
        strokes, writer = cut
        strokes = self._zero_points(strokes)
        if not strokes:
            self.counts["segments_without_ink"] += 1
            return None
        if writer is None:
            raise UnipenFormatError(file, line, "no .WRITER_ID is in force for this segment")
        self.counts["samples"] += 1
        return label, quality or "?", f"{lab}:{writer}", strokes, f"unipen:{self.rel(file)}:{line}"

    @staticmethod
    def _cut(components, ranges):
        """(pen-down strokes, writer) of a delineation; None if it runs past the data."""
        strokes, writer = [], None
        for ca, pa, cb, pb in ranges:
            if cb >= len(components) or (pa is not None and pa >= len(components[ca].points)) \
                    or (pb is not None and pb >= len(components[cb].points)):
                return None
            for c in range(ca, cb + 1):
                comp = components[c]
                writer = comp.writer if writer is None else writer
                lo = pa if c == ca and pa is not None else 0
                hi = pb + 1 if c == cb and pb is not None else len(comp.points)
                if comp.down:
                    strokes.append(comp.points[lo:hi])
        return strokes, writer

    def _zero_points(self, strokes: list[np.ndarray]) -> list[np.ndarray]:
        zero = [(s == 0).all(axis=1) for s in strokes]
        n = int(sum(z.sum() for z in zero))
        if n:
            self.counts["zero_point_samples"] += 1
            self.counts["zero_points"] += n
            if self.zero_points == "drop":
                strokes = [s[~z] for s, z in zip(strokes, zero)]
        return [s for s in strokes if len(s)]


def _not_release(root: Path, what: str) -> ValueError:
    hint = ""
    if (root / "train_r01_v07" / "data").is_dir():
        hint = f"; {root / 'train_r01_v07'} has one: give that path"
    return ValueError(f"{root} is not the {RELEASE}: {what}{hint}")


def _dat_files(root: Path, categories: list[str], labs: Optional[list[str]]
               ) -> list[tuple[str, str, Path]]:
    """(category, lab, file) of every .dat file to read, in the release's order."""
    if not root.is_dir():
        raise FileNotFoundError(f"{RELEASE} directory {root} does not exist")
    for sub in ("data", "include"):
        if not (root / sub).is_dir():
            raise _not_release(root, f"it has no {sub}/ directory (expected "
                                     f"{root}/data/<category>/<lab>/*.dat and {root}/include/)")
    found, seen_labs = [], set()
    for category in categories:
        cat_dir = root / "data" / category
        if not cat_dir.is_dir():
            raise _not_release(root, f"{cat_dir} does not exist (category {category}, "
                                     f"{CATEGORIES[category]})")
        for lab_dir in sorted(p for p in cat_dir.iterdir() if p.is_dir()):
            seen_labs.add(lab_dir.name)
            if labs and lab_dir.name not in labs:
                continue
            files = sorted(p for p in lab_dir.iterdir() if p.suffix.lower() == ".dat")
            found.extend((category, lab_dir.name, f) for f in files)
    unknown = sorted(set(labs or ()) - seen_labs)
    if unknown:
        raise ValueError(f"labs={','.join(unknown)}: not under {root}/data/"
                         f"{{{','.join(categories)}}}; labs there: {', '.join(sorted(seen_labs))}")
    if not found:
        raise _not_release(root, f"no .dat files under {root}/data/"
                                 f"{{{','.join(categories)}}}/<lab>/")
    return found


def read_release(path, categories="1a,1b,1c,1d", labs=None,
                 zero_points: str = "drop") -> ReleaseSamples:
    """Reads the chosen categories (and labs) of a release into stroke samples."""
    root = Path(os.fspath(path))
    categories = as_list(categories) or []
    bad = [c for c in categories if c not in CATEGORIES]
    if bad or not categories:
        raise ValueError(f"categories={','.join(categories)}: choose among "
                         f"{', '.join(f'{k} ({v})' for k, v in CATEGORIES.items())}")
    if zero_points not in ZERO_POINTS:
        raise ValueError(f"zero_points={zero_points!r} is not one of {ZERO_POINTS}")
    categories = [c for c in CATEGORIES if c in categories]
    reader = _Reader(root, zero_points)
    files = _dat_files(root, categories, as_list(labs))
    # Lab by lab (a lab's .dat files of every category include the same pen data, and no other
    # lab's), so that only one lab's parsed files are held at a time; then in the release's order.
    by_category: dict[str, list] = {c: [] for c in categories}
    for lab in sorted({lab for _, lab, _ in files}):
        for category, dat_lab, dat in files:
            if dat_lab == lab:
                by_category[category].extend(
                    (*sample, category, lab) for sample in reader.read_dat(dat, lab))
        reader.forget()
    read = [sample for c in categories for sample in by_category[c]]
    labels, quality, writers, sample_strokes, keys, cats, lab_of = (list(v) for v in zip(*read)) \
        if read else ([] for _ in range(7))
    points = [s for strokes in sample_strokes for s in strokes]
    lengths = [len(s) for s in points]
    counts = [len(strokes) for strokes in sample_strokes]
    skipped = reader.counts["missing_includes"]
    if skipped and not reader.counts["dat_files"]:
        raise ValueError(f"no .dat file of {root} could be read: each .INCLUDEs a missing file, "
                         f"e.g. {root}/{skipped[0].replace(': ', ' names ')}")
    names, writer_ids = np.unique(np.array(writers, dtype=str), return_inverse=True)
    reader.counts["writers"] = len(names)
    samples = StrokeSamples(
        points=(np.concatenate(points) if points else np.zeros((0, 2))).astype(np.float32),
        stroke_lengths=np.array(lengths, np.int64), sample_stroke_counts=np.array(counts, np.int64),
        labels=np.array(labels, dtype=str), writer_ids=writer_ids.astype(np.int64),
        writer_names=names, quality=np.array(quality, dtype=str))
    return ReleaseSamples(samples, keys, np.array(cats, dtype=str), np.array(lab_of, dtype=str),
                          reader.counts)


class UnipenSource(InkSource):
    """The ink source's records from a release; `counts` says what was read and dropped."""

    def __init__(self, release: ReleaseSamples, params: dict, **options):
        keys = release.keys
        super().__init__(release.samples, name="unipen", where=f"{RELEASE} {params['path']}",
                         params=params, key=keys.__getitem__, **options)
        # The release's counts; the ink source adds its scale counts (its zero points are
        # the reader's: dropped, or kept, before it sees them).
        self.counts = {**self.counts, **release.counts}


def open_unipen(path: str, categories="1a,1b,1c,1d", labs=None, zero_points: str = "drop",
                image_size: int = 32, pen_width: float = 0.055, width_variation: float = 0.0,
                quality: str = "any", writers=None, chars=None, min_points: int = 2,
                limit: Optional[int] = None, seed: int = 0, min_box: float = 0.75,
                require_chars=None) -> UnipenSource:
    """Opens the UNIPEN release at `path` (the folder holding data/ and include/).

    categories: any of 1a (digits), 1b (upper case), 1c (lower case), 1d (symbols), as a list or
    comma-separated (default all four); labs: three-letter lab codes to read (default all);
    zero_points: "drop" (default) or "keep" points at exactly (0, 0). The rendering and filter
    options are the ink source's (see open_ink); symbols (1d) are sized against each writer's
    letters when 1a-1c are read too.
    """
    path = os.fspath(path)
    release = read_release(path, categories, labs, zero_points)
    counts = release.counts
    if counts["dat_files_skipped"]:
        print(f"unipen: {counts['dat_files_skipped']} .dat file(s) skipped: an .INCLUDE names a "
              f"missing file (first: {counts['missing_includes'][0]}); the manifest lists them "
              f"under source.counts.missing_includes", file=sys.stderr)
    params = {"path": path, "categories": [c for c in CATEGORIES if c in as_list(categories)],
              "labs": as_list(labs), "zero_points": zero_points}
    return UnipenSource(release, params, image_size=image_size, pen_width=pen_width,
                        width_variation=width_variation, quality=quality, writers=writers,
                        chars=chars, min_points=min_points, limit=limit, seed=seed,
                        min_box=min_box, zero_points=zero_points, require_chars=require_chars)
