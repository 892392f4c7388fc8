"""End to end, the way a user brings their own handwriting, from local data made here only:

  hwgan template --charset ... --out sheets.pdf --png      (print the sheet)
  fill the cells by hand, photograph the page      (simulated: tests/data_pipeline/test_extract.py)
  hwgan extract photo.jpg --writer alice --layout ... --out data/alice
  python train_main.py --flagfile=configs/adapt_writer.cfg --writer_data=data/alice --init=BASE
  hwgan write --model EXPORT --writer alice "..." --out note.png

and the StyleGAN route on the same extracted glyphs:

  hwgan style extract --model STYLEGAN_RUN --samples data/alice --out alice.style
  hwgan write --model STYLEGAN_EXPORT --style alice.style "..." --out note2.png

The models are tiny (width 0.125, a few steps): these tests check that every step of the path
hands the next one what it needs (exit codes, files, counts, writer names), not quality.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_pipeline import build as ex
from data_pipeline import tfrecords
from hw_gan import cli
from hw_gan import config as config_lib
from hw_gan.export import load_export
from tests.conftest import ListSource, make_records
from tests.data_pipeline.test_extract import fill_page, photograph

ROOT = Path(__file__).resolve().parents[1]
CHARSET = "abcde"  # a custom template: its own charset, so extraction needs its layout file
REPEATS = 2
DPI = 150
TEXT = "a bad cab"  # only characters of CHARSET (and spaces)
BASE_WRITERS = ("w0", "w1", "w2", "w3")


def _ink_pixels(path: Path) -> int:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, f"{path} is not a readable image"
    assert img.shape[0] > 50 and img.shape[1] > 50, img.shape
    return int((img < 200).sum())  # visibly inked pixels (paper is white)


def _base_cfg(data_dir: Path, model_dir: Path, family: str, steps: int, **train):
    manifest = tfrecords.load_manifest(data_dir)
    args = dict(batch_size=8, steps=steps, checkpoint_every=steps, log_every=1, image_every=steps,
                r1_interval=2, seed=3)
    args.update(train)
    return config_lib.validate(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(data_dir=str(data_dir), shuffle_buffer=64),
        model=config_lib.ModelConfig(family=family, resolution=32, width=0.125, latent_dim=16,
                                     embed_dim=32, num_chars=len(manifest["charset"]),
                                     num_writers=len(manifest["writers"])),
        train=config_lib.TrainConfig(**args),
        eval=config_lib.EvalConfig(eval_at_end=False),
        runtime=config_lib.RuntimeConfig(model_dir=str(model_dir), strategy="default")))


def _base_dataset(out: Path, writers, per: int, **split) -> Path:
    """A small multi-writer dataset over exactly the template's charset (in its order)."""
    split = split or {"split": "none"}
    tfrecords.write_dataset(ListSource(make_records(writers=writers, chars=CHARSET, per=per,
                                                    size=32, seed=1)),
                            out, num_shards=1, progress=False, **split)
    assert tfrecords.load_manifest(out)["charset"] == list(CHARSET)
    return out


# -- 1-3: template, fill + photograph, extract ------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def template(root):
    out = root / "sheets.pdf"
    rc = cli.main(["template", "--out", str(out), "--charset", CHARSET,
                   "--repeats", str(REPEATS), "--dpi", str(DPI), "--png"])
    assert rc == 0
    layout_file = root / "sheets.pdf.layout.json"
    layout = json.loads(layout_file.read_text())
    return {"pdf": out, "layout_file": layout_file, "layout": layout,
            "pngs": sorted(root.glob("sheets-page-*.png"))}


@pytest.fixture(scope="module")
def extracted(root, template):
    """The printed PNG page, filled in by simulated writer 5 (every cell), photographed turned
    a quarter, in perspective, blurred, noisy, shaded and JPEG-compressed; then `hwgan extract`."""
    layout = template["layout"]
    rng = np.random.default_rng(2024)
    photos = []
    for i, png in enumerate(template["pngs"]):
        printed = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        page, truth = fill_page(printed, layout, i, writer_index=5, seed=0, empty_fraction=0.0,
                                rng=rng)
        assert sum(t["filled"] for t in truth.values()) == len(layout["pages"][i]["cells"])
        photo = root / f"photo-{i + 1}.jpg"
        photo.write_bytes(photograph(page, rng, quarter_turns=1, quality=75, blur=0.8,
                                     noise=4.0, shadow=0.3, scale=1.05))
        photos.append(photo)
    out = root / "alice"
    rc = cli.main(["extract", *map(str, photos), "--writer", "alice", "--out", str(out),
                   "--layout", str(template["layout_file"]), "--quiet"])
    return {"rc": rc, "dir": out, "photos": photos,
            "report": json.loads((out / ex.REPORT_NAME).read_text()) if out.is_dir() else None}


