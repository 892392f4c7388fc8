"""One opener per data source. Each returns a `Source`: an iterable of `GlyphRecord`s with a
`name`, the `params` that produced it (written to the manifest) and, where known, `__len__`.

Openers are looked up by name with `open_source(name, **params)`; an unknown name or an unknown
parameter is a ValueError that lists what is accepted.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Iterator, Protocol

from data_pipeline.schema import GlyphRecord

# name -> "module:function"; modules are imported on first use so that, e.g., building from ink
# does not import tensorflow_datasets.
OPENERS = {
    "simulated": "data_pipeline.sources.simulated:open_simulated",
    "ink": "data_pipeline.sources.ink:open_ink",
    "emnist": "data_pipeline.sources.emnist:open_emnist",
    "scans": "data_pipeline.sources.scans:open_scans",
    "unipen": "data_pipeline.sources.unipen:open_unipen",
}


class Source(Protocol):
    name: str
    params: dict[str, Any]

    def __iter__(self) -> Iterator[GlyphRecord]: ...


def get_opener(name: str):
    if name not in OPENERS:
        raise ValueError(f"unknown source {name!r}; known sources: {', '.join(sorted(OPENERS))}")
    module_name, func_name = OPENERS[name].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def open_source(name: str, **params) -> Source:
    """Opens a source by name, checking that every parameter is one the opener takes."""
    opener = get_opener(name)
    accepted = [p for p in inspect.signature(opener).parameters]
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise ValueError(f"source {name!r} does not take parameter(s) {unknown}; "
                         f"it takes: {', '.join(accepted)}")
    return opener(**params)
