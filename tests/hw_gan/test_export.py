"""hw_gan.export: SavedModels of the generator that TF Serving (and saved_model_cli) load as they
are, and `load_export` / `hw_gan.render.grid.write_sample_grid` on top of them.

Uses the real model families at a CPU size (width 0.25). saved_model_cli and a fresh Python
process run as subprocesses, started together (they mostly wait for TensorFlow to import)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline.schema import to_uint8
from hw_gan import export
from hw_gan.config import ModelConfig
from hw_gan.models import get_family
from hw_gan.render.grid import write_sample_grid
from hw_gan.training import strategy as strategy_lib

REPO = Path(__file__).resolve().parents[2]
CHARSET = ("a", "b", "Cc", "1", ".")
WRITERS = ("w0", "w1", "writer two")
LATENT = 16
RES = 32
# TF prints Assert data with C escapes, so the apostrophe of "model's" reads "model\'s".
UNKNOWN_CHAR = r"character not in the model\\?'s charset"
UNKNOWN_WRITER = "writer not known to the model"


def _cfg(family: str, **kw) -> ModelConfig:
    return ModelConfig(family=family, resolution=RES, width=0.25, latent_dim=LATENT,
                       num_chars=len(CHARSET), num_writers=len(WRITERS), embed_dim=128, **kw)


def _params(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.variables))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _strings(values) -> tf.Tensor:
    values = list(values)
    return tf.constant(values, tf.string, shape=[len(values)])


def _glyphs(module, chars, writers, seed, signature="glyphs"):
    return module.signatures[signature](
        chars=_strings(chars), writers=_strings(writers), seed=tf.constant(seed, tf.int64))


def _by_id(module, char_ids, writer_ids, seed):
    return module.signatures["glyphs_by_id"](
        char_ids=tf.constant(char_ids, tf.int32, shape=[len(char_ids)]),
        writer_ids=tf.constant(writer_ids, tf.int32, shape=[len(writer_ids)]),
        seed=tf.constant(seed, tf.int64))


@pytest.fixture(scope="module")
def style(tmp_path_factory):
    """(generator, cfg, export root, version dir) of a style_cgan export (>= 100k parameters)."""
    cfg = _cfg("style_cgan")
    gen = get_family("style_cgan").build_generator(cfg)
    root = tmp_path_factory.mktemp("exports")
    path = export.export_generator(gen, cfg, CHARSET, WRITERS, root, "style")
    return gen, cfg, root, path


@pytest.fixture(scope="module")
def style_module(style):
    return tf.saved_model.load(str(style[3]))


@pytest.fixture(scope="module")
def char(tmp_path_factory):
    cfg = _cfg("char_cgan")
    gen = get_family("char_cgan").build_generator(cfg)
    root = tmp_path_factory.mktemp("char_exports")
    path = export.export_generator(gen, cfg, CHARSET, WRITERS, root, "char")
    return gen, cfg, root, path


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", *args]


_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from hw_gan.export import load_export
    exp = load_export(sys.argv[1])  # the name dir: picks the highest version
    images = exp.glyphs(["a", "c", "C"], "w1", 7)
    module = tf.saved_model.load(str(exp.path))
    out = module.signatures["glyphs"](chars=tf.constant(["b"]), writers=tf.constant(["w0"]),
                                     seed=tf.constant(2, tf.int64))
    try:
        module.signatures["glyphs"](chars=tf.constant(["%"]), writers=tf.constant(["w0"]),
                                    seed=tf.constant(2, tf.int64))
        error = ""
    except tf.errors.InvalidArgumentError as e:
        error = str(e)
    print("RESULT " + json.dumps({
        "version": exp.version,
        "charset": list(exp.charset), "writers": list(exp.writers), "family": exp.family,
        "shape": list(images.shape), "dtype": str(images.dtype), "sum": int(images.sum()),
        "char_ids": out["char_ids"].numpy().tolist(), "error": error}))
""")


