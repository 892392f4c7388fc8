"""Printable handwriting templates and their layout file.

`hwgan template --out sheets.pdf` (hw_gan/cli/template.py) writes pages of labelled cells for a
writer to fill in by hand, and `sheets.pdf.layout.json` beside them: where every cell, guide and
marker lies on each page. `data_pipeline.scan` reads photos or scans of the filled pages back
with that layout.

Everything is laid out in millimetres and drawn at the template's dpi; the layout file gives
page pixel coordinates at that dpi (x right, y down, origin at the page's top-left corner) and
the page size in pixels and millimetres.

A page:
  * four ArUco markers (DICT_4X4_250) at its corners; their ids name the template family, the
    page and the corner (see `marker_id`), so a photo taken at any rotation, upside down
    included, maps back onto the page;
  * a header between the top markers: a "Name:" field, the page number and two instruction
    lines;
  * a grid of cells, each a label strip (the character, printed small) above a writing area
    with a pale blue baseline and a paler dashed x-height line. Guides and cell borders are
    pale so that extraction drops them out; labels lie outside the writing area.

Marker ids: id = 4 * (PAGES_PER_FAMILY * family + page_index) + corner, corner 0 top-left,
1 top-right, 2 bottom-right, 3 bottom-left (of the upright page), page_index from 0. Template
version 1 uses families 0 (default A4 sheet: default charset, 3 repeats), 1 (default US letter
sheet) and 2 (any other charset / repeats / cell size: extraction needs its layout file), i.e.
ids 0..191. Ids 192..249 are left for a later template version, which must take new family
numbers so that old and new sheets are never confused. A layout is determined by its family
for families 0 and 1, so a photo of a default sheet needs no layout file.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipeline import atomic
from data_pipeline import charset as charset_lib

TEMPLATE_VERSION = 1
LAYOUT_FORMAT = "hwgan-template-layout"
MARKER_DICTIONARY = "DICT_4X4_250"
PAGES_PER_FAMILY = 16
FAMILY_A4, FAMILY_LETTER, FAMILY_CUSTOM = 0, 1, 2
KNOWN_FAMILIES = (FAMILY_A4, FAMILY_LETTER, FAMILY_CUSTOM)  # those of TEMPLATE_VERSION
CORNERS = ("top_left", "top_right", "bottom_right", "bottom_left")
PAPERS = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}  # width, height in mm
DEFAULT_REPEATS = 3
DEFAULT_COLUMNS = 9
DEFAULT_X_HEIGHT_MM = 5.5

# Geometry of the page, in mm.
MARKER_MM = 14.0  # side of a marker, its black border included
MARKER_INSET_MM = 8.0  # page edge to the marker's outer edge (beyond most printers' margin)
GRID_MARGIN_MM = 10.0  # left/right page margin of the cell grid
GRID_TOP_MM = 26.0  # first cell row starts here (below the top markers and the header)
GRID_BOTTOM_GAP_MM = 25.0  # last cell row ends this far from the bottom edge
LABEL_STRIP_MM = 4.0  # label strip at the top of each cell
WRITING_HEIGHT_X = 4.0  # writing area height, in x-heights
BASELINE_FROM_TOP_X = 2.5  # writing area top to the baseline, in x-heights (room for ascenders)
GUIDE_MM = 0.25  # guide line thickness
BORDER_MM = 0.2
DASH_MM, GAP_MM = 2.0, 1.0  # x-height line dashes (mostly ink, so a row median finds its level)

# Colours (RGB): pale, so that a grey-level threshold drops the guides and borders out.
BASELINE_RGB = (165, 195, 240)
XLINE_RGB = (185, 210, 245)
BORDER_RGB = (200, 200, 200)
LABEL_RGB = (70, 70, 70)
TEXT_RGB = (0, 0, 0)

# Hints printed beside labels that are easy to misread or to overlook.
_HINTS = {
    "0": "zero", "1": "one", "O": "capital o", "o": "small o", "I": "capital i", "l": "small L",
    ".": "full stop", ",": "comma", ";": "semicolon", ":": "colon", "!": "exclamation",
    "?": "question", "'": "apostrophe", '"': "quotes", "-": "hyphen", "(": "open paren",
    ")": "close paren", "/": "slash", "&": "ampersand",
}

INSTRUCTIONS = (
    "Write each character once per box with a dark pen: sit it on the blue baseline; small "
    "letters reach the dashed line.",
    "Keep inside the box (leave it empty if unsure). Scan or photograph the whole page with all "
    "four corner squares in view.",
)


def marker_id(family: int, page_index: int, corner: int) -> int:
    """The id of the marker at `corner` (0..3, see CORNERS) of a page (see module docstring)."""
    if not 0 <= page_index < PAGES_PER_FAMILY:
        raise ValueError(f"page index {page_index} is outside 0..{PAGES_PER_FAMILY - 1}")
    if not 0 <= corner < 4:
        raise ValueError(f"corner {corner} is outside 0..3")
    return 4 * (PAGES_PER_FAMILY * family + page_index) + corner


def decode_marker_id(mid: int) -> tuple[int, int, int]:
    """Marker id -> (family, page_index, corner)."""
    mid = int(mid)
    slot, corner = divmod(mid, 4)
    family, page_index = divmod(slot, PAGES_PER_FAMILY)
    return family, page_index, corner


def aruco_dictionary():
    import cv2

    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, MARKER_DICTIONARY))


def _label_text(label: str) -> str:
    hint = _HINTS.get(label)
    return f"{label}   {hint}" if hint else label


# --------------------------------------------------------------------------------------------
# Layout


def make_layout(charset="default", repeats: int = DEFAULT_REPEATS, paper: str = "a4",
                dpi: int = 300, columns: int = DEFAULT_COLUMNS,
                x_height_mm: float = DEFAULT_X_HEIGHT_MM) -> dict:
    """The layout of a template (no drawing): a JSON-able dict, see docs/data_formats.md.

    charset: a charset spec (charset.parse_charset) or a sequence of labels; every label gets
    `repeats` cells, the repeats of one label side by side, labels in charset order.
    """
    labels = (charset_lib.parse_charset(charset) if charset is None or isinstance(charset, str)
              else charset_lib.validate_charset(tuple(charset)))
    if paper not in PAPERS:
        raise ValueError(f"paper {paper!r} is not one of {sorted(PAPERS)}")
    repeats, columns, dpi = int(repeats), int(columns), int(dpi)
    if not 1 <= repeats <= 50:
        raise ValueError(f"repeats {repeats} is outside 1..50")
    if not 72 <= dpi <= 1200:
        raise ValueError(f"dpi {dpi} is outside 72..1200")
    x_height_mm = float(x_height_mm)
    if not 3.0 <= x_height_mm <= 12.0:
        raise ValueError(f"x_height_mm {x_height_mm} is outside 3..12")
    page_w, page_h = PAPERS[paper]
    cell_w = (page_w - 2 * GRID_MARGIN_MM) / columns if columns >= 1 else 0.0
    writing_h = WRITING_HEIGHT_X * x_height_mm
    cell_h = LABEL_STRIP_MM + writing_h
    if columns < 1 or cell_w < 2.6 * x_height_mm:
        raise ValueError(f"{columns} columns leave cells {cell_w:.1f} mm wide, too narrow for an "
                         f"x-height of {x_height_mm} mm (need >= {2.6 * x_height_mm:.1f} mm)")
    rows = int((page_h - GRID_TOP_MM - GRID_BOTTOM_GAP_MM) // cell_h)
    if rows < 1:
        raise ValueError(f"x_height_mm {x_height_mm} leaves no room for a row of cells")
    per_page = rows * columns
    cells_all = [label for label in labels for _ in range(repeats)]
    n_pages = math.ceil(len(cells_all) / per_page)
    if n_pages > PAGES_PER_FAMILY:
        raise ValueError(f"{len(cells_all)} cells need {n_pages} pages; a template has at most "
                         f"{PAGES_PER_FAMILY} (use fewer repeats or characters per template)")
    default = (tuple(labels) == charset_lib.DEFAULT_CHARSET and repeats == DEFAULT_REPEATS
               and columns == DEFAULT_COLUMNS and x_height_mm == DEFAULT_X_HEIGHT_MM)
    family = ({"a4": FAMILY_A4, "letter": FAMILY_LETTER}[paper] if default else FAMILY_CUSTOM)
    px = dpi / 25.4

    def p(v: float) -> float:
        return round(v * px, 3)

    def box(x0, y0, x1, y1):
        return [p(x0), p(y0), p(x1), p(y1)]

    pages = []
    for page_index in range(n_pages):
        markers = []
        for corner, name in enumerate(CORNERS):
            x0 = MARKER_INSET_MM if name in ("top_left", "bottom_left") else (
                page_w - MARKER_INSET_MM - MARKER_MM)
            y0 = MARKER_INSET_MM if name in ("top_left", "top_right") else (
                page_h - MARKER_INSET_MM - MARKER_MM)
            markers.append({"id": marker_id(family, page_index, corner), "corner": name,
                            "box": box(x0, y0, x0 + MARKER_MM, y0 + MARKER_MM)})
        cells = []
        chunk = cells_all[page_index * per_page:(page_index + 1) * per_page]
        for i, label in enumerate(chunk):
            row, col = divmod(i, columns)
            x0 = GRID_MARGIN_MM + col * cell_w
            y0 = GRID_TOP_MM + row * cell_h
            wy0 = y0 + LABEL_STRIP_MM
            cells.append({
                "index": page_index * per_page + i, "char": label, "row": row, "col": col,
                "box": box(x0, y0, x0 + cell_w, y0 + cell_h),
                "label_box": box(x0, y0, x0 + cell_w, wy0),
                "writing_box": box(x0, wy0, x0 + cell_w, y0 + cell_h),
                "baseline_y": p(wy0 + BASELINE_FROM_TOP_X * x_height_mm),
                "x_height_y": p(wy0 + (BASELINE_FROM_TOP_X - 1.0) * x_height_mm),
            })
        pages.append({"page": page_index + 1, "page_index": page_index,
                      "size_px": [int(round(page_w * px)), int(round(page_h * px))],
                      "size_mm": [page_w, page_h], "markers": markers, "cells": cells})
    return {
        "format": LAYOUT_FORMAT, "template_version": TEMPLATE_VERSION, "family": family,
        "marker_dictionary": MARKER_DICTIONARY,
        "marker_id_scheme": "id = 4 * (16 * family + page_index) + corner; corner 0 top_left, "
                            "1 top_right, 2 bottom_right, 3 bottom_left",
        "paper": paper, "dpi": dpi, "charset": list(labels), "repeats": repeats,
        "columns": columns, "rows": rows, "x_height_mm": x_height_mm,
        "guide_mm": GUIDE_MM, "label_strip_mm": LABEL_STRIP_MM,
        "page_count": n_pages, "cell_count": len(cells_all), "pages": pages,
    }


def layout_for_family(family: int) -> dict:
    """The layout of a default sheet, from the family its markers carry (0 A4, 1 letter)."""
    if family == FAMILY_A4:
        return make_layout(paper="a4")
    if family == FAMILY_LETTER:
        return make_layout(paper="letter")
    if family == FAMILY_CUSTOM:
        raise ValueError("the page comes from a custom template (its own charset, repeats or "
                         "cell size): pass its layout file (<template>.layout.json) with --layout")
    raise ValueError(f"the page's markers name template family {family}, which template "
                     f"version {TEMPLATE_VERSION} does not have: the sheet was printed by another "
                     f"hwgan version")


def load_layout(layout) -> dict:
    """A layout from a dict or a JSON file, checked; ValueError naming what is wrong."""
    where = "layout"
    if not isinstance(layout, dict):
        where = f"layout file {layout}"
        try:
            layout = json.loads(Path(layout).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{where} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{where} is not readable JSON: {e}") from None
    if not isinstance(layout, dict) or layout.get("format") != LAYOUT_FORMAT:
        raise ValueError(f"{where} is not an hwgan template layout (format != {LAYOUT_FORMAT!r})")
    if layout.get("template_version") != TEMPLATE_VERSION:
        raise ValueError(f"{where} is template version {layout.get('template_version')}; this "
                         f"hwgan reads version {TEMPLATE_VERSION}")
    for key in ("family", "dpi", "charset", "pages", "x_height_mm"):
        if key not in layout:
            raise ValueError(f"{where} lacks the key {key!r}")
    for page in layout["pages"]:
        if len(page.get("markers", [])) != 4 or "cells" not in page:
            raise ValueError(f"{where}: page {page.get('page')} lacks its 4 markers or its cells")
    return layout


# --------------------------------------------------------------------------------------------
# Drawing


def _font(size_px: int):
    """A scalable font from Pillow (FreeType), or None to draw with OpenCV's Hershey font."""
    try:
        from PIL import ImageFont

        font = ImageFont.load_default(size=size_px)
        return font if isinstance(font, ImageFont.FreeTypeFont) else None
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or without FreeType
        return None