def test_template_writes_pdf_png_pages_and_layout(template):
    layout = template["layout"]
    assert template["pdf"].read_bytes().startswith(b"%PDF-")
    assert layout["charset"] == list(CHARSET) and layout["repeats"] == REPEATS
    assert layout["dpi"] == DPI
    assert layout["cell_count"] == len(CHARSET) * REPEATS
    assert layout["page_count"] == len(layout["pages"]) == len(template["pngs"]) == 1
    cells = [c for p in layout["pages"] for c in p["cells"]]
    assert len(cells) == layout["cell_count"]
    assert sorted(c["char"] for c in cells) == sorted(CHARSET * REPEATS)
    page = cv2.imread(str(template["pngs"][0]))
    assert page is not None
    w_mm, h_mm = layout["pages"][0]["size_mm"]
    assert abs(page.shape[1] - w_mm * DPI / 25.4) <= 2
    assert abs(page.shape[0] - h_mm * DPI / 25.4) <= 2


def test_extract_finds_the_page_and_every_glyph(extracted, template):
    assert extracted["rc"] == 0  # every image used
    report = extracted["report"]
    n = template["layout"]["cell_count"]
    [entry] = report["images"]
    assert entry["status"] == "ok" and entry["page"] == 1, entry
    assert Path(entry["file"]).name == "photo-1.jpg"
    assert len(entry["markers_found"]) == 4
    assert report["counts"]["images_refused"] == 0 and report["counts"]["pages"] == 1
    assert report["counts"]["glyphs"] == n, report["counts"]
    assert report["counts"]["cells_ok"] == n, report["counts"]  # nothing suspicious or empty
    assert report["missing_chars"] == []
    out = extracted["dir"]
    manifest = tfrecords.load_manifest(out)
    assert manifest["writers"] == ["alice"] and manifest["charset"] == list(CHARSET)
    assert manifest["source"]["name"] == "scans" and manifest["has_geometry"]
    assert manifest["splits"]["train"]["count"] == n
    assert tfrecords.verify_dataset(out) == []
    assert cv2.imread(str(out / ex.REVIEW_NAME)) is not None
    records = list(tfrecords.read_records(out, "train"))
    assert sorted(r.char for r in records) == sorted(CHARSET * REPEATS)
    assert all(r.writer == "alice" and r.image.shape == (32, 32) and r.image.max() > 100
               for r in records)


# -- 4-5: adapt a style_cgan base to alice, write with her hand --------------------------------


@pytest.fixture(scope="module")
def cgan_base(root):
    """A tiny style_cgan (4 writers x the template's charset, 2 steps), laid out by train_main
    and exported. Its dataset is split by writer: one writer is held out, so the model has a
    row for it that is never trained."""
    from hw_gan import experiment

    data = _base_dataset(root / "cgan-data", BASE_WRITERS, per=2, split="writer",
                         test_fraction=0.25)
    cfg = _base_cfg(data, root / "cgan-base", "style_cgan", steps=2, r1_interval=1)
    cfg = cfg.replace(runtime=dataclasses.replace(cfg.runtime, export_dir=str(root / "export"),
                                                  export_name="cgan-base"))
    experiment.run(cfg)
    experiment.run(cfg.replace(runtime=dataclasses.replace(cfg.runtime, mode="export")))
    return root / "cgan-base"


def _held_out_writer(root) -> str:
    [name] = tfrecords.load_manifest(root / "cgan-data")["split"]["test_writers"]
    return name


def test_base_export_refuses_the_held_out_writer(cgan_base, root):
    held = _held_out_writer(root)
    exported = load_export(root / "export" / "cgan-base")
    assert exported.writers == BASE_WRITERS and exported.untrained_writers == (held,)
    with pytest.raises(ValueError, match=rf"held out when the model was trained.*'{held}'"):
        exported.glyphs(["a"], held, 0)