class _Subprocesses:
    """saved_model_cli (show, run x2) and a fresh-process load, started together as soon as the
    first test asks for them (they mostly wait for TensorFlow to import, so they overlap with the
    in-process tests); `result(key)` waits for one."""

    def __init__(self, root: Path, path: Path, out_dir: Path):
        self.out_dir = out_dir
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                           os.environ.get("PYTHONPATH")]))}
        commands = {
            "show": _cli("show", "--all", "--dir", str(path)),
            "run_by_id": _cli("run", "--dir", str(path), "--tag_set", "serve",
                              "--signature_def", "glyphs_by_id",
                              "--input_exprs", "char_ids=[0,1];writer_ids=[0,0];seed=3",
                              "--outdir", str(out_dir / "by_id")),
            "run_glyphs": _cli("run", "--dir", str(path), "--tag_set", "serve",
                               "--signature_def", "glyphs",
                               "--input_exprs", "chars=['a','c','Cc'];writers=['w1'];seed=3",
                               "--outdir", str(out_dir / "glyphs")),
            "fresh": [sys.executable, "-c", _FRESH_PROCESS, str(root / "style")],
        }
        self.procs = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, env=env, cwd=str(out_dir))
                      for k, c in commands.items()}
        self.results: dict[str, tuple[int, str]] = {}

    def result(self, key: str) -> tuple[int, str]:
        if key not in self.results:
            proc = self.procs[key]
            try:
                output, _ = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            self.results[key] = (proc.returncode, output)
        return self.results[key]

    def close(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def subprocesses(style, tmp_path_factory):
    procs = _Subprocesses(style[2], style[3], tmp_path_factory.mktemp("cli_out"))
    yield procs
    procs.close()


# ------------------------------------------------------------------------------------------------
# Layout, assets, size.


def test_versioned_layout_and_assets(style, subprocesses):  # starts the subprocesses early
    gen, cfg, root, path = style
    assert path == root / "style" / "1"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assert [p.name for p in (root / "style").iterdir()] == ["1"]  # no partial dirs left behind
    assets = path / "assets"
    assert (assets / "charset.txt").read_text(encoding="utf-8").splitlines() == list(CHARSET)
    assert (assets / "writers.txt").read_text(encoding="utf-8").splitlines() == list(WRITERS)
    info = json.loads((assets / "hwgan.json").read_text(encoding="utf-8"))
    assert info["format_version"] == export.FORMAT_VERSION
    assert (info["family"], info["resolution"], info["latent_dim"]) == ("style_cgan", RES, LATENT)
    assert info["charset"] == list(CHARSET) and info["writers"] == list(WRITERS)
    assert info["num_parameters"] == _params(gen)
    assert set(info["signatures"]) >= {"glyphs", "glyphs_by_id", "metadata", "serving_default"}


def test_only_generator_variables_are_saved(style, style_module):
    gen = style[0]
    ckpt = str(style[3] / "variables" / "variables")
    saved = [(k, s) for k, s in tf.train.list_variables(ckpt) if k.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(gen.variables)
    assert sorted(tuple(s) for _, s in saved) == sorted(tuple(v.shape) for v in gen.variables)
    assert not [k for k, _ in saved if re.search(r"optimi|discrim|adam|momentum", k, re.I)]
    assert len(style_module.generator_variables) == len(gen.variables)
    # No Keras object graph: the module holds variables, tables, assets and functions only.
    assert not hasattr(style_module, "generator")


def test_disk_size_bound(style):
    gen, _, _, path = style
    params = _params(gen)
    assert params >= 100_000
    data = _dir_bytes(path / "variables")
    total = _dir_bytes(path)
    assert data <= 4 * params + 8192, (data, params)  # the weights once, float32
    # 4.5 bytes per parameter plus a constant for the graph (~0.35 MB here, independent of width).
    assert total <= 4.5 * params + 512 * 1024, (total, params, total / params)


def test_refuses_to_overwrite_then_versions_and_extra_signatures(char):
    gen, cfg, root, path = char
    before = sorted((p.relative_to(path), p.stat().st_mtime_ns) for p in path.rglob("*"))
    with pytest.raises(FileExistsError, match=r"already exists.*overwrite=True"):
        export.export_generator(gen, cfg, CHARSET, WRITERS, root, "char", version=1)
    assert sorted((p.relative_to(path), p.stat().st_mtime_ns) for p in path.rglob("*")) == before

    def count_known(module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="chars")])
        def fn(chars):
            ids = module.char_table.lookup(chars)
            return {"known": tf.reduce_sum(tf.cast(ids >= 0, tf.int32))}
        return fn

    v2 = export.export_generator(gen, cfg, CHARSET, [], root, "char", version=2,
                                 extra_signatures={"count_known": count_known})
    assert v2 == root / "char" / "2"
    loaded = export.load_export(root / "char")
    assert loaded.version == 2 and loaded.path == v2
    assert "count_known" in json.loads((v2 / "assets" / "hwgan.json").read_text())["signatures"]
    out = loaded.signatures["count_known"](chars=_strings(["a", "c", "%"]))
    assert int(out["known"]) == 2
    assert export.load_export(v2.parent / "1").version == 1

    export.export_generator(gen, cfg, CHARSET, WRITERS, root, "char", version=1, overwrite=True)
    assert sorted(p.name for p in (root / "char").iterdir()) == ["1", "2"]
    with pytest.raises(ValueError, match="taken or not an identifier"):
        export.export_generator(gen, cfg, CHARSET, WRITERS, root, "char", version=3,
                                extra_signatures={"glyphs": count_known})
    assert not (root / "char" / "3").exists()


