"""Hand files of `hwgan app`: a closer copy (an adapted model) saved as numbers only and brought
back in, and hand files that are not what they say refused.

A tiny style_cgan base (2 training steps, tests/hw_gan/app_models.py) is adapted by the app's
own job (a few steps) to glyphs standing in for uploaded sheets; the app's --model is a fake (no
model is needed for closer copies). The hand is saved to a file, deleted and brought back in:
it must write the same letter, pixel for pixel. Files with a wrong shape, an extra or missing
weight, a pickled object, bad JSON, another base, ... are refused with one line, and leave the
hands as they were."""

from __future__ import annotations

import http.client
import io
import json
import zipfile

import cv2
import numpy as np
import pytest

from hw_gan.app import studio as studio_lib
from hw_gan.app.store import hand_file_bytes
from tests.conftest import make_records
from tests.hw_gan.app_models import CHARS, multipart, serve_studio, style_cgan_base
from tests.hw_gan.test_app_server import FakeModel

LETTER = {"text": "bad cab\nace dab", "format": "png", "seed": 7, "page": "a5"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    real = studio_lib.load_export
    mp.setattr(studio_lib, "load_export", lambda path: FakeModel() if path == "fake"
               else real(path))
    root = tmp_path_factory.mktemp("hands")
    base = style_cgan_base(root)
    studio = studio_lib.Studio(studio_lib.StudioConfig(
        model="fake", data_dir=str(root / "data"), base=str(base), adapt_steps=4,
        adapt_finetune_steps=3))
    # The reviewed glyphs of uploaded sheets: three of each letter, with their geometry.
    mp.setattr(studio.sheets, "records", lambda writer: make_records(
        writers=(writer,), chars=CHARS, per=3, size=32, seed=4))
    port, stop = serve_studio(studio)
    yield {"studio": studio, "port": port, "root": root}
    stop()
    mp.undo()


def _call(app, method, path, body=b"", ctype="application/json"):
    headers = {"Host": f"127.0.0.1:{app['port']}", "Origin": f"http://127.0.0.1:{app['port']}"}
    if method == "POST":
        headers.update({"X-Hwgan-App": "1", "Content-Type": ctype,
                        "Content-Length": str(len(body))})
    conn = http.client.HTTPConnection("127.0.0.1", app["port"], timeout=120)
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def _write(app, hand_id) -> np.ndarray:
    status, _, png = _call(app, "POST", "/api/write",
                           json.dumps({**LETTER, "hand": hand_id}).encode())
    assert status == 200, png[:300]
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)


def _import(app, data: bytes):
    body, ctype = multipart([("my hand.hwhand", data)], "file")
    status, _, out = _call(app, "POST", "/api/hands/import", body, ctype)
    return status, json.loads(out)


def _hand_ids(app) -> list:
    return sorted(h["id"] for h in app["studio"].hands.list())


@pytest.fixture(scope="module")
def saved(app):
    """(the closer copy's hand file, the letter it wrote), the hand itself deleted after."""
    studio = app["studio"]
    status, _, body = _call(app, "POST", "/api/hands/make",
                            json.dumps({"method": "better", "name": "Grandpa"}).encode())
    assert status == 200, body
    studio.jobs.wait(600)
    job = studio.jobs.latest()
    assert job["status"] == "done", job
    hand = job["hand"]
    assert hand["base"] == studio.base_info() and hand["finetuned"]
    letter = _write(app, hand["id"])
    assert (letter < 128).any()  # ink on the page
    status, headers, data = _call(app, "GET", f"/api/hands/{hand['id']}/export")
    assert status == 200 and headers["content-type"] == "application/zip"
    status, _, _ = _call(app, "POST", f"/api/hands/{hand['id']}/delete", b"{}")
    assert status == 200 and hand["id"] not in _hand_ids(app)
    return data, letter, hand


def test_a_closer_copy_comes_back_from_its_file_pixel_for_pixel(app, saved):
    data, letter, hand = saved
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == ["hand.json", "weights.npz"]  # numbers, no SavedModel
        head = json.loads(z.read("hand.json"))
        with np.load(io.BytesIO(z.read("weights.npz")), allow_pickle=False) as w:
            assert all(w[k].dtype == np.float32 for k in w.files)
            assert "writer_embedding/embeddings" in w.files
    assert head["kind"] == "adapted" and head["name"] == "Grandpa"
    assert head["base"] == app["studio"].base_info()
    assert set(head["writer_geometry"]) == set(CHARS)  # the sheets' geometry travels too
    status, out = _import(app, data)
    assert status == 200, out
    back = out["hand"]
    assert back["kind"] == "adapted" and back["name"] == "Grandpa" and back["imported"]
    assert back["glyphs"] == hand["glyphs"] and back["finetuned"]
    again = _write(app, back["id"])
    assert again.shape == letter.shape
    np.testing.assert_array_equal(again, letter)
    # Saved again, the file is the same.
    status, _, data2 = _call(app, "GET", f"/api/hands/{back['id']}/export")
    with zipfile.ZipFile(io.BytesIO(data)) as a, zipfile.ZipFile(io.BytesIO(data2)) as b:
        assert a.read("weights.npz") == b.read("weights.npz")


