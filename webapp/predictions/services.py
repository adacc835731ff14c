"""Predictions: check the images, run the cached model, log the call (DESIGN §6)."""

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from rest_framework.exceptions import APIException

from webapp.core import storage
from webapp.core.errors import ServiceError, Unavailable
from webapp.experiments.models import TrainedModel
from webapp.projects.ingest.images import ImageRejected
from webapp.projects.models import Project

from .errors import InputErrors
from .images import CheckedImage, check_image
from .models import PredictionLog
from .serving import model_cache

log = logging.getLogger(__name__)


def images_check(*, inputs: list[tuple]) -> list[CheckedImage]:
    """Run every input, given as (field name, bytes), through the Pillow checks.

    Raises InputErrors naming each bad input's field and index: empty request, too many images,
    empty, too large, not an image, too many pixels, corrupt.
    """
    if not inputs:
        raise InputErrors(
            [
                {
                    "field": None,
                    "message": "empty request: send one or more images as multipart field "
                    '\'image\' or as JSON {"instances": [{"b64": "..."}]}',
                }
            ]
        )
    limit = settings.TL_PREDICT_MAX_IMAGES
    if len(inputs) > limit:
        raise InputErrors(
            [
                {
                    "field": None,
                    "message": f"too many images: {len(inputs)} sent, the limit is {limit} per request "
                    "(TL_PREDICT_MAX_IMAGES)",
                }
            ]
        )
    checked, errors = [], []
    for index, (name, data, *label) in enumerate(inputs):
        try:
            checked.append(
                check_image(
                    data, max_bytes=settings.TL_PREDICT_MAX_IMAGE_BYTES, max_pixels=settings.TL_IMAGE_MAX_PIXELS
                )
            )
        except ImageRejected as exc:
            where = label[0] if label else name
            errors.append({"field": name, "index": index, "message": f"{where} (input {index}): {exc}"})
    if errors:
        raise InputErrors(errors)
    return checked


def predict_images(*, model: TrainedModel, images: list[CheckedImage], top_k: int | None = None) -> dict:
    """Probabilities for `images` from `model`, in input order (the DESIGN §6 response body).

    Each prediction lists the `top_k` most probable classes (all when None), most probable first.
    Raises Unavailable (503) when the model file cannot be loaded.
    """
    from workers.ml.errors import MLError

    try:
        loaded = model_cache().get(model)
    except MLError as exc:
        log.error("model %s could not be loaded: %s", model.pk, exc)
        raise Unavailable(f"Model {model.pk} (v{model.version}) could not be loaded: {exc}") from None
    probs = loaded.predict([image.array for image in images])
    names = list(loaded.class_names)
    k = len(names) if top_k is None else min(top_k, len(names))
    predictions = []
    for row in probs:
        order = sorted(range(len(names)), key=lambda i: -float(row[i]))[:k]
        predictions.append(
            {
                "label": names[order[0]],
                "confidence": float(row[order[0]]),
                "probabilities": {names[i]: float(row[i]) for i in order},
            }
        )
    return {
        "model": {"id": model.pk, "version": model.version, "project": model.project_id},
        "predictions": predictions,
    }


def serving_warm(*, model: TrainedModel) -> bool:
    """Load `model` into this process's cache now (publishing calls it), so the first prediction
    does not pay for the load. A model that cannot be loaded is logged, not raised: the predict
    endpoint then answers 503 with the reason."""
    from workers.ml.errors import MLError

    try:
        model_cache().get(model)
    except MLError as exc:
        log.error("published model %s could not be loaded: %s", model.pk, exc)
        return False
    return True


def prediction_log_create(
    *,
    project: Project,
    model: TrainedModel | None,
    image_count: int,
    latency_ms: float,
    status_code: int,
    images: list[CheckedImage] = (),
) -> PredictionLog:
    """Record one predict call; keep its images only when the project opted in."""
    entry = PredictionLog.objects.create(
        project=project, model=model, image_count=image_count, latency_ms=latency_ms, status_code=status_code
    )
    if project.store_predictions and images:
        folder = storage.storage_root() / "predictions" / str(project.pk) / f"{entry.created_at:%Y-%m-%d}"
        for index, image in enumerate(images):
            storage.atomic_write_bytes(folder / f"{entry.pk}-{index}.{image.extension}", image.data)
    return entry


@dataclass
class PredictionCall:
    """What a predict request got to before it ended; filled in by the view as it goes."""

    project: Project
    model: TrainedModel | None = None
    image_count: int = 0
    images: list[CheckedImage] = field(default_factory=list)


def _status_for(exc: Exception) -> int:
    if isinstance(exc, ServiceError | APIException):
        return exc.status_code
    if getattr(exc, "status_code", None):
        return exc.status_code
    return 500


@contextmanager
def prediction_logged(*, project: Project, model: TrainedModel | None = None):
    """Time the block and log it as one PredictionLog, with the status its outcome answers."""
    call = PredictionCall(project=project, model=model)
    started = time.perf_counter()
    status_code = 500
    try:
        yield call
        status_code = 200
    except Exception as exc:
        status_code = _status_for(exc)
        raise
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        prediction_log_create(
            project=project,
            model=call.model,
            image_count=call.image_count,
            latency_ms=latency_ms,
            status_code=status_code,
            images=call.images if status_code == 200 else [],
        )
