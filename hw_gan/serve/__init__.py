"""`hwgan serve`: an exported generator behind TF Serving's REST API, plus a `:write` endpoint.

  hwgan serve --model export/quickstart [--host 127.0.0.1] [--port 8501] [--model_name NAME]
              [--max_body_bytes 1048576] [--max_text_chars 5000] [--max_concurrent 4]

Endpoints (NAME: the export's directory name, e.g. "quickstart"; V: its served version, the
highest numeric version directory, or the one given):

  GET  /v1/models/NAME                      model status, as TF Serving
  GET  /v1/models/NAME/versions/V           the same, for version V
  GET  /v1/models/NAME[/versions/V]/metadata   signature defs (TF Serving's GetModelMetadata JSON)
  POST /v1/models/NAME[/versions/V]:predict    TF Serving's predict: row format
       {"signature_name": "glyphs",
        "instances": [{"chars": "a", "writers": "sim-003", "seed": 0}, ...]}
       -> {"predictions": [{"images": ..., "char_ids": ..., "writer_ids": ...}, ...]}
       or columnar format
       {"signature_name": "glyphs",
        "inputs": {"chars": ["a", "b"], "writers": ["sim-003"], "seed": 0}}
       -> {"outputs": {"images": [N][R][R][1], "char_ids": [N], "writer_ids": [N]}}
       signature_name defaults to "serving_default". Inputs are converted to the signature's
       TensorSpec dtypes; strings may be {"b64": "..."}. As in TF Serving, a signature with one
       output answers that output alone (not a dict). In the row format an input whose spec is a
       scalar (the glyphs' `seed`) must be the same in every instance and is passed once (real TF
       Serving cannot batch a scalar input: with it, use the columnar format).
  POST /v1/models/NAME[/versions/V]:write      text in a writer's hand:
       {"text": "...", "writer": "sim-003", "seed": 0, "format": "png"|"pdf"|"svg", "page": "a4",
        "dpi": 150, "missing": "error"|"skip"|"box"|"nearest",
        optional "x_height_mm", "margin_mm", "slant", "ink", "paper";
        stylegan exports: "style" (the [layers][w_dim] matrix of a style file's "ws", e.g. from
        the extract_style signature) instead of "writer", and "variation" (default 0.12)}
       -> the PNG / PDF / SVG bytes (Content-Type image/png, application/pdf, image/svg+xml;
       headers X-Hwgan-Pages, X-Hwgan-Glyphs). PNG and SVG are one page: a text that needs more
       pages is refused with 400 asking for "pdf" (or a bigger page / smaller x_height_mm).
       Pages are rendered in memory; the server writes no files.

Errors are JSON {"error": "..."}: 400 bad JSON / bad input / unknown writer (named) / unsupported
characters (listed) / unknown signature, 404 unknown model, version or path, 405 wrong method,
411 no Content-Length, 413 body over --max_body_bytes or text over --max_text_chars, 503 when
--max_concurrent predict/write requests are already running (GETs are not limited), 500 others.
One line per request is logged to stderr. Binds 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import math
import os
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

import numpy as np

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TEXT_CHARS = 5000
DEFAULT_MAX_CONCURRENT = 4
MAX_PAGE_PIXELS = 40_000_000  # one page raster (A4 at 600 dpi is 35 M pixels)
MAX_X_HEIGHT_PX = 600  # a glyph is resized to a few x-heights: bounds its raster
WRITE_FORMATS = {"png": "image/png", "pdf": "application/pdf", "svg": "image/svg+xml"}
DRAIN_LIMIT = 16 << 20  # bytes of a refused body read (and dropped) before answering
REQUEST_TIMEOUT_S = 60  # socket timeout of a connection (a stalled client frees its thread)

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                   r"(?:(?P<meta>/metadata)|:(?P<verb>[A-Za-z]+))?/?$")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.headers = headers or {}


def _bad(message: str) -> HttpError:
    return HttpError(400, message)


# ------------------------------------------------------------------------------------------------
# The served model.


def _dtype_name(dtype) -> str:
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(dtype.as_datatype_enum)


def _shape_json(shape) -> dict:
    if shape.rank is None:
        return {"dim": [], "unknown_rank": True}
    return {"dim": [{"size": str(-1 if d is None else int(d)), "name": ""}
                    for d in shape.as_list()],
            "unknown_rank": False}


class ServedModel:
    """The loaded export, its name and version, and what each signature takes and gives."""

    def __init__(self, model_path, model_name: Optional[str] = None, warmup: bool = True):
        from hw_gan.export import load_export

        self.model = load_export(model_path)
        path = Path(self.model.path).resolve()
        if path.name.isdigit():
            self.version = str(int(path.name))
            default_name = path.parent.name
        else:
            self.version = "1"
            default_name = path.name
        self.name = model_name or default_name
        self.signatures = dict(self.model.signatures)
        self.inputs: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        for sig, fn in self.signatures.items():
            args, kwargs = fn.structured_input_signature
            self.inputs[sig] = dict(kwargs)
            self.outputs[sig] = {k: v for k, v in fn.structured_outputs.items()}
        if warmup and self.model.charset:
            self.model.glyphs([self.model.charset[0][0]],
                              [self.model.writers[0]] if self.model.writers else [""], 0)

    def status_json(self) -> dict:
        return {"model_version_status": [{
            "version": self.version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata_json(self) -> dict:
        defs = {}
        for sig in sorted(self.signatures):
            defs[sig] = {
                "inputs": {k: {"dtype": _dtype_name(s.dtype), "tensor_shape": _shape_json(s.shape),
                               "name": f"{sig}_{k}:0"}
                           for k, s in sorted(self.inputs[sig].items())},
                "outputs": {k: {"dtype": _dtype_name(t.dtype), "tensor_shape": _shape_json(t.shape),
                                "name": f"StatefulPartitionedCall:{k}"}
                            for k, t in sorted(self.outputs[sig].items())},
                "method_name": "tensorflow/serving/predict",
                "defaults": {},
            }
        return {"model_spec": {"name": self.name, "signature_name": "", "version": self.version},
                "metadata": {"signature_def": {"signature_def": defs,
                                               "@type": "type.googleapis.com/"
                                                        "tensorflow.serving.SignatureDefMap"}}}


# ------------------------------------------------------------------------------------------------
# JSON <-> tensors.


def _to_bytes(value, where: str):
    if isinstance(value, list):
        return [_to_bytes(v, where) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"input {where!r}: invalid base64 in {{\"b64\": ...}}") from None
    raise _bad(f"input {where!r} takes strings, got {type(value).__name__} {value!r:.60}")


def _has_non_number(value) -> bool:
    if isinstance(value, list):
        return any(_has_non_number(v) for v in value)
    return not isinstance(value, (int, float)) or isinstance(value, bool)


def _to_tensor(value, spec, where: str):
    """A JSON value -> a tf.Tensor of spec's dtype, shape checked against spec's shape."""
    import tensorflow as tf

    try:
        if spec.dtype == tf.string:
            tensor = tf.constant(_to_bytes(value, where), tf.string)
        elif spec.dtype == tf.bool:
            arr = np.asarray(value)
            if arr.dtype != np.bool_:
                raise _bad(f"input {where!r} takes booleans (true/false), got {value!r:.60}")
            tensor = tf.constant(arr, tf.bool)
        else:
            np_dtype = spec.dtype.as_numpy_dtype
            if _has_non_number(value):
                raise _bad(f"input {where!r} takes numbers ({spec.dtype.name}), got "
                           f"{json.dumps(value)[:60]}")
            arr = np.asarray(value)
            if arr.dtype == object:
                raise _bad(f"input {where!r} is not a {spec.dtype.name} tensor: a ragged list "
                           "or a value out of range")
            if np.issubdtype(np_dtype, np.integer):
                if arr.dtype.kind == "f":
                    if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
                        raise _bad(f"input {where!r} takes integers ({spec.dtype.name}), got "
                                   f"{json.dumps(value)[:60]}")
                info = np.iinfo(np_dtype)
                if arr.size and (np.min(arr) < info.min or np.max(arr) > info.max):
                    raise _bad(f"input {where!r}: a value is out of the range of "
                               f"{spec.dtype.name}")
                arr = arr.astype(np_dtype)
            else:
                arr = arr.astype(np_dtype)
            tensor = tf.constant(arr, spec.dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise _bad(f"input {where!r} is not a {spec.dtype.name} tensor: {e}") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise _bad(f"input {where!r} has shape {tensor.shape.as_list()} but the signature takes "
                   f"{_shape_str(spec.shape)}")
    return tensor


def _shape_str(shape) -> str:
    if shape.rank is None:
        return "any shape"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape.as_list()) + "]"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "hwgan"


class _Raw:
    """JSON text spliced as it is by `_encode`."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _encode(obj) -> str:
    """json.dumps that splices `_Raw` text (the tensors, formatted by `_json_value`)."""
    if isinstance(obj, _Raw):
        return obj.text
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _encode(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in obj) + "]"
    return json.dumps(obj)


