"""Issue 20, the CLI's side: each error a user can meet is one line naming the file, field or
flag (a traceback only with --debug), and a killed run's partial outputs are cleaned."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_pipeline import tfrecords
from hw_gan import cli
from hw_gan.cli import errors
from hw_gan.cli.serve import serve_main
from tests.conftest import ListSource, kill_9_at, make_records, tiny_export

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("export"), "tiny", tuple("abdeg"), ("w0", "w1"))


@pytest.fixture
def damaged(model, tmp_path):
    """A copy of the export, to damage."""
    copy = tmp_path / "damaged" / "1"
    shutil.copytree(model, copy)
    return copy


def _one_error_line(capsys, pattern: str) -> str:
    err = capsys.readouterr().err
    assert re.fullmatch(f"error: {pattern}\n", err), err
    return err


def test_truncated_variables_name_the_files_in_write_and_serve(damaged, tmp_path, capsys):
    data = damaged / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    assert cli.main(["write", "--model", str(damaged), "--writer", "w0", "ab", "--out",
                     str(tmp_path / "a.png")]) == 2
    _one_error_line(capsys, rf"cannot load SavedModel {damaged}: .*variables\.data-00000-of-00001"
                            r".* damaged or truncated \(IndexError: Read less bytes than "
                            r"requested\).*")
    assert serve_main(["--model", str(damaged), "--port", "0"]) == 2
    _one_error_line(capsys, r"cannot load SavedModel .*damaged or truncated.*")
    assert not (tmp_path / "a.png").exists()


def test_corrupt_hwgan_json_names_the_file(damaged, tmp_path, capsys):
    info = damaged / "assets" / "hwgan.json"
    info.write_text('{"format_version": 1, "x": "a\x01b"}')
    assert cli.main(["write", "--model", str(damaged), "--writer", "w0", "ab", "--out",
                     str(tmp_path / "a.png")]) == 2
    _one_error_line(capsys, re.escape(str(info)) + r" is damaged \(not JSON: Invalid control "
                                                   r"character.*export the model again")
    info.write_text("[1, 2]")
    assert cli.main(["sample", "--model", str(damaged), "--out", str(tmp_path / "g.png")]) == 2
    _one_error_line(capsys, re.escape(str(info)) + " is damaged.*")


def test_serve_port_out_of_range_is_a_usage_error(capsys):
    for port in ("99999", "-1", "http"):
        with pytest.raises(SystemExit) as e:
            serve_main(["--model", "nowhere", "--port", port])
        assert e.value.code == 2
        assert "argument --port:" in capsys.readouterr().err


def test_debug_shows_the_traceback_and_unexpected_errors_are_one_line(model, tmp_path, capsys,
                                                                      monkeypatch):
    from hw_gan.render import pages

    def broken(*a, **k):
        raise IndexError("something nobody planned for")

    monkeypatch.setattr(pages, "write_pages", broken)
    args = ["write", "--model", str(model), "--writer", "w0", "ab", "--out",
            str(tmp_path / "a.png")]
    assert cli.main(args) == errors.UNEXPECTED
    _one_error_line(capsys, "IndexError: something nobody planned for \\(run again with --debug "
                            "for the traceback\\)")
    with pytest.raises(IndexError):
        cli.main([*args, "--debug"])
    assert cli.main(["write", "--debug", "--model", str(tmp_path / "none"), "--writer", "w0",
                     "ab", "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("does not exist\n")
    assert errors.split_debug(["a", "--debug", "--", "--debug"]) == (["a", "--", "--debug"], True)


def test_full_disk_and_unwritable_folder_are_one_line():
    assert errors.describe(OSError(28, "No space left on device", "/x/out.pdf")) == \
        "/x/out.pdf: no space left on the device (the disk is full)"
    assert errors.describe(PermissionError(13, "Permission denied", "/x")) == \
        "/x: permission denied"
    assert errors.describe(ValueError("two\nlines")) == "two lines"


def _flags(data_dir, model_dir, *extra):
    return [f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--width=0.125",
            "--latent_dim=16", "--batch_size=8", "--eval_at_end=false", *extra]


def test_train_data_dir_without_manifest_gives_advice_train_main_can_follow(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    res = subprocess.run([sys.executable, str(ROOT / "train_main.py"),
                          *_flags(data, tmp_path / "m", "--build_source=simulated", "--steps=1")],
                         cwd=ROOT, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: --data_dir {data} is not empty and holds no dataset")
    assert "hwgan build --source=simulated" in line and "Traceback" not in res.stderr
    assert "pass --overwrite" not in line  # train_main has no such flag
    assert (data / "notes.txt").read_text() == "mine"


def test_extract_checks_report_and_out_before_any_work(tmp_path, capsys):
    img = tmp_path / "scan.png"
    img.write_bytes(b"not an image")
    assert cli.main(["extract", str(img), "--writer", "a", "--out", str(tmp_path / "ds"),
                     "--report", str(tmp_path)]) == 2
    _one_error_line(capsys, f"--report {tmp_path} is a directory.*")
    (tmp_path / "file").write_text("x")
    assert cli.main(["extract", str(img), "--writer", "a", "--out", str(tmp_path / "file"),
                     "--overwrite"]) == 2
    _one_error_line(capsys, f"{tmp_path / 'file'} is a file, not a directory.*")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "scan.png"]


KILLED_EXTRACT = """
import sys, time
from data_pipeline import atomic
with atomic.atomic_dir(sys.argv[1], overwrite=True) as tmp:
    (tmp / "train-00000-of-00001.tfrecord").write_bytes(b"half")
    print("building", flush=True)
    time.sleep(60)
"""


def test_kill_9_during_extract_overwrite_is_cleaned_by_the_next_run(tmp_path):
    out = tmp_path / "alice"
    tfrecords.write_dataset(ListSource(make_records(size=32)), out, split="none", progress=False)
    before = sorted(p.name for p in out.iterdir())
    pid = kill_9_at(KILLED_EXTRACT, str(out), ready="building")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f".alice.partial-{pid}-" + left[0].rsplit("-", 1)[1], "alice"]
    time.sleep(0.1)
    tfrecords.write_dataset(ListSource(make_records(size=32, seed=1)), out, split="none",
                            progress=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice"]
    assert sorted(p.name for p in out.iterdir()) == before
    assert json.loads((out / "manifest.json").read_text())["writers"] == ["w0", "w1", "w2", "w3"]
