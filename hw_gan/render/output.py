"""Pages of placed glyphs -> PNG, SVG and PDF files.

A page to draw is a `layout.PageLayout` plus the ink crops of its generated glyphs
({k: uint8 ink-high [h, w]}, as `layout.crop_to_ink` makes them).

  * PNG: the page rasterised at the layout's pixel size (each crop resized and sheared onto the
    page, ink coverages combined by max), coloured between paper and ink through a 256-entry
    palette (exact for a two-colour page, 1 byte a pixel), with the dpi in the pHYs chunk.
  * SVG: vector outlines traced from the glyph bitmaps (each crop upscaled, binarised at half
    ink, `cv2.findContours`, simplified, drawn as quadratic curves through the edge midpoints),
    one <path fill-rule="evenodd"> per glyph so holes stay holes; no embedded bitmap.
  * PDF: the same outlines as filled paths (quadratics raised to cubics), one page each, written
    by a small PDF 1.4 writer that streams page by page (Flate-compressed content streams).

PNG and SVG hold one page a file: one page is written to `out` itself, several to
`out-1.png`, `out-2.png`, ... (pages of an earlier, longer document under those names are
removed). Every output is written atomically: to a temporary name in the same directory, renamed
when all pages are done; on any error the temporaries are removed and nothing is left under the
output names. Only regular files are written (data_pipeline.atomic.check_output). This module
is the one page encoder: `write_pages` writes files, `encode_pages` gives the same bytes in
memory (the server's :write), both through `write_pdf` and `page_files`; `encode_page_files`
gives every page of a PNG/SVG document as one download (the page's file for one page, a zip of
page-1.png, page-2.png, ... for several: `hwgan app`'s "all pages").
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from data_pipeline import atomic
from hw_gan.layout import BOX, GLYPH, PageLayout, Placement, box_bitmap

FORMATS = ("png", "svg", "pdf")
Color = tuple[int, int, int]
PathLike = Union[str, os.PathLike]

_BOX = box_bitmap()
UPSCALE = 8  # outline tracing resolution, per source pixel
PDF_COMPRESSION = 3  # zlib level of content streams (6 is ~7 % smaller and ~2x slower)
OUTLINE_LEVEL = 140  # ink level of the traced edge (a little over half: the raster's weight)


def parse_color(value: Union[str, Sequence[int]]) -> Color:
    """"#rgb", "#rrggbb", a CSS colour name, or an (r, g, b) triple -> (r, g, b) ints."""
    if isinstance(value, str):
        from PIL import ImageColor

        try:
            rgb = ImageColor.getrgb(value)
        except ValueError:
            raise ValueError(f"colour {value!r} is not '#rrggbb', '#rgb' or a colour "
                             "name") from None
        return tuple(int(c) for c in rgb[:3])  # type: ignore[return-value]
    rgb = tuple(int(c) for c in value)
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour {value!r} is not an (r, g, b) triple of 0..255")
    return rgb  # type: ignore[return-value]


def format_for(out: PathLike, format: Optional[str] = None) -> str:
    """The output format: `format` if given, else from the suffix of `out`."""
    fmt = (format or Path(out).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the output format of {str(out)!r}: give a .png, .svg or "
                         f".pdf name, or format= one of {FORMATS}")
    return fmt


def _source(pl: Placement, crops: Mapping[int, np.ndarray]) -> np.ndarray:
    return _BOX if pl.kind == BOX else crops[pl.index]


# ------------------------------------------------------------------------------------------------
# Raster.


def rasterize(page: PageLayout, crops: Mapping[int, np.ndarray]) -> np.ndarray:
    """uint8 ink coverage [H, W] of the page (0 paper, 255 ink)."""
    canvas = np.zeros((page.height, page.width), np.uint8)
    for pl in page.placements:
        _draw(canvas, pl, _source(pl, crops))
    return canvas


def _draw(canvas: np.ndarray, pl: Placement, src: np.ndarray) -> None:
    if src.size == 0 or pl.width <= 0 or pl.height <= 0:
        return
    w_i, h_i = max(1, int(round(pl.width))), max(1, int(round(pl.height)))
    shrink = w_i < src.shape[1] or h_i < src.shape[0]
    img = cv2.resize(src, (w_i, h_i), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    # Resized continuous coords -> page continuous coords; then index coords of a local patch.
    a = pl.affine() @ np.diag([src.shape[1] / w_i, src.shape[0] / h_i, 1.0])
    left, top, right, bottom = pl.ink_bounds()
    x0, y0 = int(np.floor(left)) - 1, int(np.floor(top)) - 1
    x1, y1 = int(np.ceil(right)) + 1, int(np.ceil(bottom)) + 1
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return
    m = a[:, :2]
    t = m @ np.array([0.5, 0.5]) + a[:, 2] - 0.5 - np.array([cx0, cy0])
    patch = cv2.warpAffine(img, np.hstack([m, t[:, None]]), (cx1 - cx0, cy1 - cy0),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    region = canvas[cy0:cy1, cx0:cx1]
    np.maximum(region, patch, out=region)


def page_image(coverage: np.ndarray, ink: Color, paper: Color):
    """A PIL "P" image of a coverage map: palette entry i is paper + (ink - paper) * i / 255."""
    from PIL import Image

    t = np.arange(256, dtype=np.float64)[:, None] / 255.0
    palette = np.rint(np.array(paper) * (1 - t) + np.array(ink) * t).astype(np.uint8)
    img = Image.frombytes("P", (coverage.shape[1], coverage.shape[0]),
                          np.ascontiguousarray(coverage).tobytes())
    img.putpalette(palette.reshape(-1).tolist())
    return img


def png_bytes(coverage: np.ndarray, ink: Color, paper: Color, dpi: float) -> bytes:
    buf = io.BytesIO()
    page_image(coverage, ink, paper).save(buf, format="PNG", dpi=(dpi, dpi), optimize=False,
                                          compress_level=6)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Outlines.


def glyph_outlines(src: np.ndarray, upscale: int = UPSCALE) -> list[np.ndarray]:
    """Closed outlines of uint8 ink-high `src` [h, w] at ink level OUTLINE_LEVEL: a list of
    float [n, 2] (x, y) polygons in the source's continuous coordinates ([0, w] x [0, h]); holes
    are separate polygons (fill them with the even-odd rule). The source is smoothed a little
    (Gaussian, 0.35 px), upscaled (cubic), binarised and traced; the polygons are simplified to
    0.2 source px."""
    if src.size == 0:
        return []
    pad = 2
    padded = cv2.GaussianBlur(np.pad(src, pad), (0, 0), 0.35)
    big = cv2.resize(padded, (padded.shape[1] * upscale, padded.shape[0] * upscale),
                     interpolation=cv2.INTER_CUBIC)
    mask = cv2.threshold(big, OUTLINE_LEVEL - 1, 1, cv2.THRESH_BINARY)[1]
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    min_area = (upscale * 0.5) ** 2
    for c in contours:
        if cv2.contourArea(c) < min_area:
            continue
        c = cv2.approxPolyDP(c, upscale * 0.2, True)
        if len(c) < 3:
            continue
        out.append((c[:, 0, :].astype(np.float64) + 0.5) / upscale - pad)
    return out


class OutlineCache:
    """Outlines of glyph k traced once (a page may ask twice, e.g. SVG and PDF)."""

    def __init__(self):
        self._cache: dict[int, list[np.ndarray]] = {}
        self._box = glyph_outlines(_BOX)

    def get(self, pl: Placement, crops: Mapping[int, np.ndarray]) -> list[np.ndarray]:
        if pl.kind == BOX:
            return self._box
        if pl.index not in self._cache:
            self._cache[pl.index] = glyph_outlines(crops[pl.index])
        return self._cache[pl.index]

    def release_before(self, k: int) -> None:
        for key in [key for key in self._cache if key < k]:
            del self._cache[key]


def page_outlines(page: PageLayout, crops: Mapping[int, np.ndarray],
                  cache: Optional[OutlineCache] = None) -> list[list[np.ndarray]]:
    """Per placed glyph, its outlines in page pixel coordinates (x right, y down)."""
    cache = cache or OutlineCache()
    out = []
    for pl in page.placements:
        a = pl.affine()
        polys = [p @ a[:, :2].T + a[:, 2] for p in cache.get(pl, crops)]
        if polys:
            out.append(polys)
    return out


def _smooth(poly: np.ndarray) -> np.ndarray:
    """The on-curve points of the closed quadratic B-spline with control polygon `poly`: the
    edge midpoints. Segment i runs from mids[i-1] to mids[i] with control point poly[i]."""
    return (poly + np.roll(poly, -1, axis=0)) / 2


def _fmt(v: float, digits: int = 2) -> str:
    s = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def svg_path_data(polys: Sequence[np.ndarray]) -> str:
    """Each polygon as a closed quadratic B-spline: from the midpoint of its last edge, a "Q"
    with the first vertex as control, then "T" to each further edge midpoint (the reflected
    control of T is exactly the next vertex)."""
    parts = []
    for poly in polys:
        mids = np.round(_smooth(poly), 1)
        head = np.concatenate([mids[-1], np.round(poly[0], 1), mids[0]])
        parts.append("M%.1f %.1fQ%.1f %.1f %.1f %.1f" % tuple(head)
                     + ("T%.1f %.1f" * (len(mids) - 1)) % tuple(mids[1:].ravel()) + "Z")
    return "".join(parts).replace(".0 ", " ").replace(".0T", "T").replace(".0Z", "Z")


def _hex(c: Color) -> str:
    return "#%02x%02x%02x" % c


def svg_document(page: PageLayout, outlines: Sequence[Sequence[np.ndarray]], dpi: float,
                 ink: Color, paper: Color) -> bytes:
    mm = 25.4 / dpi
    w, h = page.width, page.height
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_fmt(w * mm)}mm" '
        f'height="{_fmt(h * mm)}mm" viewBox="0 0 {w} {h}">',
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="{_hex(paper)}"/>',
        f'<g fill="{_hex(ink)}" fill-rule="evenodd" stroke="none">',
    ]
    for polys in outlines:
        lines.append(f'<path d="{svg_path_data(polys)}"/>')
    lines += ["</g>", "</svg>", ""]
    return "\n".join(lines).encode("utf-8")


def pdf_content(page: PageLayout, outlines: Sequence[Sequence[np.ndarray]], dpi: float,
                ink: Color, paper: Color) -> bytes:
    """A page's content stream. Coordinates are integers in tenths of a page pixel (y down),
    mapped to points by the first `cm`; each glyph is one even-odd fill (`f*`) of closed cubic
    curves (the quadratic B-spline of the SVG, raised to cubics). A first comment line says
    which glyphs the page holds ("% hwgan: glyphs K0-K1, N placed"; blank glyphs are placed but
    draw nothing), so a reader can check a document holds its whole text."""
    s = 72.0 / dpi
    ks = page.glyph_indices
    placed = sum(pl.kind == GLYPH for pl in page.placements)
    span = f"{ks.start}-{ks.stop - 1}" if len(ks) else "none"
    out = [f"% hwgan: glyphs {span}, {placed} placed",
           f"q {_fmt(s / 10, 6)} 0 0 {_fmt(-s / 10, 6)} 0 {_fmt(page.height * s, 3)} cm"]
    if paper != (255, 255, 255):
        out.append("%s rg 0 0 %d %d re f" % (_rgb(paper), page.width * 10, page.height * 10))
    out.append("%s rg" % _rgb(ink))
    for polys in outlines:
        for poly in polys:
            mids = _smooth(poly)
            starts = np.roll(mids, 1, axis=0)
            c1 = starts + (poly - starts) * (2 / 3)
            c2 = mids + (poly - mids) * (2 / 3)
            curves = np.rint(np.hstack([c1, c2, mids]) * 10).astype(np.int64)
            out.append("%d %d m" % tuple(np.rint(mids[-1] * 10).astype(np.int64)))
            out.append((("%d %d %d %d %d %d c\n" * len(curves)) % tuple(curves.ravel()))[:-1])
            out.append("h")
        out.append("f*")
    out.append("Q")
    return ("\n".join(out) + "\n").encode("ascii")


_PDF_SPAN = re.compile(rb"% hwgan: glyphs (?:(\d+)-(\d+)|none), (\d+) placed\n")


def pdf_glyph_spans(pdf: bytes) -> list[tuple[int, int, int]]:
    """Per page of a PDF this module wrote, (first glyph, last glyph, glyphs placed) from its
    content's first comment (-1, -1, 0 for a page without glyphs)."""
    spans = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        m = _PDF_SPAN.match(zlib.decompress(stream))
        if m:
            first, last, n = m.groups()
            spans.append((int(first or -1), int(last or -1), int(n)))
    return spans


