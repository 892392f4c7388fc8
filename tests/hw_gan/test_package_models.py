"""The models this package ships (hw_gan/shipped), as committed: every file whole and under the
git limit, and the README's "Write in a real hand now" commands working with them, offline and
with no training (a note with punctuation in a shipped writer's hand; a style taken from a folder
of glyph images, then a note in it)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hw_gan import shipped
from hw_gan.cli import main
from hw_gan.export import load_export

PACKAGE = Path(shipped.__file__).resolve().parent
NOTE = "Dear Sam, thank you! See you at 3 o'clock - Ann."


@pytest.fixture(autouse=True)
def package_models(monkeypatch):
    """The package's own folder of shipped models, whatever the environment says."""
    monkeypatch.delenv(shipped.ROOT_ENV, raising=False)


def _ink_columns(path: Path) -> int:
    page = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert page is not None, path
    return int(((page < 128).sum(0) > 0).sum())


def test_the_shipped_models_are_committed_whole():
    assert {"unipen_hands", "unipen_styles"} <= set(shipped.names(PACKAGE))
    for name in ("unipen_hands", "unipen_styles"):
        model = shipped.get(name)  # checks every file against model.json
        model.verify()
        assert model.path == PACKAGE / name
        sizes = [p.stat().st_size for p in model.path.rglob("*") if p.is_file()]
        assert max(sizes) <= shipped.MAX_FILE_BYTES
        assert (model.path / shipped.CARD_FILE).read_text().startswith(f"# {name}: ")
    hands, styles = shipped.get("unipen_hands"), shipped.get("unipen_styles")
    assert hands.family == "style_cgan" and hands.has_run and hands.info["writers"] == 306
    assert styles.family == "stylegan" and not styles.has_run
    loaded = load_export(styles.export_path)
    assert loaded.style_method == styles.info["style_method"] == "encoder"
    assert {".", ",", "'", "!", "-"} <= set(loaded.charset)
    assert "CC BY 4.0" in (styles.path / shipped.CARD_FILE).read_text()


def test_the_readme_commands_write_with_the_shipped_models(tmp_path):
    hands = load_export(shipped.get("unipen_hands").export_path)
    writer = hands.trained_writers()[0]
    note = tmp_path / "note.png"
    assert main(["write", "--model", "unipen_hands", "--writer", writer, NOTE,
                 "--out", str(note)]) == 0
    assert _ink_columns(note) > 200
    # A folder of glyph images (dark ink on white, named <char>_<n>.png): here drawn by a
    # shipped writer, as a person's scans would be.
    folder = tmp_path / "my_glyphs"
    folder.mkdir()
    chars = "DearSmthkyou"
    for n, (c, g) in enumerate(zip(chars, hands.glyphs(chars, writer, seed=3))):
        cv2.imwrite(str(folder / f"{c}_{n}.png"), 255 - g[..., 0])
    style = tmp_path / "me.style"
    assert main(["style", "extract", "--model", "unipen_styles", "--samples", str(folder),
                 "--out", str(style)]) == 0
    doc = json.loads(style.read_text())
    assert doc["method"] == "encoder" and doc["steps"] == 0 and doc["k"] == len(chars)
    styled = tmp_path / "styled.png"
    assert main(["write", "--model", "unipen_styles", "--style", str(style), NOTE,
                 "--out", str(styled)]) == 0
    assert _ink_columns(styled) > 200
    # The same in one step, from the folder.
    direct = tmp_path / "direct.png"
    assert main(["write", "--model", "unipen_styles", "--samples", str(folder), NOTE,
                 "--out", str(direct)]) == 0
    assert np.array_equal(cv2.imread(str(direct)), cv2.imread(str(styled)))
