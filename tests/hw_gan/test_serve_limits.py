"""Issue 20, the server and signature side: every cost bounded before the work (in the server
and in the SavedModel's signatures, which TF Serving runs with nothing in front), who may ask
(Host, Origin, Content-Type), strict HTTP framing and field-named 400s. Each case the issue
lists is a test here (or in test_serve_fuzz.py); the export is the tiny stylegan of
serve_export.py, with every signature and small caps."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time

import numpy as np
import pytest
import tensorflow as tf

from hw_gan.export import load_export
from tests.hw_gan.serve_export import (CHARS, LIMITS, NAME, RES, WRITE_CAPS, running_server,
                                       shared_export)

PREDICT = f"/v1/models/{NAME}:predict"
WRITE = f"/v1/models/{NAME}:write"
JSON = {"Content-Type": "application/json"}
SMALL = {"page": "40x40mm", "margin_mm": 2}  # a page within the pixel budget


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_export(tmp_path_factory)


@pytest.fixture(scope="module")
def server(exported):
    with running_server(exported, allow_origins=["http://app.example:3000"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def sigs(exported):
    return load_export(exported).signatures


def post(srv, path, body, headers=JSON, raw=None):
    """-> (status, headers, body bytes) over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request("POST", path, body=raw if raw is not None else json.dumps(body).encode(),
                     headers=dict(headers))
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def error(srv, path, body, status, **kw):
    got, headers, data = post(srv, path, body, **kw)
    assert got == status, data[:300]
    assert headers["Content-Type"] == "application/json"
    return json.loads(data)["error"]


