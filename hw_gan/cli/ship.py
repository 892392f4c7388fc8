"""`hwgan ship` (for developers): package a finished run and its export as a shipped model.

  hwgan ship runs/unipen_style_cgan_cpu --export export/unipen_style_cgan_cpu --name unipen_hands
  hwgan ship runs/unipen_stylegan_cpu --export export/unipen_stylegan_cpu --name unipen_styles \\
      [--root DIR] [--overwrite] [--command "python train_main.py ..."] [--training_time "..."]

Writes `<root>/<name>/` (default root: hw_gan/shipped, or $HWGAN_SHIPPED_MODELS) as hw_gan.shipped
describes it: the export as version 1; for a char+writer model also `run/` (config.json,
dataset.json with the writers it never trained, one checkpoint of the models without optimizer
state, which is what adaptation's --init reads); model.json (sizes and sha256 of every file) and
MODEL_CARD.md (from the run's config.json and eval.json; with --style_eval, the held-out style
table, and a style export's default extraction method, the best one at k = 10, written into its
hwgan.json as "style_method"). Variable files larger than the per-file
limit are split into shards; any other file over it fails, naming the file. The folder appears
whole or not at all.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from data_pipeline import atomic
from data_pipeline.progress import format_seconds
from hw_gan import shipped
from hw_gan.adaptation.data import UNTRAINED_KEY
from hw_gan.cli import errors
from hw_gan.evaluation import judge as judge_files
from hw_gan.export import load_export
from hw_gan.export.names import EXTRACT_STYLE, METADATA_FILE, STYLE_METHOD_KEY
from hw_gan.training import run_dir
from hw_gan.training.trainer import CHECKPOINT_DIR

LICENCE = "CC-BY-4.0"
JUDGE_DIR = "judge"  # a shipped model's character judge (--judge), as judge.load_judge_dir reads it
JUDGE_FILES = (judge_files.META_FILE, judge_files.WEIGHTS_FILE)
CHARSET_LIMITS = {
    "fewshot": "- Characters: any the content font (DejaVu Sans) covers. The training set is "
               "ASCII letters,\n  digits and the 32 UNIPEN symbols; accented Latin letters are "
               "drawn as their base letter\n  and a mark (both in the style); any other "
               "character is drawn from the font's shape alone,\n  which is weaker (the "
               "held-out table's \"characters never trained on\" rows).",
}
CHARSET_LIMITS_DEFAULT = ("- The character set is Latin only (ASCII letters, digits and the 32 "
                          "UNIPEN symbols); other\n  characters follow `--missing` (error, skip, "
                          "box or a similar character).")
MAX_GAP_S = 600.0  # training time: gaps between summaries longer than this are pauses
WEAK_BELOW = 0.9  # per-character legibility ratio under which a character is weak
WEAK_SHOWN = 12

CARD = """\
# {name}: {title}

