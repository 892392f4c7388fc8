"""How hwgan measures a generator.

  hw_gan.evaluation.judge     CNN classifiers ("judges") trained on real glyphs, cached per
                              dataset and setting (<data_dir>/judges/ by default, shared by
                              every run on the dataset): get_judge, train_judge, Judge.
  hw_gan.evaluation.metrics   NumPy FID, KID, accuracy, per-class accuracy.
  hw_gan.evaluation.evaluate  evaluate(generate, data_dir, cache_dir, ...) -> JSON-able scores
                              (legibility, FID / KID in the char judge's feature space, writer
                              match) and write_eval_json.

Use `from hw_gan.evaluation.evaluate import evaluate`: the package exports its submodules only, so
`hw_gan.evaluation.evaluate` stays the module. TensorFlow / Keras load only when a judge is built.
"""

from hw_gan.evaluation import evaluate, judge, metrics  # noqa: F401

__all__ = ["evaluate", "judge", "metrics"]
