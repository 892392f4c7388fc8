"""data_pipeline.atomic: outputs are regular files, written whole or not at all, and what a
killed writer left is cleaned by the next write to the same name (and only that)."""

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_pipeline import atomic
from tests.conftest import kill_9_at

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_regular_files_are_outputs(tmp_path):
    with pytest.raises(atomic.OutputError, match="is a directory"):
        atomic.write_bytes(tmp_path, b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(atomic.OutputError, match="fifo is a FIFO"):
        atomic.write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(atomic.OutputError, match="/dev/null is a device"):
        atomic.check_output("/dev/null", overwrite=True)
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    with pytest.raises(atomic.OutputError, match="a folder on its path is a file"):
        (tmp_path / "file").write_bytes(b"")
        atomic.write_bytes(tmp_path / "file" / "x.png", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "file"]


def test_symlinks_need_overwrite_and_their_targets_are_left_alone(tmp_path):
    target = tmp_path / "target.txt"
    target.write_bytes(b"keep")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with pytest.raises(atomic.OutputError, match="symbolic link; pass --overwrite"):
        atomic.write_bytes(link, b"new")
    atomic.write_bytes(link, b"new", overwrite=True)
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"keep"


def test_read_only_outputs_are_refused_not_replaced(tmp_path):
    out = tmp_path / "ro.png"
    out.write_bytes(b"old")
    out.chmod(0o444)
    with pytest.raises(atomic.OutputError, match="ro.png is read-only"):
        atomic.write_bytes(out, b"new")
    assert out.read_bytes() == b"old" and stat.S_IMODE(out.stat().st_mode) == 0o444


def test_unwritable_folder_and_full_disk_name_the_output(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(atomic.os, "access",
                        lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(PermissionError, match=f"the folder {tmp_path} is not writable"):
        atomic.write_bytes(tmp_path / "a.png", b"x")
    monkeypatch.undo()

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()

    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as info:
        atomic.write_bytes(tmp_path / "b.png", b"x")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "b.png")
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_dead_writers_are_cleaned_and_live_ones_kept(tmp_path):
    out = tmp_path / "letter.pdf"
    dead, live = _dead_pid(), os.getppid()
    stale = [tmp_path / f".letter.pdf.{dead}-0123abcd.partial",
             tmp_path / f".letter.pdf.{dead}-89abcdef.tmp"]
    keep = [tmp_path / f".letter.pdf.{live}-0123abcd.partial",  # a live writer's
            tmp_path / f".other.pdf.{dead}-0123abcd.partial",  # another output's
            tmp_path / ".letter.pdf.notes"]  # not a temporary name
    for p in stale + keep:
        p.write_bytes(b"half")
    (tmp_path / f".letter.pdf.partial-{dead}-0123abcd").mkdir()
    atomic.write_bytes(out, b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [out.name] + [p.name for p in keep])


def test_a_swap_cut_between_its_renames_is_undone(tmp_path):
    out = tmp_path / "ds"
    dead = _dead_pid()
    old = tmp_path / f".ds.old-{dead}"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    new = tmp_path / f".ds.partial-{dead}-0123abcd"
    new.mkdir()
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        with atomic.atomic_dir(out):
            pass
    assert (out / "manifest.json").read_text() == "{}"  # the old directory is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_dir_refuses_what_is_not_a_directory(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(atomic.OutputError, match="file is a file, not a directory"):
        with atomic.atomic_dir(tmp_path / "file", overwrite=True):
            pass
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(atomic.OutputError, match="symbolic link"):
        with atomic.atomic_dir(tmp_path / "link"):
            pass
    with atomic.atomic_dir(tmp_path / "link", overwrite=True) as tmp:
        (tmp / "new").write_bytes(b"y")
    assert (tmp_path / "link").is_dir() and not (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "keep").exists()


WRITER = """
import sys, time
from data_pipeline import atomic
from tests.conftest import kill_9_at
staged = atomic.StagedFiles()
f = staged.open(sys.argv[1])
f.write(b"x" * 1000)
f.flush()
print("writing", flush=True)
time.sleep(60)
"""


def test_kill_9_during_a_write_is_cleaned_by_the_next_write(tmp_path):
    out = tmp_path / "page.png"
    pid = kill_9_at(WRITER, str(out), ready="writing")
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".page.png.{pid}-")
    time.sleep(0.1)
    atomic.write_bytes(out, b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["page.png"]
    assert out.read_bytes() == b"whole"


def test_a_live_writers_temporary_is_kept(tmp_path):
    out = tmp_path / "page.png"
    live = tmp_path / f".page.png.{os.getppid()}-0123abcd.partial"
    live.write_bytes(b"half")
    atomic.write_bytes(out, b"other")
    assert live.exists() and out.read_bytes() == b"other"
