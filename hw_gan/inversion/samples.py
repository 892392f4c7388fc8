"""A writer's sample glyphs for style extraction: from a dataset directory or a folder of glyph
images, and a choice of k of them."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipeline import tfrecords
from data_pipeline.dataset import load_glyphs, pick_samples
from data_pipeline.scan import normalize_glyph
from hw_gan.config import StyleError


def _load_splits(data_dir, manifest: dict, splits, image_size: int):
    """(images, chars, writers) of the dataset's `splits`, concatenated."""
    images, chars, writers = [], [], []
    for name in splits:
        if name not in manifest["splits"]:
            raise StyleError(f"{data_dir} has no split {name!r}; it has "
                             f"{sorted(manifest['splits'])}")
        im, ch, wr = load_glyphs(data_dir, name, image_size)
        images.append(im)
        chars.append(ch)
        writers.append(wr)
    return (np.concatenate(x) for x in (images, chars, writers))


def _choose_writer(data_dir, present: list, writer: Optional[str]) -> str:
    listed = f"{', '.join(present[:5])}{', ...' if len(present) > 5 else ''}"
    if writer is None:
        if len(present) != 1:
            raise StyleError(f"{data_dir} holds {len(present)} writers ({listed}); choose one "
                             f"with --writer")
        writer = present[0]
    if writer not in present:
        raise StyleError(f"writer {writer!r} is not in {data_dir} (it has {listed})")
    return writer


def samples_from_dataset(data_dir, charset: Sequence[str], image_size: int,
                         writer: Optional[str] = None, split: Optional[str] = None
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    """(images [N, R, R, 1] float, char ids in the MODEL's charset [N], writer name) of one writer
    of a dataset directory (all splits unless `split`). Characters the model lacks are an error."""
    manifest = tfrecords.load_manifest(data_dir)
    splits = [split] if split else sorted(manifest["splits"])
    images, chars, writers = _load_splits(data_dir, manifest, splits, image_size)
    names = manifest["writers"]
    writer = _choose_writer(data_dir, sorted({names[i] for i in writers}), writer)
    keep = writers == names.index(writer)
    labels = manifest["charset"]
    index = {label: i for i, label in enumerate(charset)}
    missing = sorted({labels[c] for c in chars[keep] if labels[c] not in index})
    if missing:
        raise StyleError(f"{data_dir}: characters {missing} are not in the model's charset")
    ids = np.array([index[labels[c]] for c in chars[keep]], np.int32)
    return images[keep], ids, writer


def _decode_label(stem: str) -> str:
    """The character a glyph file is named for: "a_1" -> "a", "U+00E9_2" -> "é"; NFC, so a
    decomposed name (as macOS writes "é") is the same character."""
    label = stem.split("_")[0]
    if label.upper().startswith("U+"):
        label = "".join(chr(int(part, 16)) for part in label[2:].split("+"))
    return unicodedata.normalize("NFC", label)


def _char_index(charset: Sequence[str]) -> dict:
    """{label or one character of a label: char id} (whole labels first)."""
    index = {label: i for i, label in enumerate(charset)}
    for label in charset:
        for ch in label:
            index.setdefault(ch, index[label])
    return index


def _read_glyph(path: Path, image_size: int) -> np.ndarray:
    """One glyph image file -> float [R, R, 1] in [-1, 1], ink detected and cropped."""
    import cv2


    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise StyleError(f"{path} is not a readable image")
    ink = gray.astype(np.float32) / 255.0
    if np.median(ink) > 0.5:  # light paper: ink is dark
        ink = 1.0 - ink
    ink = np.clip((ink - np.percentile(ink, 50)) / max(1e-3, ink.max() - np.percentile(ink, 50)),
                  0, 1)
    ys, xs = np.nonzero(ink > 0.25)
    if len(xs) == 0:
        raise StyleError(f"{path} has no ink")
    bbox = (xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0)
    glyph = normalize_glyph(ink, bbox, image_size)
    return glyph.astype(np.float32)[..., None] / 127.5 - 1.0


def samples_from_images(folder, charset: Sequence[str], image_size: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Glyph images from a folder of PNG/JPEG files named "<char>_<anything>.png" (use U+0041
    style names for characters a file name cannot hold, e.g. U+002F for "/"): dark ink on light
    paper or the reverse (detected), cropped to the ink and normalised like extracted glyphs."""
    index = _char_index(charset)
    files = sorted(p for p in Path(folder).iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise StyleError(f"{folder} holds no glyph images (.png/.jpg) and no manifest.json")
    images, ids = [], []
    for path in files:
        label = _decode_label(path.stem)
        if label not in index:
            raise StyleError(f"{path}: character {label!r} (from the file name) is not in the "
                             "model's charset")
        images.append(_read_glyph(path, image_size))
        ids.append(index[label])
    return np.stack(images), np.array(ids, np.int32)
