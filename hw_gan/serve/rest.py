"""TF Serving's REST API over an export: the served model (ServedModel: name, version, signature
specs, status and metadata JSON), the per-request budgets (Budget), JSON <-> tensor conversion,
and :predict in the row ("instances") and columnar ("inputs") formats. Independent of HTTP:
errors are HttpError.

A :predict request's cost is checked against the Budget before the signature runs: glyphs per
call (`chars` / `char_ids` / extract_style's `images`) and their N x R x R pixels, a write text's
characters and glyphs, extract_style's steps; a write image's pixels (known only after the
layout, which the signature checks against its own cap before drawing) before it is encoded."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from hw_gan.export import limits, load_export


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> HttpError:
    """A 400 with `message`."""
    return HttpError(400, message)


def over_budget(message: str) -> HttpError:
    """A 413: the request would cost more than this server's budget (the flag is named)."""
    return HttpError(413, message)


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one request may cost (the `hwgan serve` flags): characters of a text, glyphs drawn,
    pixels of what is returned (glyph images N x R x R, a write image, a :write page)."""

    max_text_chars: int = 5000
    max_glyphs: int = 5000
    max_pixels: int = 1 << 24

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{field.name} must be an integer >= 1, got {value!r}")

    def check_glyphs(self, n: int, resolution: int, what: str = "glyphs") -> None:
        if n > self.max_glyphs:
            raise over_budget(f"{n} {what} is over this server's limit of {self.max_glyphs} "
                              "glyphs a request (--max_glyphs)")
        self.check_pixels(n * resolution * resolution, f"{n} {what} of {resolution}x{resolution}")

    def check_pixels(self, pixels: int, what: str) -> None:
        if pixels > self.max_pixels:
            raise over_budget(f"{what} is {pixels} pixels, over this server's limit of "
                              f"{self.max_pixels} pixels a request (--max_pixels)")

    def check_text(self, text: str) -> None:
        n = len(text) + 3 * text.count("\t")
        if n > self.max_text_chars:
            raise over_budget(f"text has {n} characters (a tab counts 4); this server writes at "
                              f"most {self.max_text_chars} a request (--max_text_chars)")


# ------------------------------------------------------------------------------------------------
# The served model.


def _dtype_name(dtype) -> str:
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
            raise bad_request(f"input {where!r}: invalid base64 in {{\"b64\": ...}}") from None
    raise bad_request(f"input {where!r} takes strings, got {type(value).__name__} {value!r:.60}")


def has_non_number(value) -> bool:
    """Whether a JSON value (a number or nested lists of them) holds anything but numbers."""
    if isinstance(value, list):
        return any(has_non_number(v) for v in value)
    return not isinstance(value, (int, float)) or isinstance(value, bool)


def _number_array(value, spec, where: str) -> np.ndarray:
    """A JSON number or nested lists of them -> an array of spec's (numeric) dtype."""
    np_dtype = spec.dtype.as_numpy_dtype
    if has_non_number(value):
        raise bad_request(f"input {where!r} takes numbers ({spec.dtype.name}), got "
                          f"{json.dumps(value)[:60]}")
    arr = np.asarray(value)
    if arr.dtype == object:
        raise bad_request(f"input {where!r} is not a {spec.dtype.name} tensor: a ragged list "
                          "or a value out of range")
    if np.issubdtype(np_dtype, np.integer):
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
                raise bad_request(f"input {where!r} takes integers ({spec.dtype.name}), got "
                                  f"{json.dumps(value)[:60]}")
        info = np.iinfo(np_dtype)
        if arr.size and (np.min(arr) < info.min or np.max(arr) > info.max):
            raise bad_request(f"input {where!r}: a value is out of the range of "
                              f"{spec.dtype.name}")
        return arr.astype(np_dtype)
    with np.errstate(over="ignore"):
        out = arr.astype(np_dtype)
    if not np.all(np.isfinite(out)):
        raise bad_request(f"input {where!r} holds NaN or infinity (or a number too large for "
                          f"{spec.dtype.name}): give finite numbers")
    return out