A trained {family} model of handwriting, shipped with hwgan. Use it by name:
`hwgan write --model {name} ...` (see `hwgan models` and the README, "Write in a real hand
now").

| | |
| --- | --- |
| family | {family} |
| writers | {writers} |
| characters | {num_chars}: `{charset}` |
| glyph size | {resolution} x {resolution} px |
| size on disk | {size} |
| training steps | {step} |
| training time on this machine | {training_time} |
| licence | {licence} |
{run_row}{judge_row}
## Data and licence

Trained on UNIPEN train_r01_v07 (isolated characters: categories 1a digits, 1b upper case, 1c lower
case, 1d symbols), published on Zenodo as doi:10.5281/zenodo.1195803 under the Creative Commons
Attribution 4.0 International licence (CC BY 4.0). The model is a work derived from that data and
is shared under the same licence; cite the data as:

> I. Guyon, L. Schomaker, R. Plamondon, M. Liberman, S. Janet, "UNIPEN project of on-line data
> exchange and recognizer benchmarks", Proceedings of the 12th International Conference on
> Pattern Recognition (ICPR), 1994. Data: doi:10.5281/zenodo.1195803 (CC BY 4.0).

## How it was trained

```bash
{command}
```

The resolved configuration (the run's config.json, trimmed to what defines the model and its
training):

```json
{config}
```

## Evaluation

From the run's eval.json (step {eval_step}); how each figure is measured: docs/results.md.

{evaluation}
{style_eval}
## Weak characters

{weak}

## Intended use

Writing notes, letters and cards in a real person's hand for people who can no longer write by
hand: in one of the shipped writers' hands, in a hand taken from a few of a person's own glyphs,
or (char+writer models) as the base a person's own template sheets are added to.

## Limitations

- Glyphs are {resolution} x {resolution} px, traced to vector outlines for SVG and PDF: fine
  strokes and small details of a hand are lost, and large print shows the tracing.
- Every character is an isolated glyph placed on a baseline: there are no joins, so cursive
  hands come out as print.
{charset_limits}
- The writers are the volunteers of the UNIPEN collection (1990s, mostly North American and
  European labs), writing isolated characters into boxes on a tablet; a hand in this model is
  how they wrote on that tablet, not on paper.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwgan ship", description="Package a finished run and its "
                                "export as a shipped model (developers).")
    p.add_argument("run", help="the finished run directory (config.json, dataset.json, "
                   "eval.json, checkpoints/)")
    p.add_argument("--export", help="its export (NAME or NAME/VERSION; default: the run's "
                   "--export_dir/--export_name)")
    p.add_argument("--name", required=True, help="the shipped name, e.g. unipen_hands")
    p.add_argument("--title", default="", help="a one-line description for the card")
    p.add_argument("--root", help=f"where shipped models live (default: ${shipped.ROOT_ENV} or "
                   "the package's hw_gan/shipped)")
    p.add_argument("--command", default="", help="the command that trained the run (default: "
                   "train_main.py with configs/<run name>.cfg when that config exists)")
    p.add_argument("--training_time", "--training-time", dest="training_time", default="",
                   help="how long training took on this machine (default: summed from the "
                   "run's summaries, pauses left out)")
    p.add_argument("--style_eval", "--style-eval", dest="style_eval", default="",
                   help="the JSON of `benchmarks/style_eval.py --out_json` for this run: its "
                   "table (styles from k glyphs of held-out writers) goes into the card")
    p.add_argument("--judge", default="", help="a character judge folder (judge.json + "
                   "weights, e.g. DATA/judges/char-...) to ship beside the model as judge/")
    p.add_argument("--licence", default=LICENCE)
    p.add_argument("--max_file_mb", "--max-file-mb", dest="max_file_mb", type=float,
                   default=shipped.MAX_FILE_BYTES / 1e6, help="largest file allowed (MB)")
    p.add_argument("--no_run", "--no-run", dest="no_run", action="store_true",
                   help="ship the export only (a char+writer model then cannot be adapted)")
    p.add_argument("--overwrite", action="store_true", help="replace a shipped model of that name")
    return p


# -------------------------------------------------------------------------------------------
# Variable bundles (a checkpoint, a SavedModel's variables/) split into shards.


def reshard_bundle(prefix: Path, max_bytes: int) -> int:
    """Rewrites the tensor bundle at `prefix` (prefix.index + prefix.data-*) as shards of at
    most `max_bytes` of tensor data each; returns the number of shards. A single tensor larger
    than that is a ValueError naming it. The result reads like any sharded TF checkpoint."""
    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    tensors = {k: reader.get_tensor(k) for k in sorted(dtypes)}
    groups, size = [[]], 0
    for key, value in tensors.items():
        nbytes = getattr(value, "nbytes", len(value) if isinstance(value, bytes) else 8)
        if nbytes > max_bytes:
            raise ValueError(f"{prefix}.data-*: the tensor {key} alone is {nbytes / 1e6:.1f} "
                             f"MB, over the {max_bytes / 1e6:g} MB limit per file")
        if groups[-1] and size + nbytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(key)
        size += nbytes
    if len(groups) == 1:
        return 1
    for old in prefix.parent.glob(prefix.name + ".*"):
        old.unlink()
    tmp = prefix.parent / f".{prefix.name}.shards"
    tmp.mkdir()
    parts = []
    for i, keys in enumerate(groups):
        part = str(tmp / f"part-{i:05d}")
        tf.raw_ops.SaveV2(prefix=part, tensor_names=keys, shape_and_slices=[""] * len(keys),
                          tensors=[tf.constant(tensors[k], dtype=dtypes[k]) for k in keys])
        parts.append(part)
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=str(prefix),
                                  delete_old_dirs=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return len(groups)


