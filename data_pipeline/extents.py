"""Each writer's own extents of their punctuation, for the layout: {writer: {char: [top, bottom]}}
in x-heights above the baseline (the table a SavedModel carries as "writer_geometry").

Where records carry a geometry (scanned sheets: size and position against a baseline), the
writer's median top and bottom are taken as they are. Where they carry only a size against the
writer's letters (UNIPEN: characters written one per box, no baseline), the size sets how tall
the mark is and its typographic class (data_pipeline.charset.PUNCT_TABLE) where it sits: a "."
stands on the baseline, a "," hangs below it, quotes hang from cap height, a "-" is centred on
mid x-height, brackets are centred where they span ascender to descender.

Sizes of marks written alone in a box run large against the same writer's letters (UNIPEN
medians, in x-heights: "!" 1.97 while capitals are 1.64, "," 0.76, "(" 1.9), so a size is not used
as it is: the writer's median over the median of every writer in the records, clipped to
[RATIO_MIN, RATIO_MAX], scales the table's height. A writer who makes large full stops gets
large full stops; the page keeps the proportions of type. Letters keep their classes (their
isolated sizes say more about the boxes than about the hand), so only punctuation is listed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Optional

import numpy as np

from data_pipeline.charset import PUNCT, char_info
from data_pipeline.schema import GlyphRecord

RATIO_MIN, RATIO_MAX = 0.5, 2.0


def _is_mark(char: str) -> bool:
    try:
        return char_info(char).cls == PUNCT
    except KeyError:
        return False


def writer_extents(records: Iterable[GlyphRecord], chars: Optional[str] = None
                   ) -> dict[str, dict[str, list[float]]]:
    """{writer: {char: [top, bottom]}} for the punctuation (or `chars`) of each writer whose
    records tell its size; writers and characters without one are left out (the layout then
    uses the typographic class)."""
    placed: dict[tuple[str, str], list] = defaultdict(list)  # geometry: (top, bottom)
    sized: dict[tuple[str, str], list] = defaultdict(list)  # size only: height
    for record in records:
        char = record.char
        if len(char) != 1 or not (_is_mark(char) if chars is None else char in chars):
            continue
        if record.geometry is not None:
            placed[record.writer, char].append((record.geometry.top, record.geometry.bottom))
        elif record.size is not None:
            sized[record.writer, char].append(record.size[0])
    table: dict[str, dict[str, list[float]]] = defaultdict(dict)
    medians = {key: float(np.median(h)) for key, h in sized.items()}
    by_char: dict[str, list[float]] = defaultdict(list)
    for (_, char), m in medians.items():
        by_char[char].append(m)
    population = {char: float(np.median(ms)) for char, ms in by_char.items()}
    for (writer, char), m in medians.items():
        info = char_info(char)
        ratio = float(np.clip(m / population[char], RATIO_MIN, RATIO_MAX))
        top, bottom = info.extent_of_height((info.top - info.bottom) * ratio)
        table[writer][char] = [round(top, 4), round(bottom, 4)]
    for (writer, char), extents in placed.items():  # a real baseline wins over a size
        top, bottom = np.median(np.array(extents), axis=0)
        table[writer][char] = [round(float(top), 4), round(float(bottom), 4)]
    return {w: dict(sorted(table[w].items())) for w in sorted(table)}
