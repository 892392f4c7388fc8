"""hw_gan.training.run_dir: where a trained run's checkpoint and configs are, and its errors."""

import json

import pytest

from hw_gan import config as config_lib
from hw_gan.training import run_dir


def test_resolve_checkpoint_from_a_directory_or_a_prefix(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(run_dir.NoCheckpointError,
                       match=f"^{run}: no checkpoint in {run / 'checkpoints'}$"):
        run_dir.resolve_checkpoint(run)
    (run / "checkpoints" / "ckpt-2.index").write_text("")
    prefix = str(run / "checkpoints" / "ckpt-2")
    assert run_dir.resolve_checkpoint(prefix) == (run, prefix)
    with pytest.raises(run_dir.RunDirError, match="is neither a model directory nor a checkpoint"):
        run_dir.resolve_checkpoint(str(run / "checkpoints" / "ckpt-9"))


def test_load_run_config_names_the_missing_file(tmp_path):
    assert not run_dir.is_run_dir(tmp_path)
    with pytest.raises(run_dir.RunDirError, match="holds no trained model \\(no config.json\\)"):
        run_dir.load_run_config(tmp_path)
    cfg = config_lib.ExperimentConfig()
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert run_dir.is_run_dir(tmp_path)
    with pytest.raises(run_dir.RunDirError, match="has no dataset.json"):
        run_dir.load_run_config(tmp_path)
    info = {"charset": ["a"], "writers": ["w0"], "resolution": 32}
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    assert run_dir.load_run_config(tmp_path) == (cfg, info)
