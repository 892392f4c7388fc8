"""The adaptation command (train_main --writer_data/--init): checks every input before anything
is written, adapts, and writes the adapted run (and its export)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from data_pipeline import atomic
from hw_gan import config as config_lib
from hw_gan import shipped
from hw_gan.adaptation.adapter import Adapter
from hw_gan.adaptation.data import load_writer_data, writer_geometry
from hw_gan.config import AdaptConfig, AdaptError
from hw_gan.export import export_model, version_dir
from hw_gan.training import run_dir

ADAPTATION_FILE = "adaptation.json"
REPORT_FILE = "adapt.json"


def load_base(init: str) -> tuple[config_lib.ExperimentConfig, dict, Path, str]:
    """(base config, base dataset info, base model dir, checkpoint prefix) of --init (a model
    dir, a checkpoint prefix, or the name of a shipped char+writer model: its run), checked to
    be a style_cgan whose files agree."""
    try:
        model_dir, prefix = run_dir.resolve_checkpoint(shipped.resolve_run(init))
    except run_dir.NoCheckpointError as e:
        raise AdaptError(f"--init={e}; train the base model first (or pass a checkpoint "
                         f"prefix)") from None
    except run_dir.RunDirError as e:
        raise AdaptError(f"--init={e}") from None
    try:
        cfg, info = run_dir.load_run_config(model_dir)
    except run_dir.RunDirError as e:
        raise AdaptError(f"--init={init}: {e}") from None
    if cfg.model.family != "style_cgan":
        raise AdaptError(f"--init={init}: the base model is {cfg.model.family!r}; adding a writer "
                         f"needs a style_cgan (a writer embedding to grow)")
    if len(info["writers"]) != cfg.model.num_writers:
        raise AdaptError(f"--init={init}: {run_dir.DATASET_FILE} lists {len(info['writers'])} writers, "
                         f"config.json says {cfg.model.num_writers}")
    return cfg, info, model_dir, prefix


def prepare(acfg: AdaptConfig):
    """Validates everything before anything is written; returns (Adapter, data, base_dir)."""
    acfg.validate()
    out = Path(acfg.model_dir)
    if out.exists() and any(out.iterdir()):
        raise AdaptError(f"--model_dir={out} already exists and is not empty; adaptation writes "
                         f"a new directory (nothing was overwritten)")
    base_cfg, base_info, base_dir, prefix = load_base(acfg.init)
    if out.resolve() == base_dir.resolve():
        raise AdaptError("--model_dir must differ from the --init model directory")
    data = load_writer_data(acfg.writer_data, acfg.split, base_info, base_cfg.model.resolution,
                            acfg.writer_name)
    if acfg.export_dir:
        vdir = version_dir(acfg.export_dir, acfg.export_name or out.name, acfg.export_version)
        if vdir.exists() and any(vdir.iterdir()) and not acfg.overwrite_export:
            raise AdaptError(f"export {vdir} already exists; pass --overwrite_export or another "
                             f"--export_version (nothing was overwritten)")
    adapter = Adapter(acfg, base_cfg, base_info, base_dir, prefix)
    return adapter, data, base_dir


def _empty(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()


def _write_settings(out: Path, adapter: Adapter, acfg: AdaptConfig, base_dir: Path,
                    writers: list) -> None:
    """config.json and dataset.json of the grown model, adaptation.json (the settings)."""
    # adapter.cfg's model_dir is `out` (surgery.grown_config).
    run_dir.write_run(adapter.cfg, {"charset": adapter.base_info["charset"], "writers": writers,
                                    "resolution": adapter.base_info.get("resolution")})
    atomic.write_text(out / ADAPTATION_FILE, json.dumps(
        {**dataclasses.asdict(acfg), "base_model_dir": str(base_dir),
         "base_step": adapter.base_step}, indent=1, sort_keys=True) + "\n")


def _export(adapter: Adapter, data: dict, report: dict, acfg: AdaptConfig, out: Path,
            base_dir: Path, writers: list) -> None:
    """The SavedModel export of the adapted generator; adds its path to the report."""
    # Where the writer's glyphs carry geometry (scanned sheets), the renderer sizes and places
    # that writer's characters by it instead of the charset's defaults.
    geometry = writer_geometry(acfg.writer_data, acfg.split)
    table = {data["name"]: geometry} if geometry else None
    # A fine-tuned generator draws the base writers a little differently too: say how much.
    metadata = {"adapted_writer": data["name"], "base_model_dir": str(base_dir),
                "finetuned": report["finetuned"],
                "base_writer_drift": report["base_writer_drift"]}
    trained = set(adapter.trained_ids)
    # The renderer and server refuse writers whose rows the base never trained (hw_gan.export).
    untrained = [w for i, w in enumerate(adapter.writer_names) if i not in trained]
    path = export_model(
        adapter.trainer.ema_generator, adapter.cfg.model, adapter.base_info["charset"], writers,
        acfg.export_dir, acfg.export_name or out.name, acfg.export_version,
        overwrite=acfg.overwrite_export, untrained_writers=untrained, writer_geometry=table,
        metadata=metadata)
    report["writer_geometry_chars"] = len(geometry)
    report["export"] = str(path)


def _adapt_into(out: Path, adapter: Adapter, data: dict, acfg: AdaptConfig, base_dir: Path,
                log) -> dict:
    """Writes the adapted run into `out` (created or empty); returns the report."""
    writers = adapter.writer_names + [data["name"]]
    _write_settings(out, adapter, acfg, base_dir, writers)
    report = adapter.run(data, log)
    checkpoint = adapter.trainer.save()
    report.update({
        "writer_name": data["name"], "writer_id": adapter.new_id, "num_writers": len(writers),
        "base_model_dir": str(base_dir), "base_step": adapter.base_step,
        "writer_data": acfg.writer_data, "num_glyphs": int(len(data["chars"])),
        "seen_chars": len(data["seen_chars"]), "unseen_chars": data["unseen_chars"],
        "checkpoint": checkpoint,
        "finetuned": report["phases"].get("finetune", {}).get("steps", 0) > 0,
    })
    if acfg.export_dir:
        _export(adapter, data, report, acfg, out, base_dir, writers)
    return report


def adapt(acfg: AdaptConfig, log=print) -> dict:
    """The whole command: checks, adapts, writes model_dir and the export; returns the report."""
    t0 = time.perf_counter()
    adapter, data, base_dir = prepare(acfg)
    out = Path(acfg.model_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        report = _adapt_into(out, adapter, data, acfg, base_dir, log)
    except BaseException:
        # prepare() checked that model_dir was absent or empty: what is there now is ours.
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            _empty(out)
        raise
    report["seconds"] = round(time.perf_counter() - t0, 1)
    atomic.write_text(out / REPORT_FILE, json.dumps(report, indent=1) + "\n")
    return report
