"""Whether a model's confidence can be taken at its word, and temperature scaling to make it so.

Plain numpy. The engine's models end in softmax or sigmoid, so everything here takes
probabilities: (N, k) rows that sum to 1, or a binary model's sigmoid column, either as (N, 1)
or as the two columns [1-p, p] that ``models.probabilities`` makes of it. Temperature scaling
(Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the logits by one
number T fitted on validation images: it changes confidences, never the predicted class.
"""

from __future__ import annotations

import math

import numpy as np

N_BINS = 15
# Probabilities are clipped to EPS before the log: a float32 softmax can underflow to exactly 0,
# and log(0) would make a single image's loss infinite. 1e-7 is keras.backend.epsilon().
EPS = 1e-7
T_MIN, T_MAX = 0.05, 20.0  # a fit at either bound means the data cannot pin T down (e.g. no mistakes)
_TOLERANCE = 1e-6  # in log T: T is found to one part in a million


def _columns(probs) -> np.ndarray:
    """(N, k) probabilities; a sigmoid column p becomes [1-p, p]."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probabilities must be a non-empty (N, classes) array, got shape {probs.shape}")
    if probs.shape[1] == 1:
        return np.concatenate([1.0 - probs, probs], axis=1)
    return probs


def _labels(labels, n: int, k: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {n} integer class indices, got shape {labels.shape} of {labels.dtype}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, found {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def _is_probabilities(values: np.ndarray) -> bool:
    if values.min() < 0 or values.max() > 1:
        return False
    return values.shape[1] == 1 or bool(np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, EPS, 1.0))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --- measuring ----------------------------------------------------------------------------


def _binned(probs, labels, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of top-label confidence: count, summed confidence, summed correct.

    Bins are (lo, hi] with 0 in the first, so a confidence of exactly 1 lands in the last.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    probs = _columns(probs)
    labels = _labels(labels, *probs.shape)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    return count, np.bincount(index, confidence, n_bins), np.bincount(index, correct, n_bins)


def expected_calibration_error(probs, labels, n_bins: int = N_BINS) -> float:
    """Top-label ECE: the image-weighted mean |accuracy − confidence| over equal-width bins.

    0 for a model whose "80% sure" is right 80% of the time; 0.15 means its stated confidence
    is off by 15 points on average. Finite samples keep it a little above 0 even then.
    """
    count, confidence, correct = _binned(probs, labels, n_bins)
    return float(np.abs(correct - confidence).sum() / count.sum())


def reliability_diagram(probs, labels, n_bins: int = N_BINS) -> list[dict]:
    """One entry per bin, empty ones included so the chart keeps its axis:
    ``{lo, hi, count, confidence, accuracy}``, the last two means (None for an empty bin)."""
    count, confidence, correct = _binned(probs, labels, n_bins)
    return [
        {
            "lo": i / n_bins,
            "hi": (i + 1) / n_bins,
            "count": int(c),
            "confidence": float(confidence[i] / c) if c else None,
            "accuracy": float(correct[i] / c) if c else None,
        }
        for i, c in enumerate(count)
    ]


# --- temperature scaling ------------------------------------------------------------------


def _logits(logits_or_probs) -> np.ndarray:
    """(N, k) logits, up to a per-row constant that softmax ignores."""
    values = np.asarray(logits_or_probs, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, classes) array, got shape {values.shape}")
    if _is_probabilities(values):
        # log p = z - logsumexp(z): the logits shifted per row, so T fits the same either way.
        return _log(_columns(values))
    if values.shape[1] == 1:  # one sigmoid logit z is the two-class logits [0, z]
        return np.concatenate([np.zeros_like(values), values], axis=1)
    return values


def _nll(beta: float, z: np.ndarray, z_true: np.ndarray) -> float:
    """Mean negative log-likelihood of softmax(beta * z); convex in beta = 1/T."""
    scaled = beta * z
    top = scaled.max(axis=1)
    log_sum = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
    return float(np.mean(log_sum - beta * z_true))


def fit_temperature(logits_or_probs, labels) -> float:
    """The temperature T minimising the validation negative log-likelihood of softmax(z / T).

    Takes logits or probabilities (told apart by the values: every entry in [0, 1] and rows
    summing to 1, or a single column in [0, 1], means probabilities, whose eps-clipped log
    stands in for the logits). T > 1 softens an over-confident model, T < 1 sharpens a
    timid one. The loss is convex in 1/T, so a golden-section search over log(1/T) finds the
    minimum; T is clamped to [T_MIN, T_MAX]. Fit on validation images, never training ones:
    a network is most over-confident on the images it was trained on.
    """
    z = _logits(logits_or_probs)
    labels = _labels(labels, *z.shape)
    z_true = z[np.arange(len(z)), labels]
    a, b = math.log(1 / T_MAX), math.log(1 / T_MIN)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll(math.exp(c), z, z_true), _nll(math.exp(d), z, z_true)
    while b - a > _TOLERANCE:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll(math.exp(c), z, z_true)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll(math.exp(d), z, z_true)
    return float(min(T_MAX, max(T_MIN, 1 / math.exp((a + b) / 2))))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """Calibrated probabilities softmax(log(clip(p, EPS, 1)) / T), in the shape given.

    This is the whole computation a layer after the model's softmax would do, so the saved
    model and this function cannot disagree. For a sigmoid column p it is
    sigmoid(logit(p) / T), returned as a column again. The predicted class never changes.
    """
    if not T_MIN <= temperature <= T_MAX:
        raise ValueError(f"temperature must lie in [{T_MIN}, {T_MAX}], got {temperature}")
    given = np.asarray(probs)
    calibrated = _softmax(_log(_columns(given)) / temperature)
    if np.issubdtype(given.dtype, np.floating):
        calibrated = calibrated.astype(given.dtype)
    return calibrated[:, 1:] if given.shape[1] == 1 else calibrated