@pytest.fixture(scope="module")
def adapted(root, extracted, cgan_base):
    """train_main.py in adaptation mode (its own process, as a user runs it)."""
    assert extracted["rc"] == 0
    cmd = [sys.executable, str(ROOT / "train_main.py"),
           f"--flagfile={ROOT / 'configs' / 'adapt_writer.cfg'}",
           f"--writer_data={extracted['dir']}", f"--init={cgan_base}", "--writer_name=alice",
           f"--model_dir={root / 'adapt-alice'}", f"--export_dir={root / 'export'}",
           "--export_name=adapt-alice", "--adapt_steps=3", "--adapt_batch_size=4",
           "--adapt_finetune_steps=20", "--log_every=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"report": json.loads(proc.stdout), "export": root / "export" / "adapt-alice"}


def test_adaptation_adds_alice_and_exports_her(adapted, cgan_base, template):
    report = adapted["report"]
    assert report["writer_name"] == "alice" and report["writer_id"] == len(BASE_WRITERS)
    assert report["num_writers"] == len(BASE_WRITERS) + 1
    assert report["base_model_dir"] == str(cgan_base) and report["base_step"] == 2
    assert report["seen_chars"] == len(CHARSET) and report["unseen_chars"] == []
    assert report["num_glyphs"] == template["layout"]["cell_count"]
    # The config tunes the generator (pivotal) when the sheet gives >= 1.5 glyphs per character
    # (20 steps here instead of the config's 400: the flag reaches the phase).
    per_char = template["layout"]["cell_count"] / len(CHARSET)
    assert per_char >= 1.5 and report["variants_per_char"] == round(per_char, 3)
    assert report["finetuned"] and report["phases"]["finetune"]["objective"] == "pivotal"
    assert report["phases"]["finetune"]["steps"] == 20 and report["base_writer_drift"] > 0
    assert report["base_rows_unchanged"] and report["writer_geometry_chars"] == len(CHARSET)
    assert Path(report["export"]).is_dir()
    exported = load_export(adapted["export"])
    assert exported.writers == (*BASE_WRITERS, "alice")
    # The base's held-out writer never started alice and is refused by her export too.
    held = _held_out_writer(cgan_base.parent)
    assert held not in report["start_writers"]
    assert "the 3 writers with glyphs" in report["start_pool"]
    assert exported.untrained_writers == (held,)
    assert tuple(exported.charset) == tuple(CHARSET)
    # The geometry measured on alice's sheet travels with the export, for every character.
    assert sorted(exported.info["writer_geometry"]["alice"]) == sorted(CHARSET)
    images = exported.glyphs(list(CHARSET), ["alice"], 0)
    assert images.shape == (len(CHARSET), 32, 32, 1) and images.dtype == np.uint8


def test_write_in_alices_hand(adapted, root):
    note = root / "note.png"
    rc = cli.main(["write", "--model", str(adapted["export"]), "--writer", "alice", TEXT,
                   "--out", str(note), "--page", "100x60mm", "--dpi", "100"])
    assert rc == 0 and note.is_file()
    assert _ink_pixels(note) > 100
    # A writer the model does not know is a clear error, and nothing is written.
    other = root / "nobody.png"
    assert cli.main(["write", "--model", str(adapted["export"]), "--writer", "nobody", TEXT,
                     "--out", str(other)]) == 2
    assert cli.main(["write", "--model", str(adapted["export"]), "--writer",
                     _held_out_writer(root), TEXT, "--out", str(other)]) == 2
    assert not other.exists()


# -- 6: the StyleGAN route on the same extracted dataset ----------------------------------------


@pytest.fixture(scope="module")
def stylegan_run(root):
    """A tiny stylegan (6 writers x the template's charset, 4 steps) trained and exported
    through hw_gan.experiment.run."""
    from hw_gan import experiment

    data = _base_dataset(root / "sg-data", tuple(f"s{i}" for i in range(6)), per=4)
    cfg = _base_cfg(data, root / "sg-run", "stylegan", steps=4, style_group_size=4)
    cfg = cfg.replace(runtime=dataclasses.replace(cfg.runtime, export_dir=str(root / "export"),
                                                  export_name="sg"))
    experiment.run(cfg)
    experiment.run(cfg.replace(runtime=dataclasses.replace(cfg.runtime, mode="export")))
    return {"run": root / "sg-run", "export": root / "export" / "sg"}


def test_style_extract_and_write_with_stylegan(stylegan_run, extracted, root, template):
    assert extracted["rc"] == 0
    style = root / "alice.style"
    rc = cli.main(["style", "extract", "--model", str(stylegan_run["run"]),
                   "--samples", str(extracted["dir"]), "--out", str(style),
                   "--method", "both", "--steps", "3"])
    assert rc == 0 and style.is_file()
    doc = json.loads(style.read_text())
    assert doc["writer"] == "alice" and doc["k"] == template["layout"]["cell_count"]
    assert doc["chars"] == CHARSET and doc["model"]["charset"] == list(CHARSET)
    ws = np.asarray(doc["ws"], np.float32)
    assert ws.shape == (doc["model"]["num_ws"], doc["model"]["w_dim"]) and np.isfinite(ws).all()

    note = root / "note2.png"
    rc = cli.main(["write", "--model", str(stylegan_run["export"]), "--style", str(style), TEXT,
                   "--out", str(note), "--page", "100x60mm", "--dpi", "100"])
    assert rc == 0 and note.is_file()
    assert _ink_pixels(note) > 100

    # The export takes a style from the same sheet too (its extract_style signature), and the
    # style fits the model it was taken with.
    from_export = root / "alice-export.style"
    rc = cli.main(["style", "extract", "--model", str(stylegan_run["export"]),
                   "--samples", str(extracted["dir"]), "--out", str(from_export),
                   "--method", "encoder"])
    assert rc == 0
    doc2 = json.loads(from_export.read_text())
    assert doc2["writer"] == "alice" and doc2["k"] == doc["k"]
    assert np.asarray(doc2["ws"]).shape == ws.shape
