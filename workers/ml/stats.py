"""Uncertainty for evaluation numbers: intervals on accuracy, macro-F1 and per-class recall,
and whether two models evaluated on the same images really differ. Plain numpy.

Every metric here is a function of a confusion matrix (rows = true, columns = predicted), so
the bootstrap resamples images once, counts confusion matrices for all resamples at a time and
hands the whole stack to the metric. Fractions in, fractions out (0.9, not 90); only
``describe_difference`` speaks in percentage points.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95
N_BOOT = 2000
# Elements of one resample-index block (chunk x images): ~8 MB of int64 whatever the data size;
# measured faster than larger blocks, which spend their time faulting in fresh memory.
_BLOCK = 1 << 20

Statistic = Callable[[np.ndarray], np.ndarray]


# --- metrics on stacks of confusion matrices: (B, k, k) -> (B,) or (B, k) -----------------


def _accuracy(cm: np.ndarray) -> np.ndarray:
    return np.trace(cm, axis1=-2, axis2=-1) / cm.sum(axis=(-2, -1))


def _per_class_recall(cm: np.ndarray) -> np.ndarray:
    """NaN for a class with no images (recall is 0/0)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, tp / support, np.nan)


def _balanced_accuracy(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes that have images."""
    recall = _per_class_recall(cm)
    present = ~np.isnan(recall)
    return np.where(present, recall, 0.0).sum(axis=-1) / present.sum(axis=-1)


def _macro_f1(cm: np.ndarray) -> np.ndarray:
    """Mean F1 = 2TP / (2TP + FP + FN) over the classes that are true or predicted at least once.

    A class never predicted but present scores 0; one predicted but absent scores 0 (all its
    predictions are false positives); one neither true nor predicted has F1 0/0 and is left
    out of the mean rather than counted as 0 or 1.
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    denominator = cm.sum(axis=-1) + cm.sum(axis=-2)  # 2TP + FN + FP
    seen = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=seen)
    return f1.sum(axis=-1) / seen.sum(axis=-1)


METRICS: dict[str, Statistic] = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "macro_f1": _macro_f1,
    "per_class_recall": _per_class_recall,
}


# --- input checks and counting -------------------------------------------------------------


def _check(labels, predicted, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    labels = np.asarray(labels)
    predicted = np.asarray(predicted)
    if labels.ndim != 1 or predicted.shape != labels.shape:
        raise ValueError(
            f"labels and predictions must be 1-D and of the same length, got {labels.shape} and {predicted.shape}"
        )
    if len(labels) == 0:
        raise ValueError("no images to evaluate (n=0): a metric of nothing has no value and no interval")
    if not (np.issubdtype(labels.dtype, np.integer) and np.issubdtype(predicted.dtype, np.integer)):
        raise ValueError("labels and predictions must be integer class indices")
    if n_classes is None:
        n_classes = int(max(labels.max(), predicted.max())) + 1
    lowest, highest = min(labels.min(), predicted.min()), max(labels.max(), predicted.max())
    if lowest < 0 or highest >= n_classes:
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}, found {lowest}..{highest}")
    return labels.astype(np.int64), predicted.astype(np.int64), int(n_classes)


def confusion_matrix(labels, predicted, n_classes: int) -> np.ndarray:
    """(k, k) counts, rows = true class, columns = predicted class."""
    labels, predicted, k = _check(labels, predicted, n_classes)
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)


def _statistic(statistic: str | Statistic) -> Statistic:
    if callable(statistic):
        return statistic
    if statistic not in METRICS:
        raise ValueError(f"unknown metric {statistic!r}; choose one of {', '.join(METRICS)}")
    return METRICS[statistic]


# --- point metrics ------------------------------------------------------------------------


def macro_f1(labels, predicted, n_classes: int) -> float:
    """Unweighted mean of per-class F1 (classes neither true nor predicted are left out)."""
    return float(_macro_f1(confusion_matrix(labels, predicted, n_classes)))


def balanced_accuracy(labels, predicted, n_classes: int) -> float:
    """Mean per-class recall over the classes that have images."""
    return float(_balanced_accuracy(confusion_matrix(labels, predicted, n_classes)))


def per_class_recall(labels, predicted, n_classes: int) -> np.ndarray:
    """(k,) recall of each class; NaN for a class with no images."""
    return _per_class_recall(confusion_matrix(labels, predicted, n_classes))