def to_tensor(value, spec, where: str):
    """A JSON value -> a tf.Tensor of spec's dtype, shape checked against spec's shape."""
    try:
        if spec.dtype == tf.string:
            tensor = tf.constant(_to_bytes(value, where), tf.string)
        elif spec.dtype == tf.bool:
            arr = np.asarray(value)
            if arr.dtype != np.bool_:
                raise bad_request(f"input {where!r} takes booleans (true/false), got "
                                  f"{value!r:.60}")
            tensor = tf.constant(arr, tf.bool)
        else:
            tensor = tf.constant(_number_array(value, spec, where), spec.dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise bad_request(f"input {where!r} is not a {spec.dtype.name} tensor: {e}") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise bad_request(f"input {where!r} has shape {tensor.shape.as_list()} but the signature "
                          f"takes {_shape_str(spec.shape)}")
    return tensor


def _shape_str(shape) -> str:
    if shape.rank is None:
        return "any shape"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape.as_list()) + "]"


class RawJSON:
    """JSON text spliced as it is by `encode_json`."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def encode_json(obj) -> str:
    """json.dumps that splices `RawJSON` text (the tensors, formatted by `json_value`)."""
    if isinstance(obj, RawJSON):
        return obj.text
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + encode_json(v)
                              for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(encode_json(v) for v in obj) + "]"
    return json.dumps(obj)


def _nested_text(items: list, shape: tuple) -> str:
    """Element texts in C order -> the JSON text of nested lists of `shape`."""
    for dim in reversed(shape[1:]):
        items = ["[" + ",".join(items[i:i + dim]) + "]" for i in range(0, len(items), dim)]
    return "[" + ",".join(items) + "]"


def _strings_json(value):
    """Nested lists of bytes -> UTF-8 text where it decodes, else {"b64": ...}."""
    if isinstance(value, list):
        return [_strings_json(v) for v in value]
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


# "  0", " 17", "255": each uint8 as 3 bytes, right-aligned (JSON allows the spaces; they are
# dropped after the brackets and commas are in).
_UINT8_TEXT = np.frombuffer(b"".join(b"%3d" % v for v in range(256)), np.uint8).reshape(256, 3)


def _uint8_text(arr: np.ndarray) -> str:
    """The JSON text of a uint8 tensor (rank >= 1, not empty), built with NumPy in a few bytes
    per element (a Python str per pixel costs ~60 bytes: 1.9 GB for one big write image)."""
    text = _UINT8_TEXT[arr]  # [..., 3] bytes
    for _ in range(arr.ndim):  # innermost axis first: [..., n, w] -> [..., 1 + n * (w + 1)]
        *lead, n, w = text.shape
        sep = np.full((*lead, n, 1), ord(","), np.uint8)
        sep[..., 0, 0] = ord("[")
        text = np.concatenate([sep, text], axis=-1).reshape(*lead, n * (w + 1))
        text = np.concatenate([text, np.full((*lead, 1), ord("]"), np.uint8)], axis=-1)
    return text.tobytes().replace(b" ", b"").decode("ascii")


def json_value(arr: np.ndarray):
    """A tensor as JSON: nested lists; strings as UTF-8 text, else {"b64": ...}. Integer and
    bool tensors are formatted straight to text (`tolist` of an [N, R, R, 1] image batch makes a
    one-element list per pixel, about 10x slower); uint8 ones (images) with NumPy."""
    if arr.dtype == object or arr.dtype.kind == "S":
        return _strings_json(arr.tolist())
    if arr.ndim == 0 or arr.size == 0:
        return arr.tolist()
    if arr.dtype == np.uint8:
        return RawJSON(_uint8_text(arr))
    if arr.dtype.kind in "iu":
        return RawJSON(_nested_text(list(map(str, arr.reshape(-1).tolist())), arr.shape))
    if arr.dtype.kind == "b":
        return RawJSON(_nested_text(["true" if x else "false" for x in arr.reshape(-1).tolist()],
                                    arr.shape))
    return RawJSON(json.dumps(arr.tolist()))  # floats (NaN / Infinity as Python's json writes)


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
# :predict.


def predict(served: ServedModel, body: Any, budget: Budget = Budget()) -> dict:
    """TF Serving's predict: the JSON answer to a request body (row or columnar format); its
    tensors are RawJSON pieces (write it with `encode_json`). HttpError 413 when the request
    would cost more than `budget` (checked before the signature runs)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object with \"instances\" or "
                          "\"inputs\"")
    sig = _signature(served, body)
    specs = served.inputs[sig]
    has_inst, has_inputs = "instances" in body, "inputs" in body
    if has_inst == has_inputs:
        raise bad_request("give exactly one of \"instances\" (row format) or \"inputs\" "
                          "(columnar format)")
    if has_inst:
        tensors, n = _row_inputs(body["instances"], specs, sig)
    else:
        tensors, n = _columnar_inputs(body["inputs"], specs, sig)
    _check_cost(served, sig, tensors, budget)
    _check_glyph_names(served, sig, tensors)
    outputs = _run(served, sig, tensors)
    for k, v in outputs.items():  # a write image: its size is known after the layout
        budget.check_pixels(int(v.size), f"output {k!r} of signature {sig!r}")
    if has_inputs:
        if len(outputs) == 1:
            return {"outputs": json_value(next(iter(outputs.values())))}
        return {"outputs": {k: json_value(v) for k, v in sorted(outputs.items())}}
    for k, v in outputs.items():
        if v.ndim == 0 or v.shape[0] != n:
            raise bad_request(f"output {k!r} of signature {sig!r} has shape {list(v.shape)}, "
                              f"not one row per instance ({n}): use the columnar \"inputs\" "
                              "format")
    if len(outputs) == 1:
        return {"predictions": json_value(next(iter(outputs.values())))}
    names = sorted(outputs)
    return {"predictions": [{k: json_value(outputs[k][i]) for k in names} for i in range(n)]}


