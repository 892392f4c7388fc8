"""`hwgan style`: take a writer's style from a few glyphs, and mix styles.

  hwgan style extract --model runs/unipen_stylegan_cpu --samples data/alice --out alice.style
  hwgan style extract --model export/unipen_stylegan_cpu --samples glyphs/ --method encoder ...
  hwgan style mix alice.style bob.style --model export/unipen_stylegan_cpu --layers 3-6 \\
      --out mix.png [--chars "Handwriting"] [--save mixed.style]

--model is a stylegan run directory (config.json + checkpoints: every method and feature), its
export (SavedModel: the encoder and encoder+projection through its `extract_style` signature)
or a shipped stylegan model's name (`hwgan models`; its export). --samples is a dataset directory (e.g. from `hwgan extract` of template sheets;
--writer picks one writer when it holds several) or a folder of glyph images named
"<char>_<anything>.png" (U+XXXX for characters a file name cannot hold).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from data_pipeline import atomic
from data_pipeline.schema import to_uint8
from hw_gan import inversion as extract_lib
from hw_gan.cli import errors
from hw_gan.export import LoadedExport, load_export
from hw_gan.export.names import default_style_method
from hw_gan.export.signatures import style as sig
from hw_gan.inversion import StyleError
from hw_gan.models.stylegan import mix_styles
from hw_gan.training import run_dir


class ExportStyles:
    """Style extraction and drawing through an export's signatures."""

    def __init__(self, path):
        self.loaded = path if isinstance(path, LoadedExport) else load_export(path)
        missing = [n for n in (sig.EXTRACT_STYLE, sig.GLYPHS_WITH_STYLE, sig.MEAN_STYLE)
                   if n not in self.loaded.signatures]
        if missing:
            raise StyleError(f"{self.loaded.path} is a {self.loaded.family} export without style "
                             f"signatures ({', '.join(missing)}); style needs a stylegan model")
        mean = self.loaded.signatures[sig.MEAN_STYLE]()["style"].numpy()
        self.family = self.loaded.family
        self.default_method = self.loaded.default_style_method
        # The characters samples may show and a style may draw (a fewshot export: its font's).
        self.charset = list(self.loaded.style_charset)
        self.resolution = int(self.loaded.resolution)
        self.info = {"family": self.family, "resolution": self.resolution,
                     "w_dim": int(mean.shape[1]), "num_ws": int(mean.shape[0]),
                     "charset": list(self.loaded.charset)}

    def model_info(self) -> dict:
        return self.info

    def extract(self, images, char_ids, method: Optional[str], steps: int) -> np.ndarray:
        method = check_method(self.family, method, self.default_method)
        if method == "projection":
            raise StyleError("--method=projection (from the mean style) needs a run directory; "
                             "an export offers encoder and both")
        out = self.loaded.signatures[sig.EXTRACT_STYLE](
            images=to_uint8(tf.constant(images)),
            chars=tf.constant([self.charset[i] for i in char_ids]),
            steps=tf.constant(0 if method == "encoder" else steps, tf.int32))
        return out["style"].numpy()

    def draw(self, ws, chars: str, seed: int = 0) -> np.ndarray:
        out = self.loaded.signatures[sig.GLYPHS_WITH_STYLE](
            chars=tf.constant(list(chars), tf.string, shape=[len(chars)]),
            style=tf.constant(np.asarray(ws, np.float32)),
            seed=tf.constant(seed, tf.int64), variation=tf.constant(0.0))
        return out["images"].numpy()


