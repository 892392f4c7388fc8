"""FewShotModel: a trained fewshot run (issue 18), as style extraction and its held-out evaluation
use it, with the same duck-typed interface as StyleModel (`extract`, `generate`, `mean_ws`,
`encode`, `model_info`).

A style here is the few-shot family's style code, one vector [D] per writer (stored in `ws`
places as [S, D]): the masked mean of the style glyph net over the k references, through the
style head. There is nothing to optimise: "encoder" is the only method, one forward pass. Any
character the content font covers can be drawn in a style (`generate_labels`), the training
charset by id (`generate`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from data_pipeline import font
from hw_gan.config import StyleError
from hw_gan.inversion.model import restore_run
from hw_gan.models import fewshot

METHODS = ("encoder",)


def per_glyph(ws, n: int) -> np.ndarray:
    """Styles [n, D] from one style ([D] or [1, D], for every glyph) or n of them."""
    ws = np.asarray(ws, np.float32)
    ws = ws[None] if ws.ndim == 1 else ws
    return np.broadcast_to(ws, (n, ws.shape[1])) if len(ws) == 1 else ws


class FewShotModel:
    family = "fewshot"
    methods = METHODS

    def __init__(self, model_dir, checkpoint: Optional[str] = None):
        cfg = restore_run(self, model_dir, checkpoint)
        self.holdout_chars = cfg.data.holdout_chars

    # -- styles ----------------------------------------------------------------------------------
    def encode(self, images, chars, mask=None):
        """Style codes [S, D] (a tf.Tensor) of S sets: images [S, K, R, R, 1], char ids [S, K]."""
        return self.trainer.encode_sets(images, chars, mask)

    def extract(self, images, chars, mask=None, method: str = "encoder",
                projection=None) -> np.ndarray:
        if method not in METHODS:
            raise StyleError(f"method {method!r} is not one of {METHODS} (the fewshot family "
                             "reads a style in one pass; there is no projection)")
        try:
            return self.encode(images, chars, mask).numpy()
        except ValueError as e:
            raise StyleError(str(e)) from None

    def mean_ws(self, n: int) -> np.ndarray:
        """The mean style of the training writers (the export's mean_style: the mean of their
        styles as its tables hold them), n times."""
        return np.tile(self.trainer.style_statistics()[0][None], (n, 1))

    # -- drawing ---------------------------------------------------------------------------------
    def generate(self, ws, chars) -> np.ndarray:
        """Float [-1, 1] glyphs [N, R, R, 1]: styles [N, D] (or [D] / [1, D] for all) x
        training char ids [N]."""
        chars = np.asarray(chars, np.int32)
        return self.trainer.draw(per_glyph(ws, len(chars)), self.trainer.content(chars).numpy(),
                                 labels=self.trainer.labels_of(chars))

    def generate_labels(self, ws, labels: Sequence[str]) -> np.ndarray:
        """Like `generate`, for any characters the content font covers (font.FontCoverageError
        names the ones it lacks); accented letters as their base letter + mark."""
        labels = list(labels)
        font.check_covered(labels)  # FontCoverageError before any drawing
        return self.trainer.draw_labels(per_glyph(ws, len(labels)), labels)

    def model_info(self) -> dict:
        """What a style file records (a style is [1, D]: one "layer", as stylegan's W+ has L)."""
        return {"family": "fewshot", "resolution": self.resolution, "num_ws": 1,
                "w_dim": fewshot.style_dim(self.cfg.model), "charset": self.charset}
