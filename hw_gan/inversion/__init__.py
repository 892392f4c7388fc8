"""Style extraction for the stylegan family: a few glyphs of a writer -> one style (W+).

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
               encoder's answer ("both").

Every function here works on a batch of S independent styles at once (images [S, K, R, R, 1],
chars [S, K], mask [S, K]), so an evaluation over many writers is one call. `project_styles` is
plain TensorFlow (a tf.while_loop with a hand-written Adam), so the export can hold it as a
signature too.

Style files (`save_style` / `load_style`): JSON, {"format": "hwgan-style", "ws": [[...], ...],
"model": {family, resolution, w_dim, num_ws, charset}, "method", "chars", "k", ...}.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from data_pipeline import atomic
from hw_gan.models import stylegan

STYLE_FORMAT = "hwgan-style"
STYLE_VERSION = 1
METHODS = ("encoder", "projection", "both")
FEATURES = ("encoder", "discriminator", "none")


class StyleError(ValueError):
    """Bad samples, a style file that does not fit the model, an unknown method."""


@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
    # Defaults chosen on held-out UNIPEN writers (docs/results.md): the discriminator's features
    # at weight 3 gave the best writer match and FID at k = 10 with legibility still ~1.
    steps: int = 150
    lr: float = 0.05
    feature: str = "discriminator"
    feature_weight: float = 3.0
    reg_weight: float = 0.05
    layer_weight: float = 0.5
    wplus: bool = True

    def validate(self) -> "ProjectionConfig":
        if self.steps < 0 or self.lr <= 0:
            raise StyleError(f"projection steps ({self.steps}) must be >= 0 and lr ({self.lr}) > 0")
        if self.feature not in FEATURES:
            raise StyleError(f"projection feature {self.feature!r} is not one of {FEATURES}")
        if min(self.feature_weight, self.reg_weight, self.layer_weight) < 0:
            raise StyleError("projection weights must be >= 0")
        return self


def project_styles(synthesize: Callable, features: Optional[Callable], images, chars, mask,
                   init_ws, anchor, spread, cfg: ProjectionConfig):
    """Projection (see the module doc) of S styles at once; returns ws float32 [S, L, w_dim].

    synthesize(ws [N, L, w_dim], chars [N]) -> images [N, R, R, 1]; features(images, chars) ->
    [N, F] or None; images [S, K, R, R, 1] in [-1, 1]; chars int32 [S, K]; mask float [S, K]
    (1 = a given glyph); init_ws [S, L, w_dim]; anchor [S, L, w_dim] or [w_dim]; spread: the
    mean squared distance of mapping styles from the mean w (scale of the penalty)."""
    images = tf.convert_to_tensor(images, tf.float32)
    chars = tf.cast(chars, tf.int32)
    mask = tf.cast(mask, tf.float32)
    init_ws = tf.convert_to_tensor(init_ws, tf.float32)
    anchor = tf.broadcast_to(tf.convert_to_tensor(anchor, tf.float32), tf.shape(init_ws))
    s, k = tf.shape(chars)[0], tf.shape(chars)[1]
    r = images.shape[2]
    L = init_ws.shape[1]
    flat_images = tf.reshape(images, [-1, r, r, 1])
    flat_chars = tf.reshape(chars, [-1])
    flat_mask = tf.reshape(mask, [-1])
    norm = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)  # glyphs per style [S]
    use_features = features is not None and cfg.feature_weight > 0
    target_feats = tf.stop_gradient(features(flat_images, flat_chars)) if use_features else None
    spread = tf.cast(spread, tf.float32)

    def loss_fn(ws):
        if not cfg.wplus:
            ws = tf.repeat(tf.reduce_mean(ws, axis=1, keepdims=True), L, axis=1)
        per_glyph_ws = tf.repeat(ws, k, axis=0)  # [S*K, L, w_dim]
        fake = tf.cast(synthesize(per_glyph_ws, flat_chars), tf.float32)
        per_glyph = tf.reduce_mean(tf.abs(fake - flat_images), axis=[1, 2, 3])
        if use_features:
            f = features(fake, flat_chars)
            per_glyph += cfg.feature_weight * tf.reduce_mean(tf.abs(f - target_feats), axis=-1)
        per_style = tf.reduce_sum(tf.reshape(per_glyph * flat_mask, [s, k]), axis=1) / norm
        reg = tf.reduce_mean(tf.reduce_sum(tf.square(ws - anchor), -1), -1) / spread
        centre = tf.reduce_mean(ws, axis=1, keepdims=True)
        layer = tf.reduce_mean(tf.reduce_sum(tf.square(ws - centre), -1), -1) / spread
        return per_style + cfg.reg_weight * reg + cfg.layer_weight * layer  # [S]

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def body(i, ws, m, v):
        with tf.GradientTape() as tape:
            tape.watch(ws)
            total = tf.reduce_sum(loss_fn(ws))  # styles are independent: sum, not mean
        g = tape.gradient(total, ws)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * tf.square(g)
        t = tf.cast(i + 1, tf.float32)
        step = cfg.lr * (m / (1 - beta1 ** t)) / (tf.sqrt(v / (1 - beta2 ** t)) + eps)
        return i + 1, ws - step, m, v

    zeros = tf.zeros_like(init_ws)
    _, ws, _, _ = tf.while_loop(lambda i, *_: i < cfg.steps, body,
                                (tf.constant(0), init_ws, zeros, zeros))
    if not cfg.wplus:
        ws = tf.repeat(tf.reduce_mean(ws, axis=1, keepdims=True), L, axis=1)
    return ws


class StyleModel:
    """The pieces style extraction needs, from a stylegan run directory (latest checkpoint):
    the EMA generator, the EMA style encoder, the discriminator's feature net, the mean w."""

    def __init__(self, model_dir, checkpoint: Optional[str] = None):
        from hw_gan import config as config_lib
        from hw_gan.training import trainer as trainer_lib

        model_dir = Path(model_dir)
        cfg = config_lib.load_json(str(model_dir / "config.json"))
        if cfg is None:
            raise StyleError(f"{model_dir} holds no trained model (no config.json)")
        if cfg.model.family != "stylegan":
            raise StyleError(f"{model_dir} holds a {cfg.model.family} model; style extraction "
                             "needs --model=stylegan")
        info = json.loads((model_dir / trainer_lib.DATASET_FILE).read_text(encoding="utf-8"))
        manifest = {"charset": info["charset"], "writers": info["writers"],
                    "resolution": info["resolution"], "splits": {}}
        self.cfg = cfg
        self.trainer = trainer_lib.make_trainer(cfg, tf.distribute.get_strategy(), manifest)
        if checkpoint:
            self.trainer.checkpoint.restore(checkpoint).expect_partial()
        elif self.trainer.restore() == 0:
            raise StyleError(f"{model_dir} has no checkpoint")
        self.step = int(self.trainer.step.numpy())
        self.charset = list(info["charset"])
        self.generator = self.trainer.ema_generator
        self.encoder = self.trainer.ema_encoder
        self.mapping, self.synthesis = stylegan.parts(self.generator)
        self.num_ws = stylegan.num_ws(cfg.model)
        self.w_dim = stylegan.w_dim(cfg.model)
        self.resolution = cfg.model.resolution
        self.w_avg, self.spread = stylegan.w_statistics(self.generator, cfg.model.latent_dim)
        self._d_features = self.trainer.d_feature_net

    # -- pieces ----------------------------------------------------------------------------------
    def synthesize(self, ws, chars):
        return stylegan.synthesize(self.generator, ws, chars)

    def feature_fn(self, name: str):
        if name == "none":
            return None
        if name == "encoder":
            net = self.encoder.glyph_net
            return lambda x, c: tf.cast(net({"image": x, "char": c}, training=False), tf.float32)
        if name == "discriminator":
            net = self._d_features
            return lambda x, c: tf.cast(net({"image": x, "char": c}, training=False), tf.float32)
        raise StyleError(f"unknown feature {name!r}; expected one of {FEATURES}")

    def encode(self, images, chars, mask=None) -> tf.Tensor:
        """ws [S, L, w_dim] from the encoder (one w per style, repeated over layers)."""
        w = self.encoder(images, chars, mask, training=False)
        return tf.repeat(w[:, None, :], self.num_ws, axis=1)

    def mean_ws(self, n: int) -> tf.Tensor:
        return tf.tile(self.w_avg[None, None, :], [n, self.num_ws, 1])

    def extract(self, images, chars, mask=None, method: str = "both",
                projection: ProjectionConfig = ProjectionConfig()) -> np.ndarray:
        """ws float32 [S, L, w_dim] for S sets of glyphs (see the module doc)."""
        if method not in METHODS:
            raise StyleError(f"method {method!r} is not one of {METHODS}")
        images = tf.convert_to_tensor(images, tf.float32)
        chars = tf.cast(chars, tf.int32)
        if mask is None:
            mask = tf.ones(tf.shape(chars), tf.float32)
        n = int(chars.shape[0])
        if method == "encoder":
            return self.encode(images, chars, mask).numpy()
        projection.validate()
        if method == "both":
            init = self.encode(images, chars, mask)
            anchor = init
        else:
            init = self.mean_ws(n)
            anchor = self.w_avg
        fn = tf.function(lambda im, ch, ma, ini, an: project_styles(
            self.synthesize, self.feature_fn(projection.feature), im, ch, ma, ini, an,
            self.spread, projection))
        return fn(images, chars, tf.cast(mask, tf.float32), init, anchor).numpy()

    def generate(self, ws, chars) -> np.ndarray:
        """Float [-1, 1] glyphs [N, R, R, 1]: ws [N, L, w_dim] (or [L, w_dim] for all) x chars [N]."""
        chars = np.asarray(chars, np.int32)
        ws = np.asarray(ws, np.float32)
        if ws.ndim == 2:
            ws = np.broadcast_to(ws, (len(chars), *ws.shape))
        out = [self.synthesize(ws[i:i + 512], chars[i:i + 512]).numpy()
               for i in range(0, len(chars), 512)]
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 1),
                                                         np.float32)

    def model_info(self) -> dict:
        return {"family": "stylegan", "resolution": self.resolution, "w_dim": self.w_dim,
                "num_ws": self.num_ws, "charset": self.charset}


