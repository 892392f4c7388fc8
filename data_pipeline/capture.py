"""Another capture set-up for glyphs drawn from pen strokes: re-draw them with another pen, write
them into printed template sheets, photograph the pages and read them back with the real
extraction (`hwgan extract`: sources.scans over data_pipeline.scan).

What style extraction is given in use is a writer's template sheet, photographed, not the clean
renders it was trained on. `recapture` measures that shift for glyphs whose strokes are known
(the ink source): each glyph is

  1. re-drawn from its strokes with `CaptureSetup.pen_width` (the ink source's convention: a
     fraction of the glyph image side, the box spanning at least `min_box` of the writer's
     x-heights) at `size` pixels;
  2. written into a cell of its character on a template sheet (`template.make_layout` over the
     characters asked, `repeats` cells each, rendered at `dpi`), scaled so the writer's
     x-height is the printed one, standing where the character sits on the baseline
     (`charset.char_info`), shrunk only when it would not fit the writing area; a writer with
     more glyphs of a character than cells fills the sheets again (one "sheet set" per round);
  3. each page photographed (`sheet_sim.random_photograph`: perspective, tilt, quarter turns,
     blur, noise, shadow, JPEG), seeded by (seed, writer, sheet set, page);
  4. each writer's sheet set extracted as `hwgan extract` does (`open_scans` with the layout
     file, suspicious cells kept), at the model's resolution.

Every glyph comes back from the cell it was written in, so the map from a re-captured glyph to
its writer, character and record is exact; a glyph that extraction loses (an empty-looking
cell, a refused photo) is counted with its reason in the report.

`recapture_split` does it for records of a dataset built by the ink source, matched to their
strokes by record key; it first checks that re-drawing each record with the dataset's own
settings gives its stored image bit for bit (so the match is proven, not assumed).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from data_pipeline import atomic, schema, sheet_sim, tfrecords
from data_pipeline import charset as charset_lib
from data_pipeline import template as template_lib
from data_pipeline.dataset import split_keys
from data_pipeline.scan import cells as cells_lib
from data_pipeline.sources.ink import InkSource, open_ink
from data_pipeline.sources.scans import open_scans

FIT_MARGIN_MM = 1.3  # glyphs stay this far inside the printed writing area (extraction reads
#                      cells_lib.INSET_MM inside it and flags ink on that border)
JITTER_X = 0.15  # horizontal placement spread in the cell, in x-heights
LOST_LISTED = 50  # lost glyphs listed one by one in the report (all are counted)
INK_OPTIONS = ("image_size", "pen_width", "width_variation", "quality", "chars", "min_points",
               "limit", "seed", "min_box", "zero_points")  # open_ink options a manifest records


@dataclasses.dataclass(frozen=True)
class CaptureSetup:
    """How glyphs are re-captured. pen_width: pen diameter as a fraction of the glyph image side
    (the ink source's convention; UNIPEN datasets use 0.055); size: pixels the glyph is drawn
    at before it is scaled onto the page; dpi: the printed page's (and about the photo's)
    resolution; repeats: cells per character on a sheet; seed: the photos' random settings."""

    pen_width: float = 0.09
    size: int = 64
    dpi: int = 200
    repeats: int = 3
    seed: int = 0

    KEYS = {"pen": "pen_width", "pen_width": "pen_width", "size": "size", "dpi": "dpi",
            "repeats": "repeats", "seed": "seed"}

    def __post_init__(self):
        if not 0.0 < self.pen_width < 0.5:
            raise ValueError(f"capture pen {self.pen_width} is outside (0, 0.5) (a fraction of "
                             "the glyph image side)")
        if not 16 <= self.size <= 512:
            raise ValueError(f"capture size {self.size} is outside 16..512 pixels")
        if not 100 <= self.dpi <= 600:
            raise ValueError(f"capture dpi {self.dpi} is outside 100..600")
        if not 1 <= self.repeats <= 10:
            raise ValueError(f"capture repeats {self.repeats} is outside 1..10")

    @classmethod
    def parse(cls, spec: str) -> "CaptureSetup":
        """From "pen=0.09,size=64,dpi=200,repeats=3,seed=0" (any subset, in any order)."""
        values: dict = {}
        for part in (p.strip() for p in str(spec).split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            field = cls.KEYS.get(key.strip())
            if not sep or field is None:
                raise ValueError(f"capture setting {part!r} is not KEY=VALUE with KEY one of "
                                 f"{', '.join(sorted(set(cls.KEYS) - {'pen_width'}))}")
            kind = float if field == "pen_width" else int
            try:
                values[field] = kind(value)
            except ValueError:
                raise ValueError(f"capture setting {part!r}: {value!r} is not a number") from None
        return cls(**values)

    @property
    def name(self) -> str:
        return (f"pen {self.pen_width:g}, drawn at {self.size} px, printed at {self.dpi} dpi, "
                f"photographed, extracted")


@dataclasses.dataclass
class Recapture:
    """The re-capture of some records of a dataset split, aligned with the split's
    `load_glyphs` order: row i is the record keys[i]. glyphs: uint8 ink-high [N, R, R] (0 where
    none came back); asked: the rows that were re-captured; captured: those that came back."""

    keys: np.ndarray
    glyphs: np.ndarray
    asked: np.ndarray
    captured: np.ndarray
    setup: CaptureSetup
    report: dict

    @property
    def name(self) -> str:
        return self.setup.name

    @property
    def images(self) -> np.ndarray:
        """float32 [N, R, R, 1] in [-1, 1], ink +1 (the dataset's convention)."""
        return schema.to_float(self.glyphs)[..., None]

    def save(self, path) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, keys=self.keys.astype(str), glyphs=self.glyphs,
                            asked=self.asked, captured=self.captured,
                            setup=json.dumps(dataclasses.asdict(self.setup)),
                            report=json.dumps(self.report))
        atomic.write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> "Recapture":
        with np.load(path, allow_pickle=False) as data:
            return cls(keys=data["keys"].astype(str), glyphs=data["glyphs"],
                       asked=data["asked"], captured=data["captured"],
                       setup=CaptureSetup(**json.loads(str(data["setup"]))),
                       report=json.loads(str(data["report"])))


