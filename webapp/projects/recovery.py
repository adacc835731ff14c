"""Beat-driven recovery for datasets and storage: nothing stays "processing" forever, nothing is
left behind. The same rules as for training jobs (webapp.experiments.services): a stale heartbeat
fails the work with the reason, a message that vanished is re-sent a bounded number of times, and
when Redis cannot be read nothing is concluded. Why this shape: docs/decisions.md, "Nothing stays
processing, nothing is left behind".
"""

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.errors import Unavailable

from .dataset_files import dataset_mark_failed, feature_hash_in_use
from .datasets import dataset_publish_ingest
from .models import Dataset, Project, UploadSession

log = logging.getLogger(__name__)

Status = Dataset.Status
# Publishes of one ingest message, first send included, before a vanished message fails the dataset.
MAX_ENQUEUES = 3


def datasets_reap(*, now=None) -> list[int]:
    """Fail ingests whose heartbeat is older than TL_INGEST_STALE_SECONDS: their process is gone.

    An ingest beats from a thread every TL_HEARTBEAT_SECONDS, even inside one long extraction, so
    a stale beat means the process was killed (out of memory, a deploy, a crash). Its partial
    files are removed; its raw upload is kept, so that the version can be retried without
    uploading again. Returns the reaped ids.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TL_INGEST_STALE_SECONDS)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    candidates = Dataset.objects.filter(stale, status=Status.PROCESSING, started_at__isnull=False)
    reaped = []
    for pk, worker, beat in candidates.values_list("pk", "worker", "heartbeat_at"):
        since = f"{beat:%Y-%m-%d %H:%M:%S} UTC" if beat else "its start"
        message = (
            f"Ingest stopped: no sign of life from {worker or 'its worker'} since {since} (more than "
            f"{settings.TL_INGEST_STALE_SECONDS} s); the worker was probably killed (out of memory?). "
            "The upload is kept: retry, or delete this version."
        )
        # The staleness test is in the UPDATE too: a heartbeat that landed meanwhile keeps it alive.
        if dataset_mark_failed(dataset_id=pk, error=message, keep_upload=True, where=stale):
            log.error("dataset %s reaped: %s", pk, message)
            reaped.append(pk)
    return reaped


def datasets_requeue_orphans(*, now=None) -> dict[str, list[int]]:
    """Re-send ingests that no worker has started and whose message is in no queue.

    That happens when a web process dies between its commit and the publish, or when Redis lost
    its data. A dataset waiting TL_QUEUED_ORPHAN_SECONDS whose task id is neither in the default
    queue nor in kombu's unacked hash is re-sent under the same task id, at most MAX_ENQUEUES
    times in all, then failed with the reason (its upload kept). When Redis cannot be read
    nothing is concluded; a message sent twice is harmless, the claim lets one delivery through.
    """
    from webapp.core.broker import broker_name, lost_task_ids

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TL_QUEUED_ORPHAN_SECONDS)
    old = Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff)
    candidates = list(Dataset.objects.filter(old, status=Status.PROCESSING, started_at__isnull=True))
    outcome: dict[str, list[int]] = {"requeued": [], "failed": []}
    if not candidates:
        return outcome
    # Exact on Redis; on RabbitMQ only once the queue has drained (webapp/core/broker.py).
    lost = lost_task_ids([settings.CELERY_TASK_DEFAULT_QUEUE], [d.task_id for d in candidates if d.task_id])
    if lost is None:
        return outcome
    for dataset in candidates:
        if dataset.task_id and dataset.task_id not in lost:
            continue
        if dataset.enqueue_count >= MAX_ENQUEUES:
            message = (
                f"Ingest never started: its message was lost {dataset.enqueue_count} times before any worker "
                f"took it (is {broker_name()} losing data or restarting?). The upload is kept: retry."
            )
            if dataset_mark_failed(dataset_id=dataset.pk, error=message, keep_upload=True, where=old):
                outcome["failed"].append(dataset.pk)
            continue
        task_id = dataset.task_id or str(uuid.uuid4())
        if not Dataset.objects.filter(old, pk=dataset.pk, status=Status.PROCESSING, started_at__isnull=True).update(
            task_id=task_id
        ):
            continue  # a worker started it, or someone deleted it, since we looked
        log.warning("dataset %s: waiting for ingest but its message is gone; sending it again", dataset.pk)
        try:
            dataset_publish_ingest(dataset_id=dataset.pk, task_id=task_id, keep_upload=True)
        except Unavailable:
            outcome["failed"].append(dataset.pk)
            continue
        outcome["requeued"].append(dataset.pk)
    return outcome


def _id_suffix(name: str, prefix: str) -> str | None:
    rest = name.removeprefix(prefix)
    return rest if rest != name and rest else None


def _owned_upload(name: str) -> bool:
    if (dataset_id := _id_suffix(name, "dataset-")) is not None:
        # A ready dataset's upload is removed when it becomes ready; one still here was missed.
        return dataset_id.isdigit() and Dataset.objects.filter(pk=int(dataset_id)).exclude(status=Status.READY).exists()
    if (session_id := _id_suffix(name, "session-")) is not None:
        try:
            return UploadSession.objects.filter(pk=uuid.UUID(session_id)).exists()
        except ValueError:
            return False
    return True  # not a name this app writes: leave it to whoever wrote it


def _sweep(root, owned, cutoff: float) -> list[str]:
    removed = []
    if not root.is_dir():
        return removed
    for entry in sorted(root.iterdir()):
        if storage.newest_mtime(entry) > cutoff or owned(entry.name):
            continue
        storage.remove(entry)
        removed.append(f"{root.name}/{entry.name}")
    return removed


def _sweep_features(cutoff: float) -> list[str]:
    # Hidden names are temporary by construction: workers.ml.features writes `.<key>.tmp-*` and
    # renames it; one still there after the cutoff belongs to a killed extraction.
    removed = _sweep(
        storage.features_root(), lambda name: not name.startswith(".") and feature_hash_in_use(name), cutoff
    )
    root = storage.features_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_dir():
            removed += [f"features/{p}" for p in _sweep(folder, lambda name: not name.startswith("."), cutoff)]
    return removed


def _checkpoint_kept(name: str) -> bool:
    """A job's checkpoint stays while the job may continue (docs/decisions.md, "Resumable training jobs"):
    queued or running, or failed or cancelled and still its experiment's latest run."""
    from django.apps import apps

    if not name.isdigit():
        return True  # not a name this app writes
    # By name: experiments sits above projects.
    TrainingJob = apps.get_model("experiments", "TrainingJob")
    job = TrainingJob.objects.filter(pk=int(name)).values("status", "experiment_id", "created_at").first()
    if job is None or job["status"] == TrainingJob.Status.SUCCEEDED:
        return False
    if job["status"] in (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING):
        return True
    newer = TrainingJob.objects.filter(experiment_id=job["experiment_id"], created_at__gt=job["created_at"])
    return not newer.exists()