def _split_large(folder: Path, limit: int) -> None:
    """Every variable bundle of `folder` with a data file over `limit`, resharded (a margin
    keeps each shard's file, with its alignment, under the limit)."""
    prefixes = {p.with_name(p.name.split(".data-")[0])
                for p in folder.rglob("*.data-*-of-*") if p.stat().st_size > limit}
    for prefix in sorted(prefixes):
        try:
            reshard_bundle(prefix, int(limit * 0.9))
        except ValueError as e:  # name the file inside the model, not the staging folder
            raise ValueError(str(e).replace(str(folder) + "/", "") + "; nothing was shipped") \
                from None


def _check_sizes(folder: Path, limit: int, variables: bool = True) -> None:
    """ValueError naming the first file over `limit` (variable files only when `variables`)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if not variables and ".data-" in path.name:
            continue
        size = path.stat().st_size
        if size > limit:
            raise ValueError(f"{path.relative_to(folder)} is {size / 1e6:.1f} MB, over the "
                             f"{limit / 1e6:g} MB limit per file in git (it cannot be split: "
                             f"only variable files are); nothing was shipped")


# -------------------------------------------------------------------------------------------
# The run's files.


def _ship_run(run: Path, out: Path, untrained: Sequence[str], export: Path) -> int:
    """out/run: config.json, dataset.json (+ untrained writers), one models-only checkpoint
    without the EMA generator, whose weights the shipped export (`export`, the version folder
    beside run/) already carries: generator.json points there, checked here to give back the
    same weights (no file twice, so a model stays small); returns its step."""
    trainer = run_dir.restore_trainer(run)
    step = int(trainer.step.numpy())
    ckpt_dir = out / CHECKPOINT_DIR
    ckpt_dir.mkdir(parents=True)
    bundle = export / "variables" / "variables"
    reader = tf.train.load_checkpoint(str(bundle))
    for i, v in enumerate(trainer.ema_generator.variables):
        key = f"generator_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"
        if not np.array_equal(reader.get_tensor(key), v.numpy()):
            raise ValueError(f"the export {export} does not hold this run's EMA generator "
                             f"(variable {i}, {v.path}, differs): export the run's last "
                             "checkpoint and ship again")
    (out / run_dir.GENERATOR_FILE).write_text(json.dumps({"variables": os.path.relpath(
        bundle, out)}) + "\n", encoding="utf-8")
    ckpt = trainer.model_checkpoint(with_generator=False)
    ckpt.save_counter  # noqa: B018 -- created now so that it is written (restore expects it)
    ckpt.write(str(ckpt_dir / f"ckpt-{step}"))
    (ckpt_dir / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{step}"\n'
                                         f'all_model_checkpoint_paths: "ckpt-{step}"\n')
    shutil.copyfile(run / run_dir.CONFIG_FILE, out / run_dir.CONFIG_FILE)
    info = json.loads((run / run_dir.DATASET_FILE).read_text(encoding="utf-8"))
    info[UNTRAINED_KEY] = list(untrained)
    (out / run_dir.DATASET_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return step


def training_seconds(run: Path) -> Optional[float]:
    """Seconds of training summed from the run's training summaries (consecutive events less
    than MAX_GAP_S apart; a resumed run's pause is left out); None without summaries."""
    times = []
    for path in run.rglob("events.out.tfevents.*"):
        if "eval" in path.relative_to(run).parts:
            continue
        try:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                times.append(event.wall_time)
        except tf.errors.DataLossError:  # a file cut short by a kill: what was read counts
            pass
    times.sort()
    if len(times) < 2:
        return None
    return float(sum(b - a for a, b in zip(times, times[1:]) if b - a < MAX_GAP_S))


