"""`hwgan app`'s server without a browser: real HTTP (uvicorn in a thread, http.client) against a
Studio whose model is a duck-typed fake (no TensorFlow model is built), so these run in seconds.

Upload limits (count, bytes, pixels, a decompression bomb's header, a non-image named .jpg), who
may post (Host, Origin, X-Hwgan-App, content type), names from requests never becoming paths,
one job at a time and a job that dies, and writing text with characters the hand lacks."""

from __future__ import annotations

import http.client
import json
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from hw_gan.app import studio as studio_lib
from tests.hw_gan.app_models import multipart, serve_studio

CHARSET = "abcde"


class FakeModel:
    """An export with two writers whose glyphs are rings (the gallery's sample hands)."""

    charset = tuple(CHARSET)
    writers = ("w0", "w1")
    untrained_writers = ()
    uses_writer = True
    resolution = 32
    family = "fake"
    info: dict = {}
    signatures: dict = {}

    def trained_writers(self):
        return self.writers

    def glyphs(self, chars, writers, seed=0):
        out = np.zeros((len(chars), 32, 32, 1), np.uint8)
        for i in range(len(chars)):
            cv2.ellipse(out[i, :, :, 0], (16, 16), (9, 12), 0, 0, 360, 255, 3)
        return out


@pytest.fixture(scope="module")
def app(tmp_path_factory, request):
    mp = pytest.MonkeyPatch()
    mp.setattr(studio_lib, "load_export", lambda path: FakeModel())
    data = tmp_path_factory.mktemp("app-data")
    studio = studio_lib.Studio(studio_lib.StudioConfig(model="fake", data_dir=str(data),
                                                       max_megapixels=1.0))
    port, stop = serve_studio(studio, max_files=2, max_upload_mb=0.25)
    yield {"studio": studio, "port": port, "data": data}
    stop()
    mp.undo()


def _call(app, method, path, body=b"", headers=None, ctype="application/json"):
    """(status, headers, body) of one request with the page's own headers unless overridden."""
    h = {"Host": f"127.0.0.1:{app['port']}", "Origin": f"http://127.0.0.1:{app['port']}"}
    if method == "POST":
        h.update({"X-Hwgan-App": "1", "Content-Type": ctype})
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    conn = http.client.HTTPConnection("127.0.0.1", app["port"], timeout=30)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in h.items():
        conn.putheader(k, v)
    if method == "POST":
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def _upload(app, files, path="/api/uploads", field="files"):
    """POSTs files [(name, bytes)] as multipart form data."""
    body, ctype = multipart(files, field)
    return _call(app, "POST", path, body, ctype=ctype)


def _png(w, h) -> bytes:
    return cv2.imencode(".png", np.full((h, w), 255, np.uint8))[1].tobytes()


