"""The new writer's data (their glyphs, their sheets' geometry) and which base writers were
trained."""

from __future__ import annotations

import numpy as np

from data_pipeline import tfrecords
from data_pipeline.dataset import load_glyphs
from hw_gan.config import AdaptError

# dataset.json of a shipped base: the writers with a row the base never trained.
UNTRAINED_KEY = "untrained_writers"


def variants_per_char(chars) -> float:
    """Glyphs per distinct character: how many variants a sheet gives on average."""
    chars = np.asarray(chars)
    return float(len(chars) / max(1, len(np.unique(chars))))


def _writer_manifest(writer_data: str, split: str, base_charset: list) -> dict:
    """The writer dataset's manifest, checked: one writer, labels the base knows, the split."""
    try:
        manifest = tfrecords.load_manifest(writer_data)
    except tfrecords.DatasetError as e:
        raise AdaptError(f"--writer_data: {e}") from None
    if len(manifest["writers"]) != 1:
        raise AdaptError(f"--writer_data={writer_data} holds {len(manifest['writers'])} writers "
                         f"({manifest['writers'][:5]}...); adaptation takes one writer's glyphs")
    unknown = [label for label in manifest["charset"] if label not in base_charset]
    if unknown:
        raise AdaptError(f"--writer_data={writer_data}: charset mismatch with the base model: "
                         f"labels {unknown} are not in its charset ({''.join(base_charset)!r})")
    if split not in manifest["splits"]:
        raise AdaptError(f"--writer_data={writer_data} has no split {split!r} "
                         f"(it has {sorted(manifest['splits'])})")
    return manifest


def load_writer_data(writer_data: str, split: str, base_info: dict, image_size: int,
                     writer_name: str = "") -> dict:
    """The writer's glyphs with char ids in the BASE charset, and what is missing.

    AdaptError when the directory is no dataset, holds several writers, has labels the base
    model does not know, or the writer's name is already one of the base writers."""
    base_charset = list(base_info["charset"])
    manifest = _writer_manifest(writer_data, split, base_charset)
    name = writer_name or manifest["writers"][0]
    if name in base_info["writers"]:
        raise AdaptError(f"writer name {name!r} is already known to the base model; pass another "
                         f"--writer_name")
    images, chars, _ = load_glyphs(writer_data, split, image_size)
    remap = np.array([base_charset.index(label) for label in manifest["charset"]], np.int32)
    chars = remap[chars]
    seen = sorted(set(int(c) for c in chars))
    return {"images": images, "chars": chars, "name": name, "manifest": manifest,
            "seen_chars": [base_charset[i] for i in seen],
            "unseen_chars": [c for i, c in enumerate(base_charset) if i not in set(seen)]}


def trained_writers(base_cfg, base_info) -> tuple[list, str]:
    """(ids, why) of the base writers the base was trained on: those with glyphs in the training
    split of the base's dataset. A base trained on a writer-split dataset also has rows for the
    held-out writers (the manifest lists every writer), never trained: they draw an averaged,
    nobody's style and must not be candidates for a start. When the base's dataset is not on
    this machine, every base writer (and `why` says so). A shipped base (hw_gan.shipped) comes
    without its dataset: its dataset.json lists the writers it never trained
    ("untrained_writers"), and that list is used."""
    everyone = list(range(len(base_info["writers"])))
    if UNTRAINED_KEY in base_info:
        held = set(base_info[UNTRAINED_KEY])
        ids = [i for i, name in enumerate(base_info["writers"]) if name not in held]
        return ids, f"the {len(ids)} writers the base was trained on (its dataset.json)"
    data_dir, split = base_cfg.data.data_dir, base_cfg.data.train_split
    try:
        manifest = tfrecords.load_manifest(data_dir)
    except tfrecords.DatasetError as e:
        return everyone, f"every base writer (the base's dataset is not readable here: {e})"
    untrained = set(tfrecords.writers_without_glyphs(manifest, split))
    ids = [i for i, name in enumerate(base_info["writers"])
           if name in manifest["writers"] and name not in untrained]
    if not ids:
        return everyone, (f"every base writer ({data_dir} split {split!r} names none of the "
                          f"base's writers)")
    return ids, f"the {len(ids)} writers with glyphs in {data_dir} split {split!r}"


def writer_geometry(data_dir, split: str) -> dict:
    """{char: [top, bottom]}: the median ink extent of each character in a writer's dataset,
    in x-heights against the baseline; empty when the source records no geometry."""
    extents: dict[str, list] = {}
    for record in tfrecords.read_records(data_dir, split):
        if record.geometry is not None:
            for ch in record.char:
                extents.setdefault(ch, []).append((record.geometry.top, record.geometry.bottom))
    return {ch: [round(float(v), 4) for v in np.median(np.array(vals), axis=0)]
            for ch, vals in sorted(extents.items())}
