"""The body of the training task: claim, train with the engine, report, finish (docs/architecture.md, "Job states").

Runs in a fresh prefork child per job (max_tasks_per_child=1 on the training queue); the
engine, and so TensorFlow, is imported here and only here, never in the worker's main process.
"""

import logging
import os
import time
import traceback
from collections import deque
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.heartbeat import Heartbeat

from .checkpoints import checkpoint_epoch, checkpoint_fetch, checkpoint_publish, checkpoint_remove
from .model_store import trained_model_create
from .models import EpochMetric, TrainedModel, TrainingJob

log = logging.getLogger(__name__)

Status = TrainingJob.Status

# An unexpected error (disk full, database blip, a bug) is retried up to this many attempts in
# all; expected engine errors (MLError: bad dataset, missing weights) are never retried.
MAX_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 30
# Progress rows are written at most this often; epoch ends and phase changes are always written.
PROGRESS_WRITE_SECONDS = 1.0
# should_stop() asks the database at most this often. 0: after every batch, so a cancel ends
# training within one batch as promised. The query is one primary-key read of two columns
# (well under a millisecond); raise this only if a head with thousands of ~1 ms batches
# should trade that promise for a few per cent of its training time.
CANCEL_POLL_SECONDS = 0.0
LOG_TAIL_LINES = 40


def training_job_claim(*, job_id: int, worker_hostname: str) -> bool:
    """Take a queued job for this worker with one conditional UPDATE; False if someone else has it.

    A second delivery of the same message (Redis redelivery, a retried task), a job cancelled
    while queued and a job already running all fail this claim, so work runs at most once.
    """
    now = timezone.now()
    claimed = TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED, cancel_requested=False).update(
        status=Status.RUNNING,
        worker=worker_hostname,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        progress=0.0,
        phase="starting",
        epoch=0,
        resumed_from_epoch=None,
        attempts=F("attempts") + 1,
    )
    return claimed == 1


def training_job_run(*, job_id: int, worker_hostname: str) -> str:
    """Claim job `job_id` and train it; returns what happened (for the task's result and logs).

    "skipped" (not claimable), "succeeded", "failed", "cancelled", "requeued" (an unexpected
    error with attempts left), "lost" (the job stopped being ours, e.g. the reaper failed it), or
    "deleted" (its row went, with its project, while it ran).
    """
    if not training_job_claim(job_id=job_id, worker_hostname=worker_hostname):
        log.info("job %s: not claimable (already taken, cancelled or finished); skipping", job_id)
        return "skipped"
    job = TrainingJob.objects.select_related("experiment__dataset", "experiment__project").get(pk=job_id)
    return _JobRun(job).run()


def _beat(job_id: int) -> bool:
    # False once the row is no longer running (reaped, cancelled and finished, or deleted).
    return TrainingJob.objects.filter(pk=job_id, status=Status.RUNNING).update(heartbeat_at=timezone.now()) == 1