def _nested_text(items: list, shape: tuple) -> str:
    """Element texts in C order -> the JSON text of nested lists of `shape`."""
    for dim in reversed(shape[1:]):
        items = ["[" + ",".join(items[i:i + dim]) + "]" for i in range(0, len(items), dim)]
    return "[" + ",".join(items) + "]"


def _json_value(arr: np.ndarray):
    """A tensor as JSON: nested lists; strings as UTF-8 text, else {"b64": ...}. Integer and
    bool tensors are formatted straight to text (`tolist` of an [N, R, R, 1] image batch makes a
    one-element list per pixel, about 10x slower)."""
    if arr.dtype == object or arr.dtype.kind == "S":
        def conv(x):
            if isinstance(x, list):
                return [conv(v) for v in x]
            try:
                return x.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(x).decode("ascii")}
        return conv(arr.tolist())
    if arr.ndim == 0 or arr.size == 0:
        return arr.tolist()
    if arr.dtype.kind in "iu":
        return _Raw(_nested_text(list(map(str, arr.reshape(-1).tolist())), arr.shape))
    if arr.dtype.kind == "b":
        return _Raw(_nested_text(["true" if x else "false" for x in arr.reshape(-1).tolist()],
                                 arr.shape))
    return _Raw(json.dumps(arr.tolist()))  # floats (NaN / Infinity as Python's json writes them)


