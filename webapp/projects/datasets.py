"""Dataset services: every way in ends in one ingest and the canonical layout (docs/architecture.md, "An upload's path to a dataset version").

Signatures (keyword-only; ServiceError subclasses carry a user-facing message and status_code):

    dataset_create_from_archive(*, project, uploaded_file, user) -> Dataset
        Stream a zip upload to storage, create the next version (status processing) and
        enqueue ingest on commit. ServiceError(400) for a non-zip or oversized upload;
        Unavailable(503) when the broker is down (the dataset is then failed, its upload removed).
    dataset_ingest(*, dataset_id, task_id=None, worker="") -> Dataset | None
        Run by the ingest_dataset task (tasks.py); claims the row first, so a second
        delivery is a no-op. Ends ready, or failed with an error naming files/classes.
    dataset_import_path(*, project, path, user=None) -> Dataset
        Ingest a folder or zip already on the server, synchronously (the import command).
    dataset_retry(*, dataset) -> Dataset      failed -> processing again, from the kept upload
    dataset_delete(*, dataset) -> None        Conflict(409) while an experiment uses it
    dataset_mark_failed(*, dataset_id, error, report=None, keep_upload=False) -> bool
    upload_limits() -> dict
        The limits shown on the upload page (bytes, entries, ratio, pixels, batch size).

Which failures keep the raw upload: those a retry can fix (the worker was killed, an unexpected
error, the queue was down on a retry or a re-send). A refused content is removed (the same bytes
would fail the same way), and so is an upload whose ingest could not even be queued: its user is
told at once and still holds the file. The ingest itself: webapp.projects.ingest_run; files and
their removal: dataset_files; the reaper and the storage sweep: recovery.

Folder uploads (webapp.projects.folder_uploads):
    folder_upload_start(*, project, user) -> UploadSession
    folder_upload_add_files(*, session, files: list[tuple[str, UploadedFile]]) -> UploadSession
    folder_upload_finish(*, session) -> Dataset
"""

import json
import logging
import os
import uuid
import zipfile
from functools import partial
from pathlib import Path

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, ProtectedError
from django.utils import timezone
from kombu.exceptions import KombuError

from webapp.core import objectstore, storage
from webapp.core.errors import Conflict, ServiceError, Unavailable

from .dataset_files import (  # noqa: F401  (upload_dir and dataset_mark_failed are part of this module's API)
    SAMPLE_FILE,
    dataset_files_remove,
    dataset_mark_failed,
    upload_dir,
    upload_kept,
    upload_source,
)
from .ingest.build import MAX_TEST_FRACTION
from .ingest.images import ACCEPTED_FORMATS
from .ingest_run import dataset_ingest, dataset_ingest_claim, dataset_ingest_source  # noqa: F401  (public services)
from .models import Dataset, Project
from .tasks import ingest_dataset

logger = logging.getLogger(__name__)

Status = Dataset.Status
QUEUE_DOWN = "the job queue (Redis) could not be reached"
BROKER_ERRORS = (KombuError, redis.RedisError, OSError)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def upload_limits() -> dict:
    return {
        "max_upload_bytes": settings.TL_MAX_UPLOAD_BYTES,
        "max_total_bytes": settings.TL_ZIP_MAX_TOTAL_BYTES,
        "max_entries": settings.TL_ZIP_MAX_ENTRIES,
        "max_ratio": settings.TL_ZIP_MAX_RATIO,
        "max_pixels": settings.TL_IMAGE_MAX_PIXELS,
        "batch_files": settings.TL_UPLOAD_BATCH_FILES,
        "validation_fraction": settings.TL_VALIDATION_FRACTION,
        "test_percent": round(settings.TL_TEST_FRACTION * 100),
        "test_percent_max": round(MAX_TEST_FRACTION * 100),
        "formats": ACCEPTED_FORMATS,
    }


