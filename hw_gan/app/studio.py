"""The work behind `hwgan app`'s page, independent of HTTP: the model in use, the sheets, the
hands, the background job and writing a letter. Every step calls the library the commands use
(data_pipeline.template / scan / tfrecords, hw_gan.inversion, hw_gan.adaptation, hw_gan.render);
nothing is run as a subprocess."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import tensorflow as tf

from data_pipeline.charset import parse_charset
from data_pipeline.schema import to_uint8
from hw_gan import adaptation as adapt_lib
from hw_gan import inversion, shipped
from hw_gan.adaptation import portable
from hw_gan.app.jobs import Jobs
from hw_gan.app.store import (HAND_FORMAT, Hands, Sheets, StoreError, adapted_fields,
                              clean_name, hand_file_bytes, imported_name, make_sheets,
                              read_hand_file)
from hw_gan.export import load_export
from hw_gan.export.signatures import style as style_sig
from hw_gan.layout import MISSING_MODES, page_params, plan_text
from hw_gan.render import apply_style, encode_pages, parse_color, render_pages
from hw_gan.render.output import encode_page_files, png_bytes, rasterize
from hw_gan.serve import Budget

ADAPTED_WRITER = "my-hand"  # the new writer's name inside an adapted hand's export
MAX_HAND_FILE = 64 << 20  # what a hand file may unpack to (a closer copy: its weights)
PAGES = ("a4", "letter", "a5")
INKS = {"blue-black": "#1a1a40", "black": "#111111", "blue": "#1f3a93", "brown": "#5a3412",
        "green": "#1d5b35"}
FILE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
PREVIEW_DPI = 60.0
DOCUMENT_DPI = 150.0
MISSING_WORDS = {"error": "stop and tell me", "skip": "leave a gap", "box": "draw an empty box",
                 "nearest": "use a similar letter"}


def default_data_dir() -> Path:
    """The user's data directory for hwgan (XDG on Linux, Application Support on macOS,
    %APPDATA% on Windows)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "hwgan"


@dataclasses.dataclass
class StudioConfig:
    model: str
    data_dir: str
    base: str = ""  # a style_cgan run directory to adapt ("better" hands); "" = not offered
    # A model whose writers are offered as sample hands (an export or shipped name); "" = the
    # --model's own writers, else the --base's when it is a shipped model (its export).
    gallery: str = ""
    gallery_size: int = 24
    image_size: int = 32
    max_megapixels: float = 64.0
    style_steps: int = 150  # projection steps after the encoder ("fast" hands)
    adapt_steps: int = 300
    adapt_finetune_steps: int = 400
    max_text_chars: int = 5000
    max_glyphs: int = 5000
    max_concurrent: int = 2


