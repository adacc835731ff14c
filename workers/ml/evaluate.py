"""Validation metrics in plain numpy (no sklearn dependency)."""

from __future__ import annotations

import numpy as np


def evaluate(
    probs: np.ndarray, labels: np.ndarray, class_names: list[str], paths: list[str], *, top_mistakes: int = 10
) -> dict:
    """Accuracy, confusion matrix (rows = true, columns = predicted, in ``labels`` order),
    per-class precision/recall/F1/support and the most confidently wrong images.

    ``probs`` is (N, n_classes); ``paths`` are relative to the dataset folder.
    """
    n = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = probs.argmax(axis=1)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = int(matrix[i, i])
        predicted_i = int(matrix[:, i].sum())
        support = int(matrix[i, :].sum())
        precision = tp / predicted_i if predicted_i else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    wrong = np.flatnonzero(predicted != labels)
    confidence = probs[wrong, predicted[wrong]] if len(wrong) else np.array([])
    order = wrong[np.argsort(-confidence, kind="stable")][:top_mistakes]
    mistakes = [
        {
            "path": paths[i],
            "true": class_names[labels[i]],
            "predicted": class_names[predicted[i]],
            "confidence": float(probs[i, predicted[i]]),
            "probabilities": {c: float(probs[i, j]) for j, c in enumerate(class_names)},
        }
        for i in order
    ]
    return {
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "labels": list(class_names),
        "confusion_matrix": matrix.tolist(),
        "per_class": per_class,
        "confident_mistakes": mistakes,
    }