class _Canvas:
    def __init__(self, w: int, h: int, dpi: int):
        from PIL import Image, ImageDraw

        self.px = dpi / 25.4
        self.image = Image.new("RGB", (w, h), (255, 255, 255))
        self.draw = ImageDraw.Draw(self.image)
        self._fonts: dict[int, object] = {}

    def font(self, size_px: int):
        if size_px not in self._fonts:
            self._fonts[size_px] = _font(size_px)
        return self._fonts[size_px]

    def hline(self, x0, x1, y, rgb, width_mm, dash=None):
        w = max(1, int(round(width_mm * self.px)))
        yy = int(round(y - w / 2.0))
        if dash is None:
            self.draw.rectangle([int(round(x0)), yy, int(round(x1)) - 1, yy + w - 1], fill=rgb)
            return
        on, off = dash[0] * self.px, dash[1] * self.px
        x = x0
        while x < x1:
            self.draw.rectangle([int(round(x)), yy, int(round(min(x + on, x1))) - 1, yy + w - 1],
                                fill=rgb)
            x += on + off

    def vline(self, x, y0, y1, rgb, width_mm):
        w = max(1, int(round(width_mm * self.px)))
        xx = int(round(x - w / 2.0))
        self.draw.rectangle([xx, int(round(y0)), xx + w - 1, int(round(y1)) - 1], fill=rgb)

    def text(self, x, y_top, text: str, size_mm: float, rgb, max_w: Optional[float] = None):
        """Draws text with its top near y_top; shrinks it to fit max_w pixels."""
        size = max(6, int(round(size_mm * self.px)))
        font = self.font(size)
        if font is None:
            return self._hershey(x, y_top, text, size, rgb, max_w)
        if max_w is not None:
            while size > 6 and font.getlength(text) > max_w:
                size = int(size * 0.92)
                font = self.font(size)
        self.draw.text((x, y_top), text, fill=rgb, font=font)
        return x + font.getlength(text)

    def _hershey(self, x, y_top, text, size, rgb, max_w):
        import cv2

        scale = size / 30.0
        thick = max(1, int(round(size / 14)))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        if max_w is not None and tw > max_w:
            scale *= max_w / tw
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        arr = np.asarray(self.image).copy()
        cv2.putText(arr, text, (int(x), int(y_top + th)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    tuple(int(c) for c in rgb), thick, cv2.LINE_AA)
        from PIL import Image, ImageDraw

        self.image = Image.fromarray(arr)
        self.draw = ImageDraw.Draw(self.image)
        return x + tw


def render_page(layout: dict, page_index: int) -> np.ndarray:
    """One page of the template as an RGB uint8 array [H, W, 3] at the layout's dpi."""
    import cv2

    page = layout["pages"][page_index]
    dpi = layout["dpi"]
    w, h = page["size_px"]
    cv = _Canvas(w, h, dpi)
    px = cv.px
    n_pages = len(layout["pages"])

    # Header between the top markers.
    left = (MARKER_INSET_MM + MARKER_MM + 4.0) * px
    right = w - left
    y = (MARKER_INSET_MM + 0.3) * px
    end = cv.text(left, y, "Name:", 3.2, TEXT_RGB)
    cv.hline(end + 1.5 * px, left + 0.55 * (right - left), y + 3.6 * px, TEXT_RGB, 0.25)
    title = (f"hwgan handwriting template v{layout['template_version']}  -  page {page['page']} "
             f"of {n_pages}")
    size = 2.6
    font = cv.font(int(round(size * px)))
    tw = font.getlength(title) if font is not None else 0.45 * len(title) * size * px
    cv.text(max(left + 0.58 * (right - left), right - tw), y + 0.6 * px, title, size, TEXT_RGB,
            max_w=0.42 * (right - left))
    for k, line in enumerate(INSTRUCTIONS):
        cv.text(left, y + (6.3 + 3.8 * k) * px, line, 2.45, TEXT_RGB, max_w=right - left)

    # Cells: borders, label strip, guides, label.
    xh = layout["x_height_mm"] * px
    for cell in page["cells"]:
        x0, y0, x1, y1 = cell["box"]
        wy0 = cell["writing_box"][1]
        for yy in (y0, wy0, y1):
            cv.hline(x0, x1, yy, BORDER_RGB, BORDER_MM)
        for xx in (x0, x1):
            cv.vline(xx, y0, y1, BORDER_RGB, BORDER_MM)
        pad = 0.12 * xh
        cv.hline(x0 + pad, x1 - pad, cell["baseline_y"], BASELINE_RGB, GUIDE_MM)
        cv.hline(x0 + pad, x1 - pad, cell["x_height_y"], XLINE_RGB, GUIDE_MM,
                 dash=(DASH_MM, GAP_MM))
        cv.text(x0 + 1.0 * px, y0 + 0.35 * px, _label_text(cell["char"]), 2.7, LABEL_RGB,
                max_w=x1 - x0 - 2.0 * px)

    footer = (f"template v{layout['template_version']}  family {layout['family']}  page "
              f"{page['page']}/{n_pages}  -  keep the four corner squares clean and in view")
    cv.text(left, h - (MARKER_INSET_MM + 4.5) * px, footer, 2.2, LABEL_RGB, max_w=right - left)

    img = np.asarray(cv.image).copy()
    dictionary = aruco_dictionary()
    for m in page["markers"]:
        bx0, by0, bx1, by1 = (int(round(v)) for v in m["box"])
        side = bx1 - bx0
        marker = cv2.aruco.generateImageMarker(dictionary, int(m["id"]), side)
        img[by0:by0 + side, bx0:bx0 + side] = marker[:, :, None]
    return img


def render_pages(layout: dict) -> list[np.ndarray]:
    return [render_page(layout, i) for i in range(len(layout["pages"]))]


def pdf_bytes(pages: Sequence[np.ndarray], sizes_mm: Sequence[Sequence[float]]) -> bytes:
    """A PDF with one losslessly compressed RGB image per page, each page `sizes_mm` large (so
    the page prints at its true size; the catalog asks viewers not to scale it)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_obj = add(b"")
    kids = []
    for img, (w_mm, h_mm) in zip(pages, sizes_mm):
        img = np.ascontiguousarray(img, np.uint8)
        h, w = img.shape[:2]
        data = zlib.compress(img.tobytes(), 6)
        image = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace "
                    b"/DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
                    % (w, h, len(data)) + data + b"\nendstream")
        wp, hp = w_mm * 72.0 / 25.4, h_mm * 72.0 / 25.4
        content = b"q %.3f 0 0 %.3f 0 0 cm /Im0 Do Q" % (wp, hp)
        contents = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.3f %.3f] /Resources "
                        b"<< /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                        % (pages_obj, wp, hp, image, contents)))
    objects[catalog - 1] = (b"<< /Type /Catalog /Pages %d 0 R /ViewerPreferences "
                            b"<< /PrintScaling /None >> >>" % pages_obj)
    objects[pages_obj - 1] = (b"<< /Type /Pages /Kids [%s] /Count %d >>"
                              % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, catalog, xref))
    return bytes(out)


def _png_bytes(img: np.ndarray, dpi: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG", dpi=(dpi, dpi))
    return buf.getvalue()


def png_page_paths(out_path, n_pages: int) -> list[Path]:
    """`sheets.png` / `sheets.pdf` -> sheets-page-1.png, sheets-page-2.png, ..."""
    out_path = Path(out_path)
    return [out_path.with_name(f"{out_path.stem}-page-{i + 1}.png") for i in range(n_pages)]


def layout_path(out_path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".layout.json")


def make_template(out_path, charset="default", repeats: int = DEFAULT_REPEATS, paper: str = "a4",
                  dpi: int = 300, columns: int = DEFAULT_COLUMNS,
                  x_height_mm: float = DEFAULT_X_HEIGHT_MM, png: bool = False,
                  overwrite: bool = False) -> dict:
    """Writes the template and its layout file; returns the layout.

    out_path ending in .pdf: a multi-page PDF (plus PNG pages `<stem>-page-N.png` with png=True);
    ending in .png: PNG pages only. The layout goes to `<out_path>.layout.json`. Each file is
    written complete or not at all, and only as a regular file (a symbolic link only with
    `overwrite`: atomic.check_output).
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise ValueError(f"template output {out_path} must end in .pdf or .png")
    atomic.check_output(out_path, overwrite)
    layout = make_layout(charset, repeats, paper, dpi, columns, x_height_mm)
    pages = render_pages(layout)
    if suffix == ".pdf":
        atomic.write_bytes(out_path, pdf_bytes(pages, [p["size_mm"] for p in layout["pages"]]),
                           overwrite)
    if suffix == ".png" or png:
        for path, img in zip(png_page_paths(out_path, len(pages)), pages):
            atomic.write_bytes(path, _png_bytes(img, layout["dpi"]), overwrite)
    atomic.write_text(layout_path(out_path), json.dumps(layout, indent=1) + "\n", overwrite)
    return layout


def with_marker_ids(layout: dict, ids_by_page: dict[int, Sequence[int]]) -> dict:
    """A copy of a layout whose pages carry other marker ids (tests: foreign templates)."""
    out = copy.deepcopy(layout)
    for page_index, ids in ids_by_page.items():
        for m, mid in zip(out["pages"][page_index]["markers"], ids):
            m["id"] = int(mid)
    return out