class _JobRun:
    def __init__(self, job: TrainingJob):
        self.job = job
        self.experiment = job.experiment
        self.log_lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._last_write = 0.0
        self._last_phase = ""
        self._last_poll = 0.0
        self._stop = False
        self._base_model_id = None
        self._checkpoint_due = False
        self._process: dict = {"warm": False, "pid": os.getpid(), "job_in_process": 1}
        self.heartbeat = Heartbeat(f"heartbeat-{job.pk}", partial(_beat, job.pk), settings.TL_HEARTBEAT_SECONDS)

    # --- callbacks given to the engine ---

    def on_progress(self, p) -> None:
        if self._checkpoint_due and not p.logs:
            # The engine checkpoints an epoch after reporting it: by the next report it is written.
            self._checkpoint_due = False
            checkpoint_publish(self.job.pk)
        self._checkpoint_due = self._checkpoint_due or bool(p.logs)
        now = time.monotonic()
        phase_changed = p.phase != self._last_phase
        if phase_changed:
            self._log(f"phase: {p.phase}")
        if p.logs:
            self._log(
                f"epoch {p.epoch}/{p.epochs}: "
                + " ".join(f"{k}={v:.4f}" for k, v in p.logs.items() if k != "epoch" and v is not None)
            )
            EpochMetric.objects.update_or_create(
                job_id=self.job.pk,
                epoch=p.epoch,
                defaults={k: p.logs.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            )
        elif not phase_changed and now - self._last_write < PROGRESS_WRITE_SECONDS:
            return
        self._last_write, self._last_phase = now, p.phase
        fields = {
            "progress": min(1.0, max(0.0, p.fraction)),
            "phase": p.phase,
            "epochs": p.epochs,
            "heartbeat_at": timezone.now(),
        }
        if p.phase == "training":
            fields["epoch"] = p.epoch
        if p.logs or phase_changed:
            fields["log_tail"] = self._tail()
        TrainingJob.objects.filter(pk=self.job.pk, status=Status.RUNNING).update(**fields)

    def on_resume(self, epoch: int, history: list[dict]) -> None:
        """The engine continues after `epoch` completed epochs: the job's metrics become the checkpoint's."""
        self._log(f"resuming after epoch {epoch} from its checkpoint")
        with transaction.atomic():
            EpochMetric.objects.filter(job_id=self.job.pk, epoch__gt=epoch).delete()
            for row in history:
                EpochMetric.objects.update_or_create(
                    job_id=self.job.pk,
                    epoch=row["epoch"],
                    defaults={k: row.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
                )
            TrainingJob.objects.filter(pk=self.job.pk, status=Status.RUNNING).update(
                resumed_from_epoch=epoch, epoch=epoch, log_tail=self._tail()
            )

    def should_stop(self) -> bool:
        if self.heartbeat.lost.is_set():
            return True
        now = time.monotonic()
        if not self._stop and now - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = now
            row = TrainingJob.objects.filter(pk=self.job.pk).values_list("status", "cancel_requested").first()
            self._stop = row is None or row[0] != Status.RUNNING or row[1]
        return self._stop

    # --- the run ---

    def run(self) -> str:
        from workers.ml.errors import Cancelled, MLError

        self.heartbeat.start()
        try:
            # Partial output of a failed or cancelled run goes with the staging folder, which is
            # removed before the job's final state is written: whoever sees the job ended sees no
            # leftovers. On success the model was moved out of it already.
            with storage.staging("model") as staging:
                try:
                    result = self._train(staging / "model")
                    return self._succeed(result)
                except Cancelled:
                    finish = self._cancelled
                except MLError as exc:
                    finish = partial(self._finish, Status.FAILED, str(exc))
                except Exception as exc:  # noqa: BLE001 - anything else is infrastructure or a bug: bounded retries
                    # A deleted project explains the error: end quietly.
                    finish = self._gone if self._deleted() else partial(self._unexpected, exc)
            return finish()
        finally:
            self.heartbeat.stop()

    def _train(self, output_dir: Path):
        from workers.ml.config import parse_config
        from workers.ml.errors import MLError
        from workers.ml.train import train

        experiment, dataset = self.experiment, self.experiment.dataset
        cfg = parse_config(experiment.config)
        verifier = None
        if settings.TL_WORKER_WARM:
            # TensorFlow is loaded and a verifier waits (docs/decisions.md, "A warm worker for head-only jobs").
            from . import warm

            self._process, verifier = warm.job_started(), warm.verifier()
        checkpoint_fetch(self.job.pk)  # written on another host, perhaps
        if checkpoint_epoch(self.job.pk) is None:
            # Starting at epoch 1: an earlier attempt's epochs are not this run's history.
            EpochMetric.objects.filter(job_id=self.job.pk).delete()
        self._log(
            f"training {experiment.mode} {experiment.backbone} on dataset v{dataset.version} "
            f"(attempt {self.job.attempts}) on {self.job.worker}"
            + (f", warm process, its job {self._process['job_in_process']}" if self._process["warm"] else "")
        )
        # The engine reads and writes local folders; with an object store (docs/architecture.md,
        # "Object storage") this host fetches what it reads and publishes what others may reuse.
        features_key = storage.key_of(storage.features_dir(dataset.feature_hash))
        try:
            with objectstore.using(storage.key_of(storage.dataset_dir(dataset.pk))) as dataset_dir:
                objectstore.fetch_children(features_key)
                try:
                    return train(
                        config=cfg,
                        dataset_dir=dataset_dir,
                        output_dir=output_dir,
                        # One cache folder per dataset content, removed once no dataset with that content is left.
                        cache_dir=storage.features_dir(dataset.feature_hash),
                        dataset_hash=dataset.feature_hash,
                        weights_dir=Path(settings.TL_WEIGHTS_DIR) if settings.TL_WEIGHTS_DIR else None,
                        base_model_dir=self._base_model_dir(),
                        on_progress=self.on_progress,
                        should_stop=self.should_stop,
                        # docs/decisions.md, "Resumable training jobs": kept until the job can no longer continue.
                        checkpoint_dir=storage.checkpoint_dir(self.job.pk),
                        on_resume=self.on_resume,
                        precision_cache=Path(settings.TL_PRECISION_CACHE),
                        verifier=verifier,
                    )
                except BaseException:
                    checkpoint_publish(self.job.pk)  # so that the job can resume on any host
                    raise
                finally:
                    objectstore.publish_children(features_key)
        except objectstore.ObjectMissing as exc:
            raise MLError(f"{exc}: its files are gone (deleted meanwhile?)") from exc

    def _base_model_dir(self) -> Path | None:
        from workers.ml.errors import MLError

        base_id = self.experiment.base_experiment_id
        if base_id is None:
            return None
        model = (
            TrainedModel.objects.filter(experiment_id=base_id, job__status=Status.SUCCEEDED)
            .order_by("-version")
            .first()
        )
        if model is None:
            raise MLError(f"the base experiment {base_id} has no trained model; run it to success first")
        self._base_model_id = model.pk
        return objectstore.fetch(model.path)

    def _succeed(self, result) -> str:
        now = timezone.now()
        final = None
        self._log(
            f"done: {result.evaluation.get('split', 'validation')} accuracy {result.evaluation.get('accuracy', 0):.4f}, "
            f"best epoch {result.best_epoch}"
        )
        job_result = {
            "class_names": result.class_names,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "evaluation": result.evaluation,
            # With where it ran: a warm worker's process, and how many jobs that process had run.
            "timings": {**result.timings, "process": self._process},
            "model_bytes": result.model_bytes,
            "sha256": result.sha256,
            "round_trip": result.round_trip,
            "threshold_curve": result.threshold_curve,
            "scored": result.scored,
            # The layers as model.summary() shows them, for the page and the API (workers/ml/summary.py).
            "summary": (result.model_info or {}).get("summary"),
        }
        if result.base_evaluation is not None:
            job_result["base_evaluation"] = {**result.base_evaluation, "model_id": self._base_model_id}
        try:
            with transaction.atomic():
                won = TrainingJob.objects.filter(pk=self.job.pk, status=Status.RUNNING, cancel_requested=False).update(
                    status=Status.SUCCEEDED,
                    progress=1.0,
                    phase="done",
                    finished_at=now,
                    heartbeat_at=now,
                    result=job_result,
                    error="",
                    log_tail=self._tail(),
                )
                if not won:
                    return self._lost_or_cancelled()
                model = trained_model_create(
                    job=self.job,
                    experiment=self.experiment,
                    model_dir=result.model_dir,
                    size_bytes=result.model_bytes,
                    checksum=result.sha256,
                    class_names=result.class_names,
                    info=result.model_info or {},
                    accuracy=result.evaluation.get("accuracy"),
                )
                # Moved inside the transaction: if the commit fails, the except below removes it,
                # so a model folder exists exactly when its row does.
                final = model.files_dir
        except BaseException:
            if final is not None:
                storage.remove(final)  # the store's copy too
            raise
        checkpoint_remove(self.job.pk)  # a succeeded job never continues
        log.info("job %s succeeded: model v%s at %s", self.job.pk, model.version, model.path)
        return "succeeded"

    def _lost_or_cancelled(self) -> str:
        row = TrainingJob.objects.filter(pk=self.job.pk).values_list("status", "cancel_requested").first()
        if row is None:
            return self._gone()
        if row[0] == Status.RUNNING and row[1]:
            return self._cancelled()
        log.warning("job %s is no longer ours (%s); discarding its output", self.job.pk, row and row[0])
        return "lost"

    def _cancelled(self) -> str:
        self._log("cancelled")
        return self._finish(Status.CANCELLED, "Cancelled while running; partial files were removed.")

    def _unexpected(self, exc: Exception) -> str:
        from celery.exceptions import SoftTimeLimitExceeded

        from webapp.core.redact import without_server_paths

        from .jobqueue import BrokerUnavailable, job_enqueue

        self.log_lines.extend(traceback.format_exception(exc)[-6:])
        if isinstance(exc, SoftTimeLimitExceeded):
            return self._finish(
                Status.FAILED,
                f"Training exceeded the time limit of {settings.TL_TRAINING_TIME_LIMIT} s "
                "(TL_TRAINING_TIME_LIMIT); use fewer epochs or a smaller image size.",
            )
        # Users see this; an OSError names a server file, which only the log should show.
        detail = without_server_paths(f"{type(exc).__name__}: {exc}")
        log.exception("job %s: unexpected error on attempt %s", self.job.pk, self.job.attempts)
        if self.job.attempts >= MAX_ATTEMPTS:
            return self._finish(
                Status.FAILED,
                f"Internal error after {self.job.attempts} attempts ({detail}). "
                "An administrator should check the worker logs.",
            )
        # Back to queued (from running only), fresh progress, then a new message after a delay; the
        # next attempt continues from the checkpoint if there is one (and keeps its epochs' metrics).
        done = checkpoint_epoch(self.job.pk)
        if done is None:
            EpochMetric.objects.filter(job_id=self.job.pk).delete()
        retrying = f"retrying from epoch {done + 1}" if done else "retrying"
        if not TrainingJob.objects.filter(pk=self.job.pk, status=Status.RUNNING, cancel_requested=False).update(
            status=Status.QUEUED,
            worker="",
            progress=0.0,
            phase="",
            epoch=0,
            heartbeat_at=None,
            started_at=None,
            error=f"Attempt {self.job.attempts} failed ({detail}); {retrying}.",
            log_tail=self._tail(),
        ):
            return self._lost_or_cancelled()
        try:
            job_enqueue(job=self.job, countdown=RETRY_DELAY_SECONDS * self.job.attempts)
        except BrokerUnavailable:
            return "failed"  # job_enqueue already failed the row with the reason
        return "requeued"

    def _finish(self, status: str, error: str) -> str:
        from webapp.core.redact import without_server_paths

        # The log keeps the engine's full text; users see a file's name, never a server path (an
        # MLError may name one: "the dataset has no train/ folder (/srv/.../datasets/7/train)").
        if TrainingJob.objects.filter(pk=self.job.pk, status=Status.RUNNING).update(
            status=status, error=without_server_paths(error), finished_at=timezone.now(), log_tail=self._tail()
        ):
            log.info("job %s %s: %s", self.job.pk, status, error)
            return str(status)
        if self._deleted():
            return self._gone()
        log.warning("job %s is no longer running; not marking it %s", self.job.pk, status)
        return "lost"

    def _deleted(self) -> bool:
        return not TrainingJob.objects.filter(pk=self.job.pk).exists()

    def _gone(self) -> str:
        checkpoint_remove(self.job.pk)  # its project deletion may have run before our last epoch's write
        log.info("job %s was deleted while it ran (with its project?); stopped, its partial files removed", self.job.pk)
        return "deleted"

    def _log(self, line: str) -> None:
        self.log_lines.append(f"{timezone.now():%H:%M:%S} {line}")

    def _tail(self) -> str:
        return "\n".join(line.rstrip("\n") for line in self.log_lines)
