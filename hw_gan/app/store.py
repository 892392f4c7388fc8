"""What `hwgan app` keeps in its data directory: the sheet set being read (uploaded pages, their
cut glyphs, the glyphs left out) and the hands made from it.

    DATA/sheets/layout.json           the template last downloaded (custom charsets need it)
    DATA/sheets/pages/pN.img          the upload that gave template page N (server-named)
    DATA/sheets/pages/pN.npz          its cut glyphs (images) and pN.json their report
    DATA/sheets/state.json            refused uploads, glyphs left out
    DATA/hands/<id>/hand.json         a hand: its name, kind ("style" | "adapted"), counts
    DATA/hands/<id>/hand.style        a style hand's style file
    DATA/hands/<id>/export/hand/1     an adapted hand's SavedModel (its writer: studio's
                                      ADAPTED_WRITER), made here by the job or from a hand file

A hand file (.hwhand, `read_hand_file` / `hand_file_bytes`) is a zip of hand.json and either
hand.style (a quick hand) or weights.npz (a closer copy: numbers only, never a SavedModel; see
hw_gan.adaptation.portable). Names that come from a request (a hand's name, an upload's file
name) are only ever stored as JSON strings; every path is made here from server-made ids that
match ID_RE."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipeline import atomic, scan, tfrecords
from data_pipeline import template as template_lib
from data_pipeline.schema import Geometry, GlyphRecord

ID_RE = re.compile(r"^[a-z0-9]{1,40}$")
GLYPH_RE = re.compile(r"^p([0-9]{1,3})-([0-9]{1,4})$")
MAX_NAME = 80
HAND_FORMAT = "hwgan-hand"  # hand.json's "format" in a hand file
HAND_FILES = {"style": ("hand.json", "hand.style"), "adapted": ("hand.json", "weights.npz")}
MAX_HAND_JSON = 256 << 10
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class StoreError(ValueError):
    """Bad input from the page; the message is for the person using it."""


def clean_name(name, what: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise StoreError(f"{what}: give a name (letters, numbers, spaces)")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise StoreError(f"{what}: at most {MAX_NAME} characters")
    return name


def _check_id(value, what: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise StoreError(f"{what}: no such item")
    return value


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class _Records:
    """A list of GlyphRecords as a source for tfrecords.write_dataset."""

    name = "scans"

    def __init__(self, records, params):
        self.records, self.params = records, params

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)


class Sheets:
    """The sheet set being read: one upload per template page, its glyphs, the left-out ones."""

    def __init__(self, root: Path, image_size: int, max_pixels: int):
        self.root = Path(root)
        self.pages_dir = self.root / "pages"
        self.pages_dir.mkdir(parents=True, exist_ok=True)
        self.image_size = int(image_size)
        self.max_pixels = int(max_pixels)
        self.lock = threading.RLock()

    # -- state ---------------------------------------------------------------------------------

    def _state(self) -> dict:
        try:
            return json.loads((self.root / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {"refused": [], "excluded": []}

    def _save_state(self, state: dict) -> None:
        atomic.write_text(self.root / "state.json", json.dumps(state))

    def layout(self) -> Optional[dict]:
        path = self.root / "layout.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def set_layout(self, layout: dict) -> None:
        atomic.write_text(self.root / "layout.json", json.dumps(layout))

    def clear(self) -> None:
        with self.lock:
            for p in self.pages_dir.iterdir():
                p.unlink()
            self._save_state({"refused": [], "excluded": []})

    # -- uploads -------------------------------------------------------------------------------

    def add_upload(self, tmp_path: Path, display_name: str, layout: Optional[dict]) -> dict:
        """Reads one uploaded file (already on disk under a server-made name); returns its
        status: {"file", "status": "ok" | "refused", "page", "why", "counts"}."""
        entries, pages = scan.process_images([str(tmp_path)], layout, self.image_size,
                                             self.max_pixels)
        entry = entries[0]
        out = {"file": display_name, "status": "ok"}
        if entry["status"] != "ok":
            why = entry.get("error", "it could not be read")
            if why.startswith("image too large"):
                why += f" (this app's limit: --max_megapixels {self.max_pixels / 1e6:g})"
            if "markers_found" in entry and not entry["markers_found"]:
                why = ("no sheet found in this picture: the four black corner squares of a "
                       "sheet must all be visible")
            tmp_path.unlink(missing_ok=True)
            out.update(status="refused", why=why)
            with self.lock:
                state = self._state()
                state["refused"] = ([r for r in state["refused"] if r["file"] != display_name]
                                    + [out])[-20:]
                self._save_state(state)
            return out
        page = int(entry["page"])
        cells = pages[0][1]
        images = np.stack([c.image if c.image is not None else
                           np.zeros((self.image_size, self.image_size), np.uint8)
                           for c in cells])
        meta = [{"char": c.char, "status": c.status, "reasons": c.reasons,
                 "has_image": c.image is not None,
                 "geometry": None if c.geometry is None else c.geometry.as_list()}
                for c in cells]
        info = {"file": display_name, "page": page, "counts": entry["counts"],
                "warnings": entry.get("warnings", []), "uploaded": time.time()}
        with self.lock:
            stem = f"p{page}"
            buf = io.BytesIO()
            np.savez_compressed(buf, images=images)
            atomic.write_bytes(self.pages_dir / f"{stem}.npz", buf.getvalue())
            atomic.write_text(self.pages_dir / f"{stem}.json",
                              json.dumps({"info": info, "cells": meta}))
            tmp_path.replace(self.pages_dir / f"{stem}.img")
            state = self._state()
            state["refused"] = [r for r in state["refused"] if r["file"] != display_name]
            # A re-upload of a page brings its glyphs back in.
            state["excluded"] = [g for g in state["excluded"] if not g.startswith(stem + "-")]
            self._save_state(state)
        out.update(page=page, counts=entry["counts"], warnings=info["warnings"])
        return out

    def _pages(self) -> list[tuple[int, dict]]:
        out = []
        for p in sorted(self.pages_dir.glob("p*.json")):
            m = re.fullmatch(r"p([0-9]+)\.json", p.name)
            if m:
                out.append((int(m.group(1)), json.loads(p.read_text())))
        return sorted(out, key=lambda x: x[0])

    def glyph_image(self, glyph_id: str) -> np.ndarray:
        m = GLYPH_RE.match(glyph_id or "")
        if not m:
            raise StoreError("no such glyph")
        path = self.pages_dir / f"p{int(m.group(1))}.npz"
        if not path.is_file():
            raise StoreError("no such glyph")
        with np.load(path) as z:
            images = z["images"]
        k = int(m.group(2))
        if k >= len(images):
            raise StoreError("no such glyph")
        return images[k]

    def review(self, charset: Sequence[str]) -> dict:
        """Pages, every glyph (id, char, status, left out?) and the characters still missing."""
        with self.lock:
            state = self._state()
            excluded = set(state["excluded"])
            pages, glyphs = [], []
            for page, doc in self._pages():
                pages.append(doc["info"])
                for k, cell in enumerate(doc["cells"]):
                    if not cell["has_image"]:
                        if cell["status"] == scan.EMPTY:
                            glyphs.append({"id": f"p{page}-{k}", "char": cell["char"],
                                           "status": "empty", "image": False,
                                           "excluded": True})
                        continue
                    gid = f"p{page}-{k}"
                    glyphs.append({"id": gid, "char": cell["char"], "status": cell["status"],
                                   "reasons": cell["reasons"], "image": True,
                                   "excluded": gid in excluded})
            have = {g["char"] for g in glyphs if g["image"] and not g["excluded"]}
            missing = [c for c in charset if c not in have]
            return {"pages": pages, "refused": state["refused"], "glyphs": glyphs,
                    "missing": missing,
                    "usable": sum(g["image"] and not g["excluded"] for g in glyphs)}

    def set_excluded(self, glyph_id: str, excluded: bool) -> None:
        m = GLYPH_RE.match(glyph_id if isinstance(glyph_id, str) else "")
        if not m or not (self.pages_dir / f"p{int(m.group(1))}.json").is_file():
            raise StoreError("no such glyph")
        with self.lock:
            state = self._state()
            rest = [g for g in state["excluded"] if g != glyph_id]
            state["excluded"] = rest + ([glyph_id] if excluded else [])
            self._save_state(state)

    def records(self, writer: str) -> list[GlyphRecord]:
        """The glyphs kept in the review, as records of `writer`."""
        with self.lock:
            excluded = set(self._state()["excluded"])
            out = []
            for page, doc in self._pages():
                with np.load(self.pages_dir / f"p{page}.npz") as z:
                    images = z["images"]
                for k, cell in enumerate(doc["cells"]):
                    gid = f"p{page}-{k}"
                    if not cell["has_image"] or gid in excluded:
                        continue
                    geo = None if cell["geometry"] is None else Geometry(*cell["geometry"])
                    out.append(GlyphRecord(cell["char"], writer, "scans", images[k], geo,
                                           key=f"scans:{gid}").check())
        return out

    def write_dataset(self, out_dir: Path, writer: str) -> dict:
        """The kept glyphs as a dataset directory (the input of style extraction and
        adaptation); StoreError when there are none."""
        records = self.records(writer)
        if not records:
            raise StoreError("no glyphs to learn from: upload filled-in sheets first (and keep "
                             "some glyphs in the review)")
        return tfrecords.write_dataset(_Records(records, {"app": True}), out_dir, split="none",
                                       num_shards=1, progress=False)


class Hands:
    """The hands in DATA/hands: list, add, rename, delete, export and import."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def dir(self, hand_id: str) -> Path:
        path = self.root / _check_id(hand_id, "hand")
        if not (path / "hand.json").is_file():
            raise StoreError("hand: no such hand (it may have been deleted in another tab)")
        return path

    def get(self, hand_id: str) -> dict:
        return json.loads((self.dir(hand_id) / "hand.json").read_text())

    def list(self) -> list[dict]:
        out = []
        for p in self.root.iterdir():
            if ID_RE.match(p.name) and (p / "hand.json").is_file():
                try:
                    out.append(json.loads((p / "hand.json").read_text()))
                except ValueError:
                    continue
        return sorted(out, key=lambda h: h.get("created", 0))

    def add(self, name: str, kind: str, fill, **info) -> dict:
        """Creates a hand: `fill(tmp_dir)` writes its files into a temporary directory, which
        is renamed into place only when complete (a failure leaves the other hands as they
        were)."""
        hand_id = new_id()
        doc = {"id": hand_id, "name": clean_name(name), "kind": kind, "created": time.time(),
               **info}
        with atomic.atomic_dir(self.root / hand_id) as tmp:
            fill(Path(tmp))
            atomic.write_text(Path(tmp) / "hand.json", json.dumps(doc))
        return doc

    def rename(self, hand_id: str, name: str) -> dict:
        with self.lock:
            doc = self.get(hand_id)
            doc["name"] = clean_name(name)
            atomic.write_text(self.dir(hand_id) / "hand.json", json.dumps(doc))
            return doc

    def delete(self, hand_id: str) -> None:
        with self.lock:
            path = self.dir(hand_id)
            trash = self.root / f".deleted-{new_id()}"
            path.rename(trash)  # gone from the list at once, removed after
            shutil.rmtree(trash, ignore_errors=True)

    def style_file(self, hand_id: str) -> dict[str, bytes]:
        """The files of a quick hand's hand file: hand.json (its name and counts) and its
        style file."""
        doc = self.get(hand_id)
        if doc["kind"] != "style":
            raise StoreError("hand: not a quick hand")
        keep = {k: doc[k] for k in ("glyphs", "chars") if k in doc}
        head = {"format": HAND_FORMAT, "format_version": 1, "kind": "style",
                "name": doc["name"], **keep}
        return {"hand.json": json.dumps(head).encode("utf-8"),
                "hand.style": (self.dir(hand_id) / "hand.style").read_bytes()}

    def import_style(self, doc: dict, files: dict, check_style) -> dict:
        """A quick hand from a hand file (read_hand_file's doc and files). check_style(path)
        raises ValueError when the style does not fit the app's model."""

        def fill(tmp: Path) -> None:
            (tmp / "hand.style").write_bytes(files["hand.style"])
            try:
                check_style(tmp / "hand.style")
            except ValueError as e:
                raise StoreError(f"this hand does not fit the model in use: {e}") from None

        glyphs = doc.get("glyphs")
        keep = {"glyphs": glyphs} if isinstance(glyphs, int) and glyphs >= 0 else {}
        if isinstance(doc.get("chars"), str):
            keep["chars"] = doc["chars"][:1000]
        return self.add(imported_name(doc), "style", fill, imported=True, **keep)


