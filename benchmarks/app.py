"""`hwgan app` (issue 19), measured through its HTTP API as the page uses it.

    python benchmarks/app.py [--model EXPORT --base RUN_DIR] [--repeats 7] [--adapt_steps 150]
                             [--adapt_finetune_steps 30] [--out DIR]

Without --model/--base it builds tiny models of the default charset (75 characters; a stylegan
trained 4 steps and a style_cgan trained 2 steps, tests/hw_gan/app_models.py): latency follows
the shapes, not the weights. Starts `hwgan app` in a subprocess, then prints JSON:

  model           the export's size on disk and its generator's parameters
  upload_review   seconds from posting three photographed filled-in sheets (the default
                  template's 3 pages, synthesised and photographed as the extraction tests do)
                  to the review's answer, and the glyphs it lists
  fast_hand       seconds to make a hand with the fast method (style from the glyphs)
  preview         a 200-character paragraph's preview (PNG of page 1 at the page's 60 dpi):
                  the first request, then the median and max of --repeats warm ones
  preview_sample_hand  the same in the first sample hand, when the --base is a shipped model
  adaptation      the better method's job: seconds, and the server's RSS idle before it and its
                  peak during it (VmHWM after resetting it through /proc/PID/clear_refs)
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAGRAPH = ("Dear Margaret, thank you for the flowers and the kind card. The garden is lovely "
             "this week and the roses are out at last. Tom will bring the car on Sunday, so we "
             "can drive to the sea if the weather holds. Love, Ann")[:200]


class Client:
    def __init__(self, url: str):
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port

    def call(self, method: str, path: str, body=b"", ctype="application/json"):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        headers = {"Origin": f"http://{self.host}:{self.port}"}
        if method == "POST":
            headers.update({"X-Hwgan-App": "1", "Content-Type": ctype})
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
        conn.request(method, path, body=body if method == "POST" else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return resp, data

    def json(self, method: str, path: str, body=b""):
        return json.loads(self.call(method, path, body)[1])

    def upload(self, files: list[tuple[str, bytes]]):
        from tests.hw_gan.app_models import multipart

        return json.loads(self.call("POST", "/api/uploads", *multipart(files))[1])


def _rss(pid: int) -> tuple[float, float]:
    """(current, peak) RSS of pid in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    now = int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1))
    return now / 1024, peak / 1024


def _model_size(export: Path) -> dict:
    import numpy as np
    import tensorflow as tf

    size = sum(f.stat().st_size for f in Path(export).rglob("*") if f.is_file())
    shapes = tf.train.list_variables(str(Path(export) / "variables" / "variables"))
    params = sum(int(np.prod(shape)) for _, shape in shapes)
    return {"export_mb": round(size / 2**20, 2), "variables": params}


def _preview(client, hand_id: str, repeats: int) -> dict:
    """A 200-character paragraph's preview in a hand: the first request, then warm ones."""
    body = {"text": PARAGRAPH, "hand": hand_id, "preview": True, "page": "a4"}
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        resp, _ = client.call("POST", "/api/write", {**body, "seed": i})
        times.append(time.perf_counter() - t)
    return {"chars": len(PARAGRAPH), "glyphs": int(resp.getheader("X-Hwgan-Glyphs")),
            "first_s": round(times[0], 3), "warm_median_s": round(statistics.median(times[1:]), 3),
            "warm_max_s": round(max(times[1:]), 3), "repeats": repeats}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="", help="a stylegan export or shipped name, e.g. "
                    "unipen_styles (default: a tiny one)")
    ap.add_argument("--base", default="", help="a style_cgan run dir or shipped name, e.g. "
                    "unipen_hands (its writers are then the sample hands; default: a tiny one)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--adapt_steps", type=int, default=150)
    ap.add_argument("--adapt_finetune_steps", type=int, default=30)
    ap.add_argument("--out", default="", help="working folder (default: a temporary one)")
    args = ap.parse_args(argv)

    from data_pipeline.charset import DEFAULT_CHARSET
    from hw_gan import shipped
    from tests.hw_gan import app_models

    work = Path(args.out or tempfile.mkdtemp(prefix="hwgan-app-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    chars = "".join(DEFAULT_CHARSET)
    t0 = time.perf_counter()
    export = (shipped.resolve_export(args.model) if args.model else
              app_models.stylegan_export(work, chars))
    base = args.base or app_models.style_cgan_base(work, chars)
    report = {"model": {"path": str(export), **_model_size(export)}}
    if not (args.model and args.base):
        report["model"]["built_s"] = round(time.perf_counter() - t0, 1)
    proc, url = app_models.start_app(export, work / "data", work / "app.log", "--base", str(base),
                                     "--adapt_steps", str(args.adapt_steps),
                                     "--adapt_finetune_steps", str(args.adapt_finetune_steps))
    try:
        client = Client(url)
        _, pdf = client.call("POST", "/api/sheets", {"paper": "a4", "repeats": 3})
        layout = json.loads((work / "data" / "sheets" / "layout.json").read_text())
        pages = len(layout["pages"])
        photos = [(f"sheet {i + 1}.jpg", app_models.sheet_photo(layout, i, seed=i + 1))
                  for i in range(pages)]
        t = time.perf_counter()
        out = client.upload(photos)
        review = client.json("GET", "/api/review")
        report["upload_review"] = {
            "pages": pages, "s": round(time.perf_counter() - t, 2),
            "photo_mb": round(sum(len(d) for _, d in photos) / 2**20, 2),
            "read": [r["status"] for r in out["results"]], "glyphs": len(review["glyphs"]),
            "usable": review["usable"]}
        t = time.perf_counter()
        hand = client.json("POST", "/api/hands/make", {"method": "fast", "name": "bench"})["hand"]
        report["fast_hand"] = {"s": round(time.perf_counter() - t, 2)}
        report["preview"] = _preview(client, hand["id"], args.repeats)
        gallery = [h for h in client.json("GET", "/api/hands")["hands"]
                   if h["kind"] == "gallery"]
        if gallery:  # a sample hand of the --base (a shipped char+writer model)
            report["preview_sample_hand"] = {"writer": gallery[0]["writer"],
                                             **_preview(client, gallery[0]["id"], args.repeats)}
        idle, _ = _rss(proc.pid)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # peak := current
        t = time.perf_counter()
        job = client.json("POST", "/api/hands/make", {"method": "better", "name": "bench"})["job"]
        peak = idle
        while job and job["status"] in ("running", "cancelling"):
            time.sleep(0.5)
            peak = max(peak, _rss(proc.pid)[1])
            job = client.json("GET", "/api/job")["job"]
        peak = max(peak, _rss(proc.pid)[1])
        report["adaptation"] = {
            "status": job["status"], "error": job.get("error"),
            "s": round(time.perf_counter() - t, 1),
            "steps": args.adapt_steps + args.adapt_finetune_steps,
            "idle_rss_mb": round(idle), "peak_rss_mb": round(peak),
            "peak_above_idle_mb": round(peak - idle)}
    finally:
        proc.terminate()
        proc.wait(30)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
