"""The `unipen` source (the published release) against the shared stroke files, printed as JSON.

  python benchmarks/unipen_release.py [--release DIR] [--shared DIR] [--no-records]

Reads the release at --release (default ../shared/data/unipen/raw_sample: three labs of
train_r01_v07, byte for byte) and compares its samples with the rows of the two shared files
(--shared: unipen_train_strokes.npz for 1a-1c, unipen_train_symbols_strokes.npz for 1d) whose
writers it holds: writer name, label, quality, category, lab and every point. Samples are
matched as multisets (and the order is checked separately), so writers of the release that the
shared files keep aside are counted, not compared. With zero_points=keep the rows must be equal;
with the default zero_points=drop, equal to the rows with their (0, 0) points removed. Unless
--no-records, both are also rendered to 32x32 glyphs (unipen source vs ink source on the two
shared files read as one, (0, 0) points kept by both) and the records compared (writer, char,
image bytes, size against the writer's letters).
"""

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data_pipeline import sources  # noqa: E402
from data_pipeline.sources import ink, unipen  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared/data/unipen"
FILES = {"letters": ("unipen_train_strokes.npz", ("1a", "1b", "1c")),
         "symbols": ("unipen_train_symbols_strokes.npz", ("1d",))}


def sample_rows(samples: ink.StrokeSamples, extra: dict, keep) -> list[tuple]:
    """(writer, label, quality, extra fields..., stroke lengths, point bytes) of chosen samples."""
    rows = []
    for i in np.flatnonzero(keep):
        strokes = samples.strokes(i)
        rows.append((str(samples.writer_names[samples.writer_ids[i]]), str(samples.labels[i]),
                     str(samples.quality[i]), *(str(v[i]) for v in extra.values()),
                     tuple(len(s) for s in strokes),
                     np.concatenate(strokes).astype(np.float32).tobytes()))
    return rows


def without_zero_points(samples: ink.StrokeSamples) -> ink.StrokeSamples:
    """The samples with points at exactly (0, 0) removed (and strokes left empty)."""
    points, lengths, counts = [], [], []
    for i in range(len(samples)):
        strokes = [s[~(s == 0).all(1)] for s in samples.strokes(i)]
        strokes = [s for s in strokes if len(s)]
        points.extend(strokes)
        lengths.extend(len(s) for s in strokes)
        counts.append(len(strokes))
    return ink.StrokeSamples(np.concatenate(points), np.array(lengths), np.array(counts),
                             samples.labels, samples.writer_ids, samples.writer_names,
                             samples.quality)


def compare(release_rows: list, shared_rows: list) -> dict:
    matched = sum((Counter(release_rows) & Counter(shared_rows)).values())
    return {"shared_rows": len(shared_rows), "release_samples": len(release_rows),
            "matched": matched, "same_order": release_rows == shared_rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--release", default=str(SHARED / "raw_sample"))
    p.add_argument("--shared", default=str(SHARED))
    p.add_argument("--no-records", dest="records", action="store_false")
    args = p.parse_args(argv)
    out = {"release": args.release}
    t0 = time.perf_counter()
    read = {mode: unipen.read_release(args.release, zero_points=mode) for mode in unipen.ZERO_POINTS}
    out["read_seconds"] = round((time.perf_counter() - t0) / 2, 2)
    out["counts"] = read["drop"].counts
    release_writers = set(read["keep"].samples.writer_names.tolist())
    total = Counter()
    for part, (name, categories) in FILES.items():
        data = ink.load_npz(str(Path(args.shared) / name))
        full = np.load(Path(args.shared) / name)
        extra = {"category": full["category"], "contributor": full["contributor"]}
        names = data.writer_names[data.writer_ids]
        shared_keep = np.isin(names, sorted(release_writers))
        held = set(data.writer_names.tolist())
        figures = {}
        for mode, rel in read.items():
            mine = rel.samples
            keep = np.isin(rel.categories, categories)
            keep &= np.isin(mine.writer_names[mine.writer_ids], sorted(held))
            theirs = data if mode == "keep" else without_zero_points(data)
            figures[mode] = compare(
                sample_rows(mine, {"category": rel.categories, "lab": rel.labs}, keep),
                sample_rows(theirs, extra, shared_keep))
            total[mode + "_matched"] += figures[mode]["matched"]
            total[mode + "_rows"] += figures[mode]["shared_rows"]
            total[mode + "_samples"] += figures[mode]["release_samples"]
        figures["writers"] = int(len(np.unique(names[shared_keep])))
        out[part] = figures
    out["total"] = dict(total)
    if args.records:
        t0 = time.perf_counter()
        mine = Counter((r.writer, r.char, r.image.tobytes(), r.size) for r in sources.open_source(
            "unipen", path=args.release, zero_points="keep"))
        # Both files at once, as the release holds letters and symbols together (symbols are
        # drawn at their size against the writer's letters), with the (0, 0) points kept alike.
        src = sources.open_source(
            "ink", path=[str(Path(args.shared) / name) for name, _ in FILES.values()],
            writers=sorted(release_writers & held), zero_points="keep")
        theirs = Counter((r.writer, r.char, r.image.tobytes(), r.size) for r in src)
        out["records"] = {"unipen": sum(mine.values()), "ink": sum(theirs.values()),
                          "equal": sum((mine & theirs).values()),
                          "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=1))
    ok = all(total[f"{m}_matched"] == total[f"{m}_rows"] == total[f"{m}_samples"]
             for m in unipen.ZERO_POINTS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
