"""Style files: JSON, {"format": "hwgan-style", "ws": [[...], ...], "model": {family,
resolution, w_dim, num_ws, charset}, "method", "chars", "k", ...}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from data_pipeline import atomic
from hw_gan.config import StyleError

STYLE_FORMAT = "hwgan-style"
STYLE_VERSION = 1


def save_style(path, ws, model_info: dict, overwrite: bool = False, **meta) -> None:
    """Writes a style file (atomically, a regular file only: a symbolic link at `path` is
    replaced only with `overwrite`)."""
    ws = np.asarray(ws, np.float32)
    if ws.ndim != 2 or ws.shape != (model_info["num_ws"], model_info["w_dim"]):
        raise StyleError(f"style ws {ws.shape} does not match the model "
                         f"({model_info['num_ws']}, {model_info['w_dim']})")
    doc = {"format": STYLE_FORMAT, "format_version": STYLE_VERSION, "model": model_info,
           # Every float32 exactly (its double's shortest repr): a style written and read back
           # draws the very page the style in memory draws.
           **meta, "ws": [[float(v) for v in row] for row in ws]}
    atomic.write_text(path, json.dumps(doc, ensure_ascii=False) + "\n", overwrite)


def _read_ws(path) -> tuple[np.ndarray, dict]:
    """(ws, the whole document) of a style file, checked to be a finite matrix."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StyleError(f"style file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StyleError(f"style file {path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != STYLE_FORMAT:
        raise StyleError(f"{path} is not an hwgan style file (format != {STYLE_FORMAT!r})")
    try:
        ws = np.asarray(doc["ws"], np.float32)
    except (KeyError, ValueError, TypeError):
        raise StyleError(f"style file {path}: 'ws' is missing or not a matrix") from None
    if ws.ndim != 2 or not np.isfinite(ws).all():
        raise StyleError(f"style file {path}: 'ws' must be a finite [layers, w_dim] matrix, "
                         f"got shape {ws.shape}")
    return ws, doc


def load_style(path, model_info: Optional[dict] = None) -> tuple[np.ndarray, dict]:
    """(ws float32 [L, w_dim], the file's other fields). With model_info, checks the style fits."""
    ws, doc = _read_ws(path)
    if model_info is not None:
        saved = doc.get("model", {})
        want = (model_info["num_ws"], model_info["w_dim"])
        family = model_info.get("family")
        if saved.get("family") and family and saved["family"] != family:
            raise StyleError(f"style file {path} was extracted with a {saved['family']} model; "
                             f"this is a {family} model: extract it again with this model")
        if ws.shape != want or saved.get("resolution") != model_info["resolution"]:
            raise StyleError(f"style file {path} was extracted for a model with styles "
                             f"{ws.shape} at {saved.get('resolution')} px; this model takes "
                             f"{want} at {model_info['resolution']} px")
        if list(saved.get("charset", [])) != list(model_info["charset"]):
            raise StyleError(f"style file {path} was extracted with another model (its charset "
                             "differs); extract it again with this model")
    return ws, {k: v for k, v in doc.items() if k != "ws"}