def dataset_create(
    *, project: Project, user, source: str, original_name: str = "", test_fraction: float | None = None
) -> Dataset:
    """The project's next version, status processing. Retries when two uploads race for a number."""
    for attempt in range(5):
        try:
            with transaction.atomic():
                last = project.datasets.aggregate(last=Max("version"))["last"] or 0
                return Dataset.objects.create(
                    project=project,
                    version=last + 1,
                    source=source,
                    original_name=original_name[:255],
                    created_by=user,
                    test_fraction=test_fraction,
                )
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _stream_to(uploaded_file, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with open(target, "xb") as out:
        for chunk in uploaded_file.chunks():
            size += len(chunk)
            out.write(chunk)
    return size


def dataset_create_from_archive(
    *, project: Project, uploaded_file, user, test_fraction: float | None = None
) -> Dataset:
    """Store a zip upload and enqueue its ingest; answer at once (the view returns 202).

    ``test_fraction`` sets aside that share of each class's training images as a test split when
    the zip has no test/ folder (None: TL_TEST_FRACTION; 0: no test split).
    """
    name = os.path.basename(uploaded_file.name or "upload.zip")
    if uploaded_file.size > settings.TL_MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"{name} is {uploaded_file.size} bytes; the upload limit is {settings.TL_MAX_UPLOAD_BYTES} bytes.",
            field="archive",
        )
    uploaded_file.seek(0)
    head = uploaded_file.read(4)
    uploaded_file.seek(0)
    if head not in ZIP_MAGIC:
        raise ServiceError(f"{name} is not a zip archive.", field="archive")
    with transaction.atomic():
        dataset = dataset_create(
            project=project, user=user, source=Dataset.Source.ZIP, original_name=name, test_fraction=test_fraction
        )
        try:
            _stream_to(uploaded_file, upload_dir(dataset.pk) / "archive.zip")
            # The ingest worker may run on another host (docs/architecture.md, "Object storage").
            objectstore.publish(storage.key_of(upload_dir(dataset.pk)), keep_copy=False)
        except BaseException:
            storage.remove(upload_dir(dataset.pk))
            raise
        dataset_enqueue_ingest(dataset=dataset)
    return dataset


MAX_SAMPLE_PER_CLASS = 6000  # CIFAR-10 and the MNISTs have 5,000-6,000 training images per class


def _sample_request(sample: str, per_class) -> dict:
    from workers.ml.samples import SAMPLES

    if sample not in SAMPLES:
        raise ServiceError(f"Unknown sample {sample!r}; choose one of {', '.join(SAMPLES)}.", field="sample")
    if per_class in (None, "all"):
        per_class = None
    elif isinstance(per_class, bool) or not isinstance(per_class, int) or not 1 <= per_class <= MAX_SAMPLE_PER_CLASS:
        raise ServiceError(
            f'per_class must be a whole number from 1 to {MAX_SAMPLE_PER_CLASS}, or "all"; got {per_class!r}.',
            field="per_class",
        )
    return {"sample": sample, "per_class": per_class}


def _sample_name(request: dict) -> str:
    from workers.ml.samples import SAMPLES

    size = "all images" if request["per_class"] is None else f"{request['per_class']} per class"
    return f"{SAMPLES[request['sample']].label}, {size}"


def dataset_create_from_sample(*, project: Project, user, sample: str, per_class) -> Dataset:
    """Queue a Keras sample dataset as the project's next version (the view returns 202).

    The upload is the request itself (dataset_files.SAMPLE_FILE); the ingest worker loads the sample
    with Keras, writes its class folders and ingests them like any upload. The sample's own test split
    is kept, so none is carved from its training images.
    """
    request = _sample_request(sample, per_class)
    with transaction.atomic():
        dataset = dataset_create(
            project=project, user=user, source=Dataset.Source.SAMPLE, original_name=_sample_name(request),
            test_fraction=0.0,
        )  # fmt: skip
        try:
            storage.atomic_write_bytes(upload_dir(dataset.pk) / SAMPLE_FILE, json.dumps(request).encode())
            objectstore.publish(storage.key_of(upload_dir(dataset.pk)), keep_copy=False)
        except BaseException:
            storage.remove(upload_dir(dataset.pk))
            raise
        # Kept when it fails: an offline worker fails it, and Retry works once Keras's file is in place.
        dataset_enqueue_ingest(dataset=dataset, keep_upload=True)
    return dataset


def dataset_import_sample(*, project: Project, sample: str, per_class, user=None) -> Dataset:
    """Load and ingest a Keras sample in this process (the import_sample command); returns the finished dataset."""
    request = _sample_request(sample, per_class)
    dataset = dataset_create(
        project=project, user=user, source=Dataset.Source.SAMPLE, original_name=_sample_name(request), test_fraction=0.0
    )
    storage.atomic_write_bytes(upload_dir(dataset.pk) / SAMPLE_FILE, json.dumps(request).encode())
    dataset_ingest_claim(dataset_id=dataset.pk, worker="import_sample command")
    dataset.refresh_from_db()
    finished = dataset_ingest_source(dataset, upload_dir(dataset.pk) / SAMPLE_FILE, from_upload=True)
    if finished is None:
        raise ServiceError(f"Dataset v{dataset.version} was deleted while it was being imported.")
    return finished


def dataset_enqueue_ingest(*, dataset: Dataset, keep_upload: bool = False) -> None:
    """Choose the task id, store it on the row, and send the task once the row is committed.

    If the queue cannot be reached the dataset is failed at once with that reason and
    Unavailable (503) is raised; `keep_upload` says whether its upload stays for a retry.
    """
    task_id = str(uuid.uuid4())
    Dataset.objects.filter(pk=dataset.pk).update(task_id=task_id)
    dataset.task_id = task_id
    transaction.on_commit(
        partial(dataset_publish_ingest, dataset_id=dataset.pk, task_id=task_id, keep_upload=keep_upload)
    )