def imported_name(doc: dict) -> str:
    """The name a hand file gives its hand, or "imported hand"."""
    try:
        return clean_name(doc.get("name"))
    except StoreError:
        return "imported hand"


def read_hand_file(data: bytes, max_bytes: int) -> tuple[dict, dict[str, bytes]]:
    """(hand.json, {file name: bytes}) of a hand file: a zip holding hand.json and either
    hand.style (a quick hand) or weights.npz (a closer copy), nothing else, checked by names and
    sizes before anything is unpacked. StoreError on one line otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            names = sorted(info.filename for info in infos)
            kind = next((k for k, want in HAND_FILES.items() if sorted(want) == names), None)
            if kind is None:
                raise StoreError("this is not a hand file from this page: it must hold "
                                 "hand.json and either hand.style (a quick hand) or weights.npz "
                                 "(a closer copy), and nothing else")
            total = sum(info.file_size for info in infos)
            if total > max_bytes:
                raise StoreError(f"this hand file unpacks to {total} bytes, over this app's "
                                 f"limit of {max_bytes}")
            if z.getinfo("hand.json").file_size > MAX_HAND_JSON:
                raise StoreError(f"hand.json is over {MAX_HAND_JSON} bytes")
            files = {name: z.read(name) for name in names}
    except StoreError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError):
        raise StoreError("this is not a hand file (it is not a readable zip of a hand)") \
            from None
    try:
        doc = json.loads(files["hand.json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StoreError(f"hand.json is not valid JSON ({str(e).splitlines()[0][:120]})") \
            from None
    if not isinstance(doc, dict):
        raise StoreError("hand.json is not a JSON object")
    if doc.get("kind") != kind:
        raise StoreError(f"hand.json: kind must be {kind!r} in a file holding "
                         f"{HAND_FILES[kind][1]}")
    if doc.get("format", HAND_FORMAT) != HAND_FORMAT or doc.get("format_version", 1) != 1:
        raise StoreError("hand.json: a hand file of another format or a newer version; "
                         "update hwgan to bring it in")
    return doc, files


ADAPTED_FIELDS = {"format", "format_version", "kind", "name", "glyphs", "finetuned", "base",
                  "writer_geometry"}


def adapted_fields(doc: dict, charset) -> tuple[dict, Optional[int], bool]:
    """(writer geometry, glyphs, finetuned) of a closer copy's hand.json, every field checked:
    no field but ADAPTED_FIELDS; geometry {char: [top, bottom]} of characters of `charset`,
    in x-heights (-3 .. 4, top above bottom). StoreError naming the field otherwise."""
    unknown = sorted(set(doc) - ADAPTED_FIELDS)
    if unknown:
        raise StoreError(f"hand.json: unknown field {unknown[0][:40]!r}")
    glyphs, finetuned = doc.get("glyphs"), doc.get("finetuned", False)
    if glyphs is not None and (isinstance(glyphs, bool) or not isinstance(glyphs, int)
                               or not 0 <= glyphs <= 10 ** 7):
        raise StoreError("hand.json: glyphs must be a whole number")
    if not isinstance(finetuned, bool):
        raise StoreError("hand.json: finetuned must be true or false")
    value = doc.get("writer_geometry", {})
    chars = {ch for label in charset for ch in label}
    if not isinstance(value, dict) or len(value) > len(chars):
        raise StoreError("hand.json: writer_geometry must map the model's characters to "
                         "[top, bottom]")
    geometry = {}
    for ch, pair in value.items():
        ok = (ch in chars and isinstance(pair, list) and len(pair) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v) and -3.0 <= v <= 4.0 for v in pair)
              and pair[0] > pair[1])
        if not ok:
            shown = "".join(c for c in str(ch) if c.isprintable())[:20]
            raise StoreError(f"hand.json: writer_geometry {shown!r} must be [top, bottom] of a "
                             "character of the model, in x-heights")
        geometry[ch] = [float(pair[0]), float(pair[1])]
    return geometry, glyphs, finetuned


def hand_file_bytes(files: dict) -> bytes:
    """A hand file of `files` ({name: bytes}, hand.json first); the same files give the same
    bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(files, key=lambda n: n != "hand.json"):
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
    return buf.getvalue()


def make_sheets(charset, paper: str, repeats: int) -> tuple[bytes, dict]:
    """(PDF bytes, layout) of the template for the model's charset."""
    layout = template_lib.make_layout(charset, repeats, paper)
    pages = template_lib.render_pages(layout)
    return template_lib.pdf_bytes(pages, [p["size_mm"] for p in layout["pages"]]), layout
