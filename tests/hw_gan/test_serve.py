"""hw_gan.serve: TF Serving's REST API and :write, checked with a real HTTP client (urllib /
http.client) against a server on 127.0.0.1 (ephemeral port) serving a tiny untrained style_cgan
export built here."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from hw_gan import export
from hw_gan.serve import DEFAULT_MAX_GLYPHS, DEFAULT_MAX_PIXELS
from tests.conftest import tiny_export
from tests.hw_gan.serve_export import running_server

CHARSET = tuple("abdegpxyTH1.,-'") + ("Oo",)
WRITERS = ("w0", "w1", "held")  # "held": a writer the model has a row for but never trained
RES = 32
NAME = "tiny"
MAX_BODY = 64 * 1024
MAX_TEXT = 300
MAX_CONCURRENT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_export")
    tiny_export(root, NAME, CHARSET, WRITERS, resolution=RES,
                extra_metadata={"untrained_writers": ["held"]})
    with running_server(root / NAME, max_body_bytes=MAX_BODY, max_text_chars=MAX_TEXT,
                        max_concurrent=MAX_CONCURRENT, max_glyphs=DEFAULT_MAX_GLYPHS,
                        max_pixels=DEFAULT_MAX_PIXELS) as srv:
        yield srv


def request(srv, method, path, body=None, raw=None, timeout=30):
    """-> (status, headers, bytes) for any status."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(srv.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def call(srv, method, path, body=None, raw=None, expect=200):
    status, headers, data = request(srv, method, path, body, raw)
    assert status == expect, data[:500]
    assert headers["Content-Type"] == "application/json"
    return json.loads(data)


def predict(srv, body, expect=200, path=f"/v1/models/{NAME}:predict"):
    return call(srv, "POST", path, body, expect=expect)


# ------------------------------------------------------------------------------------------------
# TF Serving API.


def test_status_and_version(server):
    want = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}
    assert call(server, "GET", f"/v1/models/{NAME}") == want
    assert call(server, "GET", f"/v1/models/{NAME}/versions/1") == want
    assert "error" in call(server, "GET", f"/v1/models/{NAME}/versions/2", expect=404)


