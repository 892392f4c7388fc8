"""Peak memory of `hwgan serve` under the worst requests its default budgets allow (issue 20).

    python benchmarks/serve_memory.py [--model EXPORT] [--flag=--max_pixels=...]

Without --model it exports an untrained generator of the quickstart's shape (style_cgan,
width 0.25, 32x32, the default charset, 24 writers, with the write signature) to a temporary
folder: memory follows the shapes, not the weights. Starts the server in a subprocess with its
default flags (plus any --flag), warms it with one small request of each kind, takes its RSS as
idle, then for each case resets the kernel's peak (/proc/PID/clear_refs) and sends it; prints
JSON: idle RSS, and per case the status, seconds and the peak RSS above idle (MB). The last case
sends the heaviest one --max_concurrent times at once. The issue's target: every peak under
1.5 GB above idle.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve import start_server  # noqa: E402  (benchmarks/serve.py)


def _export(root: Path) -> Path:
    import keras

    from data_pipeline.charset import DEFAULT_CHARSET
    from hw_gan import export
    from hw_gan.config import ModelConfig
    from hw_gan.models import get_family

    writers = [f"sim-{i:03d}" for i in range(24)]
    cfg = ModelConfig(family="style_cgan", resolution=32, width=0.25, latent_dim=128,
                      num_chars=len(DEFAULT_CHARSET), num_writers=len(writers))
    keras.utils.set_random_seed(0)
    generator = get_family("style_cgan").build_generator(cfg)
    return export.export_model(generator, cfg, DEFAULT_CHARSET, writers, root, "memory")


def _status_kb(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))


def _post(port: int, path: str, body: dict) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, len(r.read())
    finally:
        conn.close()


def cases(name: str, writer: str, max_glyphs: int, max_text: int) -> dict:
    """The worst requests the default budgets allow, by endpoint."""
    predict, write = f"/v1/models/{name}:predict", f"/v1/models/{name}:write"
    n = min(max_glyphs, max_text)
    lines = ("a" * 383 + "\n") * (n // 384)  # 13 lines at the defaults: ~15.6 M pixels
    paragraph = ("the quick brown fox jumps over the lazy dog " * 200)[:max_text]
    return {
        "predict_glyphs_max_glyphs": (predict, {
            "signature_name": "glyphs",
            "inputs": {"chars": ["a"] * max_glyphs, "writers": [writer], "seed": 1}}),
        "predict_glyphs_by_id_max_glyphs": (predict, {
            "signature_name": "glyphs_by_id",
            "inputs": {"char_ids": [10] * max_glyphs, "writer_ids": [0], "seed": 1}}),
        "predict_write_16384_wide_max_pixels": (predict, {
            "signature_name": "write",
            "inputs": {"text": lines, "writer": writer, "seed": 1, "line_width": 16384}}),
        "write_png_a4_400dpi_max_text": (write, {
            "text": paragraph, "writer": writer, "format": "png", "page": "a4", "dpi": 400,
            "x_height_mm": 1.2, "margin_mm": 5}),
        "write_pdf_a4_400dpi_max_text": (write, {
            "text": paragraph, "writer": writer, "format": "pdf", "page": "a4", "dpi": 400}),
        "write_svg_a4_400dpi_max_text": (write, {
            "text": paragraph, "writer": writer, "format": "svg", "page": "a4", "dpi": 400,
            "x_height_mm": 1.2, "margin_mm": 5}),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an export (default: an untrained "
                   "quickstart-shaped one, made here)")
    p.add_argument("--flag", action="append", default=[], help="a flag for hwgan serve")
    p.add_argument("--concurrent", type=int, default=4, help="the server's --max_concurrent")
    args = p.parse_args(argv)
    from hw_gan.serve import DEFAULT_MAX_GLYPHS, DEFAULT_MAX_TEXT_CHARS

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else _export(Path(tmp))
        proc, name, port, _ = start_server(str(model), args.concurrent, args.flag)
        try:
            from hw_gan.export import load_export

            writer = (load_export(model).writers or [""])[0]
            todo = cases(name, writer, DEFAULT_MAX_GLYPHS, DEFAULT_MAX_TEXT_CHARS)
            for path, body in todo.values():  # warm-up: every kind, small
                small = json.loads(json.dumps(body))
                if "inputs" in small:
                    for k in ("chars", "char_ids"):
                        if k in small["inputs"]:
                            small["inputs"][k] = small["inputs"][k][:4]
                    if "text" in small["inputs"]:
                        small["inputs"]["text"] = "abc"
                else:
                    small["text"] = "abc"
                _post(port, path, small)
            time.sleep(1)
            idle = _status_kb(proc.pid, "VmRSS")
            result = {"idle_rss_mb": round(idle / 1024, 1), "cases": {}}
            heaviest = (None, -1)
            for label, (path, body) in todo.items():
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # resets VmHWM
                start = time.perf_counter()
                status, size = _post(port, path, body)
                peak = _status_kb(proc.pid, "VmHWM") - idle
                result["cases"][label] = {"status": status, "seconds": round(
                    time.perf_counter() - start, 2), "response_mb": round(size / 2**20, 2),
                    "peak_above_idle_mb": round(peak / 1024, 1)}
                print(label, result["cases"][label], file=sys.stderr, flush=True)
                if status == 200 and peak > heaviest[1]:
                    heaviest = (label, peak)
            label = heaviest[0]
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
                statuses = list(pool.map(lambda _: _post(port, *todo[label])[0],
                                         range(args.concurrent)))
            peak = _status_kb(proc.pid, "VmHWM") - idle
            result["cases"][f"{label}_x{args.concurrent}_at_once"] = {
                "status": statuses, "seconds": round(time.perf_counter() - start, 2),
                "peak_above_idle_mb": round(peak / 1024, 1)}
            result["worst_peak_above_idle_mb"] = max(c["peak_above_idle_mb"]
                                                     for c in result["cases"].values())
            result["target_mb"] = 1536
            print(json.dumps(result, indent=2))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