def _rgb(c: Color) -> str:
    return " ".join(_fmt(v / 255) for v in c)


class PdfWriter:
    """A minimal PDF 1.4 writer that streams pages to a binary file: catalog (object 1), the
    pages tree (object 2, written last), then per page a page object and its content stream."""

    def __init__(self, f: BinaryIO, producer: str = "hwgan"):
        self.f = f
        self.offsets: dict[int, int] = {}
        self.kids: list[int] = []
        self.next_id = 3
        self.pos = 0
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._object(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        self.info_id = self._new_id()
        self._object(self.info_id, b"<< /Producer (" + producer.encode("latin-1") + b") >>")

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.pos += len(data)

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _object(self, obj_id: int, body: bytes) -> None:
        self.offsets[obj_id] = self.pos
        self._write(b"%d 0 obj\n" % obj_id + body + b"\nendobj\n")

    def add_page(self, width_pt: float, height_pt: float, content: bytes) -> None:
        page_id, content_id = self._new_id(), self._new_id()
        data = zlib.compress(content, PDF_COMPRESSION)
        self._object(content_id, b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data)
                     + data + b"\nendstream")
        self._object(page_id, (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_fmt(width_pt)} "
                               f"{_fmt(height_pt)}] /Resources << >> /Contents {content_id} 0 R "
                               f">>").encode("ascii"))
        self.kids.append(page_id)

    def close(self) -> None:
        kids = " ".join(f"{k} 0 R" for k in self.kids)
        self._object(2, f"<< /Type /Pages /Kids [{kids}] /Count {len(self.kids)} >>"
                     .encode("ascii"))
        xref = self.pos
        n = self.next_id
        rows = [b"xref\n0 %d\n" % n, b"0000000000 65535 f \n"]
        for i in range(1, n):
            rows.append(b"%010d 00000 n \n" % self.offsets[i])
        self._write(b"".join(rows))
        self._write(b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
                    % (n, self.info_id, xref))