def _command(run: Path, given: str) -> str:
    if given:
        return given
    cfg = Path("configs") / f"{run.name}.cfg"
    if cfg.is_file():
        return f"python train_main.py --flagfile={cfg.as_posix()}  # + the data flags it names"
    return f"(not recorded: the run's configuration is below; {run}/config.json)"


# -------------------------------------------------------------------------------------------
# The card.


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def evaluation_lines(ev: dict) -> str:
    """Markdown bullet lines of eval.json's headline figures."""
    if not ev:
        return "No eval.json in the run: not evaluated."
    lines = []
    leg = ev.get("legibility", {})
    if "ratio" in leg:
        met = "met" if leg["ratio"] >= 0.95 else "**not met**"
        lines.append(f"- legibility ratio (generated / real held-out accuracy of the character "
                     f"judge): **{_fmt(leg['ratio'])}** (target >= 0.95: {met})")
    wm = ev.get("writer_match")
    if isinstance(wm, dict) and "generated" in wm:
        chance = wm.get("chance")
        ratio = f" = {wm['generated'] / chance:.1f}x chance" if chance else ""
        met = ("" if not chance else ": met" if wm["generated"] / chance >= 20 else
               ": **not met**")
        real = wm.get("real")
        real_text = (f"{_fmt(real)} = {real / chance:.1f}x chance" if chance and real
                     else _fmt(real if real is not None else "?"))
        lines.append(f"- writer match (the writer judge names the intended writer): "
                     f"**{_fmt(wm['generated'])}**{ratio} (target >= 20x{met}; the judge on real "
                     f"held-out glyphs: {real_text})")
    for key in ("fid", "kid"):
        if key in ev:
            lines.append(f"- {key.upper()} in the judge's feature space: {_fmt(ev[key])}")
    return "\n".join(lines) or "eval.json holds no headline figures."


STYLE_TARGET_K = 10
# style_eval's method names -> extract_style's methods (what an export offers: no projection
# from the mean style, which needs the run).
EXPORT_METHODS = {"encoder": "encoder", "encoder + projection": "both"}


def style_method(doc: dict) -> Optional[str]:
    """The default extraction method for an export of this model: of those an export offers, the
    one with the highest writer match at k = STYLE_TARGET_K in style_eval's table (None when the
    table has neither)."""
    rows = [r for r in doc.get("table") or []
            if r["k"] == STYLE_TARGET_K and r["method"] in EXPORT_METHODS]
    return EXPORT_METHODS[max(rows, key=lambda r: r["writer_match"])["method"]] if rows else None


def _recaptured(row: dict) -> bool:
    return row.get("references", "clean") != "clean"


def _label(row: dict) -> str:
    """A table row's method, marked when its references came through another capture."""
    return row["method"] + (" [re-captured]" if _recaptured(row) else "")


def fewshot_target_lines(rows: list, met) -> list:
    """Issue 18's bar at k = STYLE_TARGET_K: characters never trained on (legibility >= 0.7),
    clean references (writer match >= 7x chance, FID <= 3, legibility >= 0.95) and re-captured
    ones (legibility >= 0.9, writer match >= 5x chance, FID below the mean style's)."""
    at_k = [r for r in rows if r["k"] == STYLE_TARGET_K and "[" not in r["method"]]
    base = [r for r in at_k if r["method"].startswith("mean style") and not _recaptured(r)]
    ours = [r for r in at_k if "baseline" not in r["method"]]
    unseen = [r for r in rows if r["k"] == STYLE_TARGET_K and "baseline" not in r["method"]
              and "[characters never trained on]" in r["method"] and not _recaptured(r)]
    out = [f"At k = {STYLE_TARGET_K}, characters never trained on (drawn from their font "
           f"image alone): legibility {r['legibility']:.2f} (target >= 0.7: "
           f"{met(r['legibility'] >= 0.7)}), writer match {r['writer_match_vs_chance']:.1f}x "
           f"chance ({r.get('num_generated', '?')} glyphs)." for r in unseen]
    for r in ours:
        if _recaptured(r):
            below = base and r["fid"] < base[0]["fid"]
            out.append(f"At k = {STYLE_TARGET_K}, references from another capture set-up "
                       f"({r['references']}): legibility {r['legibility']:.2f} (target >= 0.9: "
                       f"{met(r['legibility'] >= 0.9)}), writer match "
                       f"{r['writer_match_vs_chance']:.1f}x chance (target >= 5x: "
                       f"{met(r['writer_match_vs_chance'] >= 5)}), FID {r['fid']:.2f}"
                       + (f" (target: below the mean style's {base[0]['fid']:.2f}: "
                          f"{met(below)})" if base else "") + ".")
        else:
            out.append(f"At k = {STYLE_TARGET_K}, {r['method']}: writer match "
                       f"{r['writer_match_vs_chance']:.1f}x chance (target >= 7x: "
                       f"{met(r['writer_match_vs_chance'] >= 7)}), FID {r['fid']:.2f} (target "
                       f"<= 3: {met(r['fid'] <= 3)}), legibility {r['legibility']:.2f} "
                       f"(target >= 0.95: {met(r['legibility'] >= 0.95)}).")
    return out