def _signature(served: ServedModel, body: dict) -> str:
    sig = body.get("signature_name", "serving_default")
    if sig in (None, ""):
        sig = "serving_default"
    if not isinstance(sig, str) or sig not in served.signatures:
        raise bad_request(f"Serving signature name: {sig!r} not found in signature def; the "
                          f"model has {sorted(served.signatures)}")
    return sig


def _row_columns(instances, specs: dict, sig: str) -> dict:
    """The row format's instances -> {input: [value of each instance]}."""
    if not isinstance(instances, list) or not instances:
        raise bad_request("\"instances\" must be a non-empty list")
    if not specs:
        raise bad_request(f"signature {sig!r} takes no inputs: send {{\"signature_name\": "
                          f"\"{sig}\", \"inputs\": {{}}}}")
    if all(isinstance(x, dict) and "b64" not in x for x in instances):
        columns = {}
        for i, inst in enumerate(instances):
            if set(inst) != set(specs):
                raise bad_request(f"instance {i} has inputs {sorted(inst)}; signature {sig!r} "
                                  f"takes {sorted(specs)}")
            for k, v in inst.items():
                columns.setdefault(k, []).append(v)
        return columns
    if len(specs) == 1:
        return {next(iter(specs)): list(instances)}
    raise bad_request(f"signature {sig!r} takes several inputs {sorted(specs)}: each instance "
                      "must be an object naming them")


def _row_inputs(instances, specs: dict, sig: str):
    columns = _row_columns(instances, specs, sig)
    tensors = {}
    for k, spec in specs.items():
        values = columns[k]
        if spec.shape.rank == 0:
            first = json.dumps(values[0], sort_keys=True)
            if any(json.dumps(v, sort_keys=True) != first for v in values[1:]):
                raise bad_request(f"input {k!r} is a scalar of the signature: it must be the same "
                                  "in every instance (or use the columnar \"inputs\" format)")
            values = values[0]
        tensors[k] = to_tensor(values, spec, k)
    return tensors, len(instances)


