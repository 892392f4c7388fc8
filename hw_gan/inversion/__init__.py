"""Style extraction: a few glyphs of a writer -> one style. For the stylegan family a W+ style
(below); for the fewshot family a style code read in one pass (fewshot_model.py: FewShotModel,
the same interface). `load_model(model_dir)` picks by the run's family.

Owns: projecting glyphs to styles (projection.py), the trained run extraction uses
(model.py: StyleModel), style files (style_file.py), a writer's sample glyphs (samples.py) and
the held-out evaluation of extraction (evaluate.py, imported as hw_gan.inversion.evaluate).
Imports only lower floors (data_pipeline, hw_gan.config, hw_gan.losses, hw_gan.models,
hw_gan.training, hw_gan.evaluation); never hw_gan.export, adaptation, render, serve or cli.

Two ways, usable together (`method`):

  encoder      the style encoder trained with the generator reads the k glyphs (with their
               characters) and returns one w, repeated over the L layers. One forward pass.
  projection   optimise the styles ws [L, w_dim] (W+; or one w, `wplus=False`) so that
               G(char_i, ws) matches sample_i for every i:
                   pixel L1  +  feature_weight * L1 of features (`feature`: the encoder's
                   per-glyph features, the discriminator's, or none)
                   + reg_weight * |ws - anchor|^2 / spread  (keeps ws near the learned
                   distribution: anchor is the mean w, or the encoder's w when it starts there)
                   + layer_weight * spread of ws across layers (W+ stays near one w)
               by Adam for `steps` steps. Started from the mean w ("projection") or from the
               encoder's answer ("both"). Its settings: hw_gan.config.ProjectionConfig.

Every function here works on a batch of S independent styles at once (images [S, K, R, R, 1],
chars [S, K], mask [S, K]), so an evaluation over many writers is one call. `project_styles` is
plain TensorFlow (a tf.while_loop with a hand-written Adam), so the export can hold it as a
signature too.

Style files (`save_style` / `load_style`): JSON, {"format": "hwgan-style", "ws": [[...], ...],
"model": {family, resolution, w_dim, num_ws, charset}, "method", "chars", "k", ...}.
"""

from __future__ import annotations

from hw_gan.config import FEATURES, ProjectionConfig, StyleError
from hw_gan.training import run_dir
from hw_gan.inversion.fewshot_model import FewShotModel
from hw_gan.inversion.model import METHODS, StyleModel
from hw_gan.inversion.projection import project_styles
from hw_gan.inversion.samples import pick_samples, samples_from_dataset, samples_from_images
from hw_gan.inversion.style_file import STYLE_FORMAT, STYLE_VERSION, load_style, save_style

def load_model(model_dir, checkpoint=None):
    """The run in `model_dir` as a style model: StyleModel (stylegan) or FewShotModel (fewshot);
    StyleError for another family."""
    try:
        cfg, _ = run_dir.load_run_config(model_dir)
    except run_dir.RunDirError as e:
        raise StyleError(str(e)) from None
    if cfg.model.family == "fewshot":
        return FewShotModel(model_dir, checkpoint)
    return StyleModel(model_dir, checkpoint)


__all__ = [
    "FEATURES", "FewShotModel", "METHODS", "load_model", "STYLE_FORMAT", "STYLE_VERSION", "ProjectionConfig", "StyleError",
    "StyleModel", "load_style", "pick_samples", "project_styles", "samples_from_dataset",
    "samples_from_images", "save_style",
]
