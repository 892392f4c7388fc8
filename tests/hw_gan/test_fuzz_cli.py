"""Issue 20's fuzz suite, the CLI's side: property-based arguments for `hwgan write`,
`hwgan style`, `hwgan extract` and the training flagfile, and bytes for the images and .npz files
they read. Every case must end in success or a clear error (argparse's usage error, or one
`error:` line), never a traceback, a hang or a leftover file.

Commands run in-process through `hw_gan.cli.main` (an export is loaded once and reused), with
a fixed number of examples each (`derandomize`: the same cases every run, no example database
written), so the whole suite stays well under 90 s on two cores. docs/results.md gives the
counts.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_gan import cli
from hw_gan.export import load_export
from tests.conftest import tiny_export

CHARSET = tuple("abdeg .,")
WRITERS = ("w0", "w1")


def fuzz(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("fuzz_export"), "tiny", CHARSET, WRITERS)


@pytest.fixture(scope="module")
def cached_exports(model):
    """load_export for the write command, once per path (the suite runs hundreds of cases)."""
    cache = {}

    def load(path):
        key = os.path.realpath(path)
        if key not in cache:
            cache[key] = load_export(path)
        return cache[key]

    return load


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_cli(capsys, argv) -> tuple[int, str]:
    """(exit code, stderr) of `hwgan ARGV` run in-process; fails on a traceback."""
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse / absl usage errors
        code = e.code if isinstance(e.code, int) else 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert "run again with --debug" not in err, f"an unexpected error: {err}"
    assert isinstance(code, int), code
    if os.environ.get("FUZZ_TRACE"):
        with open(os.environ["FUZZ_TRACE"], "a") as f:
            print(argv[0], code, err.strip()[-160:].replace("\n", " | "), file=f)
    if code not in (0, 1):
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, f"exit {code} without a message"
        assert re.search(r"(^|: )error: |^FATAL Flags parsing error: ", lines[-1]), err
        errors = [line for line in lines if re.search(r"(^|: )error: ", line)]
        assert len(errors) <= 1, err
    return code, err


def assert_clean(root: Path, before: set[str], code: int) -> None:
    after = _tree(root)
    hidden = [p for p in after if any(part.startswith(".") for part in Path(p).parts)]
    assert not hidden, f"temporaries left: {hidden}"
    if code not in (0, 1):
        assert after == before, f"a failed run left {sorted(after - before)}"


# ------------------------------------------------------------------------------------------------
# hwgan write


NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.integers(-10**6, 10**6), st.sampled_from(["1e309", "nan", "-0", "x", ""]))
OUTS = ["o.jpg", "o", "sub/new/o.png", "dir", "ro.png", "link.png", "fifo.png", "file/o.png",
        "pages.png"]


WRITE_FLAGS = [
    ("--writer", st.sampled_from(["w1", "nobody", ""])),
    ("--seed", st.one_of(st.integers(-2**65, 2**65).map(str), st.just("x"))),
    ("--page", st.one_of(st.sampled_from(["a4", "a5-landscape", "letter", "0x0", "5000x5000mm",
                                          "ä"]), st.text(max_size=12))),
    ("--dpi", st.one_of(st.sampled_from(["10", "2400", "300"]), NUMBER)),
    ("--x-height", NUMBER), ("--margin", NUMBER), ("--line-width", NUMBER),
    ("--slant", st.one_of(st.sampled_from(["0.2", "-1", "1.5"]), NUMBER)),
    ("--variation", NUMBER), ("--truncation", NUMBER),
    ("--ink", st.one_of(st.sampled_from(["#000", "red", "#12", "rgb(1,2,3)"]),
                        st.text(max_size=8))),
    ("--paper", st.sampled_from(["#fff", "white", "none", ""])),
    ("--missing", st.sampled_from(["skip", "box", "nearest", "other"])),
    ("--format", st.sampled_from(["png", "svg", "pdf", "gif"])),
    ("--out", st.sampled_from(OUTS)),
    ("--text-file", st.sampled_from(["text.txt", "dir", "none.txt", "latin1.txt", "fifo.png"])),
    ("--style", st.sampled_from(["text.txt", "none.style"])),
]


@st.composite
def write_args(draw):
    """A command that works (small page, writer w0, charset text), with 0-3 flags changed or
    added: most cases write, the rest meet each kind of mistake."""
    text = draw(st.one_of(st.text(alphabet="abdeg .,\n", min_size=1, max_size=40),
                          st.text(max_size=20)))
    args = {"--page": "60x40mm", "--dpi": "60", "--margin": "5", "--writer": "w0",
            "--out": draw(st.sampled_from(["o.png", "o.svg", "o.pdf", "pages.png"]))}
    for flag, values in draw(st.lists(st.sampled_from(WRITE_FLAGS), max_size=3)):
        args[flag] = str(draw(values))
    argv = [a for pair in args.items() for a in pair]
    if "--text-file" not in args:
        argv.append(text)
    if draw(st.integers(0, 4)) == 0:
        argv.append("--overwrite")
    return argv


def _write_fixture_files(root: Path) -> None:
    (root / "dir").mkdir()
    (root / "text.txt").write_text("bad egg, a bag.", encoding="utf-8")
    (root / "latin1.txt").write_bytes("d\xe9j\xe0".encode("latin-1"))
    (root / "ro.png").write_bytes(b"old")
    (root / "ro.png").chmod(0o444)
    (root / "target").write_bytes(b"keep")
    (root / "link.png").symlink_to(root / "target")
    os.mkfifo(root / "fifo.png")
    (root / "file").write_bytes(b"")


@fuzz(150)
@given(args=write_args())
def test_fuzz_write(model, cached_exports, capsys, monkeypatch, args):
    monkeypatch.setattr("hw_gan.cli.write.load_export", cached_exports)
    root = Path(tempfile.mkdtemp(prefix="fuzz-write-"))
    try:
        _write_fixture_files(root)
        before = _tree(root)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            code, err = run_cli(capsys, ["write", "--model", str(model), *args])
        finally:
            os.chdir(cwd)
        assert code in (0, 2)
        assert (root / "target").read_bytes() == b"keep"
        assert (root / "ro.png").read_bytes() == b"old"
        assert_clean(root, before, code)
    finally:
        (root / "ro.png").chmod(0o644)
        shutil.rmtree(root)


# ------------------------------------------------------------------------------------------------
# Image and .npz bytes


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, with no image data."""
    import struct

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