# --------------------------------------------------------------------------------------------
# Writing glyphs into sheets


@dataclasses.dataclass
class _Slot:
    """Where glyph `n` of the request goes: writer's sheet set, page index, cell."""
    n: int
    sheet_set: int
    page_index: int
    cell: dict


def _layout(chars: Sequence[str], setup: CaptureSetup) -> dict:
    order = {c: i for i, c in enumerate(charset_lib.DEFAULT_CHARSET)}
    labels = sorted(set(chars), key=lambda c: (order.get(c, len(order)), c))
    return template_lib.make_layout(charset=labels, repeats=setup.repeats, dpi=setup.dpi)


def _slots(chars: Sequence[str], members: Sequence[int], layout: dict, repeats: int
           ) -> list[_Slot]:
    """One writer's glyphs (indices `members` into chars) -> cells: the j-th glyph of a
    character goes into sheet set j // repeats, that character's (j % repeats)-th cell."""
    cells: dict[str, list] = {}
    for page in layout["pages"]:
        for cell in page["cells"]:
            cells.setdefault(cell["char"], []).append((page["page_index"], cell))
    seen: Counter = Counter()
    out = []
    for n in members:
        j = seen[chars[n]]
        seen[chars[n]] += 1
        page_index, cell = cells[chars[n]][j % repeats]
        out.append(_Slot(n, j // repeats, page_index, cell))
    return out


def _place(page: np.ndarray, cell: dict, glyph: np.ndarray, glyph_xh: float, char: str,
           layout: dict, rng) -> bool:
    """Writes one re-drawn glyph into its cell at the printed x-height (see the module doc);
    True if it had to be shrunk to fit the writing area."""
    px_mm = layout["dpi"] / 25.4
    xh = layout["x_height_mm"] * px_mm
    ys, xs = np.nonzero(glyph)
    h, w = ys.max() + 1.0 - ys.min(), xs.max() + 1.0 - xs.min()
    info = charset_lib.char_info(char)
    if math.isfinite(glyph_xh) and glyph_xh > 0:
        f = xh / glyph_xh  # page px per glyph px
    else:  # a writer whose letters give no scale: the character's usual height
        f = xh * max(info.top - info.bottom, 0.2) / h
    m = FIT_MARGIN_MM * px_mm
    wx0, wy0, wx1, wy1 = cell["writing_box"]
    fit = min((wy1 - wy0 - 2 * m) / h, (wx1 - wx0 - 2 * m) / w)
    shrunk = f > fit
    f = min(f, fit)
    top, bottom = info.extent_of_height(h * f / xh)
    ink_cy = cell["baseline_y"] - (top + bottom) / 2.0 * xh
    ink_cx = (wx0 + wx1) / 2.0 + rng.normal(0.0, JITTER_X) * xh
    half_h, half_w = h * f / 2.0, w * f / 2.0
    ink_cy = float(np.clip(ink_cy, wy0 + m + half_h, wy1 - m - half_h))
    ink_cx = float(np.clip(ink_cx, wx0 + m + half_w, wx1 - m - half_w))
    # The glyph image's centre, from where its ink centre must land.
    off_y = (ys.min() + ys.max() + 1.0) / 2.0 - glyph.shape[0] / 2.0
    off_x = (xs.min() + xs.max() + 1.0) / 2.0 - glyph.shape[1] / 2.0
    sheet_sim.write_glyph(page, cell, glyph, f, ink_cx - off_x * f, ink_cy - off_y * f)
    return shrunk


# --------------------------------------------------------------------------------------------
# Re-capturing


def recapture(source: InkSource, keys: Sequence[str], setup: CaptureSetup = CaptureSetup(),
              image_size: int = 32, workdir=None, log: Optional[Callable[[str], None]] = None
              ) -> tuple[list[Optional[np.ndarray]], dict]:
    """Re-captures the source's records `keys` (module doc): ([uint8 [image_size]^2 glyph, or
    None where extraction lost it, for each key], report). `workdir` keeps the photos (default:
    a temporary folder, removed)."""
    if not len(keys):
        raise ValueError("capture: no glyph to re-capture")
    t0 = time.perf_counter()
    index = [source.sample_index(k) for k in keys]
    chars, writers = (list(x) for x in zip(*(source.sample_label(i) for i in index)))
    layout = _layout(chars, setup)
    blanks = [template_lib.render_page(layout, p) for p in range(len(layout["pages"]))]
    out: list[Optional[np.ndarray]] = [None] * len(keys)
    lost: list[dict] = []
    counts = Counter()
    by_writer: dict[str, list[int]] = {}
    for n, w in enumerate(writers):
        by_writer.setdefault(w, []).append(n)
    with tempfile.TemporaryDirectory(prefix="hwgan-capture-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for wi, (writer, members) in enumerate(by_writer.items()):
            slots = _slots(chars, members, layout, setup.repeats)
            for s in range(max(slot.sheet_set for slot in slots) + 1):
                mine = [slot for slot in slots if slot.sheet_set == s]
                photos, where = [], {}
                for p in sorted({slot.page_index for slot in mine}):
                    rng = np.random.default_rng(np.random.SeedSequence([setup.seed, wi, s, p]))
                    page = blanks[p].astype(np.float32)
                    for slot in (x for x in mine if x.page_index == p):
                        glyph, glyph_xh = source.draw(index[slot.n], setup.pen_width, setup.size)
                        counts["shrunk_to_fit"] += _place(page, slot.cell, glyph, glyph_xh,
                                                          chars[slot.n], layout, rng)
                        where[(p + 1, slot.cell["row"], slot.cell["col"])] = slot.n
                    path = root / f"w{wi:03d}-set{s:02d}-p{p + 1}.jpg"
                    path.write_bytes(sheet_sim.random_photograph(
                        np.clip(np.rint(page), 0, 255).astype(np.uint8), rng))
                    photos.append(path)
                counts["photos"] += len(photos)
                _read_back(photos, writer, layout, image_size, where, chars, out, lost, counts)
            if log:
                log(f"capture: writer {wi + 1}/{len(by_writer)} {writer}: {len(members)} glyphs, "
                    f"{sum(out[n] is not None for n in members)} back "
                    f"[{time.perf_counter() - t0:.0f} s]")
    for entry in lost:
        n = entry.pop("n")
        entry.update(key=keys[n], char=chars[n], writer=writers[n])
    report = {
        "setup": dataclasses.asdict(setup), "name": setup.name, "image_size": image_size,
        "asked": len(keys), "captured": sum(o is not None for o in out), "lost": len(lost),
        "lost_by_reason": dict(Counter(e["reason"] for e in lost)),
        "lost_glyphs": lost[:LOST_LISTED], "writers": len(by_writer),
        "sheet_pages": int(counts["photos"]), "photos_refused": int(counts["refused"]),
        "suspicious": int(counts["suspicious"]), "shrunk_to_fit": int(counts["shrunk_to_fit"]),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return out, report


def _read_back(photos, writer: str, layout: dict, image_size: int, where: dict, chars: list,
               out: list, lost: list, counts: Counter) -> None:
    """Extracts one writer's sheet set and puts each glyph back where it was written from
    (`where`: (page, row, col) -> request index); what is missing goes to `lost`."""
    found: dict = {}
    try:
        source = open_scans([str(p) for p in photos], writer, image_size=image_size,
                            layout=layout, quiet=True)
    except ValueError as e:  # not one glyph from any of the photos
        for n in where.values():
            lost.append({"n": n, "reason": "no glyph from the sheet set", "detail": str(e)})
        counts["refused"] += len(photos)
        return
    status: dict = {}
    for entry in source.report["images"]:
        if entry["status"] != "ok":
            counts["refused"] += 1
            continue
        for c in entry["cells"]:
            status[(entry["page"], c["row"], c["col"])] = c
    for rec in source:
        page, cell = rec.key.rsplit(":", 2)[-2:]
        row, col = (int(v) for v in cell[1:].split("c"))
        found[(int(page[1:]), row, col)] = rec
    for place, n in where.items():
        rec = found.get(place)
        if rec is not None:
            if rec.char != chars[n]:
                raise RuntimeError(f"capture: the cell p{place[0]}:r{place[1]}c{place[2]} of "
                                   f"{chars[n]!r} came back as {rec.char!r}")
            out[n] = rec.image
            counts["suspicious"] += status.get(place, {}).get("status") == cells_lib.SUSPICIOUS
            continue
        cell = status.get(place)
        reason = "photo refused" if cell is None else f"cell read as {cell['status']}"
        lost.append({"n": n, "reason": reason, "page": place[0], "row": place[1],
                     "col": place[2]})


def ink_source_of(data_dir, writers: Sequence[str], strokes=None) -> InkSource:
    """The ink source a dataset was built from (its manifest's options), limited to `writers`;
    `strokes`: the stroke file(s), if not where the manifest says."""
    manifest = tfrecords.load_manifest(data_dir)
    source = manifest.get("source", {})
    if source.get("name") != "ink":
        raise ValueError(f"{data_dir} was built by the {source.get('name')!r} source; re-capture "
                         "needs a dataset of the ink source (records drawn from pen strokes)")
    params = source.get("params", {})
    path = strokes if strokes is not None else params.get("path")
    return open_ink(path, writers=list(writers),
                    **{k: params[k] for k in INK_OPTIONS if k in params})


def recapture_split(data_dir, split: str = "test", indices=None,
                    setup: CaptureSetup = CaptureSetup(), image_size: Optional[int] = None,
                    strokes=None, workdir=None, log: Optional[Callable[[str], None]] = None
                    ) -> Recapture:
    """Re-captures the records of a split of a dataset built by the ink source (rows `indices`
    of its `load_glyphs` order; default all) at `image_size` (default the dataset's). Each
    record is matched to its strokes by key, and re-drawn with the dataset's own settings it
    must give its stored image exactly (ValueError otherwise: other stroke files or options)."""
    manifest = tfrecords.load_manifest(data_dir)
    image_size = int(image_size or manifest["resolution"][0])
    keys = np.array(split_keys(data_dir, split))
    asked = np.zeros(len(keys), bool)
    asked[np.arange(len(keys)) if indices is None else np.asarray(indices, np.int64)] = True
    wanted = set(keys[asked].tolist())
    records = {r.key: r for r in tfrecords.read_records(data_dir, split) if r.key in wanted}
    source = ink_source_of(data_dir, sorted({r.writer for r in records.values()}), strokes)
    bad = []
    for key, rec in records.items():
        try:
            i = source.sample_index(key)
        except KeyError:
            bad.append(f"{key}: no such sample")
            continue
        if source.sample_label(i) != (rec.char, rec.writer) or not np.array_equal(
                source.draw(i)[0], rec.image):
            bad.append(f"{key}: its strokes re-drawn differ from the stored glyph")
    if bad:
        raise ValueError(f"{len(bad)} of {len(records)} records of {data_dir} ({split}) do not "
                         f"match the stroke files {source.params['path']}: {bad[:3]}")
    t0 = time.perf_counter()
    glyphs, report = recapture(source, keys[asked].tolist(), setup, image_size, workdir, log)
    out = np.zeros((len(keys), image_size, image_size), np.uint8)
    captured = np.zeros(len(keys), bool)
    for row, glyph in zip(np.flatnonzero(asked), glyphs):
        if glyph is not None:
            out[row], captured[row] = glyph, True
    report.update(data_dir=str(data_dir), split=split, split_glyphs=int(len(keys)),
                  matched_by_key=len(records), seconds=round(time.perf_counter() - t0, 1))
    return Recapture(keys, out, asked, captured, setup, report)
