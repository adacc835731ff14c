"""Handing a training job to the broker: its task id is stored first and the message sent on commit
(docs/architecture.md, "An experiment's path, from the form to a saved model")."""

import logging

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from webapp.core.errors import Unavailable
from webapp.core.redact import without_server_paths

from .models import TrainingJob
from .tasks import run_training_job

log = logging.getLogger(__name__)


class BrokerUnavailable(Unavailable):
    """The job could not be handed to the queue; it is already marked failed with the reason."""

    def __init__(self, message: str, *, job: TrainingJob):
        super().__init__(message)
        self.job = job


def training_queue(config: dict) -> str:
    """The queue an experiment's jobs go to, by its `device`: gpu to `training-gpu`, auto and cpu to
    `training` (docs/decisions.md, "A GPU queue"). Configs saved before `device` existed are auto."""
    return settings.TL_TRAINING_QUEUES[config.get("device") or "auto"]


# How many of the latest succeeded bottleneck jobs on the same data are looked through for a match.
_FEATURE_RUNS_LOOKED_AT = 100


def features_cached(experiment) -> bool:
    """Whether a bottleneck experiment's features were already computed: an earlier job on a dataset of
    the same content succeeded with the same base (backbone, weights, image size and, for random
    weights, seed), in a precision this one accepts.

    A guess from the database, which the web process can make without TensorFlow or the cache's
    folders; the worker decides by what it finds on disk, and extracts if the guess was wrong.
    """
    if experiment.mode != "bottleneck":
        return False
    config = experiment.config
    same_base = ("image_size", "weights", *(("seed",) if config.get("weights") == "none" else ()))
    wanted = config.get("precision") or "auto"
    dataset = experiment.dataset
    # Not hashed yet: only this very dataset shares its features.
    same_data = (
        {"experiment__dataset__content_hash": dataset.content_hash}
        if dataset.content_hash
        else {"experiment__dataset": dataset}
    )
    runs = (
        TrainingJob.objects.filter(
            status=TrainingJob.Status.SUCCEEDED,
            experiment__mode="bottleneck",
            experiment__backbone=experiment.backbone,
            **same_data,
        )
        .order_by("-finished_at")
        .values_list("experiment__config", "result__timings__precision__used")[:_FEATURE_RUNS_LOOKED_AT]
    )
    return any(
        all(earlier.get(key) == config.get(key) for key in same_base) and wanted in ("auto", used or "float32")
        for earlier, used in runs
    )


def job_queue(job: TrainingJob) -> str:
    """Where `job` goes: a CPU bottleneck job whose features are cached goes to the warm worker's queue
    (TL_WARM_QUEUE, when set), everything else by its device (docs/decisions.md, "A warm worker for
    head-only jobs")."""
    queue = training_queue(job.experiment.config)
    if settings.TL_WARM_QUEUE and queue == settings.TL_TRAINING_QUEUES["cpu"] and features_cached(job.experiment):
        return settings.TL_WARM_QUEUE
    return queue


def job_enqueue(*, job: TrainingJob, countdown: float | None = None) -> None:
    """Publish the job's message under its stored task id; if the broker is down, fail the job.

    We fail rather than leave the job queued for the reaper to re-send: the user who pressed
    "start" learns at once that nothing will run, no job sits "queued" with no message behind
    it, and a retry is one click once the broker is back. CELERY_BROKER_CONNECTION_TIMEOUT and
    CELERY_TASK_PUBLISH_RETRY=False make this answer within seconds instead of hanging.
    """
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis.exceptions import RedisError

    from webapp.core.broker import broker_name

    queue = job_queue(job)
    try:
        run_training_job.apply_async(args=[job.pk], task_id=str(job.task_id), countdown=countdown, queue=queue)
    except (KombuOperationalError, RedisError, OSError) as exc:
        message = (
            f"Could not reach the job queue ({broker_name()}) to start this job: {without_server_paths(str(exc))}. "
            "Nothing ran; retry the job once the queue is back."
        )
        TrainingJob.objects.filter(pk=job.pk, status=TrainingJob.Status.QUEUED).update(
            status=TrainingJob.Status.FAILED, error=message, finished_at=timezone.now()
        )
        log.error("job %s: enqueue failed: %s", job.pk, exc)
        raise BrokerUnavailable(message, job=job) from exc
    TrainingJob.objects.filter(pk=job.pk).update(
        enqueue_count=F("enqueue_count") + 1, enqueued_at=timezone.now(), queue=queue
    )
