"""Benchmark of `hwgan serve`: requests/s and latency with concurrent HTTP clients.

    python benchmarks/serve.py [--model export/quickstart] [--clients 4] [--write_requests 40]
                               [--predict_requests 120]

Starts the server in a subprocess (`python -m hw_gan.cli.serve`, 127.0.0.1, a free port, so that
the clients do not share its GIL), then for each scenario runs a bounded number of requests from
`--clients` threads, each with its own keep-alive connection:

  write_png_200:  POST :write, a 200-character paragraph, PNG (A4, 150 dpi)
  predict_16:     POST :predict, columnar glyphs signature, 16 glyphs

and prints JSON: per scenario requests, errors, seconds, requests/s, latency median/p95/max (ms),
response bytes. Each client sends 2 untimed warm-up requests first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARAGRAPH = ("The quick brown fox jumps over the lazy dog, and then it writes a short letter "
             "home: dear mother, the weather is fine, the food is good, and I shall be back "
             "before the winter comes. Yours ever, the fox and friends.")


def start_server(model: str, clients: int, flags=()):
    """`hwgan serve` in a subprocess on a free port -> (process, model name, port, log lines);
    also used by benchmarks/serve_memory.py."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hw_gan.cli.serve", "--model", model, "--port", "0",
         "--max_concurrent", str(clients), *flags],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 300
    port = None
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"serving model '([^']+)' version \S+ .* at http://127\.0\.0\.1:(\d+)", line)
        if m:
            name, port = m.group(1), int(m.group(2))
            break
    if port is None:
        proc.kill()
        raise RuntimeError("the server did not start")
    log_lines = []
    threading.Thread(target=lambda: [log_lines.append(x) for x in proc.stderr],
                     daemon=True).start()
    return proc, name, port, log_lines


def _run(port: int, path: str, body: bytes, clients: int, total: int) -> dict:
    lat: list[float] = []
    errors: list[int] = []
    sizes: list[int] = []
    lock = threading.Lock()
    counter = {"left": total}

    def take() -> bool:
        with lock:
            if counter["left"] <= 0:
                return False
            counter["left"] -= 1
            return True

    def one(conn):
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, len(data)

    barrier = threading.Barrier(clients + 1)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(2):
            one(conn)
        barrier.wait()
        while take():
            t0 = time.perf_counter()
            status, size = one(conn)
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                sizes.append(size)
                if status != 200:
                    errors.append(status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()

    def pct(q):
        return round(lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))] * 1000, 1)

    return {"requests": len(lat), "errors": len(errors), "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 2), "latency_ms_median": pct(0.5),
            "latency_ms_p95": pct(0.95), "latency_ms_max": round(lat[-1] * 1000, 1),
            "response_bytes_median": sorted(sizes)[len(sizes) // 2]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "export" / "quickstart"))
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--write_requests", type=int, default=40)
    p.add_argument("--predict_requests", type=int, default=120)
    p.add_argument("--writer", default=None, help="default: the export's first writer")
    args = p.parse_args(argv)

    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    proc, name, port, log_lines = start_server(args.model, args.clients)
    startup = time.perf_counter() - t0
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", f"/v1/models/{name}:predict",
                     body=json.dumps({"signature_name": "metadata", "inputs": {}}))
        meta = json.loads(conn.getresponse().read())["outputs"]
        conn.close()
        charset = set("".join(meta["charset"]))
        writer = args.writer or meta["writers"][0]
        text = PARAGRAPH[:200]
        missing = sorted({c for c in text if c not in charset and c not in " \n"})
        if missing:
            raise SystemExit(f"the model's charset lacks {missing}")
        chars = [c for c in "handwritinglearn" if c in charset][:16]
        chars = (chars * 16)[:16]
        write_body = json.dumps({"text": text, "writer": writer, "seed": 1, "format": "png",
                                 "page": "a4", "dpi": 150}).encode()
        predict_body = json.dumps({"signature_name": "glyphs", "inputs": {
            "chars": chars, "writers": [writer], "seed": 1}}).encode()
        results = {
            "write_png_200": _run(port, f"/v1/models/{name}:write", write_body, args.clients,
                                  args.write_requests),
            "predict_16": _run(port, f"/v1/models/{name}:predict", predict_body, args.clients,
                               args.predict_requests),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps({
        "model": args.model, "model_name": name, "clients": args.clients,
        "server_startup_s": round(startup, 2), "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": results, "server_log_lines": len(log_lines),
        "note": "shared machine (training run and other jobs on the same cores): figures are "
                "indicative only",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
