"""The body of the ingest task: claim the dataset, build it in staging with a heartbeat, publish it.

Runs in a worker of the `default` queue (or in the import command's process). The row is claimed
with one conditional UPDATE, so a second delivery of the message is a no-op; a heartbeat thread
lets the reaper (webapp.projects.recovery) fail an ingest whose process was killed.
"""

import json
import logging
import os
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.heartbeat import Heartbeat
from workers.ml.errors import MLError

from .dataset_files import (
    SAMPLE_FILE,
    dataset_files_remove,
    dataset_mark_failed,
    staging_kind,
    upload_dir,
    upload_lineage,
    upload_source,
)
from .ingest import ArchiveLimits, BuildOptions, IngestError, build_dataset, extract_zip
from .models import Dataset, DatasetClass

logger = logging.getLogger(__name__)

Status = Dataset.Status


class _Abandoned(Exception):
    """The dataset stopped being ours mid-ingest: deleted (with its project) or failed by the reaper."""


class _IngestWatch:
    """Progress on the row at most once a second (polling pages move without hammering the DB), a
    heartbeat thread for the reaper, and the news that the dataset is no longer ours."""

    def __init__(self, dataset_id: int):
        self.dataset_id, self.last = dataset_id, 0.0
        self.heartbeat = Heartbeat(f"ingest-heartbeat-{dataset_id}", self._beat, settings.TL_HEARTBEAT_SECONDS)

    def _processing(self):
        return Dataset.objects.filter(pk=self.dataset_id, status=Status.PROCESSING)

    def _beat(self) -> bool:
        return self._processing().update(heartbeat_at=timezone.now()) == 1

    def __call__(self, fraction: float) -> None:
        if self.heartbeat.lost.is_set():
            raise _Abandoned
        now = time.monotonic()
        if now - self.last >= 1.0 or fraction >= 1.0:
            self.last = now
            if not self._processing().update(progress=round(min(fraction, 0.99), 3), heartbeat_at=timezone.now()):
                raise _Abandoned


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_total_bytes=settings.TL_ZIP_MAX_TOTAL_BYTES,
        max_entries=settings.TL_ZIP_MAX_ENTRIES,
        max_ratio=settings.TL_ZIP_MAX_RATIO,
    )


def _write_sample(request: dict, raw: Path, progress) -> dict:
    """The Keras sample named in the upload, written as class folders (workers/ml/samples.py); Keras
    (and so TensorFlow) is imported here, in the worker's child, never by the web process."""
    from workers.ml.samples import SAMPLES, write_sample
    from workers.ml.samples import load_arrays as load_sample_arrays

    arrays = load_sample_arrays(request["sample"])
    progress(0.1)
    return write_sample(
        arrays,
        SAMPLES[request["sample"]],
        raw,
        per_class=request["per_class"],
        on_progress=lambda f: progress(0.1 + 0.3 * f),
    )