def style_eval_lines(doc: dict, method: Optional[str] = None, family: str = "") -> str:
    """The card's section on styles taken from k glyphs of held-out writers, from
    benchmarks/style_eval.py's JSON: the table (rows whose references came through another
    capture set-up marked "[re-captured]") and, at k = STYLE_TARGET_K, the targets: for a
    fewshot model issue 18's (`fewshot_target_lines`); else the writer match of `method` (the
    export's default, see `style_method`; None: the best method) against the mean-style
    baseline (target >= 2x) and its FID (target <= 4)."""
    rows = doc.get("table") or []
    if not rows:
        return ""
    writers = doc.get("writers", "?")
    out = ["", f"### Styles from k glyphs of {writers} writers never seen in training", "",
           f"`benchmarks/style_eval.py` (protocol: docs/results.md); chance = 1/{writers}.", "",
           "| k | method | legibility | writer match (x chance) | FID |",
           "| --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['k']} | {_label(r)} | {r['legibility']:.2f} | "
                   f"{r['writer_match']:.3f} ({r['writer_match_vs_chance']:.1f}x) | "
                   f"{r['fid']:.2f} |")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    if family == "fewshot":
        out += [""] + "\n\n".join(fewshot_target_lines(rows, met)).split("\n")
        rows = []  # the other families' target paragraph does not apply
    at_k = [r for r in rows if r["k"] == STYLE_TARGET_K and not _recaptured(r)]
    base = [r for r in at_k if r["method"].startswith("mean style")]
    ours = [r for r in at_k if "baseline" not in r["method"] and "[" not in r["method"]]
    if method:
        ours = [r for r in ours if EXPORT_METHODS.get(r["method"]) == method]
    if base and ours:
        best = max(ours, key=lambda r: r["writer_match"])
        ratio = best["writer_match"] / max(base[0]["writer_match"], 1e-9)
        out += ["", f"At k = {STYLE_TARGET_K}, {best['method']}: writer match "
                f"{best['writer_match']:.3f}, {ratio:.1f}x the mean-style baseline's "
                f"{base[0]['writer_match']:.3f} (target >= 2x: {met(ratio >= 2)}); FID "
                f"{best['fid']:.2f} (target <= 4: {met(best['fid'] <= 4)}); legibility "
                f"{best['legibility']:.2f}."]
        if method:
            out += ["", f"This is the default method of `hwgan style extract`, `hwgan write "
                    f"--samples` and the app's fast hand for this model ({method}: the best "
                    f"writer match at k = {STYLE_TARGET_K} of the methods the export offers); "
                    f"`--method` picks another."]
    seconds = doc.get("extract_seconds_k10") or {}
    if seconds:
        out += ["", "Time to take one style from 10 glyphs on the 2-core CPU: " + ", ".join(
            f"{m} {s:.2f} s" for m, s in seconds.items()) + "."]
    return "\n".join(out) + "\n"