IMAGE_BYTES = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda w, h: _png_header(w, h), st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)),
    st.builds(lambda seed, w, h: _png(np.random.default_rng(seed).integers(
        0, 256, (h, w), dtype=np.uint8)), st.integers(0, 99), st.integers(1, 64),
        st.integers(1, 64)),
    st.builds(lambda seed, cut: _png(np.random.default_rng(seed).integers(
        0, 256, (40, 40, 3), dtype=np.uint8))[:cut], st.integers(0, 99), st.integers(0, 400)),
    st.sampled_from([b"", b"GIF89a", b"\xff\xd8\xff\xe0JFIF", b"<svg/>"]))


@fuzz(40)
@given(images=st.lists(IMAGE_BYTES, min_size=1, max_size=3),
       size=st.sampled_from(["32", "0", "-4", "100000", "x"]),
       mp=st.sampled_from(["50", "0", "-1", "nan", "1e-9"]),
       writer=st.sampled_from(["alice", "", "a/b", "\x00"]),
       report=st.sampled_from([None, "r.json", "dir", "ro.png"]),
       out=st.sampled_from(["ds", "dir", "file", "ro.png"]), overwrite=st.booleans())
def test_fuzz_extract(capsys, images, size, mp, writer, report, out, overwrite):
    root = Path(tempfile.mkdtemp(prefix="fuzz-extract-"))
    try:
        paths = []
        for i, data in enumerate(images):
            paths.append(root / f"scan{i}.png")
            paths[-1].write_bytes(data)
        (root / "dir").mkdir()
        (root / "file").write_bytes(b"")
        (root / "ro.png").write_bytes(b"old")
        (root / "ro.png").chmod(0o444)
        before = _tree(root)
        argv = ["extract", *map(str, paths), "--writer", writer, "--out", str(root / out),
                "--image_size", size, "--max_megapixels", mp, "--quiet"]
        argv += ["--report", str(root / report)] if report else []
        argv += ["--overwrite"] if overwrite else []
        code, _ = run_cli(capsys, argv)
        assert_clean(root, before, code)
        assert (root / "ro.png").read_bytes() == b"old"
    finally:
        (root / "ro.png").chmod(0o644)
        shutil.rmtree(root)