# ------------------------------------------------------------------------------------------------
# Atomic files.


def page_path(out: Path, index: int) -> Path:
    """The file of page `index` (from 0) of a PNG/SVG document of several pages: out-1.png,
    out-2.png, ... (a one-page document is `out` itself)."""
    return out.with_name(f"{out.stem}-{index + 1}{out.suffix}")


def write_pdf(pages: Iterable[tuple[PageLayout, Mapping[int, np.ndarray]]], f: BinaryIO,
              dpi: float, ink: Color, paper: Color, on_page_done=None) -> int:
    """Writes (page, crops) pairs, consumed one at a time, as one PDF to the binary file `f`
    (streamed: a page's content is written before the next page is asked for) and returns the
    number of pages. ValueError when there are none."""
    writer = PdfWriter(f)
    cache = OutlineCache()
    n = 0
    for page, crops in pages:
        outlines = page_outlines(page, crops, cache)
        s = 72.0 / dpi
        writer.add_page(page.width * s, page.height * s,
                        pdf_content(page, outlines, dpi, ink, paper))
        n += 1
        _release(cache, page)
        if on_page_done:
            on_page_done(page)
    if n == 0:
        raise ValueError("no pages to write")
    writer.close()
    return n


def page_files(pages: Iterable[tuple[PageLayout, Mapping[int, np.ndarray]]], format: str,
               dpi: float, ink: Color, paper: Color) -> Iterator[tuple[PageLayout, bytes]]:
    """PNG or SVG: yields (page, the bytes of its file) for each (page, crops) pair, one at a
    time (the next page is asked for only when the next file is)."""
    if format not in ("png", "svg"):
        raise ValueError(f"one file a page is for png and svg, not {format!r}")
    cache = OutlineCache()
    for page, crops in pages:
        if format == "png":
            data = png_bytes(rasterize(page, crops), ink, paper, dpi)
        else:
            data = svg_document(page, page_outlines(page, crops, cache), dpi, ink, paper)
            _release(cache, page)
        yield page, data