def test_export_argument_checks(char, tmp_path):
    gen, cfg, _, _ = char
    with pytest.raises(ValueError, match="num_chars"):
        export.export_generator(gen, cfg, CHARSET[:-1], WRITERS, tmp_path, "x")
    with pytest.raises(ValueError, match="plain directory name"):
        export.export_generator(gen, cfg, CHARSET, WRITERS, tmp_path, "a/b")
    with pytest.raises(ValueError, match="version"):
        export.export_generator(gen, cfg, CHARSET, WRITERS, tmp_path, "x", version=0)
    with pytest.raises(ValueError, match="line break"):
        export.export_generator(gen, cfg, CHARSET, ["a\nb"], tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Signatures in-process.


def test_signatures_outputs_and_metadata(style, style_module):
    m = style_module
    assert set(m.signatures) == {"glyphs", "glyphs_by_id", "metadata", "serving_default"}
    out = _glyphs(m, ["a", "b", "1", "."], ["w0", "w1", "writer two", "w0"], 3)
    assert out["images"].dtype == tf.uint8 and out["images"].shape == (4, RES, RES, 1)
    assert out["char_ids"].dtype == tf.int32 and out["char_ids"].numpy().tolist() == [0, 1, 3, 4]
    assert out["writer_ids"].numpy().tolist() == [0, 1, 2, 0]
    default = _glyphs(m, ["a", "b", "1", "."], ["w0", "w1", "writer two", "w0"], 3,
                      signature="serving_default")
    np.testing.assert_array_equal(default["images"].numpy(), out["images"].numpy())
    by_id = _by_id(m, [0, 1, 3, 4], [0, 1, 2, 0], 3)
    np.testing.assert_array_equal(by_id["images"].numpy(), out["images"].numpy())

    meta = {k: v.numpy() for k, v in m.signatures["metadata"]().items()}
    assert [s.decode() for s in meta["charset"]] == list(CHARSET)
    assert [s.decode() for s in meta["writers"]] == list(WRITERS)
    assert (int(meta["resolution"]), meta["family"].decode(), int(meta["latent_dim"])) == (
        RES, "style_cgan", LATENT)

    empty = _glyphs(m, [], ["w0"], 0)
    assert empty["images"].shape == (0, RES, RES, 1)


def test_images_are_the_generators(style, style_module):
    gen = style[0]
    seed, chars, writers = 11, [0, 2, 4], [2, 1, 0]
    z = tf.random.stateless_normal([3, LATENT], seed=[seed, 0])
    expected = to_uint8(gen({"z": z, "char": tf.constant(chars), "writer": tf.constant(writers)},
                            training=False).numpy())
    got = _by_id(style_module, chars, writers, seed)["images"].numpy()
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_determinism(style_module):
    a = _glyphs(style_module, ["a", "b", "Cc"], ["w1"], 5)["images"].numpy()
    b = _glyphs(style_module, ["a", "b", "Cc"], ["w1"], 5)["images"].numpy()
    c = _glyphs(style_module, ["a", "b", "Cc"], ["w1"], 6)["images"].numpy()
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_merged_label_and_writer_broadcast(style_module):
    out = _glyphs(style_module, ["c", "C", "Cc", "a"], ["w1"], 4)
    assert out["char_ids"].numpy().tolist() == [2, 2, 2, 0]
    assert out["writer_ids"].numpy().tolist() == [1, 1, 1, 1]
    images = out["images"].numpy()
    by_id = _by_id(style_module, [2, 2, 2, 0], [1], 4)["images"].numpy()
    np.testing.assert_array_equal(images, by_id)


def test_unknown_inputs_fail_in_graph(style_module):
    m = style_module
    with pytest.raises(tf.errors.InvalidArgumentError, match=UNKNOWN_CHAR + r".*%.*é"):
        _glyphs(m, ["a", "%", "é"], ["w0"], 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=UNKNOWN_CHAR):
        _glyphs(m, ["cC"], ["w0"], 0)  # a label is matched exactly
    with pytest.raises(tf.errors.InvalidArgumentError, match=UNKNOWN_WRITER + r".*nobody"):
        _glyphs(m, ["a", "b"], ["w0", "nobody"], 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="length 1 or the length of chars"):
        _glyphs(m, ["a", "b", "a"], ["w0", "w1"], 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="char_ids out of range"):
        _by_id(m, [0, 5], [0], 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="writer_ids out of range"):
        _by_id(m, [0, 1], [0, -1], 0)


def test_char_cgan_accepts_and_ignores_writers(char):
    m = tf.saved_model.load(str(char[3]))
    a = _glyphs(m, ["a", "c"], ["anyone", "at all"], 9)
    b = _glyphs(m, ["a", "c"], [], 9)
    np.testing.assert_array_equal(a["images"].numpy(), b["images"].numpy())
    assert a["writer_ids"].numpy().tolist() == [-1, -1]
    np.testing.assert_array_equal(_by_id(m, [0, 2], [99], 9)["images"].numpy(),
                                  a["images"].numpy())
    loaded = export.load_export(char[3])
    assert loaded.family == "char_cgan" and not loaded.uses_writer
    np.testing.assert_array_equal(loaded.glyphs("ac", "whoever", 9), a["images"].numpy())


# ------------------------------------------------------------------------------------------------
# load_export.


def test_load_export(style, style_module):
    loaded = export.load_export(style[2] / "style")
    assert loaded.path == style[3] and loaded.version == 1
    assert loaded.charset == CHARSET and loaded.writers == WRITERS
    assert (loaded.resolution, loaded.family, loaded.latent_dim) == (RES, "style_cgan", LATENT)
    images = loaded.glyphs(["a", "c", "1"], "writer two", 5)
    assert images.dtype == np.uint8 and images.shape == (3, RES, RES, 1)
    ref = _glyphs(style_module, ["a", "c", "1"], ["writer two"], 5)["images"].numpy()
    np.testing.assert_array_equal(images, ref)
    np.testing.assert_array_equal(loaded.glyphs(["a", "c", "1"], ["writer two"] * 3, 5), ref)


def test_load_export_checks_in_python_first(style, monkeypatch):
    loaded = export.load_export(style[3])

    def no_graph(self):
        raise AssertionError("the graph was called")

    monkeypatch.setattr(export.LoadedExport, "signatures", property(no_graph))
    with pytest.raises(ValueError, match=r"charset.*\['%', 'é'\]"):
        loaded.glyphs(["a", "%", "é", "%"], "w0", 0)
    with pytest.raises(ValueError, match=r"writer not known.*\['nobody', 'x'\]"):
        loaded.glyphs(["a", "b", "a"], ["nobody", "w0", "x"], 0)
    with pytest.raises(ValueError, match="length 1 or the length of chars"):
        loaded.glyphs(["a", "b", "a"], ["w0", "w1"], 0)


def test_untrained_writers_are_refused(style, tmp_path):
    """A writer the export has a row for but never trained (hwgan.json "untrained_writers", as
    train_main writes for a writer split) is refused by name; the others still write."""
    gen, cfg = style[0], style[1]
    path = export.export_generator(gen, cfg, CHARSET, WRITERS, tmp_path, "held",
                                   extra_metadata={"untrained_writers": ["w1"]})
    loaded = export.load_export(path)
    assert loaded.untrained_writers == ("w1",)
    assert loaded.trained_writers() == ("w0", "writer two")
    assert loaded.untrained_of(["w0", "w1", "w1"]) == ["w1"]
    with pytest.raises(ValueError, match=r"held out when the model was trained.*\['w1'\].*"
                                         r"\['w0', 'writer two'\]"):
        loaded.glyphs(["a", "b"], ["w0", "w1"], 0)
    assert loaded.glyphs(["a", "b"], "writer two", 0).shape == (2, RES, RES, 1)
    assert export.load_export(style[3]).untrained_writers == ()
    # In the graph (what TF Serving clients call) the name is unknown; its id still draws.
    module = tf.saved_model.load(str(path))
    with pytest.raises(tf.errors.InvalidArgumentError, match=UNKNOWN_WRITER + r".*w1"):
        _glyphs(module, ["a"], ["w1"], 0)
    np.testing.assert_array_equal(_glyphs(module, ["a"], ["writer two"], 3)["images"].numpy(),
                                  _by_id(module, [0], [2], 3)["images"].numpy())
    with pytest.raises(ValueError, match=r"untrained_writers \['nobody'\]"):
        export.export_generator(gen, cfg, CHARSET, WRITERS, tmp_path, "bad",
                                extra_metadata={"untrained_writers": ["nobody"]})


def test_export_model_adds_default_signatures_and_metadata(style, tmp_path):
    """export_model: the family's default signatures (style_cgan: write) and hwgan.json holding
    `metadata`, then untrained_writers, then writer_geometry (which the write signature uses)."""
    gen, cfg = style[0], style[1]
    geometry = {"w0": {"a": [1.0, 0.0]}}
    path = export.export_model(gen, cfg, CHARSET, WRITERS, tmp_path, "model", 2,
                               untrained_writers=["w1"], writer_geometry=geometry,
                               metadata={"note": "x"})
    assert path == tmp_path / "model" / "2"
    loaded = export.load_export(path)
    assert export.WRITE in loaded.signatures and export.EXTRACT_STYLE not in loaded.signatures
    assert list(loaded.info)[-3:] == ["note", "untrained_writers", "writer_geometry"]
    assert loaded.info["writer_geometry"] == geometry and loaded.untrained_writers == ("w1",)
    assert set(export.default_signatures(cfg)) == {export.WRITE}
    with pytest.raises(ValueError, match="style encoder"):
        export.default_signatures(dataclasses.replace(cfg, family="stylegan"), gen)


def test_load_export_errors(tmp_path, style):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing"))):
        export.load_export(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "empty"))):
        export.load_export(tmp_path / "empty")
    (tmp_path / "bad" / "3").mkdir(parents=True)
    (tmp_path / "bad" / "3" / "junk.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"bad.3.*not a SavedModel"):
        export.load_export(tmp_path / "bad")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=re.escape(str(tmp_path / "file"))):
        export.load_export(tmp_path / "file")