def _int(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise StoreError(f"{what} must be a whole number from {lo} to {hi}")
    return value


def _float(value, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise StoreError(f"{what} must be a number from {lo:g} to {hi:g}")
    return float(value)


def _choice(value, what: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise StoreError(f"{what} must be one of {', '.join(choices)}")
    return value


def _encode(pages, fmt: str, page_no: int, all_pages: bool, dpi: float, ink) -> tuple:
    """(bytes, content type, pages in the letter) of the download: the PDF; page `page_no` as
    PNG / SVG; or every page (one page: its file; several: a zip of page-1.png, ...)."""
    paper = parse_color("#ffffff")
    if fmt == "pdf":
        data, n = encode_pages(pages, "pdf", dpi, ink, paper)
        return data, "application/pdf", n
    if all_pages:
        data, n, zipped = encode_page_files(pages, fmt, dpi, ink, paper)
        return data, "application/zip" if zipped else FILE_TYPES[fmt], n
    data, n = None, 0
    for n, (layout, crops) in enumerate(pages, 1):
        if n == page_no:
            data = (png_bytes(rasterize(layout, crops), ink, paper, dpi) if fmt == "png" else
                    encode_pages(iter([(layout, crops)]), "svg", dpi, ink, paper)[0])
    if data is None:
        raise StoreError(f"page {page_no}: the letter has {n} page(s)")
    return data, FILE_TYPES[fmt], n


class Busy(StoreError):
    """Too many letters are being drawn at once: the page retries."""


class Studio:
    def __init__(self, cfg: StudioConfig):
        self.cfg = cfg
        self.model = load_export(cfg.model)
        self.charset = list(self.model.charset)
        self.resolution = int(self.model.resolution)
        self.styles = style_sig.EXTRACT_STYLE in self.model.signatures
        data = Path(cfg.data_dir)
        self.sheets = Sheets(data / "sheets", cfg.image_size, int(cfg.max_megapixels * 1e6))
        self.hands = Hands(data / "hands")
        self.jobs = Jobs(data / "jobs")
        self.budget = Budget(max_text_chars=cfg.max_text_chars, max_glyphs=cfg.max_glyphs)
        self.render_slots = threading.BoundedSemaphore(cfg.max_concurrent)
        self._exports: OrderedDict = OrderedDict()  # adapted hands' exports, most recent last
        self._exports_lock = threading.Lock()
        # The base of closer copies: loaded at start (a bad --base fails here, not in a job);
        # its grown generator's weight shapes are worked out once, when a hand file needs them.
        self.base = adapt_lib.load_base(cfg.base) if cfg.base else None
        self._base_specs: Optional[dict] = None
        self.gallery_model = self._gallery_model()
        if self.styles:
            mean = self.model.signatures[style_sig.MEAN_STYLE]()["style"].numpy()
            self.style_info = {"family": self.model.family, "resolution": self.resolution,
                               "w_dim": int(mean.shape[1]), "num_ws": int(mean.shape[0]),
                               "charset": self.charset}

    # -- what the page shows -------------------------------------------------------------------

    def _gallery_model(self):
        """The model sample hands are drawn with: --gallery; else --model when it has writers;
        else the shipped --base's export; else None."""
        cfg = self.cfg
        if cfg.gallery:
            model = load_export(cfg.gallery)
        elif self.model.writers and not self.styles:
            return self.model
        elif cfg.base and shipped.is_name(cfg.base) and not os.path.exists(cfg.base):
            model = load_export(cfg.base)
        else:
            return None
        if not model.writers or not model.trained_writers():
            raise ValueError(f"--gallery {cfg.gallery or cfg.base}: a model with writers "
                             "(char+writer) is needed for sample hands")
        return model

    def gallery(self) -> list[dict]:
        """Sample hands: up to `gallery_size` writers of the gallery model, spread evenly over
        its trained writers, to try the page (or write in a real hand) before making one's
        own."""
        if self.gallery_model is None:
            return []
        writers = list(self.gallery_model.trained_writers())
        n = min(len(writers), self.cfg.gallery_size)
        picked = [writers[(i * len(writers)) // n] for i in range(n)]
        return [{"id": f"gw{i}", "name": f"Sample hand {i + 1}", "kind": "gallery",
                 "writer": w} for i, w in enumerate(picked)]

    def info(self) -> dict:
        return {"charset": self.charset, "fast": self.styles, "better": bool(self.cfg.base),
                "pages": list(PAGES), "inks": INKS, "missing": MISSING_WORDS,
                "limits": {"text_chars": self.cfg.max_text_chars,
                           "megapixels": self.cfg.max_megapixels}}

    def all_hands(self) -> list[dict]:
        return self.hands.list() + self.gallery()

    # -- sheets --------------------------------------------------------------------------------

    def sheets_pdf(self, body: dict) -> bytes:
        paper = _choice(body.get("paper", "a4"), "paper", ("a4", "letter"))
        repeats = _int(body.get("repeats", 3), "repeats", 1, 6)
        charset = "default" if self._is_default_charset() else self.charset
        try:
            pdf, layout = make_sheets(charset, paper, repeats)
        except ValueError as e:
            raise StoreError(f"sheets: {e}") from None
        self.sheets.set_layout(layout)
        return pdf

    def _is_default_charset(self) -> bool:
        return list(parse_charset("default")) == self.charset

    def upload(self, tmp: Path, display_name: str) -> dict:
        layout = None if self._is_default_charset() else self.sheets.layout()
        return self.sheets.add_upload(tmp, display_name, layout)

    def review(self) -> dict:
        return self.sheets.review(self.charset)

    # -- hands ---------------------------------------------------------------------------------

    def make_fast(self, name: str) -> dict:
        """A style hand from the reviewed glyphs (seconds): the export's extract_style
        signature (the encoder, then projection unless the model's default is the encoder)."""
        if not self.styles:
            raise StoreError("the quick method needs a model that takes a style from samples; "
                             "this one does not (use the better method)")

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=self.hands.root.parent) as tmp:
            self.sheets.write_dataset(Path(tmp) / "glyphs", "me")
            try:
                images, ids, _ = inversion.samples_from_dataset(Path(tmp) / "glyphs",
                                                                self.charset, self.resolution)
            except inversion.StyleError as e:
                raise StoreError(str(e)) from None
        # The export's default method: the encoder alone, or encoder + style_steps of projection.
        method = self.model.default_style_method
        steps = 0 if method == "encoder" else self.cfg.style_steps
        out = self.model.signatures[style_sig.EXTRACT_STYLE](
            images=to_uint8(tf.constant(images)),
            chars=tf.constant([self.charset[i] for i in ids]),
            steps=tf.constant(steps, tf.int32))
        ws = out["style"].numpy()

        def fill(dest: Path) -> None:
            inversion.save_style(dest / "hand.style", ws, self.style_info, writer="me",
                                 method=method, steps=steps,
                                 k=int(len(ids)))

        doc = self.hands.add(name, "style", fill, glyphs=int(len(ids)),
                             chars="".join(sorted({self.charset[i] for i in ids})))
        doc["seconds"] = round(time.perf_counter() - t0, 2)
        return doc

    def start_better(self, name: str) -> dict:
        """Starts the adaptation job (minutes); returns the job."""
        if not self.cfg.base:
            raise StoreError("the better method is not available: start the app with --base "
                             "(a trained char+writer model)")
        name = clean_name(name)
        if not self.sheets.records("me"):
            raise StoreError("no glyphs to learn from: upload filled-in sheets first")
        cfg = self.cfg

        def work(progress, tmp: Path) -> dict:
            self.sheets.write_dataset(tmp / "glyphs", ADAPTED_WRITER)
            acfg = adapt_lib.AdaptConfig(
                writer_data=str(tmp / "glyphs"), init=cfg.base, model_dir=str(tmp / "run"),
                writer_name=ADAPTED_WRITER, steps=cfg.adapt_steps,
                batch_size=32, finetune_steps=cfg.adapt_finetune_steps, finetune_lr=0.001,
                finetune_objective="pivotal", finetune_samples=8, locality=10.0,
                finetune_min_variants=1.5, split="train", log_every=1,
                export_dir=str(tmp / "export"), export_name="hand")
            report = adapt_lib.adapt(acfg.validate(), log=progress)

            def fill(dest: Path) -> None:
                os.replace(tmp / "export", dest / "export")

            return self.hands.add(name, "adapted", fill, glyphs=report["num_glyphs"],
                                  finetuned=report["finetuned"], base=self.base_info())

        return self.jobs.start(name, work, cfg.adapt_steps, cfg.adapt_finetune_steps)

    def check_style(self, path) -> None:
        apply_style(self.model, str(path))

    # -- hand files ----------------------------------------------------------------------------

    def base_info(self) -> dict:
        """The base closer copies grow from: {"name", "identity"} (portable.base_identity)."""
        cfg, info, model_dir, _ = self.base
        name = (self.cfg.base if shipped.is_name(self.cfg.base)
                and not os.path.exists(self.cfg.base) else model_dir.name)
        return {"name": name, "identity": portable.base_identity(cfg, info)}

    def _specs(self) -> dict:
        if self._base_specs is None:
            self._base_specs = portable.weight_specs(portable.grown_generator(self.base[0])[0])
        return self._base_specs

    def _same_base(self, doc: dict, to: str, required: bool) -> None:
        """StoreError unless the hand (doc's "base") grew from this app's --base; `to`: what
        the person wants to do ("save it", "bring it in")."""
        if not self.cfg.base:
            raise StoreError(f"a closer copy needs the app started with --base (the base model "
                             f"it was made from) to {to}")
        made = doc.get("base")
        if made is None and not required:
            return  # a hand made before hands recorded their base: its weights are checked
        here = self.base_info()
        if (not isinstance(made, dict) or not isinstance(made.get("name"), str)
                or not isinstance(made.get("identity"), str)):
            raise StoreError("hand.json: base must give the base model's name and identity")
        if made["identity"] != here["identity"]:
            name = "".join(c for c in made["name"] if c.isprintable())[:100]
            raise StoreError(f"this hand was made from the base model {name!r}, not this "
                             f"app's {here['name']!r} (--base): start the app with --base "
                             f"{name} to {to}")

    def export_hand(self, hand_id) -> bytes:
        """A hand file of a hand: a quick hand's style, or a closer copy's weights (no
        SavedModel: see hw_gan.adaptation.portable)."""
        doc = self.hands.get(hand_id)
        if doc["kind"] == "style":
            return hand_file_bytes(self.hands.style_file(hand_id))
        self._same_base(doc, "save it", required=False)
        model, _ = self._hand_model(hand_id)
        try:
            weights = portable.export_weights(model, self._specs())
        except adapt_lib.AdaptError as e:
            raise StoreError(f"this hand cannot be saved with this app's --base: {e}") from None
        geometry = (model.info.get("writer_geometry") or {}).get(ADAPTED_WRITER) or {}
        head = {"format": HAND_FORMAT, "format_version": 1, "kind": "adapted",
                "name": doc["name"], "glyphs": doc.get("glyphs"),
                "finetuned": bool(doc.get("finetuned")), "base": self.base_info(),
                "writer_geometry": geometry}
        return hand_file_bytes({"hand.json": json.dumps(head).encode("utf-8"),
                                "weights.npz": portable.weights_bytes(weights)})

    def import_hand(self, data: bytes) -> dict:
        """A hand from a hand file (export_hand's): a quick hand's style is checked against the
        model; a closer copy's hand.json and weights are checked field by field and applied
        to the base's generator, built here (never a graph from the file)."""
        doc, files = read_hand_file(data, MAX_HAND_FILE)
        if doc["kind"] == "style":
            return self.hands.import_style(doc, files, self.check_style)
        self._same_base(doc, "bring it in", required=True)
        geometry, glyphs, finetuned = adapted_fields(doc, self.base[1]["charset"])
        try:
            weights = portable.read_weights(files["weights.npz"], self._specs())
        except adapt_lib.AdaptError as e:
            raise StoreError(str(e)) from None
        metadata = {"adapted_writer": ADAPTED_WRITER, "imported": True, "finetuned": finetuned}

        def fill(tmp: Path) -> None:
            portable.export_from_weights(self.base, weights, ADAPTED_WRITER, tmp / "export",
                                         "hand", writer_geometry=geometry, metadata=metadata)

        return self.hands.add(imported_name(doc), "adapted", fill, glyphs=glyphs,
                              finetuned=finetuned, base=self.base_info(), imported=True)

    # -- writing -------------------------------------------------------------------------------

    def _hand_model(self, hand_id):
        """(model to draw with, writer) for a hand id."""
        if isinstance(hand_id, str) and hand_id.startswith("gw"):
            for g in self.gallery():
                if g["id"] == hand_id:
                    return self.gallery_model, g["writer"]
            raise StoreError("hand: no such sample hand")
        doc = self.hands.get(hand_id)
        path = self.hands.dir(hand_id)
        if doc["kind"] == "style":
            return apply_style(self.model, str(path / "hand.style")), None
        with self._exports_lock:
            if hand_id not in self._exports:
                self._exports[hand_id] = load_export(path / "export" / "hand" / "1")
                while len(self._exports) > 2:
                    self._exports.popitem(last=False)
            self._exports.move_to_end(hand_id)
            return self._exports[hand_id], ADAPTED_WRITER

    def write(self, body: dict) -> tuple[bytes, str, dict]:
        """A letter (preview PNG of one page, or the PNG / SVG / PDF download) from the page's
        choices; -> (bytes, content type, headers). PNG and SVG are page `page_no`, or with
        `all_pages` every page: a zip of page-1.png, page-2.png, ... (the page's own file when
        the letter has one page)."""
        if not isinstance(body, dict):
            raise StoreError("bad request")
        text = body.get("text")
        if not isinstance(text, str):
            raise StoreError("text: type the letter first")
        self.budget.check_text(text)
        if not text.strip():
            raise StoreError("text: type the letter first")
        fmt = _choice(body.get("format", "png"), "format", ("png", "svg", "pdf"))
        preview = bool(body.get("preview", False))
        page = _choice(body.get("page", "a4"), "page size", PAGES)
        ink_name = body.get("ink", "blue-black")
        ink = parse_color(INKS[_choice(ink_name, "ink colour", tuple(INKS))])
        spacing = _float(body.get("line_spacing", 3.1), "line spacing", 2.0, 6.0)
        seed = _int(body.get("seed", 0), "version", 0, 2**31 - 1)
        missing = _choice(body.get("missing", "box"), "missing letters", MISSING_MODES)
        page_no = _int(body.get("page_no", 1), "page", 1, 1000)
        all_pages = body.get("all_pages", False)
        if not isinstance(all_pages, bool):
            raise StoreError("all_pages must be true or false")
        dpi = PREVIEW_DPI if preview else DOCUMENT_DPI
        model, writer = self._hand_model(body.get("hand"))
        params = page_params(page, dpi, 3.0, 20.0, line_spacing=spacing)
        try:
            plan = plan_text(text, model.charset, missing)
        except ValueError:
            lacking = " ".join(plan_text(text, model.charset, "skip").missing)
            raise StoreError(f"your hand does not have these letters: {lacking}. Choose what "
                             "to do with letters your hand does not have.") from None
        self.budget.check_glyphs(len(plan.requests), self.resolution, "letters to draw")
        if not self.render_slots.acquire(blocking=False):
            raise Busy("busy drawing other letters; trying again")
        try:
            pages = render_pages(model, text, writer=writer, seed=seed, params=params, plan=plan)
            headers = {"X-Hwgan-Glyphs": str(len(plan.requests))}
            if plan.missing:
                headers["X-Hwgan-Missing"] = "".join(plan.missing).encode(
                    "unicode_escape").decode("ascii")[:200]
            data, ctype, n = _encode(pages, fmt, page_no, all_pages, dpi, ink)
        finally:
            self.render_slots.release()
        headers["X-Hwgan-Pages"] = str(n)
        return data, ctype, headers

    def warm(self) -> None:
        """One tiny drawing, so the first preview does not pay for tracing."""
        if self.model.writers and not self.styles:
            writer: Optional[str] = self.model.trained_writers()[0]
            model = self.model
        elif self.styles:
            writer = None
            mean = self.model.signatures[style_sig.MEAN_STYLE]()["style"].numpy()
            model = apply_style(self.model, mean)
        else:
            return
        text = self.charset[0][0] * 3
        for _ in render_pages(model, text, writer=writer, params=page_params("a4", PREVIEW_DPI)):
            pass