# --- intervals ----------------------------------------------------------------------------


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(correct: int, n: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a proportion such as accuracy (``correct`` of ``n`` images).

    Unlike the textbook p ± z·sqrt(p(1-p)/n) it never leaves [0, 1] and does not collapse to a
    point at 0% or 100%: a perfect score on 50 images gives (0.929, 1.0), not (1.0, 1.0).
    """
    if n <= 0:
        raise ValueError(f"no images to evaluate (n={n}): an accuracy of nothing has no interval")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in 0..n, got {correct} of {n}")
    z = _z(confidence)
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0 or n the formula gives exactly 0 or 1 in real numbers; pin them against rounding.
    lo = 0.0 if correct == 0 else max(0.0, centre - half)
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return float(lo), float(hi)


def _resampled_values(
    statistic: Statistic, labels: np.ndarray, predictions: list[np.ndarray], k: int, n_boot: int, seed: int
) -> list[np.ndarray]:
    """``statistic`` of each prediction array on the same ``n_boot`` resamples of the images.

    Resample indices are drawn in blocks (a (chunk, n) index matrix each) so memory stays
    bounded; one bincount per block and prediction array turns them into confusion matrices.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    n = len(labels)
    rng = np.random.default_rng(seed)
    codes = [labels * k + p for p in predictions]
    chunk = max(1, min(n_boot, _BLOCK // max(n, k * k)))
    out: list[list[np.ndarray]] = [[] for _ in predictions]
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        index = rng.integers(0, n, size=(rows, n))
        offset = (np.arange(rows) * (k * k))[:, None]
        for values, code in zip(out, codes, strict=True):
            flat = code[index]
            flat += offset
            cms = np.bincount(flat.ravel(), minlength=rows * k * k).reshape(rows, k, k)
            values.append(statistic(cms))
    return [np.concatenate(v) for v in out]


def _percentiles(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(values, [alpha, 1 - alpha], axis=0)
    return lo, hi


def bootstrap_interval(
    statistic: str | Statistic,
    labels,
    predicted,
    *,
    n_classes: int | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    confidence: float = CONFIDENCE,
):
    """Percentile bootstrap interval of ``statistic`` over images: ``(lo, hi)``.

    ``statistic`` is a name in ``METRICS`` or a function from a (B, k, k) stack of confusion
    matrices to (B,) or (B, k) values; with per-class values ``lo`` and ``hi`` are (k,) arrays.
    A class absent from a resample: macro-F1 leaves it out of that resample's mean if it is
    also never predicted (see ``_macro_f1``); its recall is NaN there and the percentiles are
    taken over the resamples that contain it (NaN if none does). Percentile intervals of a
    proportion collapse at 0 or 1, so for accuracy and one class's recall prefer
    ``wilson_interval``.
    """
    _z(confidence)
    labels, predicted, k = _check(labels, predicted, n_classes)
    (values,) = _resampled_values(_statistic(statistic), labels, [predicted], k, n_boot, seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # a class in no resample: NaN
        lo, hi = _percentiles(values, confidence)
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi


def paired_bootstrap_difference(
    labels,
    predicted_a,
    predicted_b,
    *,
    metric: str = "accuracy",
    n_classes: int | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict:
    """``metric`` of model B minus model A on the same images, with a paired bootstrap interval.

    Both models are scored on the same resamples, so what they get right or wrong together
    cancels and the interval is far narrower than two separate intervals would suggest.
    Returns ``{"difference", "lo", "hi", "clear"}`` as fractions; ``clear`` when the interval
    excludes 0.
    """
    _z(confidence)
    labels, predicted_a, k = _check(labels, predicted_a, n_classes)
    _, predicted_b, _ = _check(labels, predicted_b, k)
    fn = _statistic(metric)
    point = fn(confusion_matrix(labels, predicted_b, k)) - fn(confusion_matrix(labels, predicted_a, k))
    if np.ndim(point) != 0:
        raise ValueError(f"metric {metric!r} is per class; compare one number, such as accuracy or macro_f1")
    a, b = _resampled_values(fn, labels, [predicted_a, predicted_b], k, n_boot, seed)
    lo, hi = _percentiles(b - a, confidence)
    return {"difference": float(point), "lo": float(lo), "hi": float(hi), "clear": bool(lo > 0 or hi < 0)}


def _points(fraction: float) -> str:
    """Signed percentage points: "+1.2", "−0.8" (U+2212 MINUS SIGN), "0.0" only for exactly 0."""
    text = f"{abs(fraction) * 100:.1f}"
    if fraction > 0:
        return "+" + text
    if fraction < 0:
        return "\u2212" + text
    return text


def describe_difference(result: dict, *, a: str = "A", b: str = "B") -> str:
    """One line for a ``paired_bootstrap_difference`` result, e.g.
    "B − A: +1.2 points [−0.8, +3.1]: not a clear difference"."""
    verdict = "clear difference" if result["clear"] else "not a clear difference"
    interval = f"[{_points(result['lo'])}, {_points(result['hi'])}]"
    return f"{b} \u2212 {a}: {_points(result['difference'])} points {interval}: {verdict}"


def evaluation_summary(probs, labels, class_names: list[str], *, split: str, seed: int = 0) -> dict:
    """Headline numbers of one evaluation with their 95% intervals, JSON-ready.

    ``probs`` is (N, n_classes) (a sigmoid output as two columns [1-p, p]). Accuracy gets a
    Wilson interval; macro-F1 a percentile bootstrap over images (``N_BOOT`` resamples,
    ``seed``); each class's recall a Wilson interval on that class's own images, since a
    bootstrap gives a perfect class the useless interval [1, 1]. ``per_class_recall`` is
    sorted worst first; a class without images comes last with recall and interval None.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(f"probs must be (N, {len(class_names)}) for {len(class_names)} classes, got {probs.shape}")
    k = len(class_names)
    labels, predicted, _ = _check(np.asarray(labels), probs.argmax(axis=1), k)
    cm = confusion_matrix(labels, predicted, k)
    n, correct = len(labels), int(np.trace(cm))
    recalls = []
    for i, name in enumerate(class_names):
        support, tp = int(cm[i].sum()), int(cm[i, i])
        recall, ci = (tp / support, list(wilson_interval(tp, support))) if support else (None, None)
        recalls.append({"class": name, "recall": recall, "ci95": ci, "support": support})
    recalls.sort(key=lambda r: (r["recall"] is None, r["recall"] or 0.0, r["ci95"][0] if r["ci95"] else 0.0))
    return {
        "split": split,
        "n": n,
        "accuracy": correct / n,
        "accuracy_ci95": list(wilson_interval(correct, n)),
        "macro_f1": float(_macro_f1(cm)),
        "macro_f1_ci95": list(bootstrap_interval("macro_f1", labels, predicted, n_classes=k, seed=seed)),
        "balanced_accuracy": float(_balanced_accuracy(cm)),
        "per_class_recall": recalls,
    }


# --- confidence thresholds ------------------------------------------------------------------


def threshold_curve(probs, labels) -> list[list[float]]:
    """[[confidence, correct], ...] of each image, most confident first: what a threshold decides on.

    Stored with a model (validation images), so the models page can show precision and coverage
    at any threshold without the images.
    """
    probs = np.asarray(probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    order = np.argsort(-confidence, kind="stable")
    return [[round(float(confidence[i]), 6), float(correct[i])] for i in order]


def at_threshold(curve: list[list[float]], threshold: float) -> dict:
    """What a threshold does on the curve's images: {threshold, accepted, coverage, precision, recall}.

    Accepted: confidence >= threshold. Precision: correct among the accepted; recall: correct
    and accepted among all images; coverage: accepted among all images.
    """
    n = len(curve)
    if n == 0:
        raise ValueError("no images to measure a threshold on")
    accepted = [correct for confidence, correct in curve if confidence >= threshold]
    hits = sum(accepted)
    return {
        "threshold": threshold,
        "accepted": len(accepted),
        "coverage": len(accepted) / n,
        "precision": hits / len(accepted) if accepted else None,
        "recall": hits / n,
    }


def threshold_for_precision(curve: list[list[float]], target: float) -> dict | None:
    """The lowest threshold whose accepted images reach ``target`` precision (so the most images
    are answered), with what it does; None when no threshold reaches it."""
    if not 0 < target <= 1:
        raise ValueError(f"a target precision is in (0, 1], got {target}")
    best, hits = None, 0
    for i, (confidence, correct) in enumerate(curve):  # most confident first
        hits += correct
        last_of_its_value = i + 1 == len(curve) or curve[i + 1][0] < confidence
        if last_of_its_value and hits / (i + 1) >= target:
            best = confidence
    return None if best is None else at_threshold(curve, best)