class _RunStyles:
    """Style extraction and drawing from a training run (checkpoint)."""

    def __init__(self, path):
        self.model = extract_lib.load_model(path)
        self.family = self.model.family
        self.default_method = None
        self.charset = self.model.charset
        self.resolution = self.model.resolution

    def model_info(self) -> dict:
        return self.model.model_info()

    def extract(self, images, char_ids, method: Optional[str], steps: int,
                feature: str = extract_lib.ProjectionConfig.feature) -> np.ndarray:
        method = check_method(self.family, method)
        if self.family == "fewshot":
            return self.model.extract(images[None], np.asarray(char_ids)[None])
        cfg = extract_lib.ProjectionConfig(steps=steps, feature=feature)
        return self.model.extract(images[None], np.asarray(char_ids)[None], method=method,
                                  projection=cfg)[0]

    def draw(self, ws, chars: str, seed: int = 0) -> np.ndarray:
        index = {}
        for i, label in enumerate(self.charset):
            for ch in label:
                index.setdefault(ch, i)
        unknown = sorted({c for c in chars if c not in index})
        if unknown:
            raise StyleError(f"characters {unknown} are not in the model's charset")
        ids = np.array([index[c] for c in chars], np.int32)
        return np.asarray(to_uint8(self.model.generate(ws, ids)))


def check_method(family: str, method: Optional[str], default: Optional[str] = None) -> str:
    """The extraction method: `method`, else `default` (an export's default_style_method), else
    the family's (names.default_style_method). StyleError for a method the family does not
    have."""
    if family == "fewshot" and method not in (None, "encoder"):
        raise StyleError(f"--method {method}: a fewshot model reads a style in one pass "
                         "(encoder); projection is for stylegan models")
    return method or default or default_style_method(family)


def open_model(path):
    p = Path(path)
    if run_dir.is_run_dir(p):
        return _RunStyles(p)
    return ExportStyles(p)


def load_samples(args, charset, resolution):
    """(images, char ids into `charset`, writer name) from --samples (a dataset directory, with
    --writer when it has several, or a folder of glyph images), at most --k of them."""
    folder = Path(args.samples)
    if (folder / "manifest.json").is_file():
        images, ids, writer = extract_lib.samples_from_dataset(folder, charset, resolution,
                                                               writer=args.writer)
    elif folder.is_dir():
        images, ids = extract_lib.samples_from_images(folder, charset, resolution)
        writer = args.writer or folder.name
    else:
        raise StyleError(f"--samples {folder}: not a dataset directory or a folder of images")
    if args.k:
        keep = extract_lib.pick_samples(ids, args.k, np.random.default_rng(args.seed))
        images, ids = images[keep], ids[keep]
    return images, ids, writer