def encode_pages(pages: Iterable[tuple[PageLayout, Mapping[int, np.ndarray]]], format: str,
                 dpi: float, ink: Color, paper: Color) -> tuple[bytes, int]:
    """The document in memory, as the files `write_pages` writes: (its bytes, its number of
    pages). PDF holds all pages; PNG and SVG are one page, and a second page is refused
    (ValueError, before it is drawn), as is a document of no pages."""
    if format == "pdf":
        buf = io.BytesIO()
        n = write_pdf(pages, buf, dpi, ink, paper)
        return buf.getvalue(), n
    data, n = None, 0
    for _, data in page_files(_one_page(pages, format), format, dpi, ink, paper):
        n += 1
    if data is None:
        raise ValueError("no pages to write")
    return data, n


ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # every member's time: the same pages give the same bytes


def zip_member(index: int, format: str) -> str:
    """The name of page `index` (from 0) inside encode_page_files' zip: page-1.png, ..."""
    return f"page-{index + 1}.{format}"


def encode_page_files(pages: Iterable[tuple[PageLayout, Mapping[int, np.ndarray]]],
                      format: str, dpi: float, ink: Color,
                      paper: Color) -> tuple[bytes, int, bool]:
    """Every page of a PNG or SVG document in memory, as one download: (bytes, pages, zipped).
    One page is that page's file itself (zipped False); several are a zip holding
    page-1.png, page-2.png, ... (`zip_member`), PNG stored as it is (already compressed), SVG
    deflated. Pages are drawn one at a time; ValueError for a document of no pages."""
    buf = io.BytesIO()
    first: Optional[bytes] = None
    n = 0
    with zipfile.ZipFile(buf, "w") as z:
        for _, data in page_files(pages, format, dpi, ink, paper):
            if n == 0:
                first = data
            else:
                if n == 1:
                    _zip_add(z, zip_member(0, format), first)
                    first = None
                _zip_add(z, zip_member(n, format), data)
            n += 1
    if n == 0:
        raise ValueError("no pages to write")
    if n == 1:
        return first, 1, False
    return buf.getvalue(), n, True


