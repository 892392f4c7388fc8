"""A fewshot export rebuilt with this checkout's graph from an existing export's weights, for when
the run directory that made it is gone (a shipped model) and the export's drawing changed:

  python -m hw_gan.export.rebuild OLD_EXPORT EXPORT_ROOT NAME [--version 1] [--overwrite]
      [--untrained_chars "QqZ&@"] [--untrained_style_clip 0.05] [--style_read_copies 8]

The decoder, the style glyph net and head are built from the export's model_config and take the
export's weights by variable name; the training writers' styles are the export's own table; the
font's content table and the accented letters' composition are this checkout's. `--untrained_chars`:
charset characters training held out (an export made before hwgan.json recorded them; default:
what it records, else none). `--untrained_style_clip`: the bound on the styles those characters
are drawn in (fewshot.limit_untrained; default: what the export's model_config records, else
this checkout's default). `--style_read_copies`: how many disturbed copies of the glyphs
extract_style reads a style from besides the glyphs (fewshot.reading_copies; default likewise). Outputs are written to a temporary name and renamed when complete
(export_generator); bad input exits with one line naming the path or field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from hw_gan.config import ModelConfig
from hw_gan.export.limits import ExportLimits
from hw_gan.export.loader import resolve_export_path
from hw_gan.export.module import tf_variable
from hw_gan.export.names import (METADATA_FILE, STYLE_CHARSET_KEY, UNTRAINED_CHARS_KEY,
                                 UNTRAINED_WRITERS_KEY, WRITER_GEOMETRY_KEY)
from hw_gan.export.saved_model import export_model
from hw_gan.models import fewshot
from hw_gan.training.fewshot_trainer import SERVING_VARIATION

__all__ = ["RebuildError", "rebuild_fewshot", "init_fewshot_from", "main"]


class RebuildError(ValueError):
    """An export that cannot be rebuilt (the message names the path or field)."""


def export_weights(module) -> dict:
    """{variable name: value} of a loaded export's generator and style variables."""
    out = {}
    for attr in ("generator_variables", "fewshot_style_variables"):
        for v in getattr(module, attr, None) or ():
            out[v.name] = v.numpy()
    return out


def assign_weights(models, weights: dict, where: Path) -> set:
    """Each weight of `models` set from `weights` (export_weights) by its variable name; returns
    the names used. RebuildError naming `where` and the weight when one is missing or of
    another shape."""
    used = set()
    for model in models:
        for v in model.weights:
            name = tf_variable(v).name
            used.add(name)
            if name not in weights:
                raise RebuildError(f"{where}: the export has no weight {name!r} for "
                                   f"{model.name} (made by another architecture?)")
            if tuple(weights[name].shape) != tuple(v.shape):
                raise RebuildError(f"{where}: weight {name!r} is {weights[name].shape} in the "
                                   f"export, {tuple(v.shape)} in this checkout's {model.name}")
            v.assign(weights[name])
    return used


def _fewshot_export(spec, what: str) -> tuple[Path, Path, dict]:
    """(version dir, its hwgan.json, that metadata) of the fewshot export `spec` (a version dir,
    its parent or a shipped model's name); RebuildError naming the path when it is missing,
    unreadable or of another family ("only a fewshot export `what`")."""
    try:
        path = resolve_export_path(spec)
    except (OSError, ValueError) as e:
        raise RebuildError(str(e)) from None
    info_path = path / "assets" / METADATA_FILE
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RebuildError(f"{info_path}: cannot read the export's metadata ({e})") from None
    if info.get("family") != "fewshot":
        raise RebuildError(f"{info_path}: family is {info.get('family')!r}; only a fewshot export "
                           f"{what}")
    return path, info_path, info


def init_fewshot_from(spec, generators) -> Path:
    """Each fewshot generator of `generators` (a trainer's generator and EMA generator) set to
    the weights of the fewshot export `spec` (its decoder, style glyph net and head, by variable
    name): a run that goes on from a shipped model whose run directory is gone. Returns the
    export's version dir; RebuildError naming the path, field or weight that does not fit."""
    path, _, _ = _fewshot_export(spec, "can start a fewshot run")
    weights = export_weights(tf.saved_model.load(str(path)))
    for generator in generators:
        used = assign_weights(fewshot.parts(generator), weights, path)
        unused = sorted(n for n in set(weights) - used if not n.startswith(f"{fewshot.TABLES}/"))
        if unused:
            raise RebuildError(f"{path}: the export has {len(unused)} weights this run's model "
                               f"lacks, e.g. {unused[0]!r} (made by another architecture?)")
    return path