# ------------------------------------------------------------------------------------------------
# Sample grid.


def test_write_sample_grid(style, tmp_path):
    from PIL import Image

    out = tmp_path / "grid" / "sample.png"
    result = write_sample_grid(style[2] / "style", out, "ab C", ["w0", "writer two"], 3)
    assert result == out
    img = np.asarray(Image.open(out))
    cell = 2 * RES
    assert img.dtype == np.uint8 and img.shape == (2 * (cell + 2) + 2, 4 * (cell + 2) + 2)
    loaded = export.load_export(style[3])
    glyphs = loaded.glyphs(["a", "b", "C"], "w0", 3)
    # Row 0 is w0 with the seed's first z for "a": ink-high becomes dark-on-white, 2x.
    first = img[2:2 + cell, 2:2 + cell]
    np.testing.assert_array_equal(first[::2, ::2], 255 - glyphs[0, :, :, 0])
    blank = img[2:2 + cell, 2 + 2 * (cell + 2):2 + 2 * (cell + 2) + cell]
    assert (blank == 255).all()  # the space column
    assert [p.name for p in out.parent.iterdir()] == ["sample.png"]

    for chars, writers in [("a%", ["w0"]), ("ab", ["nobody"])]:
        bad = tmp_path / "bad.png"
        with pytest.raises(ValueError, match="charset|writer not known"):
            write_sample_grid(loaded, bad, chars, writers, 0)
        assert not bad.exists()