def storage_sweep() -> dict[str, list[str]]:
    """Remove what nothing owns, once untouched for TL_SWEEP_AFTER_SECONDS (beat runs this hourly).

    Staging folders no live process holds (their owner was killed); feature caches of a content
    no dataset has any more (a delete that raced a running extraction, or the old flat layout)
    and half-written entries; checkpoints of jobs that are gone, succeeded or superseded by a newer
    run of their experiment; uploads and dataset folders whose row is gone (a web process killed
    mid-upload) or whose dataset is ready; stored prediction images of deleted projects; export
    folders whose row is gone (an export that finished as its model was deleted); with an object
    store, the same there, and files no manifest points at (a writer killed mid-upload). The age
    check spares work that is just starting (a row not yet committed); the lock spares any
    staging folder in use, however old.
    """
    age = settings.TL_SWEEP_AFTER_SECONDS
    cutoff = time.time() - age

    def dataset_exists(name: str) -> bool:
        return not name.isdigit() or Dataset.objects.filter(pk=int(name)).exists()

    def project_exists(name: str) -> bool:
        return not name.isdigit() or Project.objects.filter(pk=int(name)).exists()

    def export_exists(name: str) -> bool:
        from django.apps import apps

        # By name: exports sits above projects.
        return not name.isdigit() or apps.get_model("exports", "ModelExport").objects.filter(pk=int(name)).exists()

    def model_exists(name: str) -> bool:
        from django.apps import apps

        # By name: experiments sits above projects.
        return not name.isdigit() or apps.get_model("experiments", "TrainedModel").objects.filter(pk=int(name)).exists()

    removed = {
        "staging": storage.staging_sweep(older_than=age),
        "features": _sweep_features(cutoff),
        "uploads": _sweep(storage.uploads_root(), _owned_upload, cutoff),
        "datasets": _sweep(storage.datasets_root(), dataset_exists, cutoff),
        "predictions": _sweep(storage.predictions_root(), project_exists, cutoff),
        "checkpoints": _sweep(storage.checkpoints_root(), _checkpoint_kept, cutoff),
        "exports": _sweep(storage.exports_root(), export_exists, cutoff),
    }
    # The object store (docs/architecture.md, "Object storage"): the same owners, plus models whose row
    # is gone (a commit that failed after the upload), and the files of writers killed before their manifest.
    removed["store"] = objectstore.sweep(
        cutoff=cutoff,
        owned={
            "features": feature_hash_in_use,
            "uploads": _owned_upload,
            "datasets": dataset_exists,
            "predictions": project_exists,
            "checkpoints": _checkpoint_kept,
            "exports": export_exists,
            "models": model_exists,
        },
    )
    if any(removed.values()):
        log.info("storage sweep removed %s", {kind: names for kind, names in removed.items() if names})
    return removed