def _bomb_png(w=60000, h=60000) -> bytes:
    """A PNG whose header claims w x h pixels (3.6 gigapixels), its data a few bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def _error(body: bytes) -> str:
    return json.loads(body)["error"]


def _results(body: bytes) -> dict:
    return {r["file"]: r for r in json.loads(body)["results"]}


# ------------------------------------------------------------------------------------------------
# Uploads.


def test_uploads_are_limited_in_count_bytes_and_pixels(app):
    status, _, body = _upload(app, [(f"p{i}.png", _png(100, 100)) for i in range(3)])
    assert status == 413 and "at most 2" in _error(body) and "--max_files" in _error(body)
    big = np.random.default_rng(0).integers(0, 255, (400, 400), np.uint8)  # ~160 kB of noise
    heavy = cv2.imencode(".png", np.hstack([big, big]))[1].tobytes()
    assert 0.25 * 2**20 < len(heavy) < 2 * 0.25 * 2**20
    status, _, body = _upload(app, [("heavy.png", heavy)])
    assert status == 413 and "heavy.png" in _error(body) and "--max_upload_mb" in _error(body)
    status, _, body = _call(app, "POST", "/api/uploads", b"x" * (600 << 10),
                            ctype="multipart/form-data; boundary=x")
    assert status == 413 and "--max_files, --max_upload_mb" in _error(body)
    # Judged by content, not by name; pixels counted from the header, before decoding.
    status, _, body = _upload(app, [("huge.png", _png(1200, 1000)),
                                    ("bomb.png", _bomb_png())])
    assert status == 200
    res = _results(body)
    assert res["huge.png"]["status"] == "refused"
    assert "too large" in res["huge.png"]["why"] and "--max_megapixels 1" in res["huge.png"]["why"]
    assert res["bomb.png"]["status"] == "refused" and "3600.0 megapixels" in res["bomb.png"]["why"]
    status, _, body = _upload(app, [("letter.jpg", b"Dear Ann, this is text, not a picture"),
                                    ("blank.png", b"")])
    res = _results(body)
    assert "not an image" in res["letter.jpg"]["why"]
    assert res["blank.png"]["status"] == "refused"
    pages = app["data"] / "sheets" / "pages"
    assert not [p for p in pages.iterdir()]  # refused uploads leave nothing behind


# ------------------------------------------------------------------------------------------------
# Who may post.


def test_only_the_pages_own_origin_may_change_anything(app):
    before = sorted(p.name for p in (app["data"] / "hands").iterdir())
    body = {"method": "fast", "name": "evil"}
    hostile = [
        ({"Origin": "http://evil.example"}, 403, "Origin"),
        ({"Origin": "null"}, 403, "Origin"),
        ({"Host": "evil.example:80"}, 403, "Host"),  # DNS rebinding
        ({"X-Hwgan-App": None}, 403, "own page"),
        ({"X-Hwgan-App": "0"}, 403, "own page"),
    ]
    for headers, code, word in hostile:
        status, _, out = _call(app, "POST", "/api/hands/make", body, headers)
        assert status == code and word in _error(out), (headers, status, out)
    # A form post (what a page of another site can send without asking) is refused too.
    status, _, out = _call(app, "POST", "/api/hands/make", b"method=fast",
                           ctype="application/x-www-form-urlencoded")
    assert status == 415
    status, _, out = _call(app, "POST", "/api/hands/make", b"{}", ctype="text/plain")
    assert status == 415
    # The page's own origin, and reads without an Origin, work.
    status, headers, _ = _call(app, "GET", "/api/info", headers={"Origin": None})
    assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
    status, _, _ = _call(app, "GET", "/api/info", headers={"Origin": "http://evil.example"})
    assert status == 403
    assert sorted(p.name for p in (app["data"] / "hands").iterdir()) == before


# ------------------------------------------------------------------------------------------------
# Names from requests.


def _listing(root: Path) -> set:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_names_from_requests_never_become_paths(app, tmp_path):
    studio, data = app["studio"], app["data"]
    outside = _listing(data.parent)
    hand = studio.hands.add("first", "style", lambda d: (d / "hand.style").write_bytes(b"x"))
    status, _, body = _call(app, "POST", f"/api/hands/{hand['id']}/rename",
                            {"name": "../../x"})
    assert status == 200 and json.loads(body)["hand"]["name"] == "../../x"
    assert not (data / "x").exists() and not (data.parent / "x").exists()
    assert (data / "hands" / hand["id"] / "hand.json").is_file()
    for path in ("/api/hands/..%2F..%2Fx/export", "/api/hands/../x/export",
                 "/api/glyphs/..%2Fstate.png", "/api/glyphs/p1-..png"):
        status, _, _ = _call(app, "GET", path)
        assert status in (400, 404), path
    status, _, body = _call(app, "POST", "/api/hands/..%2F..%2Fx/delete", {})
    assert status in (400, 404)
    status, _, body = _upload(app, [("../../x.png", _png(100, 100)),
                                    ("/etc/passwd", _png(100, 100))])
    assert status == 200 and set(_results(body)) == {"../../x.png", "/etc/passwd"}
    assert _listing(data.parent) - outside <= {
        p for p in _listing(data.parent) if p.startswith(data.name + "/")}
    assert not any("x.png" in p or "passwd" in p for p in _listing(data))
    studio.hands.delete(hand["id"])


# ------------------------------------------------------------------------------------------------
# Jobs.


def test_one_job_at_a_time_and_a_job_that_dies_keeps_the_hands(app, monkeypatch):
    studio = app["studio"]
    keep = studio.hands.add("kept", "style", lambda d: (d / "hand.style").write_bytes(b"x"))
    release = threading.Event()

    def slow(progress, tmp):
        progress("adapt embedding: step 1/4")
        release.wait(30)
        raise RuntimeError("the adaptation ran out of memory")

    monkeypatch.setattr(studio, "start_better",
                        lambda name: studio.jobs.start(studio_lib.clean_name(name), slow, 4, 0))
    status, _, body = _call(app, "POST", "/api/hands/make", {"method": "better", "name": "one"})
    assert status == 200 and json.loads(body)["job"]["status"] == "running"
    status, _, body = _call(app, "POST", "/api/hands/make", {"method": "better", "name": "two"})
    assert status == 409 and "already being made" in _error(body) and "'one'" in _error(body)
    release.set()
    studio.jobs.wait(30)
    status, _, body = _call(app, "GET", "/api/job")
    job = json.loads(body)["job"]
    assert job["status"] == "failed" and job["name"] == "one"
    assert job["error"] == "RuntimeError: the adaptation ran out of memory"
    assert "your other hands are kept" in job["message"]
    status, _, body = _call(app, "GET", "/api/hands")
    assert keep["id"] in [h["id"] for h in json.loads(body)["hands"]]
    assert not list((app["data"] / "jobs").glob("work-*"))  # its work directory is gone
    studio.hands.delete(keep["id"])


# ------------------------------------------------------------------------------------------------
# Writing.


def test_text_with_missing_characters_follows_the_choice(app):
    body = {"text": "Bad cab xyz", "hand": "gw0", "preview": True}
    code, _, out = _call(app, "POST", "/api/write", {**body, "missing": "error"})
    assert code == 400 and "does not have these letters: B x y z" in _error(out)
    ink = {}
    for missing, glyphs in (("skip", "5"), ("box", "5"), ("nearest", "6")):
        code, headers, out = _call(app, "POST", "/api/write", {**body, "missing": missing})
        assert code == 200 and headers["x-hwgan-glyphs"] == glyphs, (missing, out[:200])
        assert headers["x-hwgan-missing"] == "Bxyz"
        page = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_GRAYSCALE)
        ink[missing] = int((page < 128).sum())
    assert ink["skip"] < ink["box"]  # three empty boxes for x y z (B too)
    assert ink["skip"] < ink["nearest"]  # a "b" for the "B", boxes for x y z
    code, _, out = _call(app, "POST", "/api/write", {**body, "missing": "guess"})
    assert code == 400 and "missing letters must be one of" in _error(out)


def test_every_page_downloads_as_png_or_svg_in_one_zip(app):
    """"All pages" as PNG or SVG: a zip of page-1.png, page-2.png, ... holding one file per page
    of the letter, each page the same as its single-page download; a one-page letter is a plain
    file."""
    import io
    import xml.etree.ElementTree as ET
    import zipfile

    body = {"text": " ".join(["ab cd ea bed"] * 200), "hand": "gw1", "page": "a5", "seed": 2}
    code, headers, out = _call(app, "POST", "/api/write", {**body, "format": "pdf"})
    pages = int(headers["x-hwgan-pages"])
    assert code == 200 and pages >= 3
    for fmt in ("png", "svg"):
        code, headers, out = _call(app, "POST", "/api/write",
                                   {**body, "format": fmt, "all_pages": True})
        assert code == 200 and headers["content-type"] == "application/zip"
        assert int(headers["x-hwgan-pages"]) == pages
        with zipfile.ZipFile(io.BytesIO(out)) as z:
            assert z.testzip() is None
            names = z.namelist()
            assert names == [f"page-{k}.{fmt}" for k in range(1, pages + 1)]
            files = [z.read(n) for n in names]
        for data in files:
            if fmt == "png":
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
                assert image is not None and (image < 128).any()  # a page with ink on it
            else:
                root = ET.fromstring(data)
                assert root.tag == "{http://www.w3.org/2000/svg}svg"
                assert root.findall(".//{http://www.w3.org/2000/svg}path")
        # Page 2 in the zip is page 2 on its own.
        code, _, single = _call(app, "POST", "/api/write", {**body, "format": fmt, "page_no": 2})
        assert code == 200 and single == files[1]
    # One page: the page's own file, not a zip.
    code, headers, out = _call(app, "POST", "/api/write",
                               {**body, "text": "bad cab", "format": "png", "all_pages": True})
    assert code == 200 and headers["content-type"] == "image/png"
    assert headers["x-hwgan-pages"] == "1" and out.startswith(b"\x89PNG\r\n\x1a\n")
    code, _, out = _call(app, "POST", "/api/write", {**body, "all_pages": "yes"})
    assert code == 400 and "all_pages must be true or false" in _error(out)
