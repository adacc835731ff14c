"""A model's confidence threshold: predictions below it answer "unknown".

The threshold is chosen on validation images, never test: each succeeded job stores their
calibrated confidences as ``result["threshold_curve"]`` ([[confidence, correct], ...], most
confident first), and ``workers.ml.stats`` measures any threshold on it.
"""

import math

from webapp.core.errors import Conflict, ServiceError
from workers.ml.stats import at_threshold, threshold_for_precision

from .models import TrainedModel


def validation_curve(model: TrainedModel) -> list | None:
    """The model's [[confidence, correct], ...] on validation; None for a model trained before it was stored."""
    curve = (model.job.result or {}).get("threshold_curve")
    return curve or None


def threshold_effect(model: TrainedModel) -> dict | None:
    """What the model's threshold does on validation, {threshold, accepted, coverage, precision,
    recall}; None without a threshold or a curve."""
    curve = validation_curve(model)
    if model.threshold is None or curve is None:
        return None
    return at_threshold(curve, model.threshold)


def _checked_fraction(value, *, field: str, what: str, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ServiceError(f"{what} must be a number from 0 to 1, got {value!r}.", field=field)
    if not (0 < value <= 1 if low_open else 0 <= value <= 1):
        bounds = "above 0 and at most 1" if low_open else "from 0 to 1"
        raise ServiceError(f"{what} must be {bounds} (a fraction: 0.9 for 90%), got {value}.", field=field)
    return float(value)


def trained_model_threshold_set(*, model: TrainedModel, threshold: float | None) -> TrainedModel:
    """Predictions of `model` less confident than `threshold` (in [0, 1]) answer accepted: false
    from the next request on; None accepts every prediction again."""
    if threshold is not None:
        threshold = _checked_fraction(threshold, field="threshold", what="A threshold")
    TrainedModel.objects.filter(pk=model.pk).update(threshold=threshold)
    model.threshold = threshold
    return model


def _best_precision(curve: list) -> tuple[float, float]:
    """(precision, threshold) of the most precise threshold on the curve, the lowest such on ties."""
    best, best_at, hits = -1.0, 1.0, 0
    for i, (confidence, correct) in enumerate(curve):
        hits += correct
        if (i + 1 == len(curve) or curve[i + 1][0] < confidence) and hits / (i + 1) >= best:
            best, best_at = hits / (i + 1), confidence
    return best, best_at


def trained_model_threshold_for_precision(*, model: TrainedModel, target: float) -> TrainedModel:
    """Set the lowest threshold whose accepted validation images reach `target` precision, so that
    the most images are still answered.

    Conflict when the model has no validation curve (trained before one was stored) or when no
    threshold reaches the target; the message then gives the best precision there is.
    """
    target = _checked_fraction(target, field="target_precision", what="A target precision", low_open=True)
    curve = validation_curve(model)
    if curve is None:
        raise Conflict(
            f"Model v{model.version} has no validation curve (it was trained before TransferLab stored one), "
            "so no threshold can be chosen for a precision; set a threshold instead.",
            field="target_precision",
        )
    chosen = threshold_for_precision(curve, target)
    if chosen is None:
        best, at = _best_precision(curve)
        raise Conflict(
            f"No threshold reaches {target:.1%} precision on model v{model.version}'s {len(curve)} validation "
            f"images; the most is {best:.1%}, at threshold {at:.1%}.",
            field="target_precision",
        )
    return trained_model_threshold_set(model=model, threshold=chosen["threshold"])


def threshold_controls(models) -> list[dict]:
    """The models page's threshold control per model: its saved threshold's effect, the slider's
    starting value (percent) and the validation curve the page measures other thresholds on."""
    rows = []
    for model in models:
        curve = validation_curve(model)
        percent = 0.0 if model.threshold is None else model.threshold * 100
        rows.append(
            {
                "model": model,
                "curve": curve,
                "effect": threshold_effect(model),
                "value": f"{percent:.4f}".rstrip("0").rstrip("."),
            }
        )
    return rows