# ------------------------------------------------------------------------------------------------
# Style files.


def save_style(path, ws, model_info: dict, **meta) -> None:
    ws = np.asarray(ws, np.float32)
    if ws.ndim != 2 or ws.shape != (model_info["num_ws"], model_info["w_dim"]):
        raise StyleError(f"style ws {ws.shape} does not match the model "
                         f"({model_info['num_ws']}, {model_info['w_dim']})")
    doc = {"format": STYLE_FORMAT, "format_version": STYLE_VERSION, "model": model_info,
           **meta, "ws": [[round(float(v), 6) for v in row] for row in ws]}
    atomic.write_text(path, json.dumps(doc, ensure_ascii=False) + "\n")


def load_style(path, model_info: Optional[dict] = None) -> tuple[np.ndarray, dict]:
    """(ws float32 [L, w_dim], the file's other fields). With model_info, checks the style fits."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StyleError(f"style file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StyleError(f"style file {path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != STYLE_FORMAT:
        raise StyleError(f"{path} is not an hwgan style file (format != {STYLE_FORMAT!r})")
    try:
        ws = np.asarray(doc["ws"], np.float32)
    except (KeyError, ValueError, TypeError):
        raise StyleError(f"style file {path}: 'ws' is missing or not a matrix") from None
    if ws.ndim != 2 or not np.isfinite(ws).all():
        raise StyleError(f"style file {path}: 'ws' must be a finite [layers, w_dim] matrix, "
                         f"got shape {ws.shape}")
    if model_info is not None:
        saved = doc.get("model", {})
        want = (model_info["num_ws"], model_info["w_dim"])
        if ws.shape != want or saved.get("resolution") != model_info["resolution"]:
            raise StyleError(f"style file {path} was extracted for a model with styles "
                             f"{ws.shape} at {saved.get('resolution')} px; this model takes "
                             f"{want} at {model_info['resolution']} px")
        if list(saved.get("charset", [])) != list(model_info["charset"]):
            raise StyleError(f"style file {path} was extracted with another model (its charset "
                             "differs); extract it again with this model")
    return ws, {k: v for k, v in doc.items() if k != "ws"}


# ------------------------------------------------------------------------------------------------
# Samples.


def pick_samples(chars: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k samples, as many distinct characters as possible first (seeded)."""
    chars = np.asarray(chars)
    order = rng.permutation(len(chars))
    first, rest, seen = [], [], set()
    for i in order:
        (rest if chars[i] in seen else first).append(i)
        seen.add(chars[i])
    return np.array((first + rest)[:k], np.int64)


