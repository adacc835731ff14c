"""Dataset services: every way in ends in one ingest and the canonical layout (DESIGN §3).

Signatures (keyword-only; ServiceError subclasses carry a user-facing message and status_code):

    dataset_create_from_archive(*, project, uploaded_file, user) -> Dataset
        Stream a zip upload to storage, create the next version (status processing) and
        enqueue ingest on commit. ServiceError(400) for a non-zip or oversized upload;
        Unavailable(503) when the broker is down (the dataset is then marked failed).
    dataset_ingest(*, dataset_id) -> Dataset | None
        Run by the `workers.tasks.ingest_dataset` task; idempotent (a non-processing dataset
        is left alone). Ends ready, or failed with an error naming files/classes and no files.
    dataset_import_path(*, project, path, user=None) -> Dataset
        Ingest a folder or zip already on the server, synchronously (the import command).
    dataset_mark_failed(*, dataset_id, error, report=None) -> bool
    upload_limits() -> dict
        The limits shown on the upload page (bytes, entries, ratio, pixels, batch size).

Folder uploads (webapp.projects.folder_uploads):
    folder_upload_start(*, project, user) -> UploadSession
    folder_upload_add_files(*, session, files: list[tuple[str, UploadedFile]]) -> UploadSession
    folder_upload_finish(*, session) -> Dataset
"""

import logging
import os
import shutil
import time
import uuid
import zipfile
from functools import partial
from pathlib import Path

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from kombu.exceptions import KombuError

from webapp.core import storage
from webapp.core.errors import ServiceError, Unavailable

from .ingest import ArchiveLimits, BuildOptions, IngestError, build_dataset, extract_zip
from .ingest.images import ACCEPTED_FORMATS
from .models import Dataset, DatasetClass, Project

logger = logging.getLogger(__name__)

QUEUE_DOWN = "the task queue is unavailable; try again"
INGEST_TASK = "workers.tasks.ingest_dataset"
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
        "formats": ACCEPTED_FORMATS,
    }


def upload_dir(dataset_id: int) -> Path:
    """Where a dataset's raw upload waits for ingest; removed when ingest ends either way."""
    return storage.uploads_root() / f"dataset-{dataset_id}"


def dataset_create(*, project: Project, user, source: str, original_name: str = "") -> Dataset:
    """The project's next version, status processing. Retries when two uploads race for a number."""
    for attempt in range(5):
        try:
            with transaction.atomic():
                last = project.datasets.aggregate(last=Max("version"))["last"] or 0
                return Dataset.objects.create(
                    project=project, version=last + 1, source=source, original_name=original_name[:255], created_by=user
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


def dataset_create_from_archive(*, project: Project, uploaded_file, user) -> Dataset:
    """Store a zip upload and enqueue its ingest; answer at once (the view returns 202)."""
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
        dataset = dataset_create(project=project, user=user, source=Dataset.Source.ZIP, original_name=name)
        try:
            _stream_to(uploaded_file, upload_dir(dataset.pk) / "archive.zip")
        except BaseException:
            shutil.rmtree(upload_dir(dataset.pk), ignore_errors=True)
            raise
        dataset_enqueue_ingest(dataset=dataset)
    return dataset


def dataset_enqueue_ingest(*, dataset: Dataset) -> None:
    """Choose the task id, store it on the row, and send the task once the row is committed."""
    task_id = str(uuid.uuid4())
    Dataset.objects.filter(pk=dataset.pk).update(task_id=task_id)
    dataset.task_id = task_id
    transaction.on_commit(partial(_send_ingest, dataset.pk, task_id))


def _send_ingest(dataset_id: int, task_id: str) -> None:
    # By name, not by importing workers.tasks: that module also reaches webapp.experiments,
    # which projects must not depend on (DESIGN §1). The routing puts it on the default queue.
    from workers.celery import app

    try:
        app.send_task(INGEST_TASK, args=[dataset_id], task_id=task_id)
    except BROKER_ERRORS as exc:
        logger.warning("could not enqueue ingest of dataset %s: %s", dataset_id, exc)
        dataset_mark_failed(dataset_id=dataset_id, error=QUEUE_DOWN)
        raise Unavailable(f"The upload was received but {QUEUE_DOWN}.") from exc


def dataset_mark_failed(*, dataset_id: int, error: str, report: dict | None = None) -> bool:
    """processing -> failed, and remove every file of the dataset; False if it was not processing."""
    fields = {"status": Dataset.Status.FAILED, "error": error, "finished_at": timezone.now()}
    if report is not None:
        fields["report"] = report
    updated = Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.PROCESSING).update(**fields)
    shutil.rmtree(upload_dir(dataset_id), ignore_errors=True)
    if updated:
        shutil.rmtree(storage.dataset_dir(dataset_id), ignore_errors=True)
    return bool(updated)


