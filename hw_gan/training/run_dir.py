"""A run directory (--model_dir) as files: what a trained run is, for every caller that reads one.

    model_dir/config.json     the ExperimentConfig (written before the first step)
    model_dir/dataset.json    the dataset's charset, writers and resolution (their order = ids)
    model_dir/checkpoints/    tf.train checkpoints (hw_gan.training.trainer.CHECKPOINT_DIR)

Writing and checking those files lives here; training itself is trainer.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_pipeline import atomic
from data_pipeline.charset import check_same_charset
from hw_gan.config import ExperimentConfig

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"


def dataset_info(manifest: dict) -> dict:
    """What a checkpoint depends on in its dataset: labels and writers (their order = ids)."""
    return {"charset": manifest["charset"], "writers": manifest["writers"],
            "resolution": manifest["resolution"]}


def check_dataset_matches(model_dir: Path, manifest: dict, data_dir: str) -> None:
    """A checkpoint trained on one charset/writer list must not resume on another."""
    path = Path(model_dir) / DATASET_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    check_same_charset(saved["charset"], manifest["charset"], f"the checkpoint in {model_dir}",
                       f"dataset {data_dir}")
    if saved["writers"] != manifest["writers"]:
        raise ValueError(f"the checkpoint in {model_dir} was trained on {len(saved['writers'])} "
                         f"writers, dataset {data_dir} has a different writer list "
                         f"({len(manifest['writers'])}); use another --model_dir")


def write_dataset_info(model_dir: Path, manifest: dict) -> None:
    atomic.write_text(Path(model_dir) / DATASET_FILE, json.dumps(dataset_info(manifest), indent=1))


def write_run(cfg: ExperimentConfig, manifest: dict) -> None:
    """Creates cfg's model_dir with its config.json and dataset.json (before the first step)."""
    model_dir = Path(cfg.runtime.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(model_dir / CONFIG_FILE, cfg.to_json() + "\n")
    write_dataset_info(model_dir, manifest)
