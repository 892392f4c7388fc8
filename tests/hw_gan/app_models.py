"""Tiny models for `hwgan app` tests and benchmarks: a stylegan trained 4 steps and exported
(fast hands) and a style_cgan base trained 2 steps (better hands), both on "abcde" so the app's
sheets are one small page. Built in a few tens of seconds on 2 cores; nothing from ../shared."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import tensorflow as tf

from data_pipeline import tfrecords
from hw_gan import config as config_lib
from hw_gan import experiment
from hw_gan.training import run_dir
from hw_gan.training import trainer as trainer_lib
from tests.conftest import ListSource, make_records

CHARS = "abcde"
WRITERS = ("w0", "w1", "w2", "w3")


def _data(out: Path, chars: str = CHARS) -> Path:
    tfrecords.write_dataset(ListSource(make_records(writers=WRITERS, chars=chars, per=3,
                                                    size=32)),
                            out, split="none", num_shards=1, progress=False)
    return out


def stylegan_export(root: Path, chars: str = CHARS) -> Path:
    """A stylegan run of 4 steps, exported: returns the export's version directory."""
    data = _data(root / "sg-data", chars)
    manifest = tfrecords.load_manifest(data)
    cfg = config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data), shuffle_buffer=64),
        model=config_lib.ModelConfig(family="stylegan", resolution=32, width=0.125,
                                     latent_dim=16, embed_dim=32, num_chars=len(chars),
                                     num_writers=len(manifest["writers"])),
        train=config_lib.TrainConfig(batch_size=8, steps=4, checkpoint_every=4, log_every=2,
                                     image_every=4, r1_interval=2, seed=5, style_group_size=4),
        eval=config_lib.EvalConfig(eval_at_end=False),
        runtime=config_lib.RuntimeConfig(model_dir=str(root / "sg-run"), strategy="default",
                                         run_eagerly=True,  # 4 steps: cheaper than 2 traces
                                         export_dir=str(root / "export"), export_name="sg")))
    experiment.run(cfg)
    experiment.run(cfg.replace(runtime=dataclasses.replace(cfg.runtime, mode="export")))
    return root / "export" / "sg" / "1"


def style_cgan_base(root: Path, chars: str = CHARS) -> Path:
    """A style_cgan trained 2 steps, laid out as train_main does: returns its model dir."""
    data = _data(root / "base-data", chars)
    manifest = tfrecords.load_manifest(data)
    model_dir = root / "base"
    cfg = config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data), shuffle_buffer=64),
        model=config_lib.ModelConfig(family="style_cgan", width=0.125, latent_dim=16,
                                     embed_dim=32, num_chars=len(chars),
                                     num_writers=len(WRITERS)),
        train=config_lib.TrainConfig(batch_size=8, steps=2, checkpoint_every=2, log_every=1,
                                     image_every=2, r1_interval=1, seed=3),
        runtime=config_lib.RuntimeConfig(model_dir=str(model_dir), strategy="default",
                                         run_eagerly=True)))  # 2 steps: cheaper than a trace
    model_dir.mkdir()
    (model_dir / "config.json").write_text(cfg.to_json())
    run_dir.write_dataset_info(model_dir, manifest)
    keras.utils.set_random_seed(cfg.train.seed)
    trainer_lib.GANTrainer(cfg, tf.distribute.get_strategy(), manifest).train()
    return model_dir


def multipart(files, field: str = "files") -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart form posting files [(name, bytes)] as `field`."""
    import io
    import uuid

    boundary = uuid.uuid4().hex
    buf = io.BytesIO()
    for name, data in files:
        buf.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                  f'filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode())
        buf.write(data + b"\r\n")
    buf.write(f"--{boundary}--\r\n".encode())
    return buf.getvalue(), f"multipart/form-data; boundary={boundary}"


def serve_studio(studio, **limits):
    """The app's server for `studio` on a free port, in a thread (tests without a browser)
    -> (port, stop())."""
    import asyncio
    import threading
    import time

    from hw_gan.app import server as server_lib

    server, sock, _ = server_lib.make_server(studio, "127.0.0.1", 0, **limits)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(10)

    return sock.getsockname()[1], stop


def start_app(export: Path, data: Path, log_path: Path, *flags: str):
    """`python -m hw_gan.cli app` on a free port in a subprocess -> (process, url); RuntimeError
    with the end of its log when it does not start."""
    import os
    import re
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(log_path, "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hw_gan.cli", "app", "--model", str(export), "--data", str(data),
         "--port", "0", *flags], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        log.seek(0)
        m = re.search(r"open (http://127\.0\.0\.1:\d+)/", log.read())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    log.seek(0)
    proc.kill()
    raise RuntimeError(f"hwgan app did not start: {log.read()[-3000:]}")


if __name__ == "__main__":  # python -m tests.hw_gan.app_models DIR
    import sys

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(stylegan_export(out), style_cgan_base(out))


def sheet_photo(layout: dict, page_index: int = 0, seed: int = 0, writer_index: int = 3,
                empty_fraction: float = 0.0) -> bytes:
    """A JPEG "phone photo" of a template page filled in by a simulated writer (the helpers of
    the extraction tests)."""
    import numpy as np

    from data_pipeline import template as tpl
    from tests.data_pipeline.test_extract import fill_page, photograph

    rng = np.random.default_rng(seed)
    page, _ = fill_page(tpl.render_page(layout, page_index), layout, page_index,
                        writer_index=writer_index, seed=seed, empty_fraction=empty_fraction,
                        rng=rng)
    return photograph(page, rng)
