"""The held-out style evaluation with references from another capture set-up
(evaluate_styles(references=...)): both families' methods are run again on the re-captured
images of the same reference indices, targets and baselines unchanged, lost glyphs never used.
Stub models record what they are given (the protocol, not a model, is under test)."""

import types

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import capture, dataset, tfrecords
from hw_gan.evaluation import judge as judge_lib
from hw_gan.inversion import evaluate as style_eval
from tests.conftest import writer_split_dataset

CHARS = "abcde"
WRITERS = tuple(f"w{i}" for i in range(6))
DIM = 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return writer_split_dataset(tmp_path_factory.mktemp("capeval") / "ds", WRITERS, CHARS)


class StubModel:
    """The interface evaluate_styles uses, of either family; `seen` records every reference
    set given to extract or encode: (method, images, chars, mask)."""

    def __init__(self, family, data_dir, model_dir):
        self.family = family
        self.resolution = 32
        self.charset = tfrecords.load_manifest(data_dir)["charset"]
        self.holdout_chars = ""
        self.step = 0
        self.cfg = types.SimpleNamespace(
            eval=types.SimpleNamespace(judge_batch=8, judge_cache_dir="", judge_steps=3),
            runtime=types.SimpleNamespace(model_dir=str(model_dir)))
        self.seen = []

    def _style(self, x, m):  # depends on the images, so every set gives its own style
        x = np.asarray(x, np.float32)
        return np.repeat((x.mean(axis=(2, 3, 4)) * m).sum(1, keepdims=True), DIM, axis=1)

    def extract(self, x, c, m=None, method="encoder", projection=None):
        self.seen.append((method, np.array(x), np.array(c), np.array(m)))
        return self._style(x, m)

    def encode(self, x, c, m=None):
        return tf.constant(self.extract(x, c, m))

    def mean_ws(self, n):
        ws = np.zeros((n, DIM), np.float32)
        return ws if self.family == "fewshot" else tf.constant(ws)

    def generate(self, ws, chars):
        ws = np.asarray(ws, np.float32)
        return np.tanh(np.ones((len(chars), 32, 32, 1), np.float32) * ws[:, :1, None, None])


def _references(data_dir, lost_one=True):
    """The held-out split 're-captured': images negated; the reference pools asked; one
    reference-pool glyph lost."""
    h = style_eval.load_heldout(data_dir, "test", "train", 32, 0)
    glyphs = (255 - np.rint((h.images[..., 0] + 1) * 127.5)).astype(np.uint8)
    asked = np.zeros(len(h.images), bool)
    asked[h.reference_indices] = True
    captured = asked.copy()
    if lost_one:
        captured[h.reference_indices[0]] = False
    return h, capture.Recapture(np.array(dataset.split_keys(data_dir, "test")), glyphs, asked,
                                captured, capture.CaptureSetup(), {"asked": int(asked.sum())})


@pytest.mark.parametrize("family", ["fewshot", "stylegan"])
def test_recaptured_references_replace_the_clean_ones_index_for_index(family, data_dir,
                                                                     tmp_path):
    h, refs = _references(data_dir)
    model = StubModel(family, data_dir, tmp_path)
    result = style_eval.evaluate_styles(
        model, data_dir, ks=(2,), ablations_k=None, writer_judge_steps=3, char_judge_steps=3,
        max_targets=4, cache_dir=tmp_path / "judges", references=refs, log=lambda m: None)
    rows = result["table"]
    clean = [r["method"] for r in rows if r["references"] == style_eval.CLEAN]
    again = [r["method"] for r in rows if r["references"] == refs.name]
    assert again == [m for m in clean if m not in style_eval.BASELINES] and again
    assert all(np.isfinite(r["fid"]) for r in rows)
    lost = int(np.flatnonzero(~refs.captured & refs.asked)[0])
    assert result["references"]["lost_from_reference_pools"] == 1
    assert result["references"]["reference_pool_glyphs"] == refs.asked.sum()
    # The sets each pass was given: the clean ones first, then the same indices re-captured.
    expected, _ = style_eval._sets(h.pools, h.writer_ids, 2, 4, 0, usable=refs.captured)
    assert not any(lost in set(e.tolist()) for e in expected)
    x_clean, c, m = dataset.stack_sets(h.images, h.chars, expected, 2)
    x_back = dataset.stack_sets(refs.images, h.chars, expected, 2)[0]
    given = [("clean" if np.array_equal(x, x_clean) else
              "back" if np.array_equal(x, x_back) else "other", cc, mm)
             for _, x, cc, mm in model.seen]
    kinds = [g[0] for g in given]
    assert kinds.count("other") == 1  # the random training writer's references
    assert kinds.count("clean") == len(again) and kinds.count("back") == len(again)
    assert kinds.index("back") > max(i for i, k in enumerate(kinds) if k == "clean")
    for kind, cc, mm in given:
        if kind != "other":
            np.testing.assert_array_equal(cc, c)
            np.testing.assert_array_equal(mm, m)
    assert not np.array_equal(x_back, x_clean)
    # Re-captured references give other styles, so other glyphs and scores.
    by = {(r["method"], r["references"]): r for r in rows}
    assert any(by[(name, refs.name)]["fid"] != by[(name, style_eval.CLEAN)]["fid"]
               for name in again)
    lines = style_eval.capture_table(result)
    assert len(lines) == 1 + len(again)
    assert all(line.rstrip().endswith(("pass", "FAIL")) for line in lines[1:])


def test_without_references_the_table_is_as_before_and_foreign_references_are_refused(
        data_dir, tmp_path):
    h, refs = _references(data_dir)
    model = StubModel("fewshot", data_dir, tmp_path)

    def run(references):
        return style_eval.evaluate_styles(model, data_dir, ks=(2,), writer_judge_steps=3,
                                          char_judge_steps=3, references=references,
                                          cache_dir=tmp_path / "judges", log=lambda m: None)

    result = run(None)
    assert [(r["method"], r["references"]) for r in result["table"]] == [
        (m, style_eval.CLEAN) for m in (*style_eval.BASELINES, style_eval.FEWSHOT_METHOD)]
    assert "references" not in result and style_eval.capture_table(result)[1:] == []
    # The held-out writer judge is cached beside the char judge and reused by the next run.
    cached = sorted(p.name for p in (tmp_path / "judges").iterdir())
    assert [n.split("-none-")[0] for n in cached] == ["char", style_eval.HELDOUT_WRITER]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached judge was trained again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(judge_lib, "train_judge", no_training)
        again = run(None)
    assert [r["writer_match"] for r in again["table"]] == \
        [r["writer_match"] for r in result["table"]]

    shuffled = capture.Recapture(refs.keys[::-1], refs.glyphs, refs.asked, refs.captured,
                                 refs.setup, refs.report)
    with pytest.raises(ValueError, match="other records than the split"):
        run(shuffled)
    short = capture.Recapture(refs.keys, refs.glyphs[:-1], refs.asked, refs.captured,
                              refs.setup, refs.report)
    with pytest.raises(ValueError, match="have shape"):
        run(short)
    asked = refs.asked.copy()
    asked[h.reference_indices[-1]] = False
    with pytest.raises(ValueError, match="lack 1 glyphs of the reference pools"):
        run(capture.Recapture(refs.keys, refs.glyphs, asked, refs.captured & asked,
                              refs.setup, refs.report))