def weak_characters(ev: dict) -> tuple[list[tuple[str, float]], str]:
    """(weak characters with their legibility ratio, the card's paragraph) from eval.json's
    per-character legibility."""
    per = (ev.get("legibility") or {}).get("per_char") or {}
    if not per:
        return [], ("Not measured: the run's eval.json has no per-character legibility. Run "
                    "`python train_main.py --flagfile=... --mode=evaluate` and ship again.")
    ranked = sorted(((c, float(r)) for c, r in per.items() if r is not None),
                    key=lambda item: (item[1], item[0]))
    weak = [(c, r) for c, r in ranked if r < WEAK_BELOW]
    if not weak:
        worst = ", ".join(f"`{c}` {r:.2f}" for c, r in ranked[:5])
        return [], (f"None under a legibility ratio of {WEAK_BELOW}; the lowest: {worst}.")
    shown = ", ".join(f"`{c}` {r:.2f}" for c, r in weak[:WEAK_SHOWN])
    more = f" and {len(weak) - WEAK_SHOWN} more" if len(weak) > WEAK_SHOWN else ""
    return weak, (f"{len(weak)} of {len(ranked)} characters have a legibility ratio under "
                  f"{WEAK_BELOW} (the character judge reads them less often than real glyphs): "
                  f"{shown}{more}. Expect these to be misread more often; `--missing` does not "
                  f"replace them.")


def _card_config(cfg_json: dict) -> str:
    keep = {k: cfg_json[k] for k in ("model", "train", "data") if k in cfg_json}
    return json.dumps(keep, indent=1, sort_keys=True)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# -------------------------------------------------------------------------------------------


