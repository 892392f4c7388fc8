"""Style extraction on writers the model never saw (hw_gan.inversion.evaluate), and its speed.

  python benchmarks/style_eval.py --model_dir runs/unipen_stylegan_cpu \
      [--data_dir data/unipen32_writers] [--ks 5,10,20] [--steps 150] \
      [--char_judge_steps N] \
      [--out_json runs/unipen_stylegan_cpu/style_eval.json] [--picture docs/img/stylegan_heldout.png] \
      [--capture pen=0.09[,size=64,dpi=200,repeats=3,seed=0] [--capture_cache FILE.npz]]

Prints one line per (k, method) and a JSON summary: legibility (char judge accuracy on the
generated glyphs / on the writer's real glyphs of the same characters), writer match among the
held-out writers (vs chance and vs real glyphs), FID in the char judge's space; then the time to
extract one style from k = 10 glyphs on this machine with the encoder and with the encoder plus
projection.

--capture: the same table again with each held-out writer's k references from another capture
set-up (data_pipeline/capture.py: re-drawn from their pen strokes with that pen, written into
printed template sheets, photographed, extracted as `hwgan extract` does), targets unchanged,
printed beside the clean one with the bar of issue 18 (legibility >= 0.9, writer match >= 5x
chance, FID below the mean style's). Needs a dataset of the ink source and its stroke files
(--strokes if they moved); --capture_cache keeps the re-captured glyphs between runs.

--export PATH (in place of --model_dir, with --data_dir): a fewshot export scored through its
own signatures (hw_gan.export.style_model; a shipped model's name works), e.g. the shipped
unipen_styles with --char_judge_steps 1500, the judge its run trained (cached in the dataset's
judges/ folder, or trained there once).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))



PARAGRAPH = ("Dear Anna, thank you for the flowers and the lovely card. I am feeling a "
             "little better each day; see you on Sunday at 3 o'clock? Love, Grandpa. ")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model_dir")
    which.add_argument("--export", help="a fewshot export (needs --data_dir)")
    p.add_argument("--data_dir", help="default: the run's data_dir")
    p.add_argument("--char_judge_steps", type=int, help="default: the run's --judge_steps")
    p.add_argument("--ks", default="5,10,20")
    p.add_argument("--steps", type=int, default=150, help="projection steps")
    p.add_argument("--ablations_k", type=int, default=10)
    p.add_argument("--writer_judge_steps", type=int, default=2000)
    p.add_argument("--max_targets", type=int, default=60)
    p.add_argument("--out_json")
    p.add_argument("--picture")
    p.add_argument("--capture", help="re-capture the references: pen=0.09[,size=..,dpi=..]")
    p.add_argument("--capture_cache", help=".npz of the re-captured references (reused)")
    p.add_argument("--strokes", help="the dataset's stroke file(s), if not where its manifest "
                                     "says (comma-separated)")
    args = p.parse_args()

    from data_pipeline import atomic
    from hw_gan.inversion import evaluate as style_eval
    from hw_gan.inversion import ProjectionConfig, load_model

    if args.export:
        from hw_gan.export.style_model import ExportFewShotModel

        if not args.data_dir:
            p.error("--export needs --data_dir (an export records no dataset)")
        model = ExportFewShotModel(args.export)
    else:
        model = load_model(args.model_dir)
    data_dir = args.data_dir or model.cfg.data.data_dir
    projection = ProjectionConfig(steps=args.steps)
    references = None
    if args.capture is not None:
        from data_pipeline.capture import CaptureSetup

        references = style_eval.recapture_references(
            data_dir, CaptureSetup.parse(args.capture), image_size=model.resolution,
            strokes=args.strokes, cache=args.capture_cache, log=lambda m: print(m, flush=True))
        print(json.dumps({k: v for k, v in references.report.items() if k != "lost_glyphs"}),
              flush=True)
    result = style_eval.evaluate_styles(
        model, data_dir, ks=[int(k) for k in args.ks.split(",")], projection=projection,
        ablations_k=args.ablations_k, writer_judge_steps=args.writer_judge_steps,
        char_judge_steps=args.char_judge_steps,
        max_targets=args.max_targets, references=references,
        log=lambda m: print(m, flush=True))
    if references is not None:
        print(f"\nreferences re-captured ({references.name}) beside clean ones:")
        print("\n".join(style_eval.capture_table(result)), flush=True)

    # Speed: one writer, k = 10 (first call traces; the second is timed).
    from data_pipeline.dataset import load_glyphs

    images, chars, _ = load_glyphs(data_dir, "test", model.resolution, limit=10)
    x, c = images[None], chars[None]
    timing = {}
    methods = ("encoder",) if model.family == "fewshot" else ("encoder", "both")
    for method in methods:
        model.extract(x, c, method=method, projection=projection)
        t0 = time.perf_counter()
        model.extract(x, c, method=method, projection=projection)
        timing[method] = round(time.perf_counter() - t0, 3)
    result["extract_seconds_k10"] = timing
    print(f"extract one style from k=10: " + ", ".join(
        f"{'encoder + ' + str(args.steps) + ' projection steps' if m == 'both' else m} "
        f"{timing[m]} s" for m in methods))
    if model.family == "fewshot":
        # A 200-character paragraph drawn in that style (warm: the second call is timed).
        text = (PARAGRAPH * 4)[:200]
        labels = [ch for ch in text if not ch.isspace()]
        style = model.extract(x, c)[0]
        model.generate_labels(style, labels)
        t0 = time.perf_counter()
        model.generate_labels(style, labels)
        result["paragraph_seconds_200"] = round(time.perf_counter() - t0, 3)
        print(f"a 200-character paragraph ({len(labels)} glyphs) in that style: "
              f"{result['paragraph_seconds_200']} s")
    if args.picture:
        import cv2

        pic = style_eval.picture(result)
        pic = cv2.resize(pic, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        ok, png = cv2.imencode(".png", pic)
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(args.picture, png.tobytes())
    result.pop("_picture")
    result["model_dir"], result["data_dir"], result["projection_steps"] = (
        args.model_dir or str(model.path), data_dir, args.steps)
    if model.family == "fewshot":  # how the styles were read (fewshot.reading_copies)
        result["style_read_copies"] = (model.style_read_copies if args.export
                                       else model.cfg.model.style_read_copies)
    text = json.dumps(result, indent=1)
    if args.out_json:
        atomic.write_text(args.out_json, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