def _clean_tf_error(e: Exception) -> str:
    """The useful line of a TensorFlow error (the assertion text), without graph node noise."""
    text = str(getattr(e, "message", None) or e)
    m = re.search(r"assertion failed: (.*?)(?:\n\t \[\[|\n|$)", text, re.S)
    if m:  # "[message; got] [2] [for] [1]" -> "message; got 2 for 1"
        text = re.sub(r"\] \[", " ", m.group(1).strip())
        return text[1:-1] if text.startswith("[") and text.endswith("]") else text
    text = re.split(r"\n\t \[\[", text)[0]
    text = re.sub(r"^Graph execution error:\s*", "", text).strip()
    return text.splitlines()[-1] if text else type(e).__name__


# ------------------------------------------------------------------------------------------------
# Request handling (independent of HTTP, so it can be tested and reused).


class App:
    def __init__(self, served: ServedModel, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, log: Optional[TextIO] = None):
        if max_body_bytes < 1 or max_text_chars < 1 or max_concurrent < 1:
            raise ValueError("max_body_bytes, max_text_chars and max_concurrent must be >= 1")
        self.served = served
        self.max_body_bytes = int(max_body_bytes)
        self.max_text_chars = int(max_text_chars)
        self.max_concurrent = int(max_concurrent)
        # Held while a predict/write request runs; a request that finds none free gets 503.
        self.semaphore = threading.BoundedSemaphore(self.max_concurrent)
        self.log = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()

    def route(self, method: str, raw_path: str):
        """-> kind (status, metadata, predict or write), or raises HttpError (404, 405)."""
        path = raw_path.split("?", 1)[0]
        m = _PATH.match(path)
        if not m:
            raise HttpError(404, f"no such endpoint: {path}; see /v1/models/{self.served.name}")
        name, version = m.group("name"), m.group("version")
        if name != self.served.name:
            raise HttpError(404, f"Servable not found for request: Latest({name}); this server "
                                 f"serves model {self.served.name!r}")
        if version is not None and version != self.served.version:
            raise HttpError(404, f"Servable not found for request: Specific({name}, {version}); "
                                 f"served version: {self.served.version}")
        if m.group("meta"):
            kind, allowed = "metadata", "GET"
        elif m.group("verb"):
            kind, allowed = m.group("verb"), "POST"
            if kind not in ("predict", "write"):
                raise HttpError(404, f"unknown verb :{kind}; this server answers :predict and "
                                     ":write (not :classify / :regress)")
        else:
            kind, allowed = "status", "GET"
        if method != allowed:
            raise HttpError(405, f"{method} is not allowed on {path}: use {allowed}",
                            {"Allow": allowed})
        return kind

    # -- predict ---------------------------------------------------------------------------------

    def _signature(self, body: dict) -> str:
        sig = body.get("signature_name", "serving_default")
        if sig in (None, ""):
            sig = "serving_default"
        if not isinstance(sig, str) or sig not in self.served.signatures:
            raise _bad(f"Serving signature name: {sig!r} not found in signature def; the model "
                       f"has {sorted(self.served.signatures)}")
        return sig

    def predict(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object with \"instances\" or \"inputs\"")
        sig = self._signature(body)
        specs = self.served.inputs[sig]
        has_inst, has_inputs = "instances" in body, "inputs" in body
        if has_inst == has_inputs:
            raise _bad("give exactly one of \"instances\" (row format) or \"inputs\" "
                       "(columnar format)")
        if has_inst:
            tensors, n = self._row_inputs(body["instances"], specs, sig)
        else:
            tensors, n = self._columnar_inputs(body["inputs"], specs, sig)
        self._check_glyph_names(sig, tensors)
        outputs = self._run(sig, tensors)
        if has_inputs:
            if len(outputs) == 1:
                return {"outputs": _json_value(next(iter(outputs.values())))}
            return {"outputs": {k: _json_value(v) for k, v in sorted(outputs.items())}}
        for k, v in outputs.items():
            if v.ndim == 0 or v.shape[0] != n:
                raise _bad(f"output {k!r} of signature {sig!r} has shape {list(v.shape)}, not "
                           f"one row per instance ({n}): use the columnar \"inputs\" format")
        if len(outputs) == 1:
            return {"predictions": _json_value(next(iter(outputs.values())))}
        names = sorted(outputs)
        return {"predictions": [{k: _json_value(outputs[k][i]) for k in names}
                                for i in range(n)]}

    def _row_inputs(self, instances, specs: dict, sig: str):
        if not isinstance(instances, list) or not instances:
            raise _bad("\"instances\" must be a non-empty list")
        n = len(instances)
        if not specs:
            raise _bad(f"signature {sig!r} takes no inputs: send {{\"signature_name\": "
                       f"\"{sig}\", \"inputs\": {{}}}}")
        if all(isinstance(x, dict) and "b64" not in x for x in instances):
            columns = {}
            for i, inst in enumerate(instances):
                if set(inst) != set(specs):
                    raise _bad(f"instance {i} has inputs {sorted(inst)}; signature {sig!r} "
                               f"takes {sorted(specs)}")
                for k, v in inst.items():
                    columns.setdefault(k, []).append(v)
        elif len(specs) == 1:
            columns = {next(iter(specs)): list(instances)}
        else:
            raise _bad(f"signature {sig!r} takes several inputs {sorted(specs)}: each instance "
                       "must be an object naming them")
        tensors = {}
        for k, spec in specs.items():
            values = columns[k]
            if spec.shape.rank == 0:
                first = json.dumps(values[0], sort_keys=True)
                if any(json.dumps(v, sort_keys=True) != first for v in values[1:]):
                    raise _bad(f"input {k!r} is a scalar of the signature: it must be the same "
                               "in every instance (or use the columnar \"inputs\" format)")
                values = values[0]
            tensors[k] = _to_tensor(values, spec, k)
        return tensors, n

    def _columnar_inputs(self, inputs, specs: dict, sig: str):
        if len(specs) == 1:
            (only,) = specs
            if not (isinstance(inputs, dict) and set(inputs) == {only}):
                inputs = {only: inputs}  # TF Serving: a lone input may be given bare
        if not isinstance(inputs, dict):
            raise _bad(f"\"inputs\" must be an object naming the inputs {sorted(specs)} of "
                       f"signature {sig!r}")
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise _bad(f"signature {sig!r} takes inputs {sorted(specs)}"
                       + (f"; missing {missing}" if missing else "")
                       + (f"; unknown {extra}" if extra else ""))
        return {k: _to_tensor(inputs[k], spec, k) for k, spec in specs.items()}, None

    def _check_glyph_names(self, sig: str, tensors: dict) -> None:
        """Clear 400s for the glyphs signatures: unknown characters listed, writers named."""
        fn_inputs = self.served.inputs[sig]
        if not {"chars", "writers"} <= set(fn_inputs):
            return
        model = self.served.model
        try:
            chars = [c.decode("utf-8") for c in np.reshape(tensors["chars"].numpy(), -1)]
            writers = [w.decode("utf-8") for w in np.reshape(tensors["writers"].numpy(), -1)]
        except UnicodeDecodeError:
            raise _bad("chars and writers must be UTF-8 text") from None
        bad = model.unknown_chars(chars)
        if bad:
            raise _bad(f"unsupported characters (not in the model's charset): {bad}")
        bad = model.unknown_writers(writers)
        if bad:
            raise _bad(f"unknown writer(s) {bad}; known writers: {list(model.writers[:20])}"
                       + (" ..." if len(model.writers) > 20 else ""))
        bad = model.untrained_of(writers)
        if bad:
            raise _bad(f"writer(s) {bad} were held out when this model was trained (their "
                       f"style was never learned); writers it learned: "
                       f"{list(model.trained_writers()[:20])}")

    def _run(self, sig: str, tensors: dict) -> dict:
        import tensorflow as tf

        try:
            out = self.served.signatures[sig](**tensors)
        except tf.errors.InvalidArgumentError as e:
            raise _bad(_clean_tf_error(e)) from None
        return {k: np.asarray(v.numpy()) for k, v in out.items()}

    # -- write -----------------------------------------------------------------------------------

    def write(self, body: Any) -> tuple[bytes, str, dict]:
        from hw_gan.render import render_pages
        from hw_gan.layout import MISSING_MODES, page_params, plan_text
        from hw_gan.render import output

        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object with \"text\"")
        known = {"text", "writer", "seed", "format", "page", "dpi", "missing", "x_height_mm",
                 "margin_mm", "slant", "ink", "paper", "style", "variation"}
        extra = sorted(set(body) - known)
        if extra:
            raise _bad(f"unknown field(s) {extra}; :write takes {sorted(known)}")
        text = body.get("text")
        if not isinstance(text, str):
            raise _bad("\"text\" (a string) is required")
        if len(text) > self.max_text_chars:
            raise HttpError(413, f"text has {len(text)} characters; this server writes at most "
                                 f"{self.max_text_chars} a request")
        if not text.strip():
            raise _bad("the text is empty: nothing to write")
        fmt = body.get("format", "png")
        if fmt not in WRITE_FORMATS:
            raise _bad(f"format must be one of {sorted(WRITE_FORMATS)}, got {fmt!r}")
        missing = body.get("missing", "error")
        if missing not in MISSING_MODES:
            raise _bad(f"missing must be one of {list(MISSING_MODES)}, got {missing!r}")
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**63:
            raise _bad(f"seed must be an integer (int64), got {seed!r}")
        writer = body.get("writer")
        if writer is not None and not isinstance(writer, str):
            raise _bad(f"writer must be a string, got {writer!r}")
        num = {}
        for key, default in (("dpi", 150.0), ("x_height_mm", 3.0), ("margin_mm", 20.0),
                             ("slant", 0.0)):
            v = body.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _bad(f"{key} must be a number, got {v!r}")
            num[key] = float(v)
        page = body.get("page", "a4")
        if not isinstance(page, str):
            raise _bad(f"page must be a string (\"a4\", \"letter\", \"148x210mm\", ...), got "
                       f"{page!r}")
        try:
            ink = output.parse_color(body.get("ink", "#1a1a40"))
            paper = output.parse_color(body.get("paper", "#ffffff"))
            if not 0.3 <= num["x_height_mm"] <= 100:
                raise ValueError(f"x_height_mm must be in [0.3, 100], got {num['x_height_mm']}")
            if not -1 <= num["slant"] <= 1:
                raise ValueError(f"slant must be in [-1, 1], got {num['slant']}")
            if not 0 <= num["margin_mm"] <= 200:
                raise ValueError(f"margin_mm must be in [0, 200], got {num['margin_mm']}")
            params = page_params(page, num["dpi"], num["x_height_mm"], num["margin_mm"],
                                 slant=num["slant"])
            if params.x_height_px > MAX_X_HEIGHT_PX:
                raise ValueError(f"an x-height of {params.x_height_px:.0f} pixels is over this "
                                 f"server's {MAX_X_HEIGHT_PX} (lower x_height_mm or dpi)")
            if params.page_width_px * params.page_height_px > MAX_PAGE_PIXELS:
                raise ValueError(f"a page of {params.page_width_px}x{params.page_height_px} "
                                 f"pixels is over this server's {MAX_PAGE_PIXELS} (lower dpi or "
                                 "a smaller page)")
            model = self.served.model
            if "style" in body:
                from hw_gan.render import apply_style

                style = body["style"]
                if _has_non_number(style):
                    raise ValueError("style must be a matrix of numbers ([layers][w_dim])")
                variation = body.get("variation", 0.12)
                if isinstance(variation, bool) or not isinstance(variation, (int, float)):
                    raise ValueError(f"variation must be a number, got {variation!r}")
                model = apply_style(model, np.asarray(style, np.float32), float(variation))
            plan = plan_text(text, model.charset, missing)
            pages = render_pages(model, text, writer=writer, seed=seed, params=params, plan=plan)
            data, n_pages = self._render(pages, fmt, num["dpi"], ink, paper)
        except (ValueError, TypeError) as e:
            raise _bad(str(e)) from None
        headers = {"X-Hwgan-Pages": str(n_pages), "X-Hwgan-Glyphs": str(len(plan.requests)),
                   "Content-Disposition":
                       f'inline; filename="{_safe_name(self.served.name)}.{fmt}"'}
        if plan.missing:
            headers["X-Hwgan-Missing"] = json.dumps(list(plan.missing))
        return data, WRITE_FORMATS[fmt], headers

    @staticmethod
    def _render(pages, fmt: str, dpi: float, ink, paper) -> tuple[bytes, int]:
        """Pages -> bytes in memory (no files): PDF all pages, PNG/SVG the only page."""
        from hw_gan.render import output

        cache = output.OutlineCache()
        if fmt == "pdf":
            buf = io.BytesIO()
            writer = output.PdfWriter(buf)
            s = 72.0 / dpi
            n = 0
            for page, crops in pages:
                outlines = output.page_outlines(page, crops, cache)
                writer.add_page(page.width * s, page.height * s,
                                output.pdf_content(page, outlines, dpi, ink, paper))
                n += 1
                if len(page.glyph_indices):
                    cache.release_before(page.glyph_indices.stop)
            if n == 0:
                raise ValueError("no pages to write")
            writer.close()
            return buf.getvalue(), n
        data, n = None, 0
        for page, crops in pages:
            n += 1
            if n > 1:
                raise ValueError(f"the text needs more than one page: {fmt} is one page; ask for "
                                 "format \"pdf\" (all pages), or a bigger page / smaller "
                                 "x_height_mm")
            if fmt == "png":
                data = output.png_bytes(output.rasterize(page, crops), ink, paper, dpi)
            else:
                data = output.svg_document(page, output.page_outlines(page, crops, cache), dpi,
                                           ink, paper)
        if data is None:
            raise ValueError("no pages to write")
        return data, n

    def log_line(self, line: str) -> None:
        with self._log_lock:
            try:
                self.log.write(line + "\n")
                self.log.flush()
            except (OSError, ValueError):
                pass