def _build_and_publish(dataset: Dataset, source: Path, staging: Path, progress: _IngestWatch) -> None:
    raw, sample = source, None
    if source.name == SAMPLE_FILE:
        raw = staging / "raw"
        raw.mkdir()
        sample = _write_sample(json.loads(source.read_text()), raw, progress)
    elif source.is_file():
        raw = staging / "raw"
        raw.mkdir()
        extract_zip(source, raw, limits=_archive_limits())
        progress(0.05)
    out = staging / "dataset"
    out.mkdir()
    lineage = upload_lineage(dataset.pk) if source == upload_source(dataset.pk) else None
    options = BuildOptions(
        max_pixels=settings.TL_IMAGE_MAX_PIXELS,
        validation_fraction=settings.TL_VALIDATION_FRACTION,
        test_fraction=settings.TL_TEST_FRACTION if dataset.test_fraction is None else dataset.test_fraction,
        # A version without leaks asks for it; an edited one (derived.py) arrives with its changes applied.
        drop_leaked=lineage is not None and "changes" not in lineage,
    )
    start = 0.4 if sample is not None else 0.0
    result = build_dataset(raw, out, options=options, progress=lambda f: progress(start + (1 - start) * f))
    if sample is not None:
        size = "all" if sample["per_class"] is None else f"{sample['per_class']} training images per class"
        rule = "; ".join(sample["conversion"]) or "images stored as they are"
        sample["note"] = f"the Keras sample {sample['label']} ({size}): {rule}"
        result.report["sample"] = sample
    if lineage is not None and "changes" in lineage:
        result.report["lineage"] = lineage
    elif lineage is not None:
        removed = result.report["without_leaks"]["total"]
        note = f"made from v{lineage['version']} without {removed} leaked image{'s' if removed != 1 else ''}"
        result.report["lineage"] = {**lineage, "removed": removed, "note": note}
    final = storage.dataset_dir(dataset.pk)
    # A folder left by a crashed earlier attempt of this (still processing) dataset.
    storage.remove(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(out, final)
    try:
        # In the store before the row says ready (docs/architecture.md, "Object storage").
        objectstore.publish(storage.key_of(final))
        with transaction.atomic():
            updated = Dataset.objects.filter(pk=dataset.pk, status=Status.PROCESSING).update(
                status=Status.READY,
                content_hash=result.content_hash,
                stats=result.stats,
                report=result.report,
                error="",
                progress=1.0,
                finished_at=timezone.now(),
            )
            if updated:
                DatasetClass.objects.bulk_create(DatasetClass(dataset_id=dataset.pk, **c) for c in result.classes)
    except BaseException:
        storage.remove(final)
        raise
    if not updated:
        # Failed or deleted while we worked: what we built must not look usable.
        storage.remove(final)
        raise _Abandoned


def _fail_unexpected(dataset: Dataset, exc: BaseException, *, from_upload: bool) -> None:
    if not Dataset.objects.filter(pk=dataset.pk).exists():
        return  # deleted under our feet: whatever broke was a consequence of that
    if isinstance(exc, SoftTimeLimitExceeded):
        logger.warning("dataset %s: ingest ran past its time limit", dataset.pk)
        dataset_mark_failed(
            dataset_id=dataset.pk, error="Ingest ran past its time limit: split the images into smaller uploads."
        )
        return
    logger.error("dataset %s: ingest stopped unexpectedly", dataset.pk, exc_info=exc)
    kept = "The upload is kept: retry it. If it fails again, " if from_upload else "If it fails again, "
    dataset_mark_failed(
        dataset_id=dataset.pk,
        error=f"Ingest stopped unexpectedly ({type(exc).__name__}). {kept}"
        "an administrator will find the cause in the worker log.",
        keep_upload=from_upload,
    )


def dataset_ingest_source(dataset: Dataset, source: Path, *, from_upload: bool) -> Dataset | None:
    """Build a claimed dataset from a zip file or a folder in staging, rename it into place, then
    flip the row to ready. Returns the dataset as it ended, or None if it was deleted meanwhile
    (then nothing of it is left)."""
    watch = _IngestWatch(dataset.pk)
    watch.heartbeat.start()
    abandoned = False
    try:
        with storage.staging(staging_kind(dataset.pk)) as staging:
            _build_and_publish(dataset, source, staging, watch)
    except IngestError as exc:
        dataset_mark_failed(dataset_id=dataset.pk, error=exc.message, report=exc.report)
    except MLError as exc:  # a sample Keras could not load (offline): kept, so that Retry works once it can
        dataset_mark_failed(dataset_id=dataset.pk, error=f"{exc}", keep_upload=True)
    except _Abandoned:
        abandoned = True  # told below, from what became of the row
    except BaseException as exc:
        _fail_unexpected(dataset, exc, from_upload=from_upload)
        if not isinstance(exc, Exception):
            raise  # SystemExit, KeyboardInterrupt: the process itself is stopping
    finally:
        watch.heartbeat.stop()
    current = Dataset.objects.filter(pk=dataset.pk).first()
    if current is None:
        logger.info(
            "dataset %s was deleted during its ingest (with its project?); stopped, its files removed", dataset.pk
        )
        dataset_files_remove(dataset_ids=[dataset.pk])
        return None
    if current.status == Status.READY and from_upload:
        storage.remove(upload_dir(dataset.pk))
    elif abandoned:
        logger.info("dataset %s became %s while its ingest ran; stopped: %s", dataset.pk, current.status, current.error)
    return current


def dataset_ingest_claim(*, dataset_id: int, worker: str, task_id: str | None = None) -> bool:
    """Take a processing dataset for `worker` with one conditional UPDATE; False if it is not ours.

    A redelivered message, the old message of a dataset retried since (another task id), a
    dataset already started, finished or deleted: each fails the claim, so an ingest runs once.
    """
    now = timezone.now()
    rows = Dataset.objects.filter(pk=dataset_id, status=Status.PROCESSING, started_at__isnull=True)
    if task_id is not None:
        rows = rows.filter(task_id=task_id)
    return rows.update(worker=worker[:255], started_at=now, heartbeat_at=now, progress=0.0) == 1


def dataset_ingest(*, dataset_id: int, task_id: str | None = None, worker: str = "") -> Dataset | None:
    """Claim and ingest the stored upload of a processing dataset (the Celery task's body).

    Ends ready (the upload removed); failed with an error naming files or classes (the upload
    removed: the same bytes would fail the same way); or failed by an unexpected error with the
    upload kept for a retry. A dataset deleted meanwhile ends quietly with no file left.
    """
    if not dataset_ingest_claim(dataset_id=dataset_id, task_id=task_id, worker=worker or "a worker"):
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            logger.info("dataset %s no longer exists (deleted with its project?); nothing to ingest", dataset_id)
            dataset_files_remove(dataset_ids=[dataset_id])
        else:
            logger.info(
                "dataset %s is %s and not ours to start; this delivery has nothing to do", dataset_id, dataset.status
            )
        return dataset
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    try:
        objectstore.fetch(storage.key_of(upload_dir(dataset_id)))  # uploaded on another host, perhaps
    except objectstore.ObjectMissing:
        pass  # told below
    source = upload_source(dataset_id)
    if dataset is None or source is None:
        dataset_mark_failed(
            dataset_id=dataset_id, error="The uploaded files are missing from storage; upload them again."
        )
        return Dataset.objects.filter(pk=dataset_id).first()
    return dataset_ingest_source(dataset, source, from_upload=True)