class _Payload:
    """Unpickling this would create the file `path` (a stand-in for any code a pickle runs)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tampered(data: bytes, hand=None, weights=None, files=None) -> bytes:
    """The hand file `data` with hand.json updated by `hand` (a dict, or raw bytes), its weights
    changed by `weights(dict)`, or its files replaced by `files`."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    if isinstance(hand, bytes):
        parts["hand.json"] = hand
    elif hand is not None:
        parts["hand.json"] = json.dumps({**json.loads(parts["hand.json"]), **hand}).encode()
    if weights is not None:
        with np.load(io.BytesIO(parts["weights.npz"]), allow_pickle=False) as w:
            arrays = {k: w[k] for k in w.files}
        weights(arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        parts["weights.npz"] = buf.getvalue()
    if files is not None:
        parts = files
    return hand_file_bytes(parts)


def test_hand_files_that_are_not_what_they_say_are_refused(app, saved, tmp_path):
    data = saved[0]
    pwned = tmp_path / "pickle-ran"
    bad_geometry = {"writer_geometry": {"a": [-0.2, 1.0]}}
    cases = [
        ("wrong shape", _tampered(data, weights=lambda w: w.update(
            {"g_dense/bias": np.zeros(511, np.float32)})), "g_dense/bias", "shape"),
        ("extra key", _tampered(data, weights=lambda w: w.update(
            {"evil": np.zeros(3, np.float32)})), "'evil.npy'", "does not have"),
        ("missing key", _tampered(data, weights=lambda w: w.pop("g_out_conv/bias")),
         "lacks 'g_out_conv/bias'", "weights.npz"),
        ("pickle object", _tampered(data, weights=lambda w: w.update(
            {"g_dense/bias": np.array([_Payload(pwned)], dtype=object)})),
         "g_dense/bias", "pickle"),
        ("float64", _tampered(data, weights=lambda w: w.update(
            {"g_dense/bias": w["g_dense/bias"].astype(np.float64)})), "float64", "float32"),
        ("not finite", _tampered(data, weights=lambda w: w["g_dense/bias"].__setitem__(
            0, np.nan)), "g_dense/bias", "not finite"),
        ("bad JSON", _tampered(data, hand=b'{"kind": "adapted", '), "hand.json",
         "not valid JSON"),
        ("wrong base", _tampered(data, hand={"base": {"name": "someone-elses-base",
                                                      "identity": "0123456789abcdef"}}),
         "'someone-elses-base'", "--base someone-elses-base to bring it in"),
        ("no base", _tampered(data, hand={"base": None}), "hand.json: base", "identity"),
        ("geometry", _tampered(data, hand=bad_geometry), "writer_geometry 'a'", "[top, bottom]"),
        ("unknown field", _tampered(data, hand={"script": "rm -rf /"}), "unknown field",
         "'script'"),
        ("kind", _tampered(data, hand={"kind": "style"}), "kind must be 'adapted'",
         "weights.npz"),
        ("a SavedModel", _tampered(data, files={"hand.json": b"{}", "export/hand/1/"
                                                "saved_model.pb": b"\x08\x01"}),
         "not a hand file from this page", "nothing else"),
        ("not a zip", b"PK\x03\x04 this is not really a zip", "not a hand file", "zip"),
        ("truncated weights", _tampered(data, files={
            "hand.json": zipfile.ZipFile(io.BytesIO(data)).read("hand.json"),
            "weights.npz": zipfile.ZipFile(io.BytesIO(data)).read("weights.npz")[:5000]}),
         "weights.npz", "not an .npz"),
    ]
    before = _hand_ids(app)
    for what, file, *words in cases:
        status, out = _import(app, file)
        message = out.get("error", "")
        assert status == 400, (what, status, out)
        assert all(w in message for w in words) and "\n" not in message, (what, message)
    assert not pwned.exists()  # the pickled object was never loaded
    assert _hand_ids(app) == before
    assert not any(p.name.startswith(".") for p in (app["studio"].hands.root).iterdir())