def _columnar_inputs(inputs, specs: dict, sig: str):
    if len(specs) == 1:
        (only,) = specs
        if not (isinstance(inputs, dict) and set(inputs) == {only}):
            inputs = {only: inputs}  # TF Serving: a lone input may be given bare
    if not isinstance(inputs, dict):
        raise bad_request(f"\"inputs\" must be an object naming the inputs {sorted(specs)} of "
                          f"signature {sig!r}")
    missing = sorted(set(specs) - set(inputs))
    extra = sorted(set(inputs) - set(specs))
    if missing or extra:
        raise bad_request(f"signature {sig!r} takes inputs {sorted(specs)}"
                          + (f"; missing {missing}" if missing else "")
                          + (f"; unknown {extra}" if extra else ""))
    return {k: to_tensor(inputs[k], spec, k) for k, spec in specs.items()}, None


def _check_cost(served: ServedModel, sig: str, tensors: dict, budget: Budget) -> None:
    """413 for a request over `budget`, before the signature runs: glyphs (and their pixels)
    of a glyph signature or extract_style, a write text's characters and glyphs, a write
    line_width alone over the pixel budget; 400 for extract_style steps over the export's cap."""
    res = int(served.model.resolution)
    if {"text", "line_width"} <= set(tensors):  # the write signature
        try:
            text = tensors["text"].numpy().decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("input 'text' must be UTF-8 text") from None
        budget.check_text(text)
        budget.check_glyphs(sum(not c.isspace() for c in text), res, "characters to draw")
        budget.check_pixels(int(tensors["line_width"].numpy()), "a line_width")
        return
    if "images" in tensors:  # extract_style
        budget.check_glyphs(int(tensors["images"].shape[0]), res, "sample images")
        if "steps" in tensors and int(tensors["steps"].numpy()) > limits.MAX_STYLE_STEPS:
            raise bad_request(f"input 'steps' must be at most {limits.MAX_STYLE_STEPS}, got "
                              f"{int(tensors['steps'].numpy())}")
        return
    for key in ("chars", "char_ids"):
        if key in tensors:
            budget.check_glyphs(int(tf.size(tensors[key])), res)
            return


def _check_glyph_names(served: ServedModel, sig: str, tensors: dict) -> None:
    """Clear 400s for the glyphs signatures: unknown characters listed, writers named."""
    fn_inputs = served.inputs[sig]
    if not {"chars", "writers"} <= set(fn_inputs):
        return
    model = served.model
    try:
        chars = [c.decode("utf-8") for c in np.reshape(tensors["chars"].numpy(), -1)]
        writers = [w.decode("utf-8") for w in np.reshape(tensors["writers"].numpy(), -1)]
    except UnicodeDecodeError:
        raise bad_request("chars and writers must be UTF-8 text") from None
    bad = model.unknown_chars(chars)
    if bad:
        raise bad_request(f"unsupported characters (not in the model's charset): {bad}")
    bad = model.unknown_writers(writers)
    if bad:
        raise bad_request(f"unknown writer(s) {bad}; known writers: {list(model.writers[:20])}"
                          + (" ..." if len(model.writers) > 20 else ""))
    bad = model.untrained_of(writers)
    if bad:
        raise bad_request(f"writer(s) {bad} were held out when this model was trained (their "
                          f"style was never learned); writers it learned: "
                          f"{list(model.trained_writers()[:20])}")


def _run(served: ServedModel, sig: str, tensors: dict) -> dict:
    try:
        out = served.signatures[sig](**tensors)
    except tf.errors.InvalidArgumentError as e:
        raise bad_request(_clean_tf_error(e)) from None
    return {k: np.asarray(v.numpy()) for k, v in out.items()}