def test_metadata(server):
    meta = call(server, "GET", f"/v1/models/{NAME}/metadata")
    assert meta["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == set(export.BUILTIN_SIGNATURES)
    glyphs = defs["glyphs"]
    assert glyphs["inputs"]["chars"]["dtype"] == "DT_STRING"
    assert glyphs["inputs"]["seed"]["dtype"] == "DT_INT64"
    assert glyphs["inputs"]["seed"]["tensor_shape"]["dim"] == []
    assert glyphs["outputs"]["images"]["dtype"] == "DT_UINT8"
    assert [d["size"] for d in glyphs["outputs"]["images"]["tensor_shape"]["dim"]] == \
        ["-1", str(RES), str(RES), "1"]
    strip = lambda io: {k: (v["dtype"], v["tensor_shape"]) for k, v in io.items()}  # noqa: E731
    assert strip(defs["serving_default"]["inputs"]) == strip(glyphs["inputs"])
    assert call(server, "GET", f"/v1/models/{NAME}/versions/1/metadata") == meta


def test_predict_columnar_and_row(server):
    chars = ["a", "b", "T", "Oo", "o"]
    col = predict(server, {"signature_name": "glyphs",
                           "inputs": {"chars": chars, "writers": ["w1"], "seed": 7}})
    out = col["outputs"]
    images = np.array(out["images"])
    assert images.shape == (len(chars), RES, RES, 1)
    assert images.min() >= 0 and images.max() <= 255 and images.dtype.kind == "i"
    assert out["char_ids"] == [0, 1, 8, 15, 15]
    assert out["writer_ids"] == [1] * len(chars)
    # Deterministic for a seed, different for another.
    again = predict(server, {"inputs": {"chars": chars, "writers": ["w1"], "seed": 7}})
    assert again == col  # serving_default is glyphs
    other = predict(server, {"inputs": {"chars": chars, "writers": ["w1"], "seed": 8}})
    assert not np.array_equal(np.array(other["outputs"]["images"]), images)
    # Row format: one prediction per instance, the same glyphs.
    row = predict(server, {"signature_name": "glyphs", "instances": [
        {"chars": c, "writers": "w1", "seed": 7} for c in chars]})
    preds = row["predictions"]
    assert len(preds) == len(chars)
    assert set(preds[0]) == {"images", "char_ids", "writer_ids"}
    assert np.array_equal(np.array([p["images"] for p in preds]), images)
    assert [p["char_ids"] for p in preds] == out["char_ids"]
    # Versioned URL.
    assert predict(server, {"inputs": {"chars": chars, "writers": ["w1"], "seed": 7}},
                   path=f"/v1/models/{NAME}/versions/1:predict") == col


def test_predict_glyphs_by_id_and_metadata(server):
    by_id = predict(server, {"signature_name": "glyphs_by_id",
                             "inputs": {"char_ids": [0, 1], "writer_ids": [1], "seed": 5}})
    images = np.array(by_id["outputs"])  # one output: given bare, as TF Serving does
    assert images.shape == (2, RES, RES, 1)
    glyphs = predict(server, {"inputs": {"chars": ["a", "b"], "writers": ["w1"], "seed": 5}})
    assert np.array_equal(images, np.array(glyphs["outputs"]["images"]))
    bad = predict(server, {"signature_name": "glyphs_by_id",
                           "inputs": {"char_ids": [99], "writer_ids": [0], "seed": 0}}, 400)
    assert "out of range" in bad["error"]
    meta = predict(server, {"signature_name": "metadata", "inputs": {}})["outputs"]
    assert meta["charset"] == list(CHARSET)
    assert meta["writers"] == list(WRITERS)
    assert meta["resolution"] == RES and meta["family"] == "style_cgan"
    assert meta["uses_writer"] is True


def test_predict_input_errors(server):
    err = predict(server, {"signature_name": "nope", "inputs": {}}, 400)["error"]
    assert "nope" in err and "glyphs" in err
    err = predict(server, {"inputs": {"chars": ["a", "\u00e9", "z"], "writers": ["w0"],
                                      "seed": 0}}, 400)["error"]
    assert "\u00e9" in err and "z" in err
    err = predict(server, {"inputs": {"chars": ["a"], "writers": ["mallory"], "seed": 0}},
                  400)["error"]
    assert "mallory" in err
    err = predict(server, {"inputs": {"chars": ["a", "b"], "writers": ["w0", "held"], "seed": 0}},
                  400)["error"]
    assert "['held']" in err and "held out" in err and "['w0', 'w1']" in err
    err = predict(server, {"inputs": {"chars": ["a"], "writers": ["w0"], "seed": 1.5}},
                  400)["error"]
    assert "seed" in err
    err = predict(server, {"inputs": {"chars": ["a"], "writers": ["w0"]}}, 400)["error"]
    assert "seed" in err
    err = predict(server, {"inputs": {"chars": [["a"]], "writers": ["w0"], "seed": 0}},
                  400)["error"]
    assert "shape" in err
    assert "error" in predict(server, {"instances": [{"chars": "a", "writers": "w0", "seed": 1},
                                                     {"chars": "b", "writers": "w0", "seed": 2}]},
                              400)
    assert "error" in predict(server, {"inputs": {}, "instances": []}, 400)


def test_bad_json_and_wrong_name(server):
    err = call(server, "POST", f"/v1/models/{NAME}:predict", raw=b"{not json", expect=400)
    assert "JSON" in err["error"]
    err = call(server, "POST", f"/v1/models/{NAME}:write", raw=b"[1, 2", expect=400)
    assert "JSON" in err["error"]
    assert "error" in call(server, "GET", "/v1/models/other", expect=404)
    assert "error" in call(server, "POST", "/v1/models/other:predict",
                           {"inputs": {"chars": ["a"], "writers": ["w0"], "seed": 0}},
                           expect=404)
    assert "error" in call(server, "GET", "/v2/whatever", expect=404)


def test_wrong_method(server):
    status, headers, _ = request(server, "GET", f"/v1/models/{NAME}:predict")
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = request(server, "POST", f"/v1/models/{NAME}", {})
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, _, body = request(server, "PUT", f"/v1/models/{NAME}:write", {"text": "a"})
    assert status == 405 and "error" in json.loads(body)
    status, _, _ = request(server, "DELETE", f"/v1/models/{NAME}")
    assert status == 405


# ------------------------------------------------------------------------------------------------
# :write.


def test_write_png_and_pdf(server):
    text = "abba gag. TH1-a'x, pod."
    status, headers, data = request(server, "POST", f"/v1/models/{NAME}:write",
                                    {"text": text, "writer": "w0", "seed": 3, "dpi": 60})
    assert status == 200 and headers["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG" and img.size == (round(210 / 25.4 * 60), round(297 / 25.4 * 60))
    assert headers["X-Hwgan-Pages"] == "1"
    again = request(server, "POST", f"/v1/models/{NAME}:write",
                    {"text": text, "writer": "w0", "seed": 3, "dpi": 60})[2]
    assert again == data
    status, headers, pdf = request(server, "POST", f"/v1/models/{NAME}:write",
                                   {"text": text, "writer": "w1", "format": "pdf",
                                    "page": "a5"})
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")


def test_write_errors(server):
    path = f"/v1/models/{NAME}:write"
    err = call(server, "POST", path, {"text": "abba", "writer": "mallory"}, expect=400)["error"]
    assert "mallory" in err
    err = call(server, "POST", path, {"text": "abba", "writer": "held"}, expect=400)["error"]
    assert "'held' was held out" in err and "w0, w1" in err and "held," not in err
    err = call(server, "POST", path, {"text": "ab\u00e9 z", "writer": "w0"}, expect=400)["error"]
    assert "\u00e9" in err and "z" in err
    err = call(server, "POST", path, {"text": "a" * (MAX_TEXT + 1), "writer": "w0"},
               expect=413)["error"]
    assert str(MAX_TEXT) in err
    err = call(server, "POST", path, {"text": "ab", "writer": "w0", "format": "gif"},
               expect=400)["error"]
    assert "format" in err
    err = call(server, "POST", path, {"text": "ab", "writer": "w0", "out": "/tmp/x.png"},
               expect=400)["error"]
    assert "out" in err
    assert "error" in call(server, "POST", path, {"text": "ab", "writer": "w0",
                                                  "page": "9000x9000mm", "dpi": 600},
                           expect=400)
    for bad in ({"x_height_mm": 5000}, {"dpi": 2400, "x_height_mm": 20, "page": "50x50mm"},
                {"slant": 9}, {"seed": "7"}, {"dpi": "high"}):
        assert "error" in call(server, "POST", path, {"text": "ab", "writer": "w0", **bad},
                               expect=400)
    # A PNG is one page: a longer text is refused, asking for PDF.
    long_text = " ".join(["abba gag pod"] * 20)
    err = call(server, "POST", path, {"text": long_text, "writer": "w0", "page": "30x30mm",
                                      "margin_mm": 2, "dpi": 60}, expect=400)["error"]
    assert "pdf" in err
    status, headers, pdf = request(server, "POST", path, {
        "text": long_text, "writer": "w0", "page": "30x30mm", "margin_mm": 2, "dpi": 60,
        "format": "pdf"})
    assert status == 200 and int(headers["X-Hwgan-Pages"]) > 1 and pdf.startswith(b"%PDF")


# ------------------------------------------------------------------------------------------------
# Limits.


def test_body_too_large(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = json.dumps({"text": "a" * (2 * MAX_BODY), "writer": "w0"}).encode()
        conn.request("POST", f"/v1/models/{NAME}:write", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 413
        assert str(MAX_BODY) in json.loads(resp.read())["error"]
    finally:
        conn.close()


def test_concurrency_limit(server):
    sem = server.app.semaphore
    held = 0
    try:
        for _ in range(MAX_CONCURRENT):
            assert sem.acquire(timeout=10)
            held += 1
        status, headers, body = request(server, "POST", f"/v1/models/{NAME}:predict",
                                        {"inputs": {"chars": ["a"], "writers": ["w0"],
                                                    "seed": 0}})
        assert status == 503 and headers["Retry-After"] == "1"
        assert "busy" in json.loads(body)["error"]
        status, _, _ = request(server, "POST", f"/v1/models/{NAME}:write",
                               {"text": "ab", "writer": "w0"})
        assert status == 503
        assert request(server, "GET", f"/v1/models/{NAME}")[0] == 200  # GETs are not limited
    finally:
        for _ in range(held):
            sem.release()
    assert predict(server, {"inputs": {"chars": ["a"], "writers": ["w0"], "seed": 0}})


def test_parallel_requests_and_log(server):
    time.sleep(0.2)  # lets the log line of the previous test's last request be written
    results = []

    def worker(seed):
        results.append(request(server, "POST", f"/v1/models/{NAME}:predict",
                               {"inputs": {"chars": ["a", "b"], "writers": ["w0"],
                                           "seed": seed}})[0])

    before = len(server.app.log.getvalue().splitlines())
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(MAX_CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == MAX_CONCURRENT and set(results) <= {200, 503}
    for _ in range(100):  # a line is logged just after its answer is sent
        lines = server.app.log.getvalue().splitlines()[before:]
        if len(lines) >= MAX_CONCURRENT:
            break
        time.sleep(0.05)
    assert len(lines) == MAX_CONCURRENT
    assert all(":predict" in line and ("200" in line or "503" in line) for line in lines)