# ------------------------------------------------------------------------------------------------
# HTTP.


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hwgan-serve"
    timeout = REQUEST_TIMEOUT_S

    @property
    def app(self) -> App:
        return self.server.app  # type: ignore[attr-defined]

    def log_request(self, code="-", size="-") -> None:  # one line per request is logged by _handle
        pass

    def log_message(self, format, *args) -> None:  # protocol errors (bad request line, ...)
        self.app.log_line(f"{self.address_string()} {format % args}")

    def _send(self, status: int, body: bytes, content_type: str,
              headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status, self._size = status, len(body)

    def _send_json(self, status: int, obj: Any, headers: Optional[dict] = None) -> None:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=True).encode("utf-8")
        self._send(status, body, "application/json", headers)

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own errors (bad request line, header too long, ...) as JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        body = json.dumps({"error": message or phrase}).encode("utf-8")
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _drain(self, n: int) -> None:
        """Reads and drops up to DRAIN_LIMIT bytes of an unwanted body."""
        left = min(n, DRAIN_LIMIT)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _read_json(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "chunked bodies are not accepted: send a Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise HttpError(411, "a POST needs a Content-Length")
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise _bad(f"bad Content-Length {length!r}") from None
        if n > self.app.max_body_bytes:
            # Read (a bounded amount of) the body first, so that the client sees the 413 and not a
            # connection reset; the connection is closed after it.
            self._drain(n)
            self.close_connection = True
            raise HttpError(413, f"request body of {n} bytes is over this server's limit of "
                                 f"{self.app.max_body_bytes} (--max_body_bytes)")
        raw = self.rfile.read(n)
        if len(raw) != n:
            self.close_connection = True
            raise _bad("the request body ended early")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise _bad(f"the body is not valid JSON: {e}") from None

    def _handle(self) -> None:
        start = time.perf_counter()
        self._status, self._size = 0, 0
        try:
            kind = self.app.route(self.command, self.path)
            if kind == "status":
                self._send_json(200, self.app.served.status_json())
            elif kind == "metadata":
                self._send_json(200, self.app.served.metadata_json())
            else:
                body = self._read_json()
                if not self.app.semaphore.acquire(blocking=False):
                    raise HttpError(503, f"the server is busy: {self.app.max_concurrent} "
                                         "requests are running (--max_concurrent); retry later",
                                    {"Retry-After": "1"})
                try:  # the limit covers the work, not the sending of the answer
                    if kind == "predict":
                        reply = (_encode(self.app.predict(body)).encode("utf-8"),
                                 "application/json", {})
                    else:
                        reply = self.app.write(body)
                finally:
                    self.app.semaphore.release()
                self._send(200, *reply)
        except HttpError as e:
            if e.status in (404, 405) and self.headers.get("Content-Length") not in (None, "0"):
                try:  # an unread body would be taken for the next request
                    self._drain(int(self.headers.get("Content-Length")))
                except ValueError:
                    pass
                self.close_connection = True
            self._send_json(e.status, {"error": e.message}, e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a server answers 500 and keeps running
            self.close_connection = True
            try:
                self._send_json(500, {"error": f"internal error: {type(e).__name__}: {e}"})
            except OSError:
                pass
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.app.log_line(f"{self.client_address[0]} {self.command} "
                              f"{self.path[:200]!s} {self._status} {self._size}B {ms:.1f}ms")

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_HEAD = _handle
    do_OPTIONS = _handle


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, app: App):
        self.app = app
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


class _ModelHTTPServerV6(ModelHTTPServer):
    address_family = socket.AF_INET6


def make_server(model_path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                model_name: Optional[str] = None,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                max_concurrent: int = DEFAULT_MAX_CONCURRENT,
                log: Optional[TextIO] = None, warmup: bool = True) -> ModelHTTPServer:
    """Loads the export and binds (host, port) (port 0: any free port; see `.port`, `.url`).
    Run it with `serve_forever()` (e.g. in a thread); stop with `shutdown()` then
    `server_close()`. `.app.semaphore` is the concurrency limit."""
    served = ServedModel(model_path, model_name=model_name, warmup=warmup)
    app = App(served, max_body_bytes, max_text_chars, max_concurrent, log)
    if ":" in host:
        return _ModelHTTPServerV6((host, port), app)
    return ModelHTTPServer((host, port), app)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwgan serve", description="Serve an exported model over "
                                "TF Serving's REST API (/v1/models/NAME:predict, metadata, "
                                "status) plus :write (text -> PNG/PDF/SVG).")
    p.add_argument("--model", required=True, help="export directory (NAME or NAME/VERSION)")
    p.add_argument("--model_name", "--model-name", dest="model_name",
                   help="name in the URLs (default: the export's directory name)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1; "
                   "0.0.0.0 exposes the server to the network: there is no authentication)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 8501 (TF Serving's "
                   "REST port); 0 picks a free one")
    p.add_argument("--max_body_bytes", "--max-body-bytes", dest="max_body_bytes", type=int,
                   default=DEFAULT_MAX_BODY_BYTES, help="larger request bodies get 413")
    p.add_argument("--max_text_chars", "--max-text-chars", dest="max_text_chars", type=int,
                   default=DEFAULT_MAX_TEXT_CHARS, help="longer :write texts get 413")
    p.add_argument("--max_concurrent", "--max-concurrent", dest="max_concurrent", type=int,
                   default=DEFAULT_MAX_CONCURRENT, help="predict/write requests run at once; "
                   "more get 503")
    return p


def serve_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        server = make_server(args.model, args.host, args.port, model_name=args.model_name,
                             max_body_bytes=args.max_body_bytes,
                             max_text_chars=args.max_text_chars,
                             max_concurrent=args.max_concurrent)
    except (ValueError, FileNotFoundError, NotADirectoryError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    served = server.app.served
    print(f"serving model {served.name!r} version {served.version} ({served.model.path}) at "
          f"{server.url}/v1/models/{served.name}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