def rebuild_fewshot(old, export_root, name: str, version: int = 1, *,
                    untrained_chars: Optional[str] = None,
                    untrained_style_clip: Optional[float] = None,
                    style_read_copies: Optional[int] = None,
                    overwrite: bool = False) -> Path:
    """The export at `old` (a fewshot SavedModel version dir, `.../name`, or a shipped model's
    name) written again as `export_root/name/version` with this checkout's graph (module doc).
    Returns the new version directory."""
    path, info_path, info = _fewshot_export(old, "can be rebuilt")
    try:
        cfg = ModelConfig(**info["model_config"])
        charset, writers = list(info["charset"]), list(info["writers"])
        limits = ExportLimits(**info["limits"])
    except KeyError as e:
        raise RebuildError(f"{info_path}: no {e.args[0]!r} field") from None
    except TypeError as e:
        raise RebuildError(f"{info_path}: a model_config or limits field this checkout does not "
                           f"know ({e})") from None
    if untrained_chars is None:
        untrained_chars = info.get(UNTRAINED_CHARS_KEY, "")
    strays = [c for c in untrained_chars if c not in charset]
    if strays:
        raise RebuildError(f"--untrained_chars: {''.join(strays)!r} not in the export's charset")
    if untrained_style_clip is not None:
        if not 0.0 <= untrained_style_clip <= 10.0:
            raise RebuildError(f"--untrained_style_clip: {untrained_style_clip} is outside [0, 10] "
                               "(standard deviations)")
        cfg = dataclasses.replace(cfg, untrained_style_clip=float(untrained_style_clip))
    if style_read_copies is not None:
        if not 0 <= style_read_copies <= 32:
            raise RebuildError(f"--style_read_copies: {style_read_copies} is outside [0, 32]")
        cfg = dataclasses.replace(cfg, style_read_copies=int(style_read_copies))
    module = tf.saved_model.load(str(path))
    weights = export_weights(module)
    glyph_net, head, decoder = fewshot.parts(fewshot.build_generator(cfg))
    assign_weights((glyph_net, head, decoder), weights, path)
    styles = weights.get(f"{fewshot.TABLES}/writer_styles:0")
    if styles is None or styles.shape[0] != len(writers):
        raise RebuildError(f"{path}: no table of {len(writers)} writer styles in the export")
    try:
        generator, codes = fewshot.font_serving_generator(
            cfg, decoder, charset, styles, SERVING_VARIATION, untrained_chars,
            cfg.untrained_style_clip)
    except ValueError as e:
        raise RebuildError(f"{info_path}: {e}") from None
    old_contents = weights.get(f"{fewshot.TABLES}/contents:0")
    contents = generator.get_layer(fewshot.TABLES).contents.numpy()  # this checkout's font
    if old_contents is None or not np.array_equal(old_contents, contents):
        raise RebuildError(f"{path}: its font content table is not this checkout's (another "
                           "font version); retrain or export from the run")
    metadata = {STYLE_CHARSET_KEY: "".join(chr(int(c)) for c in codes),
                UNTRAINED_CHARS_KEY: untrained_chars}
    return export_model(generator, cfg, charset, writers, export_root, name, version,
                        overwrite=overwrite, style_parts=(glyph_net, head, codes),
                        untrained_writers=info.get(UNTRAINED_WRITERS_KEY, ()),
                        writer_geometry=info.get(WRITER_GEOMETRY_KEY),
                        metadata=metadata, limits=limits)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hw_gan.export.rebuild", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="the export to rebuild (version dir, .../name, or a shipped name)")
    p.add_argument("export_root")
    p.add_argument("name")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--untrained_chars", default=None)
    p.add_argument("--untrained_style_clip", type=float, default=None)
    p.add_argument("--style_read_copies", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        out = rebuild_fewshot(args.old, args.export_root, args.name, args.version,
                              untrained_chars=args.untrained_chars,
                              untrained_style_clip=args.untrained_style_clip,
                              style_read_copies=args.style_read_copies,
                              overwrite=args.overwrite)
    except (RebuildError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