def ship(run: Path, export: Optional[str], name: str, root: Path, *, title: str = "",
         command: str = "", training_time: str = "", licence: str = LICENCE,
         max_file_bytes: int = shipped.MAX_FILE_BYTES, include_run: bool = True,
         overwrite: bool = False, style_eval: Optional[dict] = None,
         judge: Optional[Path] = None) -> Path:
    """Writes root/name (see the module docstring); returns it."""
    if not shipped.is_name(name):
        raise ValueError(f"--name {name!r}: a shipped name is letters, digits, '_', '-', '.'")
    cfg, _ = run_dir.load_run_config(run)
    cfg_json = json.loads((run / run_dir.CONFIG_FILE).read_text(encoding="utf-8"))
    if not export:
        export = str(Path(cfg.runtime.export_dir) / (cfg.runtime.export_name or run.name))
    loaded = load_export(export)
    with_run = include_run and loaded.family == "style_cgan"
    eval_path = run / "eval.json"
    ev = json.loads(eval_path.read_text(encoding="utf-8")) if eval_path.is_file() else {}
    seconds = training_seconds(run)
    time_text = training_time or (f"{format_seconds(seconds)} of training steps (summed from "
                                  f"the run's summaries)" if seconds else "not recorded")
    method = style_method(style_eval or {}) if EXTRACT_STYLE in loaded.signatures and \
        loaded.family != "fewshot" else None
    if judge is not None:
        lacking = [f for f in JUDGE_FILES if not (Path(judge) / f).is_file()]
        if lacking:
            raise ValueError(f"--judge {judge}: not a judge folder (no {', '.join(lacking)})")
    with atomic.atomic_dir(root / name, overwrite=overwrite) as tmp:
        shutil.copytree(loaded.path, tmp / "1")
        if judge is not None:  # the character judge its legibility figures come from
            (tmp / JUDGE_DIR).mkdir()
            for f in JUDGE_FILES:
                shutil.copyfile(Path(judge) / f, tmp / JUDGE_DIR / f)
        if method:  # the export's extract_style default (hw_gan.cli.style.check_method)
            info_path = tmp / "1" / "assets" / METADATA_FILE
            meta = json.loads(info_path.read_text(encoding="utf-8"))
            info_path.write_text(json.dumps(dict(meta, **{STYLE_METHOD_KEY: method}), indent=2,
                                            ensure_ascii=False) + "\n", encoding="utf-8")
        step = _ship_run(run, tmp / shipped.RUN_DIR, loaded.untrained_writers,
                         tmp / "1") if with_run \
            else int(ev.get("step", 0))
        _check_sizes(tmp, max_file_bytes, variables=False)  # what cannot be split fails first
        _split_large(tmp, max_file_bytes)
        _check_sizes(tmp, max_file_bytes)
        files = {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size,
                                                 "sha256": shipped.file_digest(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        size = sum(f["bytes"] for f in files.values())
        weak, weak_text = weak_characters(ev)
        trained = loaded.trained_writers() if loaded.uses_writer else ()
        card = CARD.format(
            name=name, title=title or f"{loaded.family}, {len(trained)} UNIPEN writers",
            family=loaded.family,
            writers=(f"{len(trained)} ({len(loaded.untrained_writers)} more rows never trained, "
                     "refused by name)") if loaded.uses_writer else
            "none by name: a style is taken from a person's glyphs",
            num_chars=len(loaded.charset) if len(loaded.style_charset) <= len(loaded.charset)
            else (f"{len(loaded.charset)} trained on (a style also draws any other of the "
                  f"{len(loaded.style_charset):,} characters its content font covers)"),
            charset="".join(loaded.charset).replace("`", "'"), resolution=loaded.resolution,
            size=_size(size), step=step, training_time=time_text, licence=licence,
            run_row=("| adaptation base | yes: `--init=" + name + "` and `hwgan app --base " +
                     name + "` |\n") if with_run else "",
            judge_row=(f"| character judge | `{JUDGE_DIR}/`: the one its legibility figures "
                       "were measured with (hw_gan.evaluation.judge.load_judge_dir) |\n")
            if judge is not None else "",
            charset_limits=CHARSET_LIMITS.get(loaded.family, CHARSET_LIMITS_DEFAULT),
            command=_command(run, command), config=_card_config(cfg_json),
            eval_step=ev.get("step", "?"), evaluation=evaluation_lines(ev), weak=weak_text,
            style_eval=style_eval_lines(style_eval or {}, method, loaded.family))
        (tmp / shipped.CARD_FILE).write_text(card, encoding="utf-8")
        info = {
            "format_version": shipped.FORMAT_VERSION, "name": name, "title": title,
            "family": loaded.family, "resolution": loaded.resolution,
            "writers": len(trained), "untrained_writers": len(loaded.untrained_writers),
            "num_chars": len(loaded.charset), "licence": licence, "export_version": 1,
            "run": with_run, "step": step, "training_seconds": seconds,
            "legibility": (ev.get("legibility") or {}).get("ratio"),
            "weak_chars": [c for c, _ in weak], "style_method": method,
            "judge": JUDGE_DIR if judge is not None else None,
            "shipped": datetime.date.today().isoformat(), "source_run": str(run),
            "files": files,
        }
        (tmp / shipped.MODEL_FILE).write_text(json.dumps(info, indent=1) + "\n",
                                              encoding="utf-8")
    return root / name


def _read_json(path: str, flag: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{flag} {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{flag} {path} is not JSON: {e}") from None


def ship_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        if args.max_file_mb <= 0:
            raise ValueError("--max_file_mb must be > 0")
        out = ship(Path(args.run), args.export, args.name,
                   Path(args.root) if args.root else shipped.root(), title=args.title,
                   command=args.command, training_time=args.training_time,
                   licence=args.licence, max_file_bytes=int(args.max_file_mb * 1e6),
                   include_run=not args.no_run, overwrite=args.overwrite,
                   style_eval=_read_json(args.style_eval, "--style_eval") if args.style_eval
                   else None, judge=Path(args.judge) if args.judge else None)
    except (ValueError, OSError) as e:
        return errors.report(e)
    info = json.loads((out / shipped.MODEL_FILE).read_text(encoding="utf-8"))
    total = sum(f["bytes"] for f in info["files"].values())
    largest = max(info["files"].items(), key=lambda item: item[1]["bytes"])
    print(f"{out}: {info['family']}, {info['writers']} writers, {len(info['files'])} files, "
          f"{_size(total)} (largest {largest[0]}, {_size(largest[1]['bytes'])})")
    return 0


if __name__ == "__main__":
    sys.exit(ship_main(sys.argv[1:]))
