"""`hwgan write` speed and memory, printed as JSON.

  python benchmarks/render.py [EXPORT] [--writer NAME] [--runs 20]

EXPORT defaults to export/quickstart (made by configs/quickstart.cfg). Figures:
  paragraph_png_s   a 200-character paragraph to an A4 PNG at 150 dpi, model loaded (warm):
                    median and p95 over --runs (target: median < 1 s); also to PDF and SVG
  word_png_s        a single word, same page (target < 0.1 s)
  cold_start_s      a fresh Python process: import, load the export, write the paragraph's page
                    (in-process time and the whole process's wall time; target < 3 s)
  letter_memory     a 10-page letter to PDF in a fresh process: peak RSS (TensorFlow included)
                    and, in another process, the tracemalloc peak of the rendering alone (traced
                    from after the model is loaded), beside the same for a 1-page letter; memory
                    should not grow with the number of pages
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARAGRAPH = ("Dear Margaret, thank you so much for the lovely parcel that arrived on Tuesday. "
             "The children were thrilled with the books, and Tom has already read the first one "
             "twice! We hope to visit you in June.")[:200]
WORD = "Handwriting"
LETTER_PARAGRAPHS = [
    "Thank you so much for the lovely parcel that arrived on Tuesday. The children were "
    "thrilled with the books, and Tom has already read the first one twice!",
    "We have had a very wet spring here, but the garden is finally coming back to life; the "
    "apple tree is covered in blossom and the roses look promising (if the slugs allow it).",
    "I hope to visit you in June, if the trains are running. Please give my regards to "
    "everyone at home, and tell Peter that I still have his umbrella.",
]

_CHILD = r"""
import json, os, resource, sys, time, tracemalloc
t0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, sys.argv[1])
mode, export_dir, writer, out, text = sys.argv[2:7]
from hw_gan.export import load_export
from hw_gan.render import render_text
t_import = time.perf_counter() - t0
model = load_export(export_dir)
t_load = time.perf_counter() - t0
if mode == "traced":  # Python-heap allocations of the rendering alone (numpy arrays included)
    tracemalloc.start()
res = render_text(model, text, writer=writer, out=out, seed=1)
t_done = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1] if mode == "traced" else None
print("RESULT " + json.dumps({
    "import_s": t_import, "load_s": t_load - t_import, "first_page_s": t_done - t_load,
    "total_s": t_done, "pages": res.pages, "glyphs": res.glyphs,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "tracemalloc_peak_mb": None if peak is None else peak / 2**20,
    "bytes": os.path.getsize(out)}))
"""


def _stats(times: list[float]) -> dict:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return {"median": round(statistics.median(times), 4), "p95": round(p95, 4),
            "min": round(times[0], 4), "runs": len(times)}


def _child(mode: str, export_dir: str, writer: str, out: str, text: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(REPO), mode, export_dir, writer, out,
                           text], capture_output=True, text=True, cwd=str(REPO))
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_s"] = wall
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}


def letter_text(chars: int) -> str:
    """A letter of about `chars` characters (an A4 page at the defaults holds about 1,400)."""
    paras, n = ["Dear Margaret,"], 0
    while sum(len(p) for p in paras) < chars:
        paras.append(LETTER_PARAGRAPHS[n % len(LETTER_PARAGRAPHS)])
        n += 1
    paras.append("With love and best wishes,\nAnna")
    return "\n\n".join(paras)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export", nargs="?", default=str(REPO / "export" / "quickstart"))
    ap.add_argument("--writer", default=None, help="default: the export's first writer")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()

    from hw_gan.export import load_export
    from hw_gan.render import render_text

    model = load_export(args.export)
    writer = args.writer or (model.writers[0] if model.writers else "")
    tmp = Path(tempfile.mkdtemp(prefix="hwgan-render-bench-"))
    out: dict = {"export": str(model.path), "family": model.family,
                 "resolution": model.resolution, "writer": writer,
                 "paragraph_chars": len(PARAGRAPH), "page": "a4 @ 150 dpi",
                 "cpu_count": os.cpu_count(),
                 "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}

    def timed(text: str, name: str, runs: int) -> list[float]:
        render_text(model, text, writer=writer, out=tmp / name, seed=0)  # warm-up (traces)
        times = []
        for i in range(runs):
            t0 = time.perf_counter()
            render_text(model, text, writer=writer, out=tmp / name, seed=i + 1)
            times.append(time.perf_counter() - t0)
        return times

    out["paragraph_png_s"] = _stats(timed(PARAGRAPH, "p.png", args.runs))
    out["paragraph_pdf_s"] = _stats(timed(PARAGRAPH, "p.pdf", max(5, args.runs // 4)))
    out["paragraph_svg_s"] = _stats(timed(PARAGRAPH, "p.svg", max(5, args.runs // 4)))
    out["word_png_s"] = _stats(timed(WORD, "w.png", args.runs))
    out["output_bytes"] = {n: (tmp / n).stat().st_size for n in ("p.png", "p.pdf", "p.svg")}

    colds = [_child("cold", str(model.path), writer, str(tmp / f"cold{i}.png"), PARAGRAPH)
             for i in range(3)]
    best = min(colds, key=lambda r: r["total_s"])
    out["cold_start_s"] = {
        "median_total": round(statistics.median(r["total_s"] for r in colds), 3),
        "median_process_wall": round(statistics.median(r["process_wall_s"] for r in colds), 3),
        "fastest_breakdown": {k: best[k] for k in ("import_s", "load_s", "first_page_s",
                                                    "total_s", "process_wall_s")},
    }

    mem = {}
    for pages, chars in ((1, 1000), (10, 13300)):
        name = str(tmp / f"letter{pages}.pdf")
        r = _child("rss", str(model.path), writer, name, letter_text(chars))
        traced = _child("traced", str(model.path), writer, name, letter_text(chars))
        mem[f"{pages}_page_letter_pdf"] = {
            **{k: r[k] for k in ("pages", "glyphs", "maxrss_mb", "bytes")},
            "render_s": r["first_page_s"], "render_s_per_page": round(r["first_page_s"] /
                                                                      r["pages"], 3),
            "tracemalloc_peak_mb_after_load": traced["tracemalloc_peak_mb"]}
    out["letter_memory"] = mem
    out["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
