"""Writes for model exports (docs/decisions.md, "Exports in the app"): ask for one, run it, forget it.

One row per (model, format). Asking again returns the row as it is, unless it failed, in which
case it is queued again. Every status change is one conditional UPDATE whose row count is
checked, as for training jobs: a redelivered message, or a row deleted with its project while the
export runs, can never be moved back by a slower writer. The engine (workers.ml.export, and so
TensorFlow) is imported inside `model_export_run` only, which runs in a worker's child process.
"""

import logging
import os
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.errors import NotFound, ServiceError, Unavailable
from webapp.core.redact import without_server_paths
from webapp.experiments.models import TrainedModel

from .models import BUNDLE, ModelExport
from .tasks import run_export

log = logging.getLogger(__name__)

Status = ModelExport.Status
FORMATS = tuple(ModelExport.Format.values)
# Validation images the export is checked on, and training images that calibrate int8 quantization;
# both spread over the classes so that none is left out.
VERIFY_IMAGES = 256
REPRESENTATIVE_IMAGES = 100
# A running export older than the task's hard time limit (plus a margin) has no process left.
STALE_AFTER = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300)
QUEUE_DOWN = "the job queue (Redis) could not be reached"


# --- asking for an export ----------------------------------------------------------------------


def model_export_request(*, model: TrainedModel, fmt: str) -> tuple[ModelExport, bool]:
    """The model's export in `fmt`, and whether this call queued work (the API's 202).

    A new export, or one that failed before, is queued and its task sent once the transaction
    commits; one that is queued, running or ready is returned as it is (exports are cached per
    model and format). Raises ServiceError naming the format when it is not one we make, and
    Unavailable (with the export failed) when the queue cannot be reached.
    """
    if fmt not in FORMATS:
        raise ServiceError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.", field="format")
    model_exports_reap()
    with transaction.atomic():
        try:
            with transaction.atomic():
                export = ModelExport.objects.create(model=model, format=fmt, task_id=str(uuid.uuid4()))
        except IntegrityError:  # it exists (or a concurrent request just made it)
            export = ModelExport.objects.get(model=model, format=fmt)
            task_id = str(uuid.uuid4())
            # Only a failed export runs again (or a ready one whose file is gone); two requests at
            # once re-queue it once.
            again = Status.FAILED if export.status != Status.READY or _bundle_present(export) else Status.READY
            if not ModelExport.objects.filter(pk=export.pk, status=again).update(
                status=Status.QUEUED, task_id=task_id, error="", worker="", started_at=None, finished_at=None,
                size_bytes=None, verification={}, latency_ms=None, runtime="", card={}, path="",
            ):  # fmt: skip
                export.refresh_from_db()
                return export, False
        transaction.on_commit(partial(model_export_publish, export_id=export.pk))
    export.refresh_from_db()
    return export, True


def _bundle_present(export: ModelExport) -> bool:
    if not export.path:
        return False
    try:
        return BUNDLE in objectstore.file_names(export.path)
    except FileNotFoundError:  # ObjectMissing too
        return False


def model_export_publish(*, export_id: int) -> None:
    """Send the export's task under its stored task id; on a broker error fail it and raise Unavailable.

    As for datasets and training jobs, we fail at once rather than leave it queued with no
    message behind it: the person asking learns now, and asking again is one click.
    """
    from kombu.exceptions import KombuError
    from redis.exceptions import RedisError

    task_id = ModelExport.objects.filter(pk=export_id).values_list("task_id", flat=True).first()
    if task_id is None:
        return  # deleted before its transaction's end
    try:
        run_export.apply_async(args=[export_id], task_id=task_id)
    except (KombuError, RedisError, OSError) as exc:
        log.error("export %s: could not enqueue it: %s", export_id, exc)
        message = f"The export could not start: {QUEUE_DOWN}. Nothing ran; ask again once the queue is back."
        _fail(export_id, message, where_status=Status.QUEUED)
        raise Unavailable(message) from exc
    ModelExport.objects.filter(pk=export_id).update(enqueued_at=timezone.now())


# --- running it (in the worker) -------------------------------------------------------------


def model_export_claim(*, export_id: int, worker: str) -> bool:
    """queued -> running for this worker, in one conditional UPDATE; False if not claimable."""
    return bool(
        ModelExport.objects.filter(pk=export_id, status=Status.QUEUED).update(
            status=Status.RUNNING, worker=worker[:255], started_at=timezone.now(), attempts=F("attempts") + 1
        )
    )


