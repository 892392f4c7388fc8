"""hw_gan.export.signatures.write: the `write` signature (text -> image of written lines, in the graph).

A tiny untrained style_cgan export (width 0.125) with the signature, loaded in-process and run by
saved_model_cli (a subprocess started with the first test, as in test_export); the image is
compared with the Python renderer's (`render_lines_python`) for the same text and seed; a model
whose glyphs for some characters are blank checks that those take their usual width and wrap
as in the Python layout."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_export
import tensorflow as tf

from hw_gan import export
from hw_gan.export.signatures.write import WriteParams, chunk_seed_tf, write_signature_builder
from hw_gan.layout import DESCENDER_ROOM, FIRST_BASELINE, char_extent, chunk_seed
from hw_gan.render.lines import render_lines_python

REPO = Path(__file__).resolve().parents[2]
CHARSET = tuple("abcdegpxyTH1.,-'") + ("Oo",)
WRITERS = ("w0", "w1")
RES = 32
XH = 14.0
PARAMS = dict(x_height_px=XH, slant=0.2, max_glyphs=600)  # a slant checks the shear too
UNKNOWN_CHAR = r"character not in the model\\?'s charset"


def _export(root: Path, family: str, **params) -> Path:
    return tiny_export(root, family, CHARSET, WRITERS, family=family, resolution=RES,
                       extra_signatures={"write": write_signature_builder(**params)})


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("write_export"), "style_cgan", **PARAMS)


@pytest.fixture(scope="module")
def cli(exported, tmp_path_factory):
    """saved_model_cli run of the signature, started early (it mostly waits on imports)."""
    out_dir = tmp_path_factory.mktemp("write_cli")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run",
           "--dir", str(exported), "--tag_set", "serve", "--signature_def", "write",
           "--input_exprs", "text='ab c';writer='w0';seed=1;line_width=200",
           "--outdir", str(out_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=str(out_dir))
    yield proc, out_dir
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def write_fn(exported):
    return tf.saved_model.load(str(exported)).signatures["write"]


def _write(fn, text, writer="w0", seed=0, line_width=200):
    out = fn(text=tf.constant(text), writer=tf.constant(writer),
             seed=tf.constant(seed, tf.int64), line_width=tf.constant(line_width, tf.int32))
    return out["image"].numpy(), int(out["num_lines"].numpy())


def _height(num_lines: int, xh: float = XH, line_spacing: float = 3.1) -> int:
    return math.ceil(FIRST_BASELINE * xh + (num_lines - 1) * line_spacing * xh
                     + DESCENDER_ROOM * xh)


def _compare(graph: np.ndarray, python: np.ndarray) -> tuple[float, float]:
    assert graph.shape == python.shape
    mad = float(np.abs(graph.astype(int) - python.astype(int)).mean())
    a, b = graph > 96, python > 96
    iou = float((a & b).sum() / max(1, (a | b).sum()))
    return mad, iou


# ------------------------------------------------------------------------------------------------


def test_signature_spec_and_image(cli, exported, write_fn):  # `cli` starts the subprocess early
    _, kwargs = write_fn.structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in kwargs.items()} == {
        "text": (tf.string, []), "writer": (tf.string, []), "seed": (tf.int64, []),
        "line_width": (tf.int32, [])}
    assert write_fn.structured_outputs["image"].dtype == tf.uint8
    assert write_fn.structured_outputs["image"].shape.rank == 2
    image, lines = _write(write_fn, "ab c", line_width=200)
    assert image.dtype == np.uint8 and lines == 1
    assert image.shape == (_height(1), 200)
    assert image.max() > 96 and (image == 0).mean() > 0.5  # ink-high: mostly paper (0)
    info = export.load_export(exported).info
    assert "write" in info["signatures"]


def test_deterministic_and_seeded(write_fn):
    a, _ = _write(write_fn, "Oo xy, ab.", seed=4)
    b, _ = _write(write_fn, "Oo xy, ab.", seed=4)
    c, _ = _write(write_fn, "Oo xy, ab.", seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == c.shape and not np.array_equal(a, c)
    w1, _ = _write(write_fn, "Oo xy, ab.", writer="w1", seed=4)
    assert not np.array_equal(a, w1)


def test_line_wrapping(write_fn):
    text = "abc de, xy. Tag 1-a ye gap oO pax"
    wide, wide_lines = _write(write_fn, text, line_width=600)
    narrow, narrow_lines = _write(write_fn, text, line_width=120)
    assert wide.shape[1] == 600 and narrow.shape[1] == 120
    assert narrow_lines > wide_lines and narrow.shape[0] > wide.shape[0]
    assert narrow.shape[0] == _height(narrow_lines)
    # Every glyph is drawn either way: about the same ink.
    assert 0.8 < (narrow > 96).sum() / (wide > 96).sum() < 1.25
    # Hard line breaks and paragraphs (blank line: half a line more).
    _, two = _write(write_fn, "ab\ncd", line_width=600)
    para, three = _write(write_fn, "ab\n\n\ncd\nx", line_width=600)
    assert two == 2 and three == 3
    assert para.shape[0] == math.ceil(FIRST_BASELINE * XH + (2 + 0.5 + 1) * 3.1 * XH
                                      + DESCENDER_ROOM * XH)


def test_bad_inputs_fail_in_graph(write_fn):
    with pytest.raises(tf.errors.InvalidArgumentError, match=UNKNOWN_CHAR + r".*\[Z %\]"):
        _write(write_fn, "ab Z%")
    with pytest.raises(tf.errors.InvalidArgumentError, match="writer not known to the model"):
        _write(write_fn, "ab", writer="nobody")
    with pytest.raises(tf.errors.InvalidArgumentError, match="the text is empty"):
        _write(write_fn, " \n\t ")
    with pytest.raises(tf.errors.InvalidArgumentError, match="line_width must be at least"):
        _write(write_fn, "ab", line_width=int(3 * XH))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more characters than max_glyphs"):
        _write(write_fn, "a" * 601)


@pytest.mark.parametrize("text,line_width,seed", [
    ("Oo oO xTy, a-b. 'H1'", 160, 5),
    ("abcabcabcabcabcabcabcabc de x", 120, 1),  # a word longer than the line is split
    ("  ab\n\n\n  cd  \n\tOo\r\nxy", 100, 2),  # paragraphs, leading spaces, tab, CRLF
    ("abc de, xy. " * 45 + "ab", 400, 9),  # 542 glyphs: two generation blocks
])
def test_matches_python_renderer(exported, write_fn, text, line_width, seed):
    graph, lines = _write(write_fn, text, "w1", seed, line_width)
    python = render_lines_python(exported, text, "w1", seed, line_width, **PARAMS)
    assert graph.shape == python.shape and graph.shape[1] == line_width
    assert graph.shape[0] >= _height(lines)  # more with paragraph spacing
    mad, iou = _compare(graph, python)
    assert mad < 0.5 and iou > 0.95, (mad, iou)


def test_family_without_writers_and_geometry(tmp_path):
    geometry = {"": {"x": (1.3, -0.2)}}
    params = dict(x_height_px=20.0, writer_geometry=geometry)
    path = _export(tmp_path, "char_cgan", **params)
    fn = tf.saved_model.load(str(path)).signatures["write"]
    a, _ = _write(fn, "xa bx", writer="", seed=3)
    b, _ = _write(fn, "xa bx", writer="anyone", seed=3)
    np.testing.assert_array_equal(a, b)
    python = render_lines_python(path, "xa bx", None, 3, 200, WriteParams(**params))
    mad, iou = _compare(a, python)
    assert mad < 0.5 and iou > 0.95, (mad, iou)
    plain = render_lines_python(path, "xa bx", None, 3, 200, x_height_px=20.0)
    assert not np.array_equal(plain, python)  # the geometry moved the x


def test_chunk_seed_tf_matches_numpy():
    for seed in (0, 1, 7, 2 ** 32, 2 ** 40 + 3, -1, -123456789012, 2 ** 63 - 1):
        for chunk in (0, 1, 5):
            got = int(chunk_seed_tf(tf.constant(seed, tf.int64), chunk).numpy())
            assert got == chunk_seed(seed, chunk), (seed, chunk)


def test_saved_model_cli_run(cli, write_fn):
    proc, out_dir = cli
    try:
        output, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    assert proc.returncode == 0, output
    assert "Result for output key image" in output
    saved = np.load(out_dir / "image.npy")
    expected, _ = _write(write_fn, "ab c", "w0", 1, 200)
    assert saved.dtype == np.uint8
    np.testing.assert_array_equal(saved, expected)
    assert re.search(r"Result for output key num_lines", output)


BLANK = "xT"  # characters the blank model draws with no ink


def _blank_export(root: Path) -> Path:
    """The tiny style_cgan of `_export`, its output forced to paper (-1: no ink) for the
    characters of BLANK: a model that draws some glyphs blank, as a barely trained one does."""
    import keras

    from hw_gan.config import ModelConfig
    from hw_gan.models import get_family

    cfg = ModelConfig(family="style_cgan", resolution=RES, width=0.125, latent_dim=16,
                      num_chars=len(CHARSET), num_writers=len(WRITERS), embed_dim=64)
    keras.utils.set_random_seed(0)
    base = get_family("style_cgan").build_generator(cfg)
    blank_ids = tf.constant([CHARSET.index(c) for c in BLANK], tf.int32)

    def blank(args):
        images, chars = args
        hit = tf.reduce_any(tf.equal(tf.cast(chars, tf.int32)[:, None], blank_ids[None]), axis=1)
        return tf.where(hit[:, None, None, None], -tf.ones_like(images), images)

    images = keras.layers.Lambda(blank, output_shape=(RES, RES, 1))(
        [base(base.input), base.input["char"]])
    generator = keras.Model(base.input, images, name="blank_generator")
    return export.export_generator(generator, cfg, CHARSET, WRITERS, root, "blank",
                                   extra_signatures={"write": write_signature_builder(**PARAMS)})


def _ink_columns(image: np.ndarray) -> np.ndarray:
    return np.flatnonzero((image > 96).any(axis=0))


def test_blank_glyphs_take_their_width_and_wrap_as_the_python_layout(tmp_path):
    """A glyph with no ink is placed as an empty box of its character's usual width, in the graph
    as in the Python layout (layout._Layouter.metric): it pushes what follows along the line and
    makes a line wrap; only its ink (none) is missing."""
    path = _blank_export(tmp_path)
    model = export.load_export(path)
    images = model.glyphs(list("xTab"), "w0", seed=0)
    assert images[:2].max() == 0 and images[2:].max() > 96  # x, T blank; a, b inked
    fn = tf.saved_model.load(str(path)).signatures["write"]

    # Blank glyphs push the word after them along the line, by their usual widths.
    alone, _ = _write(fn, "ab", line_width=400)
    pushed, lines = _write(fn, "xxxxTT ab", line_width=400)
    assert lines == 1 and alone.shape == pushed.shape
    shift = _ink_columns(pushed)[0] - _ink_columns(alone)[0]
    typical = 4 * char_extent("x", None)[2] + 2 * char_extent("T", None)[2]
    assert shift >= 0.9 * typical * XH, (shift, typical * XH)
    python = render_lines_python(path, "xxxxTT ab", "w0", 0, 400, **PARAMS)
    assert python.shape == pushed.shape
    assert abs(_ink_columns(python)[0] - _ink_columns(pushed)[0]) <= 1

    # Words of blank glyphs fill lines and wrap; the graph wraps where the Python layout does.
    for text, line_width in ((" ".join(["xxT"] * 24) + " ab", 160),
                             ("ab " + "x" * 40 + " Tba T", 120),  # a blank word split
                             ("xTx ab\n\nTT xx yT axb", 100)):
        graph, lines = _write(fn, text, "w1", 3, line_width)
        python = render_lines_python(path, text, "w1", 3, line_width, **PARAMS)
        assert graph.shape == python.shape, (text, graph.shape, python.shape)
        assert graph.shape[0] >= _height(lines) and lines >= 3, (text, lines)
        mad, iou = _compare(graph, python)
        assert mad < 0.5 and iou > 0.95, (text, mad, iou)
    # Without the blank words the same text needs fewer lines: they did take room.
    _, with_blanks = _write(fn, " ".join(["xxT"] * 24) + " ab", "w1", 3, 160)
    _, without = _write(fn, "ab", "w1", 3, 160)
    assert with_blanks > without == 1

