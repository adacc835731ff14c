"""Writes for data maps (docs/decisions.md, "Error analysis"): ask for a model's map, run it in a worker.

One map per trained model. Asking again returns it as it is, unless it failed (or a worker died
running it), in which case it is queued again. Status changes are conditional UPDATEs whose row
counts are checked, as for exports. The engine (workers.ml.datamap, so TensorFlow and scikit-learn)
is imported inside `data_map_run` only, which runs in a worker's child process.
"""

import logging
import uuid
from datetime import timedelta
from functools import partial

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.errors import ServiceError, Unavailable
from webapp.core.redact import without_server_paths

from .models import DataMap, TrainedModel
from .tasks import run_data_map

log = logging.getLogger(__name__)

Status = DataMap.Status
QUEUE_DOWN = "the job queue (Redis) could not be reached"
# A running map older than the task's hard time limit (plus a margin) has no process left.
STALE_AFTER = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300)


def data_map_request(*, model: TrainedModel, seed: int = 0) -> tuple[DataMap, bool]:
    """The model's data map, and whether this call queued work. A new map, one that failed or one
    whose worker stopped answering is queued, its task sent once the transaction commits; Unavailable
    (with the map failed) when the queue cannot be reached."""
    cutoff = timezone.now() - STALE_AFTER
    with transaction.atomic():
        try:
            with transaction.atomic():
                data_map = DataMap.objects.create(model=model, seed=seed)
        except IntegrityError:
            data_map = DataMap.objects.get(model=model)
            again = DataMap.objects.filter(pk=data_map.pk, status=Status.FAILED) | DataMap.objects.filter(
                pk=data_map.pk, status=Status.RUNNING, started_at__lt=cutoff
            )
            if not again.update(
                status=Status.QUEUED, task_id=str(uuid.uuid4()), error="", worker="", started_at=None, finished_at=None
            ):
                return data_map, False
        transaction.on_commit(partial(data_map_publish, data_map_id=data_map.pk))
    data_map.refresh_from_db()
    return data_map, True


def data_map_publish(*, data_map_id: int) -> None:
    """Send the map's task under its stored id; on a broker error fail it and raise Unavailable."""
    from kombu.exceptions import KombuError
    from redis.exceptions import RedisError

    task_id = DataMap.objects.filter(pk=data_map_id).values_list("task_id", flat=True).first()
    if task_id is None:
        return
    try:
        run_data_map.apply_async(args=[data_map_id], task_id=task_id)
    except (KombuError, RedisError, OSError) as exc:
        log.error("data map %s: could not enqueue it: %s", data_map_id, exc)
        message = f"The map could not start: {QUEUE_DOWN}. Nothing ran; ask again once the queue is back."
        _fail(data_map_id, message, where_status=Status.QUEUED)
        raise Unavailable(message) from exc


def data_map_run(*, data_map_id: int, worker: str) -> str:
    """Claim the map, compute it with the engine and store it: "ready", "failed", "skipped" (not
    claimable: a redelivery) or "deleted" (its model went while it ran)."""
    from celery.exceptions import SoftTimeLimitExceeded

    from workers.ml.errors import MLError

    claimed = DataMap.objects.filter(pk=data_map_id, status=Status.QUEUED).update(
        status=Status.RUNNING, worker=worker[:255], started_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    data_map = DataMap.objects.select_related("model__experiment").get(pk=data_map_id)
    try:
        result = _compute(data_map)
    except MLError as exc:
        message = without_server_paths(str(exc))
    except SoftTimeLimitExceeded:
        message = f"The map took longer than the time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) and was stopped."
    except ServiceError as exc:
        message = exc.message
    except Exception as exc:
        log.exception("data map %s failed unexpectedly", data_map_id)
        message = f"The map failed unexpectedly ({type(exc).__name__}: {without_server_paths(str(exc))})."
    else:
        done = DataMap.objects.filter(pk=data_map_id, status=Status.RUNNING).update(
            status=Status.READY, result=result, finished_at=timezone.now()
        )
        return "ready" if done else "deleted"
    return "failed" if _fail(data_map_id, message) else "deleted"


def _compute(data_map: DataMap) -> dict:
    from workers.ml.datamap import map_dataset

    model = data_map.model
    # This host's copies of the model and its dataset (docs/architecture.md, "Object storage").
    try:
        with (
            objectstore.using(model.path) as model_dir,
            objectstore.using(storage.key_of(storage.dataset_dir(model.experiment.dataset_id))) as dataset_dir,
        ):
            mapped = map_dataset(
                model_dir=model_dir, sha256=model.checksum, dataset_dir=dataset_dir, seed=data_map.seed
            )
    except objectstore.ObjectMissing as exc:
        raise ServiceError(f"The model's or its dataset's files are missing from storage ({exc}).") from None
    return {
        "class_names": mapped.class_names,
        "paths": mapped.paths,
        "labels": mapped.labels,
        "probabilities": np.round(mapped.probabilities, 4).tolist(),
        "coordinates": np.round(mapped.coordinates, 3).tolist(),
    }


def _fail(data_map_id: int, message: str, *, where_status: str = Status.RUNNING) -> bool:
    failed = DataMap.objects.filter(pk=data_map_id, status=where_status).update(
        status=Status.FAILED, error=message, finished_at=timezone.now()
    )
    if failed:
        log.warning("data map %s failed: %s", data_map_id, message)
    return bool(failed)
