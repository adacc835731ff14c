"""Predictions: check the images, run the cached model, log the call.

See docs/architecture.md, "The API contract".
"""

import base64
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from rest_framework.exceptions import APIException

from webapp.core import objectstore, storage
from webapp.core.errors import ServiceError, TooLarge, Unavailable
from webapp.experiments.models import TrainedModel
from webapp.projects.models import Project

from .errors import InputErrors
from .images import CheckedImage, ImageRejected, check_image, pixels_to_decode, read_checked_header
from .models import PredictionLog
from .serving import model_cache

log = logging.getLogger(__name__)


_work_slots: threading.BoundedSemaphore | None = None
_work_slots_lock = threading.Lock()


def predict_work_slot() -> threading.BoundedSemaphore:
    """At most TL_PREDICT_CONCURRENCY requests of this process decode and predict at once."""
    global _work_slots
    with _work_slots_lock:
        if _work_slots is None:
            _work_slots = threading.BoundedSemaphore(settings.TL_PREDICT_CONCURRENCY)
        return _work_slots


def _input_error(index: int, name: str, label: list, exc: Exception) -> dict:
    where = label[0] if label else name
    return {"field": name, "index": index, "message": f"{where} (input {index}): {exc}"}


def images_check(*, inputs: list[tuple], image_size: tuple[int, int]) -> list[CheckedImage]:
    """Check every input, given as (field name, bytes[, label]), and decode it for a model of
    ``image_size`` with the decoder training used.

    Raises InputErrors naming each bad input's field and index (empty request, too many images,
    empty, too large, not an image, too many pixels, corrupt), and TooLarge (413) when the
    images together would decode more than TL_PREDICT_MAX_REQUEST_PIXELS: that is known from
    their headers, before any pixel is decoded.
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
    max_bytes, max_pixels = settings.TL_PREDICT_MAX_IMAGE_BYTES, settings.TL_IMAGE_MAX_PIXELS
    errors, total, headers = [], 0, []
    for index, (name, data, *label) in enumerate(inputs):
        try:
            headers.append(read_checked_header(data, max_bytes=max_bytes, max_pixels=max_pixels))
            total += pixels_to_decode(headers[-1], image_size)
        except ImageRejected as exc:
            errors.append(_input_error(index, name, label, exc))
    if errors:
        raise InputErrors(errors)
    budget = settings.TL_PREDICT_MAX_REQUEST_PIXELS
    if total > budget:
        raise TooLarge(
            f"These {len(inputs)} images would decode {total:,} pixels in all; one request may decode at most "
            f"{budget:,} (TL_PREDICT_MAX_REQUEST_PIXELS). Send fewer or smaller images per request."
        )
    checked = []
    for index, ((name, data, *label), header) in enumerate(zip(inputs, headers, strict=True)):
        try:
            checked.append(
                check_image(data, image_size=image_size, max_bytes=max_bytes, max_pixels=max_pixels, header=header)
            )
        except ImageRejected as exc:
            errors.append(_input_error(index, name, label, exc))
    if errors:
        raise InputErrors(errors)
    return checked


def _loaded(model: TrainedModel):
    from workers.ml.errors import MLError

    try:
        return model_cache().get(model)
    except MLError as exc:
        log.error("model %s could not be loaded: %s", model.pk, exc)
        raise Unavailable(f"Model {model.pk} (v{model.version}) could not be loaded: {exc}") from None


def _explain(model: TrainedModel, loaded, batch: np.ndarray, classes: list[int]) -> list[tuple[str, bytes]]:
    """(layer, PNG overlay) of each image's Grad-CAM heatmap for its class in `classes` (workers/ml/gradcam.py)."""
    from workers.ml.errors import MLError
    from workers.ml.gradcam import overlay_png

    try:
        explanations = loaded.explain(batch, classes)
    except MLError as exc:
        raise ServiceError(f"Model {model.pk} (v{model.version}) cannot be explained: {exc}.") from None
    return [(e.layer, overlay_png(image, e.heatmap)) for image, e in zip(batch, explanations, strict=True)]


def predict_images(
    *, model: TrainedModel, images: list[CheckedImage], top_k: int | None = None, explain: bool = False
) -> dict:
    """Probabilities for `images` from `model`, in input order (the API's response body).

    Each prediction lists the `top_k` most probable classes (all when None), most probable first,
    and is `accepted` when its confidence reaches the model's threshold (always, without one): a
    client answers "unknown" for the others. With `explain`, each also carries a Grad-CAM overlay of
    where the model looked for its answer, as base64 PNG (callers bound how many images ask for one).
    Raises Unavailable (503) when the model file cannot be loaded.
    """
    loaded = _loaded(model)
    batch = np.stack([image.array for image in images])
    probs = loaded.run(batch)
    overlays = _explain(model, loaded, batch, probs.argmax(axis=1).tolist()) if explain else None
    names = list(loaded.class_names)
    k = len(names) if top_k is None else min(top_k, len(names))
    threshold = model.threshold
    predictions = []
    for index, row in enumerate(probs):
        order = sorted(range(len(names)), key=lambda i: -float(row[i]))[:k]
        confidence = float(row[order[0]])
        prediction = {
            "label": names[order[0]],
            "confidence": confidence,
            "accepted": threshold is None or confidence >= threshold,
            "probabilities": {names[i]: float(row[i]) for i in order},
        }
        if overlays is not None:
            layer, png = overlays[index]
            prediction["explanation"] = {"layer": layer, "png_base64": base64.b64encode(png).decode("ascii")}
        predictions.append(prediction)
    return {
        "model": {"id": model.pk, "version": model.version, "project": model.project_id, "threshold": threshold},
        "predictions": predictions,
    }


def explanation_png(*, model: TrainedModel, data: bytes) -> bytes:
    """A Grad-CAM overlay (PNG) of one stored image of the model's dataset, for its predicted class.

    Decoded as evaluation decoded it, at the model's input size; the model comes from this process's
    serving cache, as for predict (the galleries' overlays: webapp/predictions/views.py)."""
    image = check_image(
        data,
        image_size=tuple(model.image_size),
        max_bytes=max(len(data), 1),
        max_pixels=settings.TL_IMAGE_MAX_PIXELS,
    )
    loaded = _loaded(model)
    batch = image.array[None]
    predicted = int(loaded.run(batch).argmax(axis=1)[0])
    return _explain(model, loaded, batch, [predicted])[0][1]


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
        # One folder per call: an object of its own in an object store (docs/architecture.md, "Object storage").
        folder = storage.predictions_dir(project.pk) / f"{entry.created_at:%Y-%m-%d}" / str(entry.pk)
        for index, image in enumerate(images):
            storage.atomic_write_bytes(folder / f"{index}.{image.extension}", image.data)
        objectstore.publish(storage.key_of(folder))
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