def _extract(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="hwgan style extract",
                                description="Extract a portable style file from a few glyphs.")
    p.add_argument("--model", required=True, help="stylegan run directory, export or "
                   "shipped model name")
    p.add_argument("--samples", required=True, help="dataset directory or folder of glyph images")
    p.add_argument("--writer", help="writer to take from a dataset with several")
    p.add_argument("--out", required=True, help="style file to write (e.g. alice.style)")
    p.add_argument("--method", choices=extract_lib.METHODS, default=None,
                   help="stylegan: encoder (fast), projection (from the mean style), both "
                   "(encoder, then projection); default: the one a shipped model's card names, "
                   "else both; fewshot: encoder (its only method)")
    p.add_argument("--steps", type=int, default=extract_lib.ProjectionConfig.steps,
                   help="projection steps")
    p.add_argument("--feature", choices=extract_lib.FEATURES,
                   default=extract_lib.ProjectionConfig.feature,
                   help="projection feature loss (run directories only)")
    p.add_argument("--k", type=int, default=0, help="use at most k samples (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="--out may be a symbolic link: the link is replaced, not its target")
    args = p.parse_args(argv)
    try:
        if args.steps < 0 or args.k < 0:
            raise StyleError("--steps and --k must be >= 0")
        atomic.check_output(args.out, args.overwrite, "--out")
        model = open_model(args.model)
        images, ids, writer = load_samples(args, model.charset, model.resolution)
        t0 = time.perf_counter()
        if isinstance(model, _RunStyles):
            ws = model.extract(images, ids, args.method, args.steps, args.feature)
        else:
            ws = model.extract(images, ids, args.method, args.steps)
        seconds = time.perf_counter() - t0
        method = check_method(model.family, args.method, model.default_method)
        chars = "".join(sorted({model.charset[i] for i in ids}))
        extract_lib.save_style(args.out, ws, model.model_info(), args.overwrite, writer=writer,
                               method=method, steps=0 if method == "encoder" else args.steps,
                               k=int(len(ids)),
                               chars=chars, samples=str(args.samples))
    except (ValueError, OSError) as e:
        return errors.report(e)
    print(f"{args.out}: style of {writer!r} from {len(ids)} glyphs ({method}, "
          f"{seconds:.2f} s)")
    return 0


def parse_layers(spec: str, num_ws: int) -> list[int]:
    """"3-6" / "0,1,2" / "fine" (the upper half) / "coarse" (the lower half) -> layer indices."""
    spec = spec.strip()
    if spec in ("fine", "coarse"):
        half = num_ws // 2
        return list(range(half, num_ws)) if spec == "fine" else list(range(0, half))
    out = []
    for part in spec.split(","):
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                out.extend(range(a, b + 1))
            elif part:
                out.append(int(part))
        except ValueError:
            raise StyleError(f"--layers {spec!r}: expected ranges like 3-6 or 0,1,2") from None
    bad = [i for i in out if not 0 <= i < num_ws]
    if not out or bad:
        raise StyleError(f"--layers {spec!r}: layers must be in 0..{num_ws - 1}")
    return sorted(set(out))


def _mix(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hwgan style mix", description="Mix two styles: the layers in --layers come from B, "
        "the others from A (low layers: structure and proportions; high layers: stroke), and "
        "write a PNG grid (rows: A, B, A+B's layers, B+A's layers).")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--model", required=True, help="stylegan run directory, export or "
                   "shipped model name")
    p.add_argument("--layers", default="fine", help="layers taken from B: 3-6, 0,1,2, fine, "
                   "coarse (default fine)")
    p.add_argument("--out", required=True, help="PNG grid to write")
    p.add_argument("--chars", default="Handwriting2024", help="characters in each row")
    p.add_argument("--save", help="also save the A+B mix as a style file")
    p.add_argument("--overwrite", action="store_true", help="--out and --save may be symbolic "
                   "links: the links are replaced, not their targets")
    args = p.parse_args(argv)
    try:
        import cv2

        atomic.check_output(args.out, args.overwrite, "--out")
        if args.save:
            atomic.check_output(args.save, args.overwrite, "--save")
        model = open_model(args.model)
        info = model.model_info()
        a, meta_a = extract_lib.load_style(args.a, info)
        b, meta_b = extract_lib.load_style(args.b, info)
        layers = parse_layers(args.layers, info["num_ws"])
        ab = mix_styles(a[None], b[None], layers)[0].numpy()
        ba = mix_styles(b[None], a[None], layers)[0].numpy()
        chars = args.chars.replace(" ", "")
        rows = [model.draw(ws, chars) for ws in (a, b, ab, ba)]
        r = model.resolution
        grid = np.concatenate([np.concatenate(list(row[..., 0]), axis=1) for row in rows])
        grid = 255 - grid  # dark ink on white paper
        ok, png = cv2.imencode(".png", cv2.resize(grid, None, fx=2, fy=2,
                                                   interpolation=cv2.INTER_NEAREST))
        if not ok:
            raise StyleError("could not encode the PNG grid")
        atomic.write_bytes(args.out, png.tobytes(), args.overwrite)
        if args.save:
            extract_lib.save_style(args.save, ab, info, args.overwrite, method="mix",
                                   a=str(args.a), b=str(args.b), layers_from_b=layers,
                                   writer=f"{meta_a.get('writer', 'A')}+{meta_b.get('writer', 'B')}")
    except (ValueError, OSError) as e:
        return errors.report(e)
    print(f"{args.out}: rows A, B, A with B's layers {layers}, B with A's ({r}px glyphs)")
    return 0


def style_main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"extract": _extract, "mix": _mix}
    if not argv or argv[0] not in commands:
        print(__doc__.strip())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:])