@st.composite
def npz_bytes(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    keys = draw(st.lists(st.sampled_from(["strokes", "offsets", "labels", "writers", "chars",
                                          "points", "x", "pen"]), max_size=6, unique=True))
    arrays = {}
    for key in keys:
        shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
        dtype = draw(st.sampled_from([np.float32, np.int64, np.uint8, np.bool_, "U3"]))
        arrays[key] = np.zeros(shape, dtype) if dtype != "U3" else np.full(shape, "ab")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    if kind == 2:  # cut short
        data = data[:draw(st.integers(0, len(data)))]
    if kind == 3:  # a pickled object array: must be refused, never loaded
        buf = io.BytesIO()
        np.savez(buf, strokes=np.array([object()], dtype=object))
        data = buf.getvalue()
    return data


@fuzz(40)
@given(data=npz_bytes())
def test_fuzz_npz_build(capsys, data):
    root = Path(tempfile.mkdtemp(prefix="fuzz-npz-"))
    try:
        (root / "ink.npz").write_bytes(data)
        before = _tree(root)
        code, _ = run_cli(capsys, ["build", "--source=ink", "--source_param",
                                   f"path={root / 'ink.npz'}", "--out", str(root / "ds"),
                                   "--quiet"])
        assert_clean(root, before, code)
    finally:
        shutil.rmtree(root)


# ------------------------------------------------------------------------------------------------
# hwgan style


@fuzz(40)
@given(sub=st.sampled_from(["extract", "mix"]), model_kind=st.sampled_from(["export", "none"]),
       extra=st.lists(st.sampled_from([
           ["--method", "encoder"], ["--method", "bogus"], ["--steps", "-3"], ["--k", "x"],
           ["--k", "2"], ["--writer", "w9"], ["--seed", "99999999999999999999999"],
           ["--layers", "3-1"], ["--layers", "a-b"], ["--layers", "fine"], ["--chars", ""],
           ["--save", "dir"], ["--overwrite"], ["--feature", "pixel"]]), max_size=3),
       samples=st.sampled_from(["glyphs", "none", "file", "dir"]),
       image=IMAGE_BYTES, style=st.one_of(st.binary(max_size=80), st.sampled_from([
           b'{"format": "hwgan-style", "ws": [[1, 2]]}', b'{"format": "hwgan-style", '
           b'"ws": [[NaN]]}', b"[]", b"{}"])))
def test_fuzz_style(model, capsys, sub, model_kind, extra, samples, image, style):
    root = Path(tempfile.mkdtemp(prefix="fuzz-style-"))
    try:
        (root / "glyphs").mkdir()
        (root / "glyphs" / "a_1.png").write_bytes(image)
        (root / "dir").mkdir()
        (root / "file").write_bytes(b"x")
        (root / "a.style").write_bytes(style)
        before = _tree(root)
        path = str(model) if model_kind == "export" else str(root / "none")
        argv = ["style", sub]
        if sub == "extract":
            argv += ["--samples", str(root / samples), "--out", str(root / "o.style")]
        else:
            argv += [str(root / "a.style"), str(root / "a.style"), "--out", str(root / "o.png")]
        argv += ["--model", path, *[a for pair in extra for a in pair]]
        cwd = os.getcwd()
        os.chdir(root)
        try:
            code, _ = run_cli(capsys, argv)
        finally:
            os.chdir(cwd)
        assert code == 2  # no stylegan model here: every case is refused, cleanly
        assert_clean(root, before, code)
    finally:
        shutil.rmtree(root)


@fuzz(60)
@given(image=IMAGE_BYTES, name=st.sampled_from(["a_1.png", "U+0061_x.png", "zz_1.png",
                                                "U+ZZZZ_1.png", "a.png", ".png"]))
def test_fuzz_style_sample_images(image, name):
    """The glyph images `hwgan style extract --samples FOLDER` reads (here straight through the
    reader, which a stylegan model would be handed them by): a clear error or glyphs."""
    from hw_gan import inversion

    root = Path(tempfile.mkdtemp(prefix="fuzz-glyphs-"))
    try:
        (root / name).write_bytes(image)
        try:
            images, ids = inversion.samples_from_images(root, list("abc"), 32)
        except ValueError as e:  # StyleError is one
            assert "\n" not in str(e) and str(e)
        else:
            assert images.shape[1:3] == (32, 32) and len(images) == len(ids)
    finally:
        shutil.rmtree(root)


# ------------------------------------------------------------------------------------------------
# The training flagfile


FLAG_VALUES = {
    "model": st.sampled_from(["style_cgan", "char_cgan", "stylegan", "gan"]),
    "resolution": st.sampled_from(["32", "64", "48", "0", "x"]),
    "width": NUMBER, "batch_size": st.integers(-3, 10**12).map(str), "steps": NUMBER,
    "g_lr": NUMBER, "d_lr": NUMBER, "beta1": NUMBER, "r1_gamma": NUMBER,
    "r1_interval": st.integers(-2, 3).map(str), "ema_decay": NUMBER,
    "loss": st.sampled_from(["hinge", "ns", "wgan", ""]), "seed": st.integers(-2**70, 2**70)
    .map(str), "checkpoint_every": st.integers(-1, 3).map(str),
    "keep_checkpoints": st.integers(-1, 3).map(str), "strategy": st.text(max_size=6),
    "precision": st.sampled_from(["auto", "float32", "mixed_bfloat16", "fp8"]),
    "num_cpu_devices": st.integers(-1, 3).map(str), "mode": st.sampled_from(
        ["train", "evaluate", "export", "sample", "adapt", "x"]),
    "style_group_size": st.integers(-1, 9).map(str), "build_param": st.text(max_size=10),
    "latent_dim": st.integers(-1, 10**9).map(str), "shuffle_buffer": NUMBER,
    "judge_steps": NUMBER, "sample_writers": st.text(max_size=10), "no_such_flag": st.just("1"),
}


@st.composite
def flagfile(draw):
    lines = []
    for name in draw(st.lists(st.sampled_from(sorted(FLAG_VALUES)), max_size=6, unique=True)):
        lines.append(f"--{name}={draw(FLAG_VALUES[name])}")
    if draw(st.integers(0, 3)) == 0:
        lines.append(draw(st.text(max_size=20)).replace("\x00", ""))
    if draw(st.integers(0, 5)) == 0:
        lines.append("--flagfile=/nonexistent.cfg")
    return "\n".join(lines) + "\n"


@fuzz(60)
@given(text=flagfile(), as_bytes=st.one_of(st.none(), st.binary(max_size=40)))
def test_fuzz_training_flagfile(capsys, tmp_path_factory, text, as_bytes):
    """Parsed and validated to the resolved config (--dry_run: the part a flagfile decides)."""
    from absl import flags

    root = tmp_path_factory.mktemp("fuzz-flags")
    path = root / "f.cfg"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if as_bytes is None else as_bytes)
    before = _tree(root)
    flags.FLAGS.unparse_flags()  # each case from the defaults, as a fresh process would
    code, _ = run_cli(capsys, ["train", f"--flagfile={path}", "--data_dir", str(root / "none"),
                               f"--model_dir={root / 'm'}", "--dry_run"])
    assert code in (0, 1, 2)
    assert_clean(root, before, 2)  # a dry run writes nothing