def samples_from_dataset(data_dir, charset: Sequence[str], image_size: int,
                         writer: Optional[str] = None, split: Optional[str] = None
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    """(images [N, R, R, 1] float, char ids in the MODEL's charset [N], writer name) of one writer
    of a dataset directory (all splits unless `split`). Characters the model lacks are an error."""
    from data_pipeline import tfrecords
    from hw_gan.evaluation import judge as judge_lib

    manifest = tfrecords.load_manifest(data_dir)
    splits = [split] if split else sorted(manifest["splits"])
    images, chars, writers = [], [], []
    for name in splits:
        if name not in manifest["splits"]:
            raise StyleError(f"{data_dir} has no split {name!r}; it has {sorted(manifest['splits'])}")
        im, ch, wr = judge_lib.load_real(data_dir, name, image_size)
        images.append(im)
        chars.append(ch)
        writers.append(wr)
    images, chars, writers = (np.concatenate(x) for x in (images, chars, writers))
    names = manifest["writers"]
    present = sorted({names[i] for i in writers})
    if writer is None:
        if len(present) != 1:
            raise StyleError(f"{data_dir} holds {len(present)} writers ({', '.join(present[:5])}"
                             f"{', ...' if len(present) > 5 else ''}); choose one with --writer")
        writer = present[0]
    if writer not in present:
        raise StyleError(f"writer {writer!r} is not in {data_dir} (it has "
                         f"{', '.join(present[:5])}{', ...' if len(present) > 5 else ''})")
    keep = writers == names.index(writer)
    labels = manifest["charset"]
    index = {label: i for i, label in enumerate(charset)}
    missing = sorted({labels[c] for c in chars[keep] if labels[c] not in index})
    if missing:
        raise StyleError(f"{data_dir}: characters {missing} are not in the model's charset")
    ids = np.array([index[labels[c]] for c in chars[keep]], np.int32)
    return images[keep], ids, writer


def _decode_label(stem: str) -> str:
    label = stem.split("_")[0]
    if label.upper().startswith("U+"):
        return "".join(chr(int(part, 16)) for part in label[2:].split("+"))
    return label


def samples_from_images(folder, charset: Sequence[str], image_size: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Glyph images from a folder of PNG/JPEG files named "<char>_<anything>.png" (use U+0041
    style names for characters a file name cannot hold, e.g. U+002F for "/"): dark ink on light
    paper or the reverse (detected), cropped to the ink and normalised like extracted glyphs."""
    import cv2

    from data_pipeline.scan import normalize_glyph

    index = {label: i for i, label in enumerate(charset)}
    for label in charset:
        for ch in label:
            index.setdefault(ch, index[label])
    files = sorted(p for p in Path(folder).iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise StyleError(f"{folder} holds no glyph images (.png/.jpg) and no manifest.json")
    images, ids = [], []
    for path in files:
        label = _decode_label(path.stem)
        if label not in index:
            raise StyleError(f"{path}: character {label!r} (from the file name) is not in the "
                             "model's charset")
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise StyleError(f"{path} is not a readable image")
        ink = gray.astype(np.float32) / 255.0
        if np.median(ink) > 0.5:  # light paper: ink is dark
            ink = 1.0 - ink
        ink = np.clip((ink - np.percentile(ink, 50)) / max(1e-3, ink.max() - np.percentile(ink, 50)),
                      0, 1)
        ys, xs = np.nonzero(ink > 0.25)
        if len(xs) == 0:
            raise StyleError(f"{path} has no ink")
        bbox = (xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0)
        glyph = normalize_glyph(ink, bbox, image_size)
        images.append(glyph.astype(np.float32)[..., None] / 127.5 - 1.0)
        ids.append(index[label])
    return np.stack(images), np.array(ids, np.int32)