def dataset_publish_ingest(*, dataset_id: int, task_id: str, keep_upload: bool) -> None:
    """Publish the ingest message under `task_id`; on a broker error fail the dataset and raise Unavailable.

    We fail rather than leave the dataset processing for a reaper to re-send, as training jobs do:
    the user learns at once that nothing will run, and nothing sits "processing" with no message
    behind it. The broker's short connect timeout and no publish retries make this take seconds.
    """
    try:
        # The task declares ignore_result: asking for a result would make the publish subscribe to
        # the result backend first, which retried for ~20 s with Redis down. It runs on the default queue.
        ingest_dataset.apply_async(args=[dataset_id], task_id=task_id)
    except BROKER_ERRORS as exc:
        # The exception's text can name a socket path: it goes to the log, not to the user.
        logger.error("dataset %s: could not enqueue its ingest: %s", dataset_id, exc)
        kept = (
            "The upload is kept: retry once the queue is back."
            if keep_upload
            else "The upload was not kept: upload it again once the queue is back."
        )
        message = f"Ingest could not start: {QUEUE_DOWN}. {kept}"
        dataset_mark_failed(dataset_id=dataset_id, error=message, keep_upload=keep_upload)
        raise Unavailable(message) from exc
    Dataset.objects.filter(pk=dataset_id).update(enqueue_count=F("enqueue_count") + 1, enqueued_at=timezone.now())


def dataset_import_path(*, project: Project, path: str | Path, user=None) -> Dataset:
    """Ingest a folder or zip already on the server, in this process; returns the finished dataset."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ServiceError(f"{path} does not exist.")
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ServiceError(f"{path} is neither a folder nor a zip archive.")
    dataset = dataset_create(project=project, user=user, source=Dataset.Source.IMPORT, original_name=str(path))
    dataset_ingest_claim(dataset_id=dataset.pk, worker="import command")
    dataset.refresh_from_db()
    finished = dataset_ingest_source(dataset, path, from_upload=False)
    if finished is None:
        raise ServiceError(f"Dataset v{dataset.version} was deleted while it was being imported.")
    return finished


# --- retry and delete ---------------------------------------------------------------------------


def dataset_retry(*, dataset: Dataset) -> Dataset:
    """Ingest a failed dataset version again, from its kept upload, under the same version number.

    Conflict (409) when it is not failed or its upload is not kept (the message says what to do
    instead); Unavailable (503) when the queue cannot be reached (the upload stays kept).
    """
    name = f"Dataset v{dataset.version}"
    if dataset.status != Status.FAILED:
        raise Conflict(f"{name} is {dataset.status}; only a failed version can be retried.")
    if dataset.source == Dataset.Source.IMPORT:
        raise Conflict(f"{name} was imported from a folder on the server, which is not kept: run the import again.")
    if not upload_kept(dataset.pk):
        raise Conflict(
            f"{name} cannot be retried: its upload was not kept (an upload whose content was refused, or whose "
            "ingest could not be queued, is removed at once). Upload the images again as a new version."
        )
    with transaction.atomic():
        reset = Dataset.objects.filter(pk=dataset.pk, status=Status.FAILED).update(
            status=Status.PROCESSING,
            error="",
            report={},
            stats={},
            progress=0.0,
            worker="",
            started_at=None,
            heartbeat_at=None,
            finished_at=None,
            enqueue_count=0,
            enqueued_at=None,
        )
        if not reset:
            raise Conflict(f"{name} changed meanwhile (another retry?); reload the page.")
        dataset_enqueue_ingest(dataset=dataset, keep_upload=True)
    dataset.refresh_from_db()
    return dataset


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete a dataset version and its files; Conflict (409) while an experiment uses it.

    A version still being ingested can be deleted too (the way out of a stuck one): its ingest
    stops at its next progress write and removes what it built.
    """
    dataset_id, feature_hash = dataset.pk, dataset.feature_hash
    if not dataset.experiments.exists():
        try:
            with transaction.atomic():
                dataset.delete()
        except ProtectedError:
            pass  # an experiment was created on it meanwhile: refused below like any other
        else:
            dataset_files_remove(dataset_ids=[dataset_id], feature_hashes=[feature_hash])
            return
    users = Dataset.objects.get(pk=dataset_id).experiments.order_by("created_at")
    count = users.count()
    shown = ", ".join(repr(name) for name in users.values_list("name", flat=True)[:3])
    raise Conflict(
        f"Dataset v{dataset.version} is used by {count} experiment(s) ({shown}{', ...' if count > 3 else ''}); "
        "delete those experiments first."
    )
