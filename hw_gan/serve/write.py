"""The :write endpoint: a JSON request -> text rendered in a writer's hand (or a style), as the
bytes of a PNG, PDF or SVG document, made in memory by hw_gan.render (the server writes no
files). Its cost is checked against the server's Budget before the work it bounds: the text's
characters before anything, its glyphs after planning (before any is drawn), the page's pixels
before the layout."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from hw_gan.layout import MISSING_MODES, LayoutParams, page_params, plan_text
from hw_gan.render import (STYLE_VARIATION, apply_style, encode_pages, parse_color,
                           render_pages)
from hw_gan.serve.rest import Budget, ServedModel, bad_request, has_non_number

MAX_PAGE_PIXELS = 40_000_000  # one page raster (A4 at 600 dpi is 35 M pixels)
MAX_X_HEIGHT_PX = 600  # a glyph is resized to a few x-heights: bounds its raster
WRITE_FORMATS = {"png": "image/png", "pdf": "application/pdf", "svg": "image/svg+xml"}
WRITE_FIELDS = {"text", "writer", "seed", "format", "page", "dpi", "missing", "x_height_mm",
                "margin_mm", "slant", "ink", "paper", "style", "variation"}
_NUMBERS = (("dpi", 150.0), ("x_height_mm", 3.0), ("margin_mm", 20.0), ("slant", 0.0))


def write_response(served: ServedModel, body: Any,
                   budget: Budget = Budget()) -> tuple[bytes, str, dict]:
    """A :write request body -> (document bytes, content type, response headers). HttpError 400
    for a bad request (the field named), 413 for one over `budget` (the flag named)."""
    req = _request(body, budget)
    try:
        params = _page_params(req["page"], req["num"], budget)
        model = served.model
        if "style" in body:
            model = _styled(model, body)
        plan = plan_text(req["text"], model.charset, req["missing"])
        budget.check_glyphs(len(plan.requests), model.resolution, "glyphs to draw")
        pages = render_pages(model, req["text"], writer=req["writer"], seed=req["seed"],
                             params=params, plan=plan)
        data, n_pages = encode_pages(pages, req["format"], req["num"]["dpi"], req["ink"],
                                     req["paper"])
    except (ValueError, TypeError) as e:
        raise bad_request(str(e)) from None
    fmt = req["format"]
    headers = {"X-Hwgan-Pages": str(n_pages), "X-Hwgan-Glyphs": str(len(plan.requests)),
               "Content-Disposition": f'inline; filename="{_safe_name(served.name)}.{fmt}"'}
    if plan.missing:
        headers["X-Hwgan-Missing"] = json.dumps(list(plan.missing))
    return data, WRITE_FORMATS[fmt], headers


def _choice(body: dict, key: str, default: str, choices) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise bad_request(f"{key} must be one of {sorted(choices)}, got {value!r:.80}")
    return value


def _color(body: dict, key: str, default: str):
    """A colour field: "#rrggbb", "#rgb", a colour name, or [r, g, b] of 0..255."""
    value = body.get(key, default)
    ok = isinstance(value, str) or (
        isinstance(value, list) and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) for c in value))
    try:
        if ok:
            return parse_color(value)
    except ValueError:
        pass
    raise bad_request(f"{key} must be a colour: \"#rrggbb\", \"#rgb\", a colour name or "
                      f"[r, g, b] of 0..255; got {json.dumps(value)[:80]}")


def _request(body: Any, budget: Budget) -> dict:
    """The checked fields of a request: text, format, missing, seed, writer, page, the numbers
    (dpi, x_height_mm, margin_mm, slant) as floats, ink and paper as (r, g, b)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object with \"text\"")
    extra = sorted(set(body) - WRITE_FIELDS)
    if extra:
        raise bad_request(f"unknown field(s) {extra}; :write takes {sorted(WRITE_FIELDS)}")
    text = body.get("text")
    if not isinstance(text, str):
        raise bad_request("\"text\" (a string) is required")
    budget.check_text(text)
    if not text.strip():
        raise bad_request("the text is empty: nothing to write")
    fmt = _choice(body, "format", "png", WRITE_FORMATS)
    missing = _choice(body, "missing", "error", MISSING_MODES)
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**63:
        raise bad_request(f"seed must be an integer (int64), got {seed!r:.80}")
    writer = body.get("writer")
    if writer is not None and not isinstance(writer, str):
        raise bad_request(f"writer must be a string, got {json.dumps(writer)[:80]}")
    num = {}
    for key, default in _NUMBERS:
        v = body.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad_request(f"{key} must be a number, got {json.dumps(v)[:80]}")
        num[key] = float(v)
    page = body.get("page", "a4")
    if not isinstance(page, str):
        raise bad_request(f"page must be a string (\"a4\", \"letter\", \"148x210mm\", ...), "
                          f"got {json.dumps(page)[:80]}")
    return {"text": text, "format": fmt, "missing": missing, "seed": seed, "writer": writer,
            "num": num, "page": page, "ink": _color(body, "ink", "#1a1a40"),
            "paper": _color(body, "paper", "#ffffff")}


def _page_params(page: str, num: dict, budget: Budget) -> LayoutParams:
    """The page's layout, within this server's ranges and raster limits (ValueError if not;
    HttpError 413 over the budget's pixels)."""
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
    budget.check_pixels(params.page_width_px * params.page_height_px,
                        f"a page of {params.page_width_px}x{params.page_height_px} (lower dpi "
                        "or a smaller page)")
    return params


def _styled(model, body: dict):
    """The export seen through the request's "style" matrix and "variation"."""
    style = body["style"]
    if not isinstance(style, list) or has_non_number(style):
        raise ValueError("style must be a matrix of numbers ([layers][w_dim])")
    try:
        with np.errstate(over="ignore"):
            ws = np.asarray(style, np.float32)
    except ValueError:  # ragged, or deeper than NumPy's 64 dimensions
        ws = np.zeros(0, np.float32)
    if ws.ndim != 2 or not np.all(np.isfinite(ws)):
        raise ValueError("style must be a matrix ([layers][w_dim]) of finite numbers (no NaN "
                         "or infinity)")
    variation = body.get("variation", STYLE_VARIATION)
    if isinstance(variation, bool) or not isinstance(variation, (int, float)) or \
            not math.isfinite(variation):
        raise ValueError(f"variation must be a number, got {json.dumps(variation)[:80]}")
    return apply_style(model, ws, float(variation))


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "hwgan"