def _zip_add(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def _one_page(pages: Iterable, format: str) -> Iterator:
    for n, item in enumerate(pages, 1):
        if n > 1:
            raise ValueError(f"the text needs more than one page: {format} is one page; ask for "
                             "format \"pdf\" (all pages), or a bigger page / smaller "
                             "x_height_mm")
        yield item


def write_pages(pages: Iterable[tuple[PageLayout, Mapping[int, np.ndarray]]], out: PathLike,
                format: Optional[str] = None, dpi: float = 150.0,
                ink: Union[str, Color] = "#1a1a40", paper: Union[str, Color] = "#ffffff",
                on_page_done=None, overwrite: bool = False) -> list[Path]:
    """Writes (page, crops) pairs, consumed one at a time, to `out` (see the module docstring)
    and returns the paths written. `on_page_done(page)` is called after each page is out (the
    caller may then drop its crops). Every file written must be absent or a writable regular
    file (a symbolic link only with `overwrite`: the link is replaced, not its target;
    data_pipeline.atomic.check_output); `out` is checked before the first page is drawn. PNG
    and SVG pages of an earlier, longer document under the same names (`stale_pages`) are
    removed once the new one is in place."""
    out = Path(out)
    fmt = format_for(out, format)
    ink_c, paper_c = parse_color(ink), parse_color(paper)
    atomic.check_output(out, overwrite)
    staged = atomic.StagedFiles(overwrite=overwrite)
    try:
        if fmt == "pdf":
            with staged.open(out) as f:
                write_pdf(pages, f, dpi, ink_c, paper_c, on_page_done)
            return staged.commit()
        # PNG / SVG: one file per page; the first is named once we know whether a second exists.
        first: Optional[bytes] = None
        n = 0
        for page, data in page_files(pages, fmt, dpi, ink_c, paper_c):
            if n == 0:
                first = data
            else:
                if n == 1:
                    staged.write(page_path(out, 0), first)
                    first = None
                staged.write(page_path(out, n), data)
            n += 1
            if on_page_done:
                on_page_done(page)
        if n == 0:
            raise ValueError("no pages to write")
        if n == 1:
            staged.write(out, first)
        paths = staged.commit()
    except BaseException:
        staged.abort()
        raise
    for path in stale_pages(out, fmt, n):
        os.unlink(path)
    return paths


_MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "svg": (b"<?xml", b"<svg")}


def stale_pages(out: PathLike, format: str, pages: int) -> list[Path]:
    """The files an earlier PNG/SVG document under `out` left that a document of `pages` pages
    does not replace: `out` itself when there are several pages now, and out-K.png from K =
    pages + 1 (from 1 for one page) while the series goes on. Only regular files that start as
    the format's files do are named (a link, a folder or another kind of file is left alone)."""
    out = Path(out)
    found = [out] if pages > 1 else []
    k = pages if pages > 1 else 0
    while os.path.lexists(page_path(out, k)):
        found.append(page_path(out, k))
        k += 1
    return [p for p in found if _is_page_file(p, format)]


def _is_page_file(path: Path, format: str) -> bool:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(_MAGIC.get(format, ()))


def _release(cache: OutlineCache, page: PageLayout) -> None:
    ks = page.glyph_indices
    if len(ks):
        cache.release_before(ks.stop)

