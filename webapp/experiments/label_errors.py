"""Likely label errors of a dataset version (docs/decisions.md, "Likely label errors").

    features_experiment(dataset) -> Experiment | None
        whose features to use: the newest bottleneck or fine-tune experiment on the dataset with a
        succeeded run (its feature cache entry exists), else the newest such experiment at all (the
        task extracts and stores the entry); None when the dataset has neither (scratch only).
    label_review_start(*, dataset) -> LabelReview     queue the task (again); the ranking is replaced
    label_review_run(*, review_id, worker) -> str     the task's body (the `default` queue)
    label_review_for(dataset) -> LabelReview | None   with a run older than the time limit failed

The engine (workers.ml.label_errors, and so TensorFlow, scikit-learn and cleanlab) is imported inside
`label_review_run` only, in a worker's child process.
"""

import logging
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.errors import Conflict, Unavailable
from webapp.core.redact import without_server_paths
from webapp.projects.models import Dataset

from .models import Experiment, LabelReview, TrainingJob

log = logging.getLogger(__name__)

Status = LabelReview.Status
# A running review older than the task's hard time limit (plus a margin) has no process left.
STALE_AFTER = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300)
NO_FEATURES = (
    "No experiment on this dataset version has bottleneck features to look with: run a bottleneck "
    "experiment on it first."
)


def features_experiment(dataset: Dataset) -> Experiment | None:
    """See the module doc: the experiment whose backbone, weights and image size give the features."""
    candidates = Experiment.objects.filter(
        dataset=dataset, mode__in=[Experiment.Mode.BOTTLENECK, Experiment.Mode.FINETUNE]
    ).order_by("-created_at", "-pk")
    trained = candidates.filter(jobs__status=TrainingJob.Status.SUCCEEDED).distinct().first()
    return trained or candidates.first()


def _feature_settings(experiment: Experiment) -> dict:
    config = experiment.config
    return {
        "backbone": config["backbone"],
        "weights": config.get("weights", "imagenet"),
        "image_size": list(config["image_size"]),
        "seed": int(config.get("seed", 0)),
    }


def label_review_for(dataset: Dataset) -> LabelReview | None:
    """The dataset's review; one stuck running past the time limit is failed first (its worker is gone)."""
    LabelReview.objects.filter(
        dataset=dataset, status=Status.RUNNING, started_at__lt=timezone.now() - STALE_AFTER
    ).update(
        status=Status.FAILED,
        error="The worker finding label errors stopped without finishing; ask again.",
        finished_at=timezone.now(),
    )
    return LabelReview.objects.filter(dataset=dataset).select_related("experiment").first()


def label_review_start(*, dataset: Dataset) -> LabelReview:
    """Queue (or queue again) the search for `dataset`'s likely label errors; its task is sent on commit.

    Conflict when the version is not ready, has no features to look with, or a search is queued or
    running; Unavailable (with the review failed) when the queue cannot be reached.
    """
    if not dataset.is_ready:
        raise Conflict(
            f"Dataset v{dataset.version} is {dataset.status}; label errors are looked for in a ready version."
        )
    experiment = features_experiment(dataset)
    if experiment is None:
        raise Conflict(NO_FEATURES)
    label_review_for(dataset)
    fields = {
        "experiment": experiment,
        "features": _feature_settings(experiment),
        "status": Status.QUEUED,
        "task_id": str(uuid.uuid4()),
        "worker": "",
        "progress": 0.0,
        "result": {},
        "error": "",
        "started_at": None,
        "finished_at": None,
    }
    with transaction.atomic():
        review = LabelReview.objects.select_for_update().filter(dataset=dataset).first()
        if review is not None and review.status in (Status.QUEUED, Status.RUNNING):
            raise Conflict("Label errors are being looked for already; this page updates when they are found.")
        if review is None:
            review = LabelReview.objects.create(dataset=dataset, **fields)
        else:
            LabelReview.objects.filter(pk=review.pk).update(**fields)
            review.refresh_from_db()
        transaction.on_commit(lambda: _publish(review))
    return review


def _publish(review: LabelReview) -> None:
    from kombu.exceptions import KombuError
    from redis.exceptions import RedisError

    from .tasks import find_label_errors

    try:
        find_label_errors.apply_async(args=[review.pk], task_id=review.task_id)
    except (KombuError, RedisError, OSError) as exc:
        log.error("label review %s: could not enqueue it: %s", review.pk, exc)
        message = "Could not reach the job queue to look for label errors. Nothing ran; ask again once it is back."
        _finish(review.pk, Status.FAILED, error=message, where_status=Status.QUEUED)
        raise Unavailable(message) from exc


def _finish(review_id: int, status: str, *, where_status=Status.RUNNING, **fields) -> bool:
    return bool(
        LabelReview.objects.filter(pk=review_id, status=where_status).update(
            status=status, finished_at=timezone.now(), **fields
        )
    )


def label_review_run(*, review_id: int, worker: str) -> str:
    """Claim the review, rank the dataset's likely label errors and store them: "ready", "failed",
    "skipped" (not claimable: a redelivery) or "deleted" (its dataset went meanwhile)."""
    from celery.exceptions import SoftTimeLimitExceeded

    from workers.ml.errors import MLError

    claimed = LabelReview.objects.filter(pk=review_id, status=Status.QUEUED).update(
        status=Status.RUNNING, worker=worker[:255], started_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    review = LabelReview.objects.select_related("dataset").get(pk=review_id)
    try:
        result = _rank(review)
    except MLError as exc:
        message = without_server_paths(str(exc))
    except objectstore.ObjectMissing:
        message = f"Dataset v{review.dataset.version}'s files are missing from storage (deleted meanwhile?)."
    except SoftTimeLimitExceeded:
        message = (
            f"Looking for label errors took longer than the time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s)."
        )
    except Exception as exc:
        log.exception("label review %s failed unexpectedly", review_id)
        message = (
            f"Looking for label errors failed unexpectedly ({type(exc).__name__}: {without_server_paths(str(exc))})."
        )
    else:
        done = _finish(review_id, Status.READY, result=result, progress=1.0, error="")
        return "ready" if done else "deleted"
    return "failed" if _finish(review_id, Status.FAILED, error=message) else "deleted"


def _rank(review: LabelReview) -> dict:
    from workers.ml.label_errors import dataset_label_errors

    dataset, f = review.dataset, review.features
    features_key = storage.key_of(storage.features_dir(dataset.feature_hash))
    with objectstore.using(storage.key_of(storage.dataset_dir(dataset.pk))) as dataset_dir:
        objectstore.fetch_children(features_key)  # the entry a training run published, perhaps on another host
        try:
            found = dataset_label_errors(
                dataset_dir=dataset_dir,
                cache_dir=storage.features_dir(dataset.feature_hash),
                dataset_hash=dataset.feature_hash,
                backbone=f["backbone"],
                weights=f["weights"],
                image_size=tuple(f["image_size"]),
                seed=f["seed"],
                weights_dir=Path(settings.TL_WEIGHTS_DIR) if settings.TL_WEIGHTS_DIR else None,
                on_progress=lambda fraction: LabelReview.objects.filter(pk=review.pk, status=Status.RUNNING).update(
                    progress=round(min(fraction, 0.99), 3)
                ),
            )
        finally:
            objectstore.publish_children(features_key)  # so that training elsewhere reuses what was extracted
    return {
        "class_names": found.class_names,
        "images": found.images,
        "folds": found.folds,
        "cache_hit": found.cache_hit,
        "issues": found.issues,
    }