# ------------------------------------------------------------------------------------------------
# Other loaders: saved_model_cli (the TF1 session path TF Serving takes) and a fresh process.


def test_saved_model_cli_show(subprocesses):
    rc, output = subprocesses.result("show")
    assert rc == 0, output
    for name in ("glyphs", "glyphs_by_id", "metadata", "serving_default"):
        assert f"signature_def['{name}']" in output
    assert "DT_UINT8" in output and "(-1, 32, 32, 1)" in output
    assert "inputs['chars']" in output and "inputs['writers']" in output
    assert "inputs['seed']" in output and "DT_INT64" in output


def test_saved_model_cli_run_glyphs_by_id(subprocesses, style_module):
    (rc, output), out_dir = subprocesses.result("run_by_id"), subprocesses.out_dir
    assert rc == 0, output
    assert "Result for output key images" in output
    saved = np.load(out_dir / "by_id" / "images.npy")
    assert saved.dtype == np.uint8 and saved.shape == (2, RES, RES, 1)
    np.testing.assert_array_equal(saved, _by_id(style_module, [0, 1], [0, 0], 3)["images"])


def test_saved_model_cli_run_glyphs(subprocesses, style_module):
    (rc, output), out_dir = subprocesses.result("run_glyphs"), subprocesses.out_dir
    assert rc == 0, output
    for key in ("images", "char_ids", "writer_ids"):
        assert f"Result for output key {key}" in output
    np.testing.assert_array_equal(np.load(out_dir / "glyphs" / "char_ids.npy"), [0, 2, 2])
    np.testing.assert_array_equal(np.load(out_dir / "glyphs" / "writer_ids.npy"), [1, 1, 1])
    saved = np.load(out_dir / "glyphs" / "images.npy")
    expected = _glyphs(style_module, ["a", "c", "Cc"], ["w1"], 3)["images"]
    np.testing.assert_array_equal(saved, expected)