class _Progress:
    """Write progress to the row at most once a second, so polling pages move without hammering the DB."""

    def __init__(self, dataset_id: int):
        self.dataset_id, self.last = dataset_id, 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= 1.0 or fraction >= 1.0:
            self.last = now
            Dataset.objects.filter(pk=self.dataset_id, status=Dataset.Status.PROCESSING).update(
                progress=round(min(fraction, 0.99), 3)
            )


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_total_bytes=settings.TL_ZIP_MAX_TOTAL_BYTES,
        max_entries=settings.TL_ZIP_MAX_ENTRIES,
        max_ratio=settings.TL_ZIP_MAX_RATIO,
    )


def _ingest_source(dataset: Dataset, source: Path) -> Dataset:
    """Build from a zip file or a folder in staging, rename into place, then flip the row to ready."""
    staging = storage.staging_dir("ingest")
    progress = _Progress(dataset.pk)
    final = storage.dataset_dir(dataset.pk)
    try:
        raw = source
        if source.is_file():
            raw = staging / "raw"
            raw.mkdir()
            extract_zip(source, raw, limits=_archive_limits())
            progress(0.05)
        out = staging / "dataset"
        out.mkdir()
        options = BuildOptions(
            max_pixels=settings.TL_IMAGE_MAX_PIXELS, validation_fraction=settings.TL_VALIDATION_FRACTION
        )
        result = build_dataset(raw, out, options=options, progress=progress)
        # A folder left by a crashed earlier attempt of this (still processing) dataset.
        shutil.rmtree(final, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out, final)
        with transaction.atomic():
            updated = Dataset.objects.filter(pk=dataset.pk, status=Dataset.Status.PROCESSING).update(
                status=Dataset.Status.READY,
                content_hash=result.content_hash,
                stats=result.stats,
                report=result.report,
                error="",
                progress=1.0,
                finished_at=timezone.now(),
            )
            if updated:
                DatasetClass.objects.bulk_create(DatasetClass(dataset_id=dataset.pk, **c) for c in result.classes)
        if not updated:
            # Failed or deleted while we worked: what we built must not look usable.
            shutil.rmtree(final, ignore_errors=True)
    except IngestError as exc:
        dataset_mark_failed(dataset_id=dataset.pk, error=exc.message, report=exc.report)
    except BaseException as exc:
        dataset_mark_failed(dataset_id=dataset.pk, error=f"ingest stopped unexpectedly ({type(exc).__name__}: {exc})")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    dataset.refresh_from_db()
    return dataset


def dataset_ingest(*, dataset_id: int) -> Dataset | None:
    """Ingest the stored upload of a processing dataset (the Celery task's body)."""
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    root = upload_dir(dataset_id)
    if dataset is None or dataset.status != Dataset.Status.PROCESSING:
        # Deleted (with its project) or already finished: only a stale raw upload can be left.
        shutil.rmtree(root, ignore_errors=True)
        return dataset
    try:
        if (root / "archive.zip").is_file():
            return _ingest_source(dataset, root / "archive.zip")
        if (root / "files").is_dir():
            return _ingest_source(dataset, root / "files")
        dataset_mark_failed(dataset_id=dataset_id, error="the uploaded files are missing from storage; upload again")
        dataset.refresh_from_db()
        return dataset
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dataset_import_path(*, project: Project, path: str | Path, user=None) -> Dataset:
    """Ingest a folder or zip already on the server, in this process; returns the finished dataset."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ServiceError(f"{path} does not exist.")
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ServiceError(f"{path} is neither a folder nor a zip archive.")
    dataset = dataset_create(project=project, user=user, source=Dataset.Source.IMPORT, original_name=str(path))
    return _ingest_source(dataset, path)
