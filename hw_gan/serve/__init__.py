"""`hwgan serve`: an exported generator behind TF Serving's REST API, plus a `:write` endpoint.

hw_gan.serve owns the REST API (`serve.rest`: the served model, JSON <-> tensors, :predict,
status, metadata), the :write endpoint (`serve.write`, drawing through hw_gan.render) and HTTP
(`serve.http`: routing, limits, handler, server). It must not import hw_gan.cli (the command,
`hwgan serve`, is hw_gan.cli.serve).

  hwgan serve --model export/quickstart [--host 127.0.0.1] [--port 8501] [--model_name NAME]
              [--max_body_bytes 1048576] [--max_text_chars 5000] [--max_concurrent 4]
              [--max_glyphs 5000] [--max_pixels 16777216]
              [--allow_origin http://app.example:3000 ...] [--allow_host myhost.lan ...]

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

Cost is bounded before the work (413, the flag named): a :write text or a write-signature
text over --max_text_chars characters; more than --max_glyphs glyphs to draw in a request (a
:predict glyph signature's chars / char_ids, extract_style's images, a text's non-space
characters, a :write plan's glyphs); more than --max_pixels pixels returned (N x R x R glyph
images, a :write page, a write-signature image: the signature checks its laid-out size against
the export's own cap before drawing, the server against --max_pixels before encoding). The
export's signatures carry their own caps in the graph (hw_gan.export.limits), for TF Serving.

Who may ask: `Host` must name the bound address, localhost or an --allow_host name (DNS
rebinding: 403); a request with an `Origin` not this server's own nor an --allow_origin one gets
403 (TF Serving clients send no Origin); POSTs need `Content-Type: application/json` (415).
Strict framing: one Content-Length of digits only (else 400 and the connection closes); after an
error whose body was not read the connection closes. HEAD works wherever GET does.

Errors are JSON {"error": "..."}: 400 bad JSON (also nested too deeply) / bad input (the field
named) / unknown writer (named) / unsupported characters (listed) / unknown signature / NaN or
infinity in a style, 403 Host or Origin, 404 unknown model, version or path, 405 wrong method,
411 no Content-Length, 413 body over --max_body_bytes or a request over a budget above, 415 not
JSON, 503 when --max_concurrent predict/write requests are already running (GETs are not
limited), 500 others. One line per request is logged to stderr (a client that drops its
connection is one line too). Binds 127.0.0.1 unless --host says otherwise.
"""

from hw_gan.serve.http import (DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT,
                               DEFAULT_MAX_GLYPHS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TEXT_CHARS,
                               DEFAULT_PORT, LOCAL_HOSTS, App, ModelHTTPServer, check_caller,
                               make_server)
from hw_gan.serve.rest import Budget, HttpError, ServedModel, predict
from hw_gan.serve.write import MAX_PAGE_PIXELS, MAX_X_HEIGHT_PX, WRITE_FORMATS, write_response

__all__ = [
    "App", "Budget", "DEFAULT_HOST", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_GLYPHS", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_TEXT_CHARS", "DEFAULT_PORT", "HttpError", "MAX_PAGE_PIXELS", "MAX_X_HEIGHT_PX",
    "LOCAL_HOSTS", "ModelHTTPServer", "ServedModel", "WRITE_FORMATS", "check_caller",
    "make_server", "predict",
    "write_response",
]