def test_fresh_process_load(subprocesses, style):
    rc, output = subprocesses.result("fresh")
    assert rc == 0, output
    line = [x for x in output.splitlines() if x.startswith("RESULT ")]
    assert line, output
    result = json.loads(line[-1][len("RESULT "):])
    assert result["version"] == 1 and result["family"] == "style_cgan"
    assert result["charset"] == list(CHARSET) and result["writers"] == list(WRITERS)
    assert result["shape"] == [3, RES, RES, 1] and result["dtype"] == "uint8"
    assert result["char_ids"] == [1]
    assert re.search(UNKNOWN_CHAR, result["error"]), result["error"]
    local = export.load_export(style[3]).glyphs(["a", "c", "C"], "w1", 7)
    assert int(local.sum()) == result["sum"]


def test_generator_built_under_mirrored_strategy(tmp_path):
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (tests/conftest.py)")
    cfg = ModelConfig(family="style_cgan", resolution=RES, width=0.25, latent_dim=8, num_chars=2,
                      num_writers=1, embed_dim=16)
    with strategy_lib.mirrored([d.name for d in devices[:2]]).scope():
        gen = get_family("style_cgan").build_generator(cfg)
    path = export.export_generator(gen, cfg, ("a", "b"), ("w",), tmp_path, "m")
    saved = [k for k, _ in tf.train.list_variables(str(path / "variables" / "variables"))
             if k.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(gen.variables)
    z = tf.random.stateless_normal([2, 8], seed=[4, 0])
    expected = to_uint8(gen({"z": z, "char": tf.constant([0, 1]), "writer": tf.constant([0, 0])},
                            training=False).numpy())
    got = export.load_export(path).glyphs("ab", "w", 4)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
