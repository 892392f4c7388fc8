"""Test-session set-up: quiet TensorFlow, two logical CPU devices for real 2-replica strategies,
thread pools shared among pytest-xdist workers, and small datasets written to temporary
directories (tests never need ../shared or a network)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
# Under pytest-xdist (pytest.ini: one worker per core) each worker's ops get its share of the
# cores rather than every worker a pool as wide as the machine.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    tf.config.threading.set_intra_op_parallelism_threads(
        max(1, (os.cpu_count() or 1) // _workers))

from data_pipeline.schema import Geometry, GlyphRecord  # noqa: E402

# pytest-xdist (pytest.ini: --dist loadfile --no-loadscope-reorder) hands out whole files in the
# order collected. The slowest files (worker-seconds in a full run, 2026-12-07: about 720, 690,
# 650, 380, 240, 210, 175) go first, so that the last files handed out are short ones and the two
# workers end together (xdist's own reordering, by number of tests, started the slow files last).
SLOWEST_FIRST = ("tests/hw_gan/test_training.py", "tests/hw_gan/test_fewshot.py",
                 "tests/hw_gan/test_stylegan.py", "tests/hw_gan/test_adapt.py",
                 "tests/hw_gan/test_evaluation.py", "tests/hw_gan/test_app_browser.py",
                 "tests/test_end_to_end.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    # list.sort is stable: within a file, and among files not named, collection order stays.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


class ListSource:
    """A source over a list of records, for writer/reader tests."""

    name = "list"

    def __init__(self, records, params=None):
        self.records = list(records)
        self.params = params or {"n": len(self.records)}

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)


def make_records(writers=("w0", "w1", "w2", "w3"), chars="abc", per=3, size=16, seed=0,
                 geometry=True):
    """Distinct, recognisable records: the image encodes writer, char and sample in its pixels."""
    rng = np.random.default_rng(seed)
    out = []
    for wi, w in enumerate(writers):
        for ci, c in enumerate(chars):
            for k in range(per):
                img = rng.integers(0, 256, (size, size), dtype=np.uint8)
                img[0, 0], img[0, 1], img[0, 2] = wi, ci, k
                geo = Geometry(1.0 + ci * 0.1, -0.1 * k, 0.0, 0.8) if geometry else None
                out.append(GlyphRecord(c, w, "list", img, geo, key=f"list:{w}:{c}:{k}"))
    return out


def writer_split_dataset(out, writers, chars, per=4, size=32):
    """A small dataset of `make_records`, split by writer (a third held out), in two shards."""
    from data_pipeline import tfrecords

    tfrecords.write_dataset(ListSource(make_records(writers=writers, chars=chars, per=per,
                                                    size=size)),
                            out, split="writer", test_fraction=0.34, num_shards=2,
                            progress=False)
    return out


@pytest.fixture
def list_source():
    return ListSource(make_records())


def tiny_export(root, name, charset, writers, family="style_cgan", resolution=32, **export_kw):
    """Exports a small untrained generator (seeded, so its glyphs are the same every run) and
    returns the version directory."""
    import keras

    from hw_gan import export
    from hw_gan.config import ModelConfig
    from hw_gan.models import get_family

    cfg = ModelConfig(family=family, resolution=resolution, width=0.125, latent_dim=16,
                      num_chars=len(charset), num_writers=len(writers), embed_dim=64)
    keras.utils.set_random_seed(0)
    generator = get_family(family).build_generator(cfg)
    return export.export_generator(generator, cfg, charset, writers, root, name, **export_kw)


def kill_9_at(script: str, *args: str, ready: str) -> int:
    """Runs `python -c script args` from the repository root, SIGKILLs it once it prints the line
    `ready`, and returns its pid (what a `kill -9` leaves behind is then the test's to check)."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=root,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert proc.stdout.readline().strip() == ready
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.pid


def tiny_grouped_cfg(data_dir, model_dir, model_cfg, steps: int = 4, eval_at_end: bool = True,
                     run_eagerly: bool = True, **train):
    """A validated ExperimentConfig of a tiny run on writer groups of 4 (batch 8) of
    `model_cfg`'s family, its charset and writers from the dataset's manifest. Its train step
    runs eagerly (--run_eagerly): a few steps of a tiny model cost less than tracing the step
    (a stylegan step: ~3 s eagerly, ~18 s to trace); tests of the traced step pass False."""
    import dataclasses

    from data_pipeline import tfrecords
    from hw_gan import config as config_lib

    manifest = tfrecords.load_manifest(data_dir)
    base = dict(batch_size=8, steps=steps, checkpoint_every=2, log_every=1, image_every=2,
                r1_interval=2, seed=5, style_group_size=4)
    base.update(train)
    return config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data_dir), shuffle_buffer=64),
        model=dataclasses.replace(model_cfg, num_chars=len(manifest["charset"]),
                                  num_writers=len(manifest["writers"])),
        train=config_lib.TrainConfig(**base),
        eval=config_lib.EvalConfig(judge_steps=5, num_generated=16, eval_at_end=eval_at_end),
        runtime=config_lib.RuntimeConfig(model_dir=str(model_dir), strategy="default",
                                         run_eagerly=run_eagerly)))