def exchange(srv, request: bytes, linger_reset=False):
    """Sends raw bytes -> (status, body, closed): closed = the server closed the connection
    after its answer (nothing more to read within 2 s)."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(request)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read()
        sock.settimeout(2)
        try:
            closed = sock.recv(1) == b""
        except (socket.timeout, TimeoutError):
            closed = False
        except ConnectionResetError:
            closed = True
        return resp.status, body, closed
    finally:
        sock.close()


def raw_post(path, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ------------------------------------------------------------------------------------------------
# Cost: the server's budgets (413, the flag named) ...


def test_predict_glyphs_over_budget_is_refused_before_work(server):
    # The 10,000-character glyphs call (47 s, 4.6 GB): refused at once.
    start = time.perf_counter()
    err = error(server, PREDICT, {"signature_name": "glyphs",
                                  "inputs": {"chars": ["a"] * 10_000, "writers": [""],
                                             "seed": 0}}, 413)
    assert "--max_glyphs" in err and time.perf_counter() - start < 5
    err = error(server, PREDICT, {"signature_name": "glyphs_by_id",
                                  "inputs": {"char_ids": [0] * 5000, "writer_ids": [0],
                                             "seed": 0}}, 413)
    assert "--max_glyphs" in err
    # Under --max_glyphs but over the export's own cap (64): the graph refuses it.
    err = error(server, PREDICT, {"signature_name": "glyphs",
                                  "inputs": {"chars": ["a"] * 80, "writers": [""], "seed": 0}},
                400)
    assert "too many glyphs" in err and "max_glyphs=64" in err
    ok = post(server, PREDICT, {"signature_name": "glyphs",
                                "inputs": {"chars": ["a"] * 64, "writers": [""], "seed": 0}})
    assert ok[0] == 200
    assert np.array(json.loads(ok[2])["outputs"]["images"]).shape == (64, RES, RES, 1)


def test_predict_write_signature_is_bounded(server):
    # The 20 lines x line_width 16384 (1.9 GB) and 200 lines (MemoryError).
    err = error(server, PREDICT, {"signature_name": "write",
                                  "inputs": {"text": "a\n" * 20, "writer": "", "seed": 0,
                                             "line_width": 16384}}, 400)
    assert "line_width" in err  # over the export's max_line_width (4000 here)
    err = error(server, PREDICT, {"signature_name": "write",
                                  "inputs": {"text": "ab\n" * 5, "writer": "", "seed": 0,
                                             "line_width": 3000}}, 400)
    assert "max_pixels" in err  # the laid-out image, checked in the graph before the raster
    err = error(server, PREDICT, {"signature_name": "write",
                                  "inputs": {"text": "a " * 100, "writer": "", "seed": 0,
                                             "line_width": 200}}, 413)
    assert "--max_text_chars" in err
    err = error(server, PREDICT, {"signature_name": "write",
                                  "inputs": {"text": "a", "writer": "", "seed": 0,
                                             "line_width": 300_000}}, 413)
    assert "--max_pixels" in err
    status, _, data = post(server, PREDICT, {"signature_name": "write",
                                             "inputs": {"text": "abc de", "writer": "",
                                                        "seed": 0, "line_width": 200}})
    assert status == 200
    image = np.array(json.loads(data)["outputs"]["image"])
    assert image.shape[1] == 200 and image.dtype.kind == "i" and image.max() <= 255


def test_predict_write_image_over_server_budget(exported):
    # A laid-out image within the export's cap (300,000) but over --max_pixels: refused before
    # it is encoded.
    with running_server(exported, max_pixels=20_000) as srv:
        err = error(srv, PREDICT, {"signature_name": "write",
                                   "inputs": {"text": "ab\nab\nab", "writer": "", "seed": 0,
                                              "line_width": 400}}, 413)
    assert "--max_pixels" in err and "image" in err


def test_write_endpoint_budgets(server):
    err = error(server, WRITE, {"text": "ab " * 60, **SMALL}, 413)
    assert "--max_text_chars" in err
    err = error(server, WRITE, {"text": "a" * 120, **SMALL}, 413)  # 120 glyphs > 100
    assert "--max_glyphs" in err
    err = error(server, WRITE, {"text": "ab", "dpi": 150}, 413)  # A4 at 150 dpi: 2.2 M pixels
    assert "--max_pixels" in err
    status, headers, data = post(server, WRITE, {"text": "abc de", **SMALL})
    assert status == 200 and headers["Content-Type"] == "image/png"


def test_extract_style_caps(server, sigs):
    images = np.zeros((2, RES, RES, 1), np.uint8).tolist()
    err = error(server, PREDICT, {"signature_name": "extract_style",
                                  "inputs": {"images": images, "chars": ["a", "b"],
                                             "steps": 1_000_000}}, 400)
    assert "steps" in err
    ok = post(server, PREDICT, {"signature_name": "extract_style",
                                "inputs": {"images": images, "chars": ["a", "b"], "steps": 1}})
    assert ok[0] == 200, ok[2][:300]
    # In the graph (TF Serving): images and steps over the export's caps.
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_style_images"):
        sigs["extract_style"](images=tf.zeros([9, RES, RES, 1], tf.uint8),
                              chars=tf.constant(["a"] * 9), steps=tf.constant(0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_style_steps"):
        sigs["extract_style"](images=tf.zeros([1, RES, RES, 1], tf.uint8),
                              chars=tf.constant(["a"]), steps=tf.constant(2**31 - 1))


# ------------------------------------------------------------------------------------------------
# ... and the signatures' own caps, for TF Serving.


def test_signatures_check_their_caps_in_the_graph(sigs):
    seed = tf.constant(0, tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many glyphs"):
        sigs["glyphs"](chars=tf.constant(["a"] * (LIMITS.max_glyphs + 1)),
                       writers=tf.constant([""]), seed=seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many glyphs"):
        sigs["glyphs_by_id"](char_ids=tf.zeros([LIMITS.max_glyphs + 1], tf.int32),
                             writer_ids=tf.zeros([1], tf.int32), seed=seed)
    style = sigs["mean_style"]()["style"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many glyphs"):
        sigs["glyphs_with_style"](chars=tf.constant(["a"] * (LIMITS.max_glyphs + 1)),
                                  style=style, seed=seed, variation=tf.constant(0.1))

    def write(text, line_width):
        return sigs["write"](text=tf.constant(text), writer=tf.constant(""), seed=seed,
                             line_width=tf.constant(line_width))

    with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels"):
        write("a\n" * 60, 200)  # 60 lines of one glyph: only the pixel cap sees them
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_text_chars"):
        write("a" + " " * WRITE_CAPS["max_text_chars"], 200)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_glyphs"):
        write("a" * (WRITE_CAPS["max_glyphs"] + 1), 200)
    with pytest.raises(tf.errors.InvalidArgumentError, match="line_width"):
        write("a", 16384)
    # Glyphs are drawn in blocks: a call's glyphs do not depend on how many it draws.
    many = sigs["glyphs"](chars=tf.constant(list(CHARS) * 12), writers=tf.constant([""]),
                          seed=seed)["images"].numpy()
    few = sigs["glyphs"](chars=tf.constant(list(CHARS)), writers=tf.constant([""]),
                         seed=seed)["images"].numpy()
    np.testing.assert_array_equal(many[:len(CHARS)], few)


def test_style_nan_and_inf_are_refused(server, sigs):
    style = sigs["mean_style"]()["style"].numpy()
    for bad in (np.nan, np.inf):
        ws = style.copy()
        ws[1, 2] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
            sigs["glyphs_with_style"](chars=tf.constant(["a"]), style=tf.constant(ws),
                                      seed=tf.constant(0, tf.int64), variation=tf.constant(0.1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        sigs["glyphs_with_style"](chars=tf.constant(["a"]), style=tf.constant(style),
                                  seed=tf.constant(0, tf.int64),
                                  variation=tf.constant(float("nan")))
    # The server: JSON's NaN / Infinity / 1e999 in :predict and :write.
    for token in ("NaN", "Infinity", "-Infinity", "1e999"):
        text = json.dumps(style.tolist()).replace(repr(float(style[0, 0])), token, 1)
        assert token in text
        raw = ('{"signature_name": "glyphs_with_style", "inputs": {"chars": ["a"], "style": '
               + text + ', "seed": 0, "variation": 0.1}}').encode()
        err = error(server, PREDICT, None, 400, raw=raw)
        assert "'style'" in err and "NaN or infinity" in err
        raw = ('{"text": "ab", "page": "40x40mm", "margin_mm": 2, "style": ' + text
               + '}').encode()
        err = error(server, WRITE, None, 400, raw=raw)
        assert "style" in err and "finite" in err
    err = error(server, WRITE, None, 400,
                raw=b'{"text": "ab", "page": "40x40mm", "margin_mm": 2, "style": [[0]], '
                    b'"variation": NaN}')
    assert "variation" in err


# ------------------------------------------------------------------------------------------------
# Who may ask.


def test_content_type_host_and_origin(server):
    body = {"text": "ab", **SMALL}
    # The cross-site post: text/plain, Host and Origin evil.example.com.
    err = error(server, WRITE, body, 415, headers={"Content-Type": "text/plain"})
    assert "application/json" in err
    err = error(server, WRITE, body, 415, headers={})
    assert "application/json" in err
    err = error(server, WRITE, body, 403, headers={**JSON, "Host": "evil.example.com"})
    assert "Host" in err and "--allow_host" in err
    err = error(server, WRITE, body, 403, headers={**JSON, "Host": f"evil.example.com:{server.port}"})
    assert "Host" in err
    err = error(server, WRITE, body, 403, headers={**JSON, "Origin": "http://evil.example.com"})
    assert "Origin" in err
    err = error(server, WRITE, body, 403, headers={**JSON, "Origin": "null"})
    # GETs are answered to no foreign page either (DNS rebinding reads answers).
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", f"/v1/models/{NAME}", headers={"Host": "rebind.evil.example"})
    assert conn.getresponse().status == 403
    conn.close()
    # Allowed: no Origin (TF Serving clients), the server's own origin, --allow_origin, localhost.
    for headers in ({**JSON}, {**JSON, "Origin": f"http://127.0.0.1:{server.port}"},
                    {**JSON, "Origin": f"http://localhost:{server.port}",
                     "Host": f"localhost:{server.port}"},
                    {**JSON, "Origin": "http://app.example:3000"},
                    {"Content-Type": "application/json; charset=utf-8"}):
        status, _, data = post(server, WRITE, body, headers=headers)
        assert status == 200, (headers, data[:200])
    with pytest.raises(ValueError, match="--allow_origin"):
        from hw_gan.serve import make_server
        make_server("/nonexistent", allow_origins=["evil.example.com/x"])


# ------------------------------------------------------------------------------------------------
# HTTP strictness.


@pytest.mark.parametrize("headers", [
    ("Content-Length: +12",), ("Content-Length: 12 ",), ("Content-Length: 1_2",),
    ("Content-Length: 0x0c",), ("Content-Length: 12", "Content-Length: 13"),
    ("Content-Length: 12", "Content-Length: 12"), ("Content-Length: -1",),
    ("Content-Length: 99999999999999999999",)])
def test_bad_content_length_is_400_and_closes(server, headers):
    status, body, closed = exchange(server, raw_post(PREDICT, b'{"inputs": {}}', *headers))
    assert status == 400 and "Content-Length" in json.loads(body)["error"] and closed


def test_transfer_encoding_is_refused_and_closes(server):
    req = raw_post(PREDICT, b"5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked")
    status, _, closed = exchange(server, req)
    assert status == 411 and closed


def test_close_after_an_error_that_left_the_body_unread(server):
    # A 404 / 405 / 403 / 415 with a body: the body is not parsed as a next request.
    smuggled = b"GET /v1/models/sg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for path, extra in ((f"/v1/models/other:predict", ()), (f"/v1/models/{NAME}", ()),
                        (PREDICT, ("Origin: http://evil.example.com",))):
        body = smuggled
        req = raw_post(path, body, f"Content-Length: {len(body)}", *extra)
        status, _, closed = exchange(server, req)
        assert status in (403, 404, 405) and closed, (path, status)
    # A 400 after the body was read keeps the connection (nothing is left over) ...
    body = b'{"inputs": {"chars": 1}}'
    status, _, closed = exchange(server, raw_post(PREDICT, body, f"Content-Length: {len(body)}"))
    assert status == 400 and not closed
    # ... and an over-large body is drained (bounded), answered 413 and closed.
    body = b"x" * 70_000
    status, _, closed = exchange(server, raw_post(PREDICT, body, f"Content-Length: {len(body)}"))
    assert status == 413 and closed


def test_head_works_where_get_does(server):
    for path in (f"/v1/models/{NAME}", f"/v1/models/{NAME}/metadata",
                 f"/v1/models/{NAME}/versions/1"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("HEAD", path)
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > 0
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("HEAD", PREDICT)
    r = conn.getresponse()
    assert r.status == 405 and r.headers["Allow"] == "POST"
    conn.close()


def test_field_named_400s(server):
    cases = [({"text": "ab", "format": ["png"]}, "format"),
             ({"text": "ab", "format": {"png": 1}}, "format"),
             ({"text": "ab", "missing": ["skip"]}, "missing"),
             ({"text": "ab", "ink": {"a": 1}}, "ink"),
             ({"text": "ab", "ink": [1, 2]}, "ink"),
             ({"text": "ab", "ink": [1, 2, 999]}, "ink"),
             ({"text": "ab", "ink": [True, 2, 3]}, "ink"),
             ({"text": "ab", "paper": None}, "paper"),
             ({"text": "ab", "paper": "not-a-colour"}, "paper"),
             ({"text": "ab", "page": ["a4"]}, "page"),
             ({"text": "ab", "dpi": None}, "dpi"),
             ({"text": "ab", "writer": 5}, "writer"),
             ({"text": "ab", "style": "x"}, "style"),
             ({"text": "ab", "style": [[1, 2], [3]]}, "style"),
             ({"text": "ab", "variation": "x", "style": [[0]]}, "variation")]
    for body, field in cases:
        err = error(server, WRITE, {**SMALL, **body}, 400)
        assert field in err, (body, err)


def test_deep_json_is_400(server):
    for raw in (b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        err = error(server, PREDICT, None, 400, raw=raw)
        assert "nested too deeply" in err or "JSON" in err
    deep = {"text": "ab", **SMALL, "style": json.loads("[" * 900 + "]" * 900)}
    err = error(server, WRITE, deep, 400)
    assert "style" in err or "nested" in err


def test_seed_out_of_range_is_refused(server):
    for seed in (2**63, -2**63 - 1, 18446744073709551616):
        err = error(server, WRITE, {"text": "ab", "seed": seed}, 400)
        assert "seed" in err
        err = error(server, PREDICT, {"inputs": {"chars": ["a"], "writers": [""],
                                                 "seed": seed}}, 400)
        assert "seed" in err


def _settled_log_length(server) -> int:
    """Lines in the server's log once it stops growing: a request's line is written after its
    answer is sent, so the previous test's last line may still be on its way."""
    n = -1
    for _ in range(100):
        m = len(server.app.log.getvalue().splitlines())
        if m == n:
            return m
        n = m
        time.sleep(0.1)
    return n


def test_client_reset_is_one_log_line(server, capfd):
    before = _settled_log_length(server)
    for partial in (b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"in",
                    b"GET /v1/mod"):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(partial)
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    time.sleep(0.5)
    lines = server.app.log.getvalue().splitlines()[before:]
    assert 1 <= len(lines) <= 2 and all("Traceback" not in x for x in lines), lines
    assert any("dropped" in x or "connection" in x or "ended early" in x for x in lines)
    assert "Traceback" not in capfd.readouterr().err
    status, _, _ = post(server, WRITE, {"text": "ab", **SMALL})
    assert status == 200  # still serving