def model_export_run(*, export_id: int, worker: str) -> str:
    """Claim export `export_id`, build and verify it with the engine, and store the outcome.

    Returns "skipped" (not claimable: a redelivery, or already done), "ready", "failed" or
    "deleted" (the row went, with its model or project, while it ran; its files are removed).
    A format the converter cannot make, and an export that fails verification, end failed with
    the engine's message (the figures and the bar); nothing of a failed export is kept.
    """
    from celery.exceptions import SoftTimeLimitExceeded

    from workers.ml.errors import MLError

    if not model_export_claim(export_id=export_id, worker=worker):
        log.info("export %s: not claimable (taken, finished or deleted); skipping", export_id)
        return "skipped"
    export = ModelExport.objects.select_related("model__project", "model__experiment__dataset", "model__job").get(
        pk=export_id
    )
    try:
        return _build(export)
    except MLError as exc:  # ExportError (a converter cannot make it) and the engine's other refusals
        message = without_server_paths(str(exc))
    except SoftTimeLimitExceeded:
        message = (
            f"The export took longer than the time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) and was stopped."
        )
    except ServiceError as exc:
        message = exc.message
    except Exception as exc:
        # A bug or the machine (disk full): the person learns what kind, the log has the traceback.
        log.exception("export %s failed unexpectedly", export_id)
        message = f"The export failed unexpectedly ({type(exc).__name__}: {without_server_paths(str(exc))})."
    return "failed" if _fail(export_id, message) else "deleted"


def _build(export: ModelExport) -> str:
    model = export.model
    # With an object store, this host's copies of the model and the dataset (docs/architecture.md,
    # "Object storage"), kept from eviction while the export runs.
    try:
        with (
            objectstore.using(model.path) as model_dir,
            objectstore.using(storage.key_of(storage.dataset_dir(model.experiment.dataset_id))) as dataset_dir,
        ):
            return _build_from(export, model, model_dir, dataset_dir)
    except objectstore.ObjectMissing as exc:
        raise ServiceError(f"The model's or its dataset's files are missing from storage ({exc}).") from None


def _build_from(export: ModelExport, model, model_dir: Path, dataset_dir: Path) -> str:
    from workers.ml.export import export_model

    verify = _images(dataset_dir / "validation", model.class_names, VERIFY_IMAGES)
    if not verify:
        raise ServiceError(
            f"Dataset v{model.experiment.dataset.version} has no validation images left to verify the export on."
        )
    representative = _images(dataset_dir / "train", model.class_names, REPRESENTATIVE_IMAGES)
    with storage.staging(f"export-{export.pk}") as staging:
        out_dir = staging / "export"  # the staging folder itself holds its lock file: the engine gets an empty one
        out_dir.mkdir()
        result = export_model(
            model_dir=model_dir,
            sha256=model.checksum,
            fmt=export.format,
            out_dir=out_dir,
            card=model_export_card(model=model),
            verify_images=verify,
            representative_images=representative,
        )
        figures = {
            "verification": result.verification,
            "latency_ms": result.latency_ms,
            "runtime": _runtime(export.format),
            "card": result.card,
        }
        if not result.passed:
            # Failed with its figures, so that the person sees how far from the bar it was.
            message = result.failure or "The export did not pass verification."
            return "failed" if _fail(export.pk, message, figures=figures) else "deleted"
        final = storage.export_dir(export.pk)
        storage.remove(final)  # what a killed earlier attempt may have left
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out_dir, final)
        objectstore.publish(storage.key_of(final))  # before the row says ready
    marked = ModelExport.objects.filter(pk=export.pk, status=Status.RUNNING).update(
        status=Status.READY,
        path=storage.key_of(final),
        size_bytes=result.size_bytes,
        finished_at=timezone.now(),
        error="",
        **figures,
    )
    if not marked:  # deleted (or reaped) while it ran: nothing may stay under its name
        storage.remove(final)
        return "deleted"
    log.info("export %s (%s of model %s) ready: %s", export.pk, export.format, model.pk, result.verification)
    return "ready"


