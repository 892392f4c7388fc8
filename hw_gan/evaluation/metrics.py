"""Sample metrics in NumPy (float64 inside): FID, KID, accuracy. No SciPy needed."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np


def _as_features(x, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D] features, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite values")
    return x


def _moments(x: np.ndarray, weights: Optional[np.ndarray], name: str):
    """Mean and (unbiased, frequency- or reliability-weighted) covariance of the rows of x."""
    if weights is None:
        if len(x) < 2:
            raise ValueError(f"{name}: need at least 2 samples, got {len(x)}")
        return x.mean(0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])
    w = np.asarray(weights, np.float64)
    if w.shape != (len(x),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{name}: weights must be [N], non-negative, not all zero")
    w = w / w.sum()
    mu = w @ x
    d = x - mu
    denom = 1.0 - np.sum(w * w)  # unbiased for reliability weights; = (N-1)/N when uniform
    if denom <= 0:
        raise ValueError(f"{name}: the weights put everything on one sample")
    return mu, (d * w[:, None]).T @ d / denom


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2.0)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((A B)^{1/2}) for PSD A, B, as tr((A^{1/2} B A^{1/2})^{1/2}) (a symmetric PSD matrix:
    stable where A B itself is not symmetric or A is singular)."""
    sa = _psd_sqrt(cov_a)
    m = sa @ cov_b @ sa
    vals = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(vals, 0.0, None))))


def frechet_distance(feats_a, feats_b, *, weights_a=None, weights_b=None) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] (the FID formula):
    |mu_a - mu_b|^2 + tr(A) + tr(B) - 2 tr((A B)^{1/2}), with unbiased covariances.

    weights_*: optional per-sample weights (e.g. to rebalance classes) for the mean/covariance.
    Biased upward for small N (like every FID): compare values at equal sample sizes."""
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, cov_a = _moments(a, weights_a, "feats_a")
    mu_b, cov_b = _moments(b, weights_b, "feats_b")
    diff = mu_a - mu_b
    fid = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt_product(cov_a, cov_b)
    return float(max(fid, 0.0))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3, the KID kernel."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kernel_inception_distance(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0, *, probs_b=None, return_std: bool = False,
                              on_subset: Optional[Callable[[], None]] = None):
    """KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the cubic polynomial kernel,
    averaged over `subsets` random subsets of `subset_size` drawn without replacement from each
    set (subset_size is capped at the smaller set). Can be slightly negative when the sets match.

    probs_b: optional sampling probabilities for feats_b's rows (to rebalance classes; drawn
    without replacement, so approximately that distribution). return_std: also the std over
    subsets. on_subset: called after each subset (a progress bar)."""
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples; the sets have {len(a)} and "
                         f"{len(b)}, subset_size={subset_size}")
    if subsets < 1:
        raise ValueError(f"subsets={subsets} must be >= 1")
    p = None
    if probs_b is not None:
        p = np.asarray(probs_b, np.float64)
        if p.shape != (len(b),) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("probs_b must be [N_b], non-negative, not all zero")
        p = p / p.sum()
        m = min(m, int(np.count_nonzero(p)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 271828]))
    values = np.empty(subsets)
    for i in range(subsets):
        values[i] = _mmd2_unbiased(a[rng.choice(len(a), m, replace=False)],
                                   b[rng.choice(len(b), m, replace=False, p=p)])
        if on_subset is not None:
            on_subset()
    if return_std:
        return float(values.mean()), float(values.std())
    return float(values.mean())


def accuracy(predicted, labels) -> float:
    """Fraction of predicted == labels; NaN for empty inputs."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"predictions {predicted.shape} and labels {labels.shape} differ in shape")
    return float(np.mean(predicted == labels)) if labels.size else float("nan")


def per_class_accuracy(predicted, labels, classes: Optional[Sequence[int]] = None) -> dict:
    """{class: accuracy over the samples whose label is that class}, for `classes` (default: the
    labels present). A class with no samples maps to NaN."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"predictions {predicted.shape} and labels {labels.shape} differ in shape")
    classes = np.unique(labels) if classes is None else classes
    out = {}
    for c in classes:
        mask = labels == c
        out[int(c)] = float(np.mean(predicted[mask] == c)) if mask.any() else float("nan")
    return out
