"""Shipped models (hw_gan.shipped, `hwgan ship`, `hwgan models`, `hwgan writers`): a tiny
style_cgan trained 2 steps is shipped into a temporary registry ($HWGAN_SHIPPED_MODELS) and used
by name wherever a model is accepted."""

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import tfrecords
from hw_gan import adaptation as adapt_lib
from hw_gan import config as config_lib
from hw_gan import experiment, shipped
from hw_gan.cli import models as models_cli
from hw_gan.cli import ship as ship_cli
from hw_gan.cli import style as style_cli
from hw_gan.cli.sample import sample_main
from hw_gan.cli.write import write_main
from hw_gan.export import export_model, load_export
from hw_gan.serve import make_server
from hw_gan.training import run_dir
from tests.hw_gan.test_adapt import _dataset, _train_base

NAME = "tiny_hands"
WRITERS = ("w0", "w1", "w2", "w3")
EVAL = {"step": 2, "fid": 12.5, "kid": 0.01,
        "legibility": {"ratio": 0.93, "per_char": {"a": 1.02, "b": 0.71, "c": 0.95, ".": 0.4}},
        "writer_match": {"generated": 0.5, "real": 0.9, "chance": 0.25, "vs_chance": 2.0}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A run (2 steps, writers w0-w3 on "abc."), its export (w3 never trained), shipped as
    tiny_hands into a temporary registry that $HWGAN_SHIPPED_MODELS points at."""
    root = tmp_path_factory.mktemp("ship")
    data = _dataset(root / "data", WRITERS, "abc.", per=2)
    run = root / "tiny"
    cfg = _train_base(data, run)
    (run / "eval.json").write_text(json.dumps(EVAL))
    trainer = run_dir.restore_trainer(run)
    manifest = tfrecords.load_manifest(data)
    export_model(trainer.ema_generator, cfg.model, manifest["charset"], manifest["writers"],
                 root / "export", "tiny", untrained_writers=["w3"])
    registry = root / "shipped"
    old = os.environ.get(shipped.ROOT_ENV)
    os.environ[shipped.ROOT_ENV] = str(registry)
    out = ship_cli.ship(run, str(root / "export" / "tiny"), NAME, registry,
                        command="python train_main.py --flagfile=configs/tiny.cfg")
    yield {"root": root, "run": run, "data": data, "registry": registry, "path": out,
           "cfg": cfg, "export": root / "export" / "tiny"}
    if old is None:
        os.environ.pop(shipped.ROOT_ENV, None)
    else:
        os.environ[shipped.ROOT_ENV] = old


def test_ship_writes_the_model_its_files_and_a_card(tiny):
    path = tiny["path"]
    info = json.loads((path / shipped.MODEL_FILE).read_text())
    assert (info["name"], info["family"], info["writers"], info["resolution"]) == (
        NAME, "style_cgan", 3, 32)
    assert info["run"] and info["weak_chars"] == [".", "b"] and info["licence"] == "CC-BY-4.0"
    for rel, entry in info["files"].items():
        assert (path / rel).stat().st_size == entry["bytes"] <= shipped.MAX_FILE_BYTES
    assert "1/saved_model.pb" in info["files"] and "run/config.json" in info["files"]
    ckpt = [r for r in info["files"] if r.startswith("run/checkpoints/ckpt-2.")]
    assert ckpt and not run_dir.has_optimizer_state(str(path / "run/checkpoints/ckpt-2"))
    # The shipped checkpoint holds no optimizer state: smaller than the run's.
    run_bytes = sum(p.stat().st_size for p in (tiny["run"] / "checkpoints").glob("ckpt-2.*"))
    assert sum(info["files"][r]["bytes"] for r in ckpt) < run_bytes
    dataset = json.loads((path / "run" / "dataset.json").read_text())
    assert dataset["untrained_writers"] == ["w3"]
    card = (path / shipped.CARD_FILE).read_text()
    for needle in ("UNIPEN", "CC BY 4.0", "doi:10.5281/zenodo.1195803", "I. Guyon, L. Schomaker, "
                   "R. Plamondon, M. Liberman, S. Janet", "ICPR", "configs/tiny.cfg",
                   '"family": "style_cgan"', "training time on this machine",
                   "legibility ratio (generated / real held-out accuracy of the character "
                   "judge): **0.930**", "= 2.0x chance", "FID in the judge's feature space: "
                   "12.500", "2 of 4 characters", "`.` 0.40, `b` 0.71", "32 x 32 px",
                   "no joins", "Latin only", "--init=tiny_hands"):
        assert needle in card, needle
    assert shipped.names() == [NAME] and shipped.get(NAME).export_path == path / "1"


def test_hwgan_models_lists_name_family_writers_resolution_size_licence(tiny, capsys):
    assert models_cli.models_main([]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split() == ["name", "family", "writers", "resolution", "size", "licence"]
    assert re.match(r"tiny_hands\s+style_cgan\s+3\s+32 px\s+\d+\.\d MB\s+CC-BY-4.0$", row), row
    assert "a base for adding a person (--init, --base): tiny_hands" in out
    assert models_cli.models_main(["--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["adaptable"] and entry["card"].endswith("MODEL_CARD.md")


def test_write_sample_and_mode_sample_take_the_name(tiny, tmp_path, capsys):
    out = tmp_path / "note.png"
    assert write_main(["--model", NAME, "--writer", "w1", "ab. ca", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    # Characters the model lacks follow --missing.
    assert write_main(["--model", NAME, "--writer", "w1", "ab!", "--out", str(out)]) == 2
    assert "not in the model's charset" in capsys.readouterr().err
    assert write_main(["--model", NAME, "--writer", "w1", "ab!", "--out", str(out),
                       "--missing", "box"]) == 0
    assert "drawn as boxes: ['!']" in capsys.readouterr().err
    # The writer it never trained is refused by name, as from its export.
    assert write_main(["--model", NAME, "--writer", "w3", "ab", "--out", str(out)]) == 2
    assert sample_main(["--model", NAME, "--out", str(tmp_path / "grid.png")]) == 0
    cfg = dataclasses.replace(config_lib.ExperimentConfig(), runtime=config_lib.RuntimeConfig(
        mode="sample", export_dir=str(tmp_path / "no_exports"), export_name=NAME,
        sample_out=str(tmp_path / "grid2.png")))
    assert experiment.sample(cfg) == {"sample": str(tmp_path / "grid2.png")}
    assert (tmp_path / "grid2.png").stat().st_size > 0


def test_serve_and_style_take_the_name(tiny):
    server = make_server(NAME, port=0, warmup=False)
    try:
        assert server.app.served.name == NAME
        assert server.app.served.model.path == tiny["path"] / "1"
    finally:
        server.server_close()
    # hwgan style resolves the name to the shipped export (a style_cgan: no style signatures).
    with pytest.raises(ValueError, match=rf"{re.escape(str(tiny['path'] / '1'))}.*without style"):
        style_cli.open_model(NAME)


def test_adaptation_with_pivotal_tuning_starts_from_the_shipped_model(tiny, tmp_path):
    alice = _dataset(tmp_path / "alice", ("alice",), "abc", per=2, seed=5)
    acfg = adapt_lib.AdaptConfig(writer_data=str(alice), init=NAME, model_dir=str(tmp_path / "a"),
                                 writer_name="alice", steps=2, batch_size=4, finetune_steps=1,
                                 finetune_objective="pivotal", finetune_min_variants=0,
                                 log_every=1, export_dir=str(tmp_path / "export"))
    report = adapt_lib.adapt(acfg, log=lambda m: None)
    assert report["finetuned"] and report["base_step"] == 2
    assert report["base_model_dir"] == str(tiny["path"] / "run")
    assert "its dataset.json" in report["start_pool"]  # w0-w2: never the untrained w3
    assert report["start_writers"] and "w3" not in report["start_writers"]
    assert load_export(report["export"]).writers[-1] == "alice"
    # hwgan app --base takes the name too (it checks it with load_base at start).
    assert adapt_lib.load_base(NAME)[2] == tiny["path"] / "run"


def test_writers_gallery_has_every_trained_writer_on_its_pages(tiny, tmp_path, capsys):
    out = tmp_path / "gallery.pdf"
    assert models_cli.writers_main(["--model", NAME, "--out", str(out), "--page", "120x60mm",
                                    "--dpi", "100"]) == 0
    err = capsys.readouterr().err
    assert "3 writers on 2 pages" in err and "'!'" in err  # "thank you ...!": no "!" -> nearest
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", pdf)) == 2
    png = tmp_path / "g.png"
    assert models_cli.writers_main(["--model", NAME, "--out", str(png), "--writers", "w0,w2",
                                    "--text", "abc."]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert models_cli.writers_main(["--model", NAME, "--out", str(png), "--writers", "w3",
                                    "--overwrite"]) == 2
    assert "w3" in capsys.readouterr().err


def test_unknown_name_lists_the_shipped_names(tiny, tmp_path, capsys):
    assert write_main(["--model", "nosuch", "--writer", "w0", "ab", "--out",
                       str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "'nosuch' is neither an existing path nor a shipped model" in err
    assert "shipped models: tiny_hands" in err
    with pytest.raises(ValueError, match="shipped models: tiny_hands"):
        adapt_lib.load_base("nosuch")
    # A path that does not exist keeps its own message.
    assert write_main(["--model", str(tmp_path / "none"), "--writer", "w0", "ab", "--out",
                       str(tmp_path / "x.png")]) == 2
    assert "none does not exist" in capsys.readouterr().err


def _copy_registry(tiny, tmp_path, monkeypatch):
    registry = tmp_path / "copy"
    shutil.copytree(tiny["registry"], registry)
    monkeypatch.setenv(shipped.ROOT_ENV, str(registry))
    return registry / NAME


def test_a_damaged_shipped_model_names_the_file(tiny, tmp_path, monkeypatch, capsys):
    path = _copy_registry(tiny, tmp_path, monkeypatch)
    variables = path / "1" / "variables" / "variables.data-00000-of-00001"
    variables.write_bytes(variables.read_bytes()[:-10])
    assert write_main(["--model", NAME, "--writer", "w0", "ab", "--out",
                       str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert f"shipped model {NAME} is damaged: {variables}" in err and "reinstall" in err
    (path / shipped.MODEL_FILE).write_text("{not json")
    with pytest.raises(shipped.DamagedModelError, match=re.escape(str(path / "model.json"))):
        shipped.get(NAME)


def test_a_missing_checkpoint_file_is_named_for_init(tiny, tmp_path, monkeypatch):
    path = _copy_registry(tiny, tmp_path, monkeypatch)
    index = path / "run" / "checkpoints" / "ckpt-2.index"
    index.unlink()
    with pytest.raises(shipped.DamagedModelError, match=re.escape(f"{index} is missing")):
        adapt_lib.load_base(NAME)


def test_size_limit_refuses_and_names_the_file(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"saved_model.pb is \d+\.\d MB, over the 0.05 MB "
                                         r"limit per file"):
        ship_cli.ship(tiny["run"], str(tiny["export"]), "too_big", tmp_path,
                      max_file_bytes=50_000)
    assert not (tmp_path / "too_big").exists() and not list(tmp_path.iterdir())


def _largest_tensor(prefix) -> int:
    reader = tf.train.load_checkpoint(str(prefix))
    return max(np.asarray(reader.get_tensor(k)).nbytes for k in reader.get_variable_to_dtype_map())


def test_large_variable_files_are_split_into_shards_that_load_the_same(tiny, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny["path"] / "1", export / "1")
    before = load_export(export).glyphs("abc", "w0", seed=3)
    prefix = export / "1" / "variables" / "variables"
    largest = _largest_tensor(prefix)
    shards = ship_cli.reshard_bundle(prefix, largest)
    assert shards >= 2
    files = sorted(p.name for p in prefix.parent.iterdir())
    assert files[-1] == "variables.index" and len(files) == shards + 1
    assert all(p.stat().st_size <= largest + 4096 for p in prefix.parent.glob("*.data-*"))
    np.testing.assert_array_equal(load_export(export).glyphs("abc", "w0", seed=3), before)
    # A checkpoint split the same way restores as well.
    shutil.copytree(tiny["path"], tmp_path / "model")
    ckpt = tmp_path / "model" / "run"
    prefix = ckpt / "checkpoints" / "ckpt-2"
    assert ship_cli.reshard_bundle(prefix, _largest_tensor(prefix)) >= 2
    trainer = run_dir.restore_trainer(ckpt)
    assert int(trainer.step.numpy()) == 2 and tf.reduce_all(tf.equal(
        trainer.generator.weights[0], trainer.ema_generator.weights[0]))


def test_the_shipped_run_takes_its_generator_from_the_export(tiny, tmp_path):
    """The shipped run's checkpoint holds no generator (the export has it: no weights twice);
    restoring gives the run's own EMA generator, and a bundle that does not fit is named."""
    run = tiny["path"] / "run"
    names = [n for n, _ in tf.train.list_variables(str(run / "checkpoints" / "ckpt-2"))]
    assert not any(n.startswith("ema_generator/") for n in names)
    assert any(n.startswith("discriminator/") for n in names)
    assert json.loads((run / run_dir.GENERATOR_FILE).read_text()) == {
        "variables": "../1/variables/variables"}
    shipped_base = run_dir.restore_trainer(run)
    original = run_dir.restore_trainer(tiny["run"])
    for a, b in zip(shipped_base.ema_generator.weights, original.ema_generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # An export of another model next to the run: refused, naming the bundle.
    shutil.copytree(tiny["path"], tmp_path / "m")
    (tmp_path / "m" / "run" / run_dir.GENERATOR_FILE).write_text(
        json.dumps({"variables": "../nowhere/variables"}))
    with pytest.raises(run_dir.RunDirError, match="cannot take the generator's weights from "
                                                  ".*nowhere/variables"):
        run_dir.restore_trainer(tmp_path / "m" / "run")


def test_the_card_carries_the_style_evaluation_and_its_targets(tiny, tmp_path, capsys):
    def row(k, method, match, fid, leg=1.0):
        return {"k": k, "method": method, "legibility": leg, "writer_match": match,
                "writer_match_vs_chance": match * 31, "fid": fid}

    doc = {"writers": 31, "extract_seconds_k10": {"encoder": 0.04, "both": 4.2},
           "table": [row(10, "mean style (baseline)", 0.042, 10.6),
                     row(10, "encoder", 0.078, 6.7),
                     row(10, "encoder + projection", 0.108, 3.44, 0.99),
                     row(20, "encoder + projection", 0.118, 3.8)]}
    card = ship_cli.style_eval_lines(doc)
    assert "| 10 | encoder + projection | 0.99 | 0.108 (3.3x) | 3.44 |" in card
    assert ("At k = 10, encoder + projection: writer match 0.108, 2.6x the mean-style "
            "baseline's 0.042 (target >= 2x: met); FID 3.44 (target <= 4: met)") in card
    assert "encoder 0.04 s, both 4.20 s" in card
    doc["table"][2] = row(10, "encoder + projection", 0.06, 4.5)
    card = ship_cli.style_eval_lines(doc)
    assert "encoder: writer match 0.078, 1.9x" in card and card.count("**not met**") == 2
    assert ship_cli.style_eval_lines({}) == ""
    # A fewshot model's card: rows from another capture marked, issue 18's bar.
    few = {"writers": 31, "table": [
        row(10, "mean style (baseline)", 0.05, 8.38),
        row(10, "few-shot (style from the k glyphs)", 0.102, 3.58, 1.09),
        dict(row(10, "few-shot (style from the k glyphs)", 0.105, 6.32, 0.91),
             references="pen 0.09"),
        dict(row(10, "few-shot (style from the k glyphs) [characters never trained on]", 0.159,
                 53.1, 0.62), num_generated=107)]}
    card = ship_cli.style_eval_lines(few, None, "fewshot")
    assert "| 10 | few-shot (style from the k glyphs) [re-captured] | 0.91 | 0.105 (3.3x)" in card
    assert ("characters never trained on (drawn from their font image alone): legibility 0.62 "
            "(target >= 0.7: **not met**)") in card
    assert ("writer match 3.2x chance (target >= 7x: **not met**), FID 3.58 (target <= 3: "
            "**not met**), legibility 1.09 (target >= 0.95: met)") in card
    assert ("(pen 0.09): legibility 0.91 (target >= 0.9: met), writer match 3.3x chance (target "
            ">= 5x: **not met**), FID 6.32 (target: below the mean style's 8.38: met)") in card
    assert "mean-style baseline's" not in card  # issue 17's bar is the stylegan's
    # Through the command: the card gets the section; a bad --style_eval is named.
    path = tmp_path / "style_eval.json"
    path.write_text(json.dumps(doc))
    root = tmp_path / "reg"
    assert ship_cli.ship_main([str(tiny["run"]), "--export", str(tiny["export"]), "--name",
                               "with_eval", "--root", str(root), "--style_eval",
                               str(path)]) == 0
    assert "### Styles from k glyphs of 31 writers" in (
        root / "with_eval" / shipped.CARD_FILE).read_text()
    path.write_text("{")
    assert ship_cli.ship_main([str(tiny["run"]), "--export", str(tiny["export"]), "--name",
                               "bad", "--root", str(root), "--style_eval", str(path)]) == 2
    assert f"--style_eval {path} is not JSON" in capsys.readouterr().err


def test_the_app_offers_the_shipped_bases_writers_as_sample_hands(tiny, tmp_path, capsys):
    """`hwgan app --base NAME` with a stylegan-like --model: the shipped base's trained writers
    are the sample hands (w3, never trained, is not), and a letter is written in one."""
    from hw_gan.app import studio as studio_lib
    from hw_gan.cli.app import app_main
    from tests.hw_gan.test_app_server import FakeModel

    class StyleOnly(FakeModel):  # a model that makes hands from glyphs: no writers of its own
        writers = ()
        signatures = {"extract_style": None,
                      "mean_style": lambda: {"style": tf.zeros([2, 4])}}

    mp = pytest.MonkeyPatch()
    real = studio_lib.load_export
    mp.setattr(studio_lib, "load_export", lambda p: StyleOnly() if p == "style" else real(p))
    try:
        studio = studio_lib.Studio(studio_lib.StudioConfig(
            model="style", base=NAME, data_dir=str(tmp_path / "data"), gallery_size=2))
        gallery = studio.gallery()
        assert [g["writer"] for g in gallery] == ["w0", "w1"]
        studio = studio_lib.Studio(studio_lib.StudioConfig(
            model="style", base=NAME, data_dir=str(tmp_path / "data")))
        assert [g["writer"] for g in studio.gallery()] == ["w0", "w1", "w2"]
        hand = studio.gallery()[1]["id"]
        data, ctype, headers = studio.write({"text": "ab c.", "hand": hand, "page": "a5",
                                             "seed": 3})
        assert ctype == "image/png" and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert headers["X-Hwgan-Glyphs"] == "4"
        # --gallery names a model without writers: one line naming it.
        with pytest.raises(ValueError, match="--gallery style: a model with writers"):
            studio_lib.Studio(studio_lib.StudioConfig(model="style", gallery="style",
                                                      data_dir=str(tmp_path / "d2")))
    finally:
        mp.undo()
    # No --model and no shipped unipen_styles: the command says what to give.
    assert app_main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--model is needed: no shipped unipen_styles or unipen_hands" in err


def test_ship_carries_the_character_judge_it_is_given(tiny, tmp_path, capsys):
    from hw_gan.evaluation import judge as judge_lib

    judge = judge_lib.get_judge(tmp_path / "judges", "char", tiny["data"], image_size=32,
                                steps=2, batch=8, progress=False)
    folder = Path(judge.cache["path"])
    out = ship_cli.ship(tiny["run"], str(tiny["export"]), "tiny_judged", tmp_path / "reg",
                        include_run=False, judge=folder)
    info = json.loads((out / shipped.MODEL_FILE).read_text())
    assert info["judge"] == "judge" and {"judge/judge.json", "judge/judge.weights.h5"} <= set(
        info["files"])
    assert "| character judge | `judge/`" in (out / shipped.CARD_FILE).read_text()
    again = judge_lib.load_judge_dir(out / "judge")
    images = np.zeros((3, 32, 32, 1), np.float32) - 1.0
    np.testing.assert_array_equal(again.predict(images), judge.predict(images))
    # A folder that is not a judge is named, and nothing is written. (What TensorFlow logged
    # while the judge trained, e.g. a retracing warning, is not the refusal's output.)
    capsys.readouterr()
    code = ship_cli.ship_main([str(tiny["run"]), "--export", str(tiny["export"]), "--name",
                               "tiny_nojudge", "--root", str(tmp_path / "reg"), "--judge",
                               str(tmp_path)])
    assert code == 2 and not (tmp_path / "reg" / "tiny_nojudge").exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--judge {tmp_path}: not a judge folder" in err