def _fail(export_id: int, message: str, *, where_status: str = Status.RUNNING, figures: dict | None = None) -> bool:
    """Mark the export failed with `message` (and the verification `figures` when it got that far)
    and remove its files; False when its row is no longer `where_status` (deleted, or reaped)."""
    failed = ModelExport.objects.filter(pk=export_id, status=where_status).update(
        status=Status.FAILED, error=message, finished_at=timezone.now(), path="", size_bytes=None, **(figures or {})
    )
    storage.remove(storage.export_dir(export_id))
    if failed:
        log.warning("export %s failed: %s", export_id, message)
    return bool(failed)


def _runtime(fmt: str) -> str:
    from workers.ml.export import FORMATS as ENGINE_FORMATS

    return ENGINE_FORMATS[fmt].runtime


def _images(split_dir: Path, class_names: list[str], limit: int) -> list[Path]:
    """Up to `limit` image files of one split, taken in turn from each class (sorted, so repeatable)."""
    per_class = []
    for name in class_names:
        folder = split_dir / name
        files = (
            sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
        )
        per_class.append(files)
    picked: list[Path] = []
    for rank in range(max((len(files) for files in per_class), default=0)):
        picked += [files[rank] for files in per_class if rank < len(files)]
        if len(picked) >= limit:
            break
    return picked[:limit]


def model_export_card(*, model: TrainedModel) -> dict:
    """What only the app knows about `model`, for the export's model card; the engine adds the
    format, input spec, preprocessing, temperature, library versions and the weights' origin."""
    experiment, job = model.experiment, model.job
    dataset = experiment.dataset
    return {
        "model": {"id": model.pk, "version": model.version, "project": model.project.name},
        "class_names": list(model.class_names),
        "threshold": model.threshold,
        "evaluation": (job.result or {}).get("evaluation"),
        "dataset": {
            "id": dataset.pk,
            "name": f"{model.project.name} v{dataset.version}",
            "version": dataset.version,
            "content_hash": dataset.content_hash or None,
        },
        "experiment": {"id": experiment.pk, "name": experiment.name, "mode": experiment.mode},
        "config": experiment.config,
        "trained_at": (job.finished_at or model.created_at).isoformat(),
    }


# --- recovery and deletion ------------------------------------------------------------------


def model_exports_reap(*, now=None) -> list[int]:
    """Fail running exports older than the task's hard time limit: no process is left to end them.

    Runs before each request for an export, so that a worker killed mid-export (out of memory, a
    deploy) never leaves the format stuck "running": the next request runs it again.
    """
    cutoff = (now or timezone.now()) - STALE_AFTER
    stale = list(ModelExport.objects.filter(status=Status.RUNNING, started_at__lt=cutoff).values_list("pk", "worker"))
    reaped = []
    for pk, worker in stale:
        message = (
            f"The export stopped: {worker or 'its worker'} gave no answer within the time limit; it was "
            "probably killed (out of memory?). Ask again to run it again."
        )
        if ModelExport.objects.filter(pk=pk, status=Status.RUNNING, started_at__lt=cutoff).update(
            status=Status.FAILED, error=message, finished_at=timezone.now()
        ):
            storage.remove(storage.export_dir(pk))
            reaped.append(pk)
    return reaped


def model_export_files_remove(*, export_id: int) -> None:
    """Remove an export's folder (a deleted row's; see webapp/exports/apps.py)."""
    storage.remove(storage.export_dir(export_id))


def export_download_name(export: ModelExport) -> str:
    from django.utils.text import slugify

    slug = slugify(export.model.project.name) or f"project-{export.model.project_id}"
    return f"{slug}-v{export.model.version}-{export.format}.zip"


def model_export_bundle(*, export: ModelExport):
    """(a stream of the ready export's bundle.zip, its size), read from storage (the object store's copy
    is streamed, not fetched: a web host need not cache large files). Conflict (409) while it is not
    ready, NotFound if its file is gone."""
    from webapp.core.errors import Conflict

    if export.status != Status.READY:
        detail = f": {export.error}" if export.status == Status.FAILED and export.error else ""
        raise Conflict(f"Export {export.pk} ({export.format}) is {export.status}, not ready to download{detail}.")
    try:
        return objectstore.open_file(export.path, BUNDLE)
    except (FileNotFoundError, ValueError):  # ObjectMissing, or no key at all
        raise NotFound(
            f"Export {export.pk}'s file is missing from storage; ask for the export again to rebuild it."
        ) from None
